"""AF_10060 for the web pages and the JSON API: check a domain, provision, deprovision, show.

Only a logged-in Org-Admin reaches these (ML-123648): every function takes the
:class:`~timkit.registration.auth.Admin` the caller got from ``require_admin`` and acts for that
admin's organisation only; another organisation's service is reported as not found.

A domain is available when

1. its syntax is a Matrix server name usable as a TI-M domain: a lower-case DNS name of two or
   more labels, no port, no IP literal, ending in ``provisioning.domain_suffix`` and matching
   ``provisioning.domain_pattern`` when those are set;
2. no other service of this RD holds it (deleted and failed services release their domain);
3. the VZD-FHIR-Directory does not have it registered (``GET /federation?domain=``). When the
   directory cannot be reached the domain counts as available with that said in the reason;
   the ``registering`` step finds out for sure.

:func:`provision` and :func:`deprovision` only write the request into the service's row and
wake the worker (:class:`~timkit.registration.provisioning.state_machine.Provisioner`): the JSON API
answers 202 and callers poll :func:`get_service` for state and progress.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from timkit.core.errors import Codes, TimkitError
from timkit.registration.auth import Admin, audit_action
from timkit.registration.config import ProvisioningSettings
from timkit.registration.context import RegistrationContext
from timkit.registration.directory_client import Ownership
from timkit.registration.provisioning.state_machine import PROGRESS, State
from timkit.registration.storage import services
from timkit.registration.storage.services import RELEASED, Service

REQUIREMENT = "AF_10060"
_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_MAX_LENGTH = 230  # leaves room for "@" + a localpart in a 255-character MXID

DESCRIPTIONS = {
    State.REQUESTED: "Bereitstellung beantragt",
    State.CREATING: "Messenger-Service wird angelegt",
    State.WAITING_HEALTHY: "Messenger-Service startet",
    State.REGISTERING: "Domain wird im VZD-FHIR-Directory eingetragen",
    State.ACTIVE: "Messenger-Service aktiv und in der Föderation",
    State.ROLLING_BACK: "Bereitstellung fehlgeschlagen, wird zurückgenommen",
    State.FAILED: "Bereitstellung fehlgeschlagen",
    State.DEREGISTERING: "Domain wird aus der Föderation entfernt",
    State.DELETING: "Messenger-Service wird gelöscht",
    State.DELETED: "Messenger-Service gelöscht",
}
"""A German one-line description of each state (the pages translate by state)."""


@dataclass(frozen=True)
class DomainCheck:
    """The answer of the domain check: ``available`` and, when not (or unsure), why."""

    domain: str
    available: bool
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        """``{domain, available, reason}``."""
        return {"domain": self.domain, "available": self.available, "reason": self.reason}


@dataclass(frozen=True)
class ServiceView:
    """A Messenger-Service as the Org-Admin sees it.

    Attributes:
        domain: its Matrix domain.
        state: the state machine's state (:class:`State` value).
        step: the step worked on (or that failed).
        progress: 0 to 100.
        description: what is happening, in German.
        error: the last error (a failed service's reason), empty when none.
        attempts: failed tries of the current step.
        client_url: where clients reach it, once created.
        done: whether the state is terminal (active, failed, deleted).
    """

    domain: str
    state: str
    step: str
    progress: int
    description: str
    error: str
    attempts: int
    client_url: str
    done: bool

    @classmethod
    def of(cls, service: Service) -> ServiceView:
        """The view of a stored row."""
        state = State(service.state)
        return cls(
            domain=service.domain,
            state=state.value,
            step=service.step,
            progress=PROGRESS[state],
            description=DESCRIPTIONS[state],
            error=service.error,
            attempts=service.attempts,
            client_url=service.client_url,
            done=state in (State.ACTIVE, State.FAILED, State.DELETED),
        )

    def to_json(self) -> dict[str, Any]:
        """The JSON API's representation."""
        return {
            "domain": self.domain,
            "state": self.state,
            "step": self.step,
            "progress": self.progress,
            "description": self.description,
            "error": self.error,
            "attempts": self.attempts,
            "client_url": self.client_url,
            "done": self.done,
        }


def check_syntax(value: str, settings: ProvisioningSettings) -> str:
    """``value`` as a TI-M domain (see rule 1 of the module docstring), lower-cased.

    Raises:
        ValueError: naming what is wrong, in words an Org-Admin understands.
    """
    domain = value.strip().lower()
    if not domain:
        raise ValueError("enter a domain name, e.g. praxis-beispiel.example.de")
    if ":" in domain or domain.startswith("["):
        raise ValueError(f"{value!r}: a domain name carries no port and is no IP address")
    if len(domain) > _MAX_LENGTH:
        raise ValueError(f"a domain name has at most {_MAX_LENGTH} characters")
    labels = domain.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise ValueError(
            f"{value!r} is not a DNS name: labels of a-z, 0-9 and inner hyphens,"
            " separated by dots, at least two labels"
        )
    if labels[-1].isdigit():
        raise ValueError(f"{value!r}: a domain name is no IP address")
    suffix = settings.domain_suffix.lower()
    if suffix and not (domain.endswith(suffix) and len(domain) > len(suffix)):
        raise ValueError(f"{value!r}: domains of this provider end in {suffix}")
    if settings.domain_pattern and not re.fullmatch(settings.domain_pattern, domain):
        raise ValueError(f"{value!r} does not fit this provider's domain naming rules")
    return domain


def _read(ctx: RegistrationContext, domain: str) -> Service | None:
    with ctx.db.read() as cur:
        return services.get(cur, domain)


async def check_domain(ctx: RegistrationContext, domain: str) -> DomainCheck:
    """Whether ``domain`` can be provisioned (rules 1 to 3 of the module docstring)."""
    try:
        name = check_syntax(domain, ctx.config.provisioning)
    except ValueError as e:
        return DomainCheck(domain.strip().lower(), False, str(e))
    existing = await ctx.blocking(_read, ctx, name)
    if existing is not None and existing.state not in RELEASED:
        return DomainCheck(name, False, "the domain is already in use")
    try:
        owner = await ctx.directory.domain_owner(name)
    except TimkitError as e:
        if e.status in (502, 503):
            return DomainCheck(
                name,
                True,
                "the VZD-FHIR-Directory could not be asked; it is checked again on registration",
            )
        raise
    if owner is not Ownership.FREE:
        return DomainCheck(name, False, "the domain is already registered in the TI-Messenger")
    return DomainCheck(name, True)


def _reserve(
    ctx: RegistrationContext, admin: Admin, domain: str, now_ms: int
) -> tuple[Service | None, str]:
    """Insert (or reclaim) the row for a new request; ``(row, "")`` or ``(None, refusal)``."""
    settings = ctx.config.provisioning
    with ctx.db.write() as tx:
        existing = services.get(tx, domain)
        if existing is not None and existing.state not in RELEASED:
            return None, "the domain is already in use"
        if services.count_reserving(tx, admin.telematik_id) >= settings.max_services:
            return None, f"an organisation may hold at most {settings.max_services} services"
        who = (admin.telematik_id, admin.organisation, admin.actor)
        state = State.REQUESTED.value
        if existing is None:
            services.insert(tx, domain, *who, state=state, step=state, now_ms=now_ms)
        else:
            services.reclaim(tx, existing, *who, state=state, step=state, now_ms=now_ms)
        return services.get(tx, domain), ""


async def provision(ctx: RegistrationContext, admin: Admin, domain: str) -> ServiceView:
    """Request a new Messenger-Service ``domain`` for the admin's organisation (AF_10060).

    Raises:
        TimkitError: 400 ``M_INVALID_PARAM`` for bad syntax, 409 ``M_USER_IN_USE`` for a taken
            domain, 403 ``M_LIMIT_EXCEEDED`` beyond ``provisioning.max_services``.
    """
    check = await check_domain(ctx, domain)
    if not check.available:
        await audit_action(
            ctx, admin, "service.provision", check.domain, "refused", detail=check.reason
        )
        try:
            check_syntax(domain, ctx.config.provisioning)
        except ValueError:
            raise TimkitError(
                400, Codes.INVALID_PARAM, check.reason, requirement=REQUIREMENT
            ) from None
        raise TimkitError(409, Codes.USER_IN_USE, check.reason, requirement=REQUIREMENT)
    row, refusal = await ctx.blocking(_reserve, ctx, admin, check.domain, ctx.provisioner.now_ms())
    if row is None:
        await audit_action(ctx, admin, "service.provision", check.domain, "refused", detail=refusal)
        if "at most" in refusal:
            raise TimkitError(403, Codes.LIMIT_EXCEEDED, refusal, requirement=REQUIREMENT)
        raise TimkitError(409, Codes.USER_IN_USE, refusal, requirement=REQUIREMENT)
    await audit_action(ctx, admin, "service.provision", check.domain, "success")
    ctx.provisioner.kick()
    return ServiceView.of(row)


def _own(ctx: RegistrationContext, admin: Admin, domain: str) -> Service:
    with ctx.db.read() as cur:
        row = services.get(cur, domain.strip().lower())
    if row is None or row.telematik_id != admin.telematik_id:
        raise TimkitError(
            404, Codes.NOT_FOUND, f"no Messenger-Service {domain!r} of your organisation"
        )
    return row


def _start_deprovision(ctx: RegistrationContext, admin: Admin, domain: str, now_ms: int) -> Service:
    while True:
        row = _own(ctx, admin, domain)
        if row.state in (State.DEREGISTERING, State.DELETING, State.DELETED):
            return row
        with ctx.db.write() as tx:
            moved = services.transition(
                tx,
                row,
                state=State.DEREGISTERING.value,
                step=State.DEREGISTERING.value,
                attempts=0,
                error="",
                requested_by=admin.actor,
                run_started_ms=now_ms,
                step_started_ms=now_ms,
                next_attempt_ms=now_ms,
            )
            if moved:
                fresh = services.get(tx, row.domain)
                assert fresh is not None
                return fresh


async def deprovision(ctx: RegistrationContext, admin: Admin, domain: str) -> ServiceView:
    """Remove one of the organisation's services: its domain leaves the federation first.

    Idempotent: a service already being removed (or removed) is returned as it is.

    Raises:
        TimkitError: 404 when the organisation has no such service.
    """
    row = await ctx.blocking(_start_deprovision, ctx, admin, domain, ctx.provisioner.now_ms())
    await audit_action(ctx, admin, "service.deprovision", row.domain, "success")
    ctx.provisioner.kick()
    return ServiceView.of(row)


async def list_services(ctx: RegistrationContext, admin: Admin) -> list[ServiceView]:
    """The organisation's services (not deleted), by domain."""

    def read() -> list[Service]:
        with ctx.db.read() as cur:
            return services.of_organisation(cur, admin.telematik_id)

    return [ServiceView.of(row) for row in await ctx.blocking(read)]


async def get_service(ctx: RegistrationContext, admin: Admin, domain: str) -> ServiceView:
    """One of the organisation's services (a deleted one too, until its domain is reused).

    Raises:
        TimkitError: 404 when the organisation has no such service.
    """
    return ServiceView.of(await ctx.blocking(_own, ctx, admin, domain))
