"""AF_10103 logic: verify an organisation (Verfahren 1 or 2) and hand out a registration token.

Rules enforced here, whichever edge (web page or JSON API) calls:

* ML-128758: the ID token is checked by :mod:`.oidc` before anything is trusted.
* ML-128759: the ``professionOID`` (from the ID token, or from the directory entry in
  Verfahren 2) must be an institution OID (:func:`.professions.check_institution`);
  an HBA card is refused naming the SMC-B.
* ML-128757: only the Org-Admin may authenticate the organisation. The person completing a
  verification becomes the organisation's first Org-Admin (the registration token creates
  that account). Once the organisation has an *active* Org-Admin, a new verification is
  refused with 409 naming ML-128757: further admins are invited by an existing admin
  (``POST /api/v1/invitations``), so nobody holding the SMC-B for a moment takes over an
  organisation's Messenger-Services behind its admins' backs.
* ML-132446: each completed verification (OIDC callback, KIM confirmation) writes one
  raw-data record ``AF_10103`` (success or failure; no personal data).

Every outcome is audited (actor ``org:<TelematikID>``, or ``anonymous`` when unknown).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from aiohttp import web

from timkit.core.errors import Codes, TimkitError
from timkit.core.jwt import TokenError
from timkit.registration.auth import audit_action
from timkit.registration.context import COMPONENT, RegistrationContext
from timkit.registration.institution_check import check_institution
from timkit.registration.storage import audit, flows, organisations
from timkit.registration.storage.secrets import new_token
from timkit.registration.verification.kim import KimDirectorySource, send_mail
from timkit.registration.verification.oidc import OidcClient

USE_CASE = "AF_10103"
REQ_ADMIN = "ML-128757"
REQ_VERIFIED = "ML-128759"
REQ_TOKEN = "ML-128758"  # noqa: S105 - a requirement id, not a secret
CALLBACK_PATH = "/oidc/callback"
CONFIRM_PATH = "/kim/confirm"
MODES = ("web", "api")


@dataclass
class Verifiers:
    """Per-process verification state: the IDP client and the KIM directory."""

    oidc: OidcClient
    kim: KimDirectorySource


VERIFIERS_KEY = web.AppKey("registration.verifiers", Verifiers)


def verifiers_for(ctx: RegistrationContext) -> Verifiers:
    """The verifiers configured by ``ctx.config``."""
    return Verifiers(
        oidc=OidcClient(ctx.config.idp, ctx.http, ctx.base + CALLBACK_PATH),
        kim=KimDirectorySource(ctx.config.kim.directory),
    )


@dataclass(frozen=True)
class Verified:
    """A verified organisation and the token that creates its (next) Org-Admin account.

    Attributes:
        organisation: the stored organisation.
        registration_token: single use, valid ``expires_in`` seconds.
        expires_in: seconds.
        mode: ``web`` or ``api`` (how the flow was started).
        lang: the language the flow was started in.
    """

    organisation: organisations.Organisation
    registration_token: str
    expires_in: int
    mode: str
    lang: str


def _now() -> int:
    return int(time.time())


def _admin_exists(telematik_id: str, lang: str) -> TimkitError:
    message = (
        f"the organisation {telematik_id} already has an Org-Admin; further admins are "
        "invited by an existing Org-Admin"
        if lang == "en"
        else f"Die Organisation {telematik_id} hat bereits einen Org-Admin; weitere Admins "
        "lädt ein bestehender Org-Admin ein"
    )
    return TimkitError(409, Codes.ORG_HAS_ADMIN, message, requirement=REQ_ADMIN)


def _register(
    ctx: RegistrationContext,
    telematik_id: str,
    profession_oid: str,
    name: str,
    by: str,
    lang: str,
) -> tuple[organisations.Organisation, str]:
    """Store the verified organisation and a registration token (one transaction)."""
    token = new_token()
    with ctx.db.write() as tx:
        if organisations.has_active_admin(tx, telematik_id):
            audit.record(
                tx,
                f"org:{telematik_id}",
                telematik_id,
                f"verify.{by}",
                telematik_id,
                "refused",
                "organisation already has an Org-Admin",
            )
            raise _admin_exists(telematik_id, lang)
        organisation = organisations.upsert(tx, telematik_id, profession_oid, name, by)
        expires = _now() + ctx.config.accounts.registration_lifetime
        organisations.add_registration(tx, token, telematik_id, by, f"verify.{by}", expires)
        audit.record(
            tx, f"org:{telematik_id}", telematik_id, f"verify.{by}", telematik_id, "success"
        )
    return organisation, token


async def start_oidc(ctx: RegistrationContext, verifiers: Verifiers, mode: str, lang: str) -> str:
    """Start Verfahren 1: persist a flow and return the IDP authorization URL.

    Raises:
        TimkitError: 503 when no IDP is configured or it cannot be reached.
    """
    if not verifiers.oidc.enabled:
        raise TimkitError(503, Codes.UNAVAILABLE, "Verfahren 1 (OIDC) is not configured")
    state, flow = verifiers.oidc.new_flow(mode if mode in MODES else "web", lang)
    url = await verifiers.oidc.authorization_url(state, flow)
    now = _now()

    def store() -> None:
        with ctx.db.write() as tx:
            flows.add_flow(tx, state, flow, now + ctx.config.idp.flow_lifetime, now)

    await ctx.blocking(store)
    return url


async def finish_oidc(
    ctx: RegistrationContext, verifiers: Verifiers, code: str, state: str
) -> Verified:
    """Finish Verfahren 1 at the callback: redeem, verify, check the OID, store.

    Raises:
        TokenError: 401 for an unknown/used/expired ``state``, a refused code or a bad ID
            token (ML-128758).
        TimkitError: 403 for a person (HBA) or unknown OID (ML-128759); 409 when the
            organisation already has an Org-Admin (ML-128757).
    """
    async with ctx.rawdata.measure(USE_CASE, COMPONENT):

        def take() -> flows.OidcFlow | None:
            with ctx.db.write() as tx:
                return flows.take_flow(tx, state, _now())

        flow = await ctx.blocking(take) if state else None
        if flow is None:
            raise TokenError("unknown, expired or already used OIDC state", requirement=REQ_TOKEN)
        try:
            claims = await verifiers.oidc.redeem(code, flow)
        except TimkitError as e:
            await audit_action(ctx, "anonymous", "verify.oidc", "", "refused", detail=e.message)
            raise
        telematik_id = str(claims["idNummer"])
        oid = str(claims["professionOID"])
        try:
            check_institution(oid, flow.lang)
        except TimkitError as e:
            await audit_action(
                ctx,
                f"org:{telematik_id}",
                "verify.oidc",
                telematik_id,
                "refused",
                telematik_id=telematik_id,
                detail=e.message,
            )
            raise
        name = str(claims.get("organizationName") or telematik_id)
        organisation, token = await ctx.blocking(
            _register, ctx, telematik_id, oid, name, "oidc", flow.lang
        )
        return Verified(
            organisation, token, ctx.config.accounts.registration_lifetime, flow.mode, flow.lang
        )


def mask(address: str) -> str:
    """``praxis@kim.example`` → ``p*****@kim.example`` (shown to the actor)."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}{'*' * max(len(local) - 1, 3)}@{domain}"


def _mail_text(lang: str, name: str, link: str, hours: int) -> tuple[str, str]:
    if lang == "en":
        return (
            "TI-Messenger: confirm the registration of your organisation",
            f'Hello,\n\nsomebody asked to register the organisation "{name}" with the '
            f"TI-Messenger Registrierungs-Dienst.\nIf that was you, open this link within "
            f"{hours} hours (it works once):\n\n{link}\n\nIf not, ignore this message.\n",
        )
    return (
        "TI-Messenger: Registrierung Ihrer Organisation bestätigen",
        f'Guten Tag,\n\nfür die Organisation "{name}" wurde die Registrierung beim '
        f"Registrierungs-Dienst des TI-Messengers angefordert.\nWenn Sie das waren, öffnen "
        f"Sie innerhalb von {hours} Stunden diesen Link (nur einmal gültig):\n\n{link}\n\n"
        "Andernfalls ignorieren Sie diese Nachricht.\n",
    )


async def start_kim(
    ctx: RegistrationContext, verifiers: Verifiers, telematik_id: str, lang: str
) -> str:
    """Start Verfahren 2: mail a one-time link to the organisation's KIM address.

    Returns:
        the masked KIM address the link was sent to.

    Raises:
        TimkitError: 400 for an empty TelematikID; 404 when the directory has no entry;
            422 when the entry has no KIM address; 403 for a non-institution OID (ML-128759);
            409 when the organisation has an Org-Admin (ML-128757); 502/503 when the
            directory or the SMTP relay fails.
    """
    telematik_id = telematik_id.strip()
    if not telematik_id or len(telematik_id) > 128:
        raise TimkitError(400, Codes.INVALID_PARAM, "telematikID is required")
    if not verifiers.kim.enabled:
        raise TimkitError(503, Codes.UNAVAILABLE, "Verfahren 2 (KIM) is not configured")
    entry = await ctx.blocking(verifiers.kim.lookup, telematik_id)
    if entry is None:
        raise TimkitError(
            404, Codes.NOT_FOUND, f"no directory entry for TelematikID {telematik_id}"
        )
    if not entry.mails:
        raise TimkitError(
            422, Codes.INVALID_PARAM, f"the directory entry of {telematik_id} has no KIM address"
        )
    oid = next((o for o in entry.profession_oids), "")
    for candidate in entry.profession_oids:
        try:
            check_institution(candidate, lang)
        except TimkitError:
            continue
        oid = candidate
        break
    else:
        check_institution(oid, lang)  # raises the refusal for the entry's (first) OID

    def has_admin() -> bool:
        with ctx.db.read() as cur:
            return organisations.has_active_admin(cur, telematik_id)

    if await ctx.blocking(has_admin):
        raise _admin_exists(telematik_id, lang)
    token = new_token()
    lifetime = ctx.config.kim.link_lifetime
    address = entry.mails[0]
    name = entry.name or telematik_id

    def store() -> None:
        with ctx.db.write() as tx:
            flows.add_link(tx, token, telematik_id, oid, name, address, _now() + lifetime)

    await ctx.blocking(store)
    link = f"{ctx.base}{CONFIRM_PATH}?token={token}"
    subject, body = _mail_text(lang, name, link, max(lifetime // 3600, 1))
    try:
        await ctx.blocking(send_mail, ctx.config.kim.smtp, address, subject, body)
    except TimkitError as e:
        await audit_action(
            ctx,
            f"org:{telematik_id}",
            "verify.kim.send",
            telematik_id,
            "failure",
            telematik_id=telematik_id,
            detail=e.message,
        )
        raise
    await audit_action(
        ctx,
        f"org:{telematik_id}",
        "verify.kim.send",
        telematik_id,
        "success",
        telematik_id=telematik_id,
    )
    return mask(address)


async def confirm_kim(ctx: RegistrationContext, token: str, lang: str) -> Verified:
    """Finish Verfahren 2: the link was opened.

    Raises:
        TimkitError: 404 for an unknown link, 410 ``M_EXPIRED`` for an expired or used one,
            403 (ML-128759) and 409 (ML-128757) as in :func:`finish_oidc`.
    """
    async with ctx.rawdata.measure(USE_CASE, COMPONENT):
        now = _now()

        def take() -> flows.KimLink | None:
            with ctx.db.write() as tx:
                link = flows.get_link(tx, token)
                if link is not None and not link.used and link.expires >= now:
                    flows.use_link(tx, token, now)
                return link

        link = await ctx.blocking(take) if token else None
        en = lang == "en"
        if link is None:
            raise TimkitError(
                404,
                Codes.NOT_FOUND,
                "unknown confirmation link" if en else "Unbekannter Bestätigungslink",
            )
        if link.used:
            raise TimkitError(
                410,
                Codes.EXPIRED,
                "this confirmation link has already been used"
                if en
                else "Dieser Bestätigungslink wurde bereits verwendet",
            )
        if link.expires < now:
            raise TimkitError(
                410,
                Codes.EXPIRED,
                "this confirmation link has expired; request a new one"
                if en
                else "Dieser Bestätigungslink ist abgelaufen; fordern Sie einen neuen an",
            )
        check_institution(link.profession_oid, lang)
        organisation, registration = await ctx.blocking(
            _register, ctx, link.telematik_id, link.profession_oid, link.name, "kim", lang
        )
        return Verified(
            organisation, registration, ctx.config.accounts.registration_lifetime, "web", lang
        )
