"""WebAuthn ceremonies (py_webauthn) for Org-Admins: registration and authentication.

Relying party id: ``accounts.webauthn_rp_id`` or the host of the RD's public base URL; the
expected origin is the public base URL. Attestation is not required (``none``; a ``packed``
self-attestation is verified as well). User verification is *preferred*; user presence is
required. Challenges (32 random bytes) are stored per ceremony, single use, valid
:data:`CEREMONY_LIFETIME` seconds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import webauthn
from webauthn.helpers import bytes_to_base64url, generate_challenge
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from timkit.core.errors import Codes, TimkitError
from timkit.registration.context import RegistrationContext
from timkit.registration.storage import accounts
from timkit.registration.storage.secrets import new_token

CEREMONY_LIFETIME = 300
REQUIREMENT = "ML-129853"
_Verified = TypeVar("_Verified")


def rp_id(ctx: RegistrationContext) -> str:
    """The relying-party id (a host name)."""
    return ctx.config.accounts.webauthn_rp_id or (urlsplit(ctx.base).hostname or "localhost")


def registration_options(ctx: RegistrationContext, account: accounts.Account) -> dict[str, Any]:
    """Begin a registration ceremony: ``{"ceremony", "publicKey"}`` (options as JSON)."""
    now = int(time.time())
    with ctx.db.read() as cur:
        existing = accounts.credentials(cur, account.id)
    challenge = generate_challenge()
    options = webauthn.generate_registration_options(
        rp_id=rp_id(ctx),
        rp_name=ctx.config.accounts.webauthn_rp_name,
        user_name=account.username,
        user_id=f"rd-account-{account.id}".encode(),
        user_display_name=f"{account.username} ({account.organisation})",
        challenge=challenge,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.DISCOURAGED,
            user_verification=UserVerificationRequirement.PREFERRED,
        ),
        exclude_credentials=[
            PublicKeyCredentialDescriptor(id=webauthn.base64url_to_bytes(c.credential_id))
            for c in existing
        ],
    )
    ceremony = new_token()
    with ctx.db.write() as tx:
        accounts.add_challenge(
            tx, ceremony, account.id, "register", challenge, now + CEREMONY_LIFETIME, now
        )
    return {"ceremony": ceremony, "publicKey": json.loads(webauthn.options_to_json(options))}


def _refused(message: str) -> TimkitError:
    return TimkitError(401, Codes.WEBAUTHN, message, requirement=REQUIREMENT)


def _verified(
    ctx: RegistrationContext,
    ceremony: str,
    verify: Callable[..., _Verified],
    credential: dict[str, Any],
    challenge: bytes,
    **more: Any,
) -> _Verified:
    """``verify`` (py_webauthn's registration or authentication check) of ``credential``
    against ``challenge``, this RD's RP ID and origin.

    Raises:
        TimkitError: 401 ``M_WEBAUTHN`` naming the ``ceremony`` and why it failed.
    """
    try:
        return verify(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=rp_id(ctx),
            expected_origin=ctx.base,
            **more,
        )
    except (WebAuthnException, ValueError, KeyError, TypeError) as e:
        raise _refused(f"WebAuthn {ceremony} failed: {e}") from e


def _take_challenge(ctx: RegistrationContext, ceremony: str, purpose: str) -> tuple[int, bytes]:
    """The account id and challenge of an open ``purpose`` ceremony, used up.

    Raises:
        TimkitError: 401 ``M_WEBAUTHN`` for an unknown or expired ceremony.
    """
    now = int(time.time())
    with ctx.db.write() as tx:
        taken = accounts.take_challenge(tx, ceremony, purpose, now)
    if taken is None:
        raise _refused("unknown or expired WebAuthn ceremony")
    return taken


def finish_registration(
    ctx: RegistrationContext, ceremony: str, credential: dict[str, Any], name: str
) -> int:
    """Verify the authenticator's response and store the credential; the account id.

    Raises:
        TimkitError: 401 ``M_WEBAUTHN`` for an unknown ceremony or a response that fails.
    """
    account_id, challenge = _take_challenge(ctx, ceremony, "register")
    verified = _verified(
        ctx, "registration", webauthn.verify_registration_response, credential, challenge
    )
    with ctx.db.write() as tx:
        accounts.add_credential(
            tx,
            bytes_to_base64url(verified.credential_id),
            account_id,
            verified.credential_public_key,
            verified.sign_count,
            name[:64] or "Sicherheitsschlüssel",
        )
    return account_id


def authentication_options(ctx: RegistrationContext, account: accounts.Account) -> dict[str, Any]:
    """Begin an authentication ceremony for ``account`` (password already checked)."""
    now = int(time.time())
    with ctx.db.read() as cur:
        existing = accounts.credentials(cur, account.id)
    if not existing:
        raise _refused("no WebAuthn authenticator is registered for this account")
    challenge = generate_challenge()
    options = webauthn.generate_authentication_options(
        rp_id=rp_id(ctx),
        challenge=challenge,
        allow_credentials=[
            PublicKeyCredentialDescriptor(id=webauthn.base64url_to_bytes(c.credential_id))
            for c in existing
        ],
        user_verification=UserVerificationRequirement.PREFERRED,
    )
    ceremony = new_token()
    with ctx.db.write() as tx:
        accounts.add_challenge(
            tx, ceremony, account.id, "login", challenge, now + CEREMONY_LIFETIME, now
        )
    return {"ceremony": ceremony, "publicKey": json.loads(webauthn.options_to_json(options))}


def finish_authentication(
    ctx: RegistrationContext, ceremony: str, credential: dict[str, Any]
) -> int:
    """Verify an assertion; the account id it authenticates.

    Raises:
        TimkitError: 401 ``M_WEBAUTHN`` when the ceremony, credential or signature fails.
    """
    account_id, challenge = _take_challenge(ctx, ceremony, "login")
    with ctx.db.read() as cur:
        stored = {c.credential_id: c for c in accounts.credentials(cur, account_id)}
    found = stored.get(str(credential.get("id", "")))
    if found is None:
        raise _refused("this authenticator is not registered for the account")
    verified = _verified(
        ctx,
        "authentication",
        webauthn.verify_authentication_response,
        credential,
        challenge,
        credential_public_key=found.public_key,
        credential_current_sign_count=found.sign_count,
    )
    with ctx.db.write() as tx:
        accounts.set_sign_count(tx, found.credential_id, verified.new_sign_count)
    return account_id
