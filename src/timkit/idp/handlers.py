"""The code flow of the IDP stand-in: authorization requests, card choice, code redemption.

Authorization request checks (``GET /auth``, RFC 6749 §4.1.1, RFC 7636, OIDC Core §3.1.2):

* ``client_id`` must be registered and ``redirect_uri`` one of its redirect URIs, compared
  exactly. Until both hold, errors are shown to the user (:class:`TimkitError`, rendered as
  an HTML page): the redirect URI is not trusted yet.
* After that, errors go back to the client as a redirect (:class:`AuthorizationError`):
  ``response_type`` must be ``code``, ``scope`` must contain ``openid`` and only scopes of
  :data:`SCOPES`, ``state`` is required, PKCE is mandatory (``code_challenge`` and
  ``code_challenge_method=S256``; ``plain`` is refused).

Token request checks (``POST /token``, RFC 6749 §4.1.3, RFC 7636 §4.6), each failing with
its OAuth error: ``grant_type=authorization_code`` (``unsupported_grant_type``); the client
authenticates with its secret when it has one, by Basic or form fields (``invalid_client``);
the code is known, unexpired and unused, issued to this client for this ``redirect_uri``
(``invalid_grant``); ``code_verifier`` hashes (S256) to the challenge (``invalid_grant``).
A code is used up by its first redemption attempt, whatever the outcome.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from yarl import URL

from timkit.core import jwt
from timkit.core.errors import TimkitError
from timkit.idp.cards import Card
from timkit.idp.config import ClientConfig, IdpConfig
from timkit.idp.grants import AuthorizationCodes, AuthorizationRequest, PendingRequests
from timkit.idp.keys import SigningKey
from timkit.idp.tokens import TokenIssuer

SCOPES = ("openid", "ti-messenger", "gem-auth")
"""Scopes a client may request: ``openid`` (required) and gematik's ``ti-messenger`` and
``gem-auth``; all of them yield the same ID token claims here."""

CLAIMS = (
    "iss",
    "sub",
    "aud",
    "azp",
    "iat",
    "exp",
    "auth_time",
    "nonce",
    "acr",
    "amr",
    "jti",
    "at_hash",
    "scope",
    "idNummer",
    "professionOID",
    "organizationName",
    "given_name",
    "family_name",
    "display_name",
    "kim",
)
MAX_PARAM = 1024
_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")
_VERIFIER = re.compile(r"[A-Za-z0-9._~-]{43,128}")


class AuthorizationError(TimkitError):
    """An authorization request error reported to the client by redirect (RFC 6749 §4.1.2.1).

    Args:
        redirect_uri: the verified redirect URI of the request.
        state: the request's ``state`` ("" when it had none).
        error: OAuth error code, e.g. ``invalid_request``.
        message: ``error_description``, naming what was wrong.
    """

    def __init__(self, redirect_uri: str, state: str, error: str, message: str) -> None:
        super().__init__(302, error, message)
        self.redirect_uri = redirect_uri
        self.state = state

    def location(self, issuer: str) -> str:
        """The redirect target carrying ``error``, ``error_description``, ``state``, ``iss``."""
        query = {"error": self.errcode, "error_description": self.message}
        if self.state:
            query["state"] = self.state
        query["iss"] = issuer
        return str(URL(self.redirect_uri).extend_query(query))


@dataclass(frozen=True)
class ClientCredentials:
    """Client authentication presented at the token endpoint.

    Attributes:
        client_id: the client id (Basic user name or form ``client_id``).
        secret: the secret presented, or None.
    """

    client_id: str
    secret: str | None


def s256(verifier: str) -> str:
    """The PKCE S256 challenge of ``verifier``."""
    return jwt.b64url(hashlib.sha256(verifier.encode("ascii")).digest())


class Provider:
    """The IDP stand-in: one per process.

    Args:
        config: the IDP's configuration.
        cards: the virtual smartcards users may choose from.
        key: the ID token signing key.
        clock: epoch seconds (codes, pending requests, token times).
    """

    def __init__(
        self,
        config: IdpConfig,
        cards: tuple[Card, ...],
        key: SigningKey,
        clock: Callable[[], float],
    ) -> None:
        self.config = config
        self.issuer = config.public_issuer()
        self.cards = cards
        self.key = key
        self._cards = {card.id: card for card in cards}
        self._pending = PendingRequests(config.login_lifetime, clock)
        self._codes = AuthorizationCodes(config.code_lifetime, clock)
        self._tokens = TokenIssuer(key, self.issuer, config.id_token_lifetime, clock)

    def discovery(self) -> dict[str, Any]:
        """The OpenID Connect discovery document."""
        return {
            "issuer": self.issuer,
            "authorization_endpoint": self.issuer + "/auth",
            "token_endpoint": self.issuer + "/token",
            "jwks_uri": self.issuer + "/jwks",
            "uri_disc": self.issuer + "/.well-known/openid-configuration",
            "scopes_supported": list(SCOPES),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [self.key.alg],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
                "none",
            ],
            "acr_values_supported": ["gematik-ehealth-loa-high"],
            "claims_supported": list(CLAIMS),
            "authorization_response_iss_parameter_supported": True,
        }

    def check_request(self, params: Mapping[str, str]) -> AuthorizationRequest:
        """Validate an authorization request (see the module docstring).

        Raises:
            TimkitError: 400 while client or redirect URI are not established (an HTML page).
            AuthorizationError: for every later error (a redirect to the client).
        """
        for name, value in params.items():
            if len(value) > MAX_PARAM:
                raise TimkitError(400, "invalid_request", f"{name} is too long")
        client_id = params.get("client_id", "")
        redirect_uri = params.get("redirect_uri", "")
        if not client_id:
            raise TimkitError(400, "invalid_request", "client_id is missing")
        client = self.config.client(client_id)
        if client is None:
            raise TimkitError(400, "unauthorized_client", f"client_id {client_id!r} is unknown")
        if not redirect_uri:
            raise TimkitError(400, "invalid_request", "redirect_uri is missing")
        if redirect_uri not in client.redirect_uris:
            raise TimkitError(
                400,
                "invalid_request",
                f"redirect_uri {redirect_uri!r} is not registered for client {client_id!r}",
            )
        state = params.get("state", "")

        def fail(error: str, message: str) -> AuthorizationError:
            return AuthorizationError(redirect_uri, state, error, message)

        if params.get("response_type") != "code":
            raise fail("unsupported_response_type", "response_type must be 'code'")
        scope = tuple(params.get("scope", "").split())
        if "openid" not in scope:
            raise fail("invalid_scope", "scope must contain 'openid'")
        unknown = [s for s in scope if s not in SCOPES]
        if unknown:
            raise fail("invalid_scope", f"unsupported scope {unknown[0]!r}")
        if not state:
            raise fail("invalid_request", "state is missing")
        challenge = params.get("code_challenge", "")
        method = params.get("code_challenge_method", "")
        if not challenge:
            raise fail("invalid_request", "code_challenge is missing: PKCE is required")
        if method != "S256":
            raise fail("invalid_request", "code_challenge_method must be 'S256'")
        if not _CHALLENGE.fullmatch(challenge):
            raise fail("invalid_request", "code_challenge is not a base64url SHA-256 hash")
        nonce = params.get("nonce")
        return AuthorizationRequest(
            client_id=client_id,
            redirect_uri=redirect_uri,
            scope=tuple(dict.fromkeys(scope)),
            state=state,
            nonce=nonce or None,
            code_challenge=challenge,
        )

    def remember(self, request: AuthorizationRequest) -> str:
        """Keep ``request`` for the card-selection form; returns its opaque request id."""
        return self._pending.add(request)

    def resume(self, request_id: str) -> AuthorizationRequest:
        """The request a card-selection form answers (single use).

        Raises:
            TimkitError: 400 for an unknown, used or expired request id (an HTML page).
        """
        request = self._pending.take(request_id) if request_id else None
        if request is None:
            raise TimkitError(
                400,
                "invalid_request",
                "the sign-in request is unknown or has expired; start again at the application",
            )
        return request

    def choose(self, request: AuthorizationRequest, card_id: str) -> str:
        """The redirect for ``request`` answered with the card ``card_id``: a new code.

        Raises:
            AuthorizationError: ``invalid_request`` when no such card exists.
        """
        if card_id not in self._cards:
            raise AuthorizationError(
                request.redirect_uri, request.state, "invalid_request", f"no card {card_id!r}"
            )
        code = self._codes.issue(request, card_id)
        query = {"code": code, "state": request.state, "iss": self.issuer}
        return str(URL(request.redirect_uri).extend_query(query))

    def deny(self, request: AuthorizationRequest) -> str:
        """The redirect for a user who cancelled the card selection (``access_denied``)."""
        error = AuthorizationError(
            request.redirect_uri, request.state, "access_denied", "the user cancelled"
        )
        return error.location(self.issuer)

    def redeem(
        self, form: Mapping[str, str], credentials: ClientCredentials | None
    ) -> dict[str, Any]:
        """Redeem an authorization code (see the module docstring).

        Args:
            form: the token request's form fields.
            credentials: Basic credentials from the ``Authorization`` header, if any.

        Returns:
            The token response.

        Raises:
            TimkitError: with the RFC 6749 §5.2 error code naming what was wrong.
        """
        grant_type = form.get("grant_type", "")
        if grant_type != "authorization_code":
            raise TimkitError(
                400,
                "unsupported_grant_type",
                f"grant_type {grant_type!r} is not supported (only authorization_code)",
            )
        client = self._authenticate(form, credentials)
        code = form.get("code", "")
        if not code:
            raise TimkitError(400, "invalid_request", "code is missing")
        grant = self._codes.redeem(code)
        request = grant.request
        if request.client_id != client.client_id:
            raise TimkitError(400, "invalid_grant", "the code was issued to another client")
        if form.get("redirect_uri", "") != request.redirect_uri:
            raise TimkitError(
                400, "invalid_grant", "redirect_uri does not match the authorization request"
            )
        verifier = form.get("code_verifier", "")
        if not verifier:
            raise TimkitError(400, "invalid_request", "code_verifier is missing: PKCE is required")
        if not _VERIFIER.fullmatch(verifier):
            raise TimkitError(
                400, "invalid_request", "code_verifier must be 43 to 128 unreserved characters"
            )
        if not secrets.compare_digest(s256(verifier), request.code_challenge):
            raise TimkitError(400, "invalid_grant", "code_verifier does not match code_challenge")
        return self._tokens.issue(grant, self._cards[grant.card_id])

    def _authenticate(
        self, form: Mapping[str, str], credentials: ClientCredentials | None
    ) -> ClientConfig:
        form_id = form.get("client_id", "")
        if credentials is not None and form_id and form_id != credentials.client_id:
            raise TimkitError(
                400, "invalid_request", "client_id differs from the Basic authentication"
            )
        client_id = credentials.client_id if credentials is not None else form_id
        secret = credentials.secret if credentials is not None else form.get("client_secret")
        if not client_id:
            raise TimkitError(401, "invalid_client", "client_id is missing")
        client = self.config.client(client_id)
        if client is None:
            raise TimkitError(401, "invalid_client", f"client_id {client_id!r} is unknown")
        if client.client_secret:
            if not secret:
                raise TimkitError(401, "invalid_client", f"client {client_id!r} must authenticate")
            if not secrets.compare_digest(secret.encode(), client.client_secret.encode()):
                raise TimkitError(401, "invalid_client", "the client secret is wrong")
        elif secret:
            raise TimkitError(
                401, "invalid_client", f"client {client_id!r} is public and has no secret"
            )
        return client
