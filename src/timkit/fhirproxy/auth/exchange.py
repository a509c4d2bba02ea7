"""The token exchanges behind the FHIR-Proxy's authentication endpoints, on typed arguments.

Each function checks what the caller presented (a provider's credentials, a Matrix OpenID
token, a RegService-OpenID-Token, an IDP's ID token claims) and issues the access token it
buys, or raises the OAuth error (:func:`oauth_error`) naming the requirement. Parsing the
request and the rate limits stay in :mod:`timkit.fhirproxy.api.auth_routes`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from timkit.core.errors import TimkitError
from timkit.fhirproxy.auth import matrix_openid
from timkit.fhirproxy.auth.access_tokens import Issued, Kind
from timkit.fhirproxy.auth.regservice_token import verify_regservice_token
from timkit.fhirproxy.context import FhirProxyContext
from timkit.fhirproxy.storage.used_tokens import UsedTokens

T = TypeVar("T")

MATRIX_REQUIREMENT = "ML-123485"
OWNER_REQUIREMENT = "ML-123873"
PROVIDER_REQUIREMENT = "ML-123881"


def oauth_error(status: int, code: str, message: str, requirement: str | None) -> TimkitError:
    """An OAuth error (``{"error": code, "error_description": message}`` when rendered)."""
    return TimkitError(status, code, message, requirement=requirement)


async def _blocking(ctx: FhirProxyContext, function: Callable[..., T], *args: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(ctx.executor, function, *args)


async def client_credentials(ctx: FhirProxyContext, client_id: str, secret: str) -> Issued:
    """A ti-provider-accesstoken for a registered provider's client id and secret.

    Raises:
        TimkitError: 401 ``invalid_client`` (ML-123881) for an unknown client or a wrong
            secret.
    """
    provider = await _blocking(ctx, ctx.providers.authenticate, client_id, secret)
    if provider is None:
        raise oauth_error(
            401, "invalid_client", "unknown client or wrong client secret", PROVIDER_REQUIREMENT
        )
    return ctx.tokens.issue(Kind.TI_PROVIDER, provider.client_id)


async def provider_token(ctx: FhirProxyContext, client_id: str) -> Issued:
    """A provider-accesstoken for ``client_id`` (of a checked ti-provider-accesstoken).

    Raises:
        TimkitError: 401 ``invalid_token`` (ML-123881) when the provider is no longer
            registered.
    """
    if await _blocking(ctx, ctx.providers.get, client_id) is None:
        raise oauth_error(
            401,
            "invalid_token",
            f"provider {client_id!r} is no longer registered",
            PROVIDER_REQUIREMENT,
        )
    return ctx.tokens.issue(Kind.PROVIDER, client_id)


async def search_token(
    ctx: FhirProxyContext,
    resolver: matrix_openid.MatrixResolver,
    server: matrix_openid.ServerName,
    openid_token: str,
) -> Issued:
    """A search-accesstoken for the user ``server`` vouches for with ``openid_token``.

    Raises:
        TimkitError (ML-123485): 403 ``access_denied`` when ``server`` is not in the
            federation list; 401 ``invalid_token`` when the homeserver refuses the token or
            vouches for a user of another server; 503 ``temporarily_unavailable`` when it
            cannot be asked.
    """
    if not await _blocking(ctx, ctx.domains.contains, str(server)):
        raise oauth_error(
            403,
            "access_denied",
            f"{server} is not a homeserver of the TI-Messenger federation",
            MATRIX_REQUIREMENT,
        )
    try:
        mxid = await resolver.userinfo(server, openid_token)
    except matrix_openid.InvalidToken as e:
        raise oauth_error(401, "invalid_token", str(e), MATRIX_REQUIREMENT) from e
    except matrix_openid.Unavailable as e:
        raise oauth_error(
            503,
            "temporarily_unavailable",
            f"cannot check the token at the homeserver: {e}",
            MATRIX_REQUIREMENT,
        ) from e
    try:
        _, user_server = matrix_openid.split_mxid(mxid)
        on_server = matrix_openid.parse_server_name(user_server) == server
    except ValueError:
        on_server = False
    if not on_server:
        raise oauth_error(
            401,
            "invalid_token",
            f"the homeserver {server} vouched for {mxid!r}, which is not a user of {server}",
            MATRIX_REQUIREMENT,
        )
    return ctx.tokens.issue(Kind.SEARCH, matrix_openid.url_notation(mxid))


async def owner_token(ctx: FhirProxyContext, regservice_token: str) -> Issued:
    """An owner-accesstoken for a RegService-OpenID-Token, each token exchanged once.

    Raises:
        TimkitError (ML-123873): 401 when the token does not verify
            (:func:`verify_regservice_token`) or was exchanged before.
    """
    identity = await _blocking(
        ctx,
        verify_regservice_token,
        regservice_token,
        ctx.base + "/owner-authenticate",
        ctx.providers.by_certificate,
        ctx.domains.provider_has_telematik_id,
    )
    first_use = await _blocking(
        ctx, UsedTokens(ctx.db).claim, regservice_token, float(identity.claims["exp"])
    )
    if not first_use:
        raise oauth_error(
            401,
            "invalid_token",
            "this RegService-OpenID-Token was already exchanged at /owner-authenticate;"
            " each token buys one owner-accesstoken (ask the Registrierungs-Dienst for a new"
            " one)",
            OWNER_REQUIREMENT,
        )
    return ctx.tokens.issue(
        Kind.OWNER, identity.telematik_id, {"professionOID": identity.profession_oid}
    )


def idp_owner_token(ctx: FhirProxyContext, claims: Mapping[str, Any]) -> Issued:
    """An owner-accesstoken for a trusted IDP's ID token claims (``sub`` = ``idNummer``)."""
    extra = {"professionOID": claims["professionOID"]} if "professionOID" in claims else None
    return ctx.tokens.issue(Kind.OWNER, str(claims["idNummer"]), extra)
