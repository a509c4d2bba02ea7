"""Stage 1 of the permission check: is a Matrix domain part of the TI-Messenger federation?

The forward proxy, the client-server and the server-server reverse proxy all ask a
:class:`DomainGate`; :class:`timkit.proxy.list_gate.FederationGate` answers from the verified
federation list, :class:`StaticGate` from a fixed set (tests, and nothing else).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from timkit.core.errors import Codes, TimkitError

FEDERATION_RULE = "AF_10064"
"""Stage 1 (seed 002 §3.5.1.1, §3.5.2.1): only domains in the federation list."""


def server_name_of(mxid: str) -> str:
    """The server name of a user id ``@localpart:server`` (lower-case, port kept).

    Raises:
        TimkitError: 400 ``M_INVALID_PARAM`` when ``mxid`` is no user id.
    """
    localpart, sep, server = mxid.partition(":")
    if not sep or not localpart.startswith("@") or len(localpart) < 2 or not server:
        raise TimkitError(400, Codes.INVALID_PARAM, f"{mxid!r} is not a Matrix user id")
    return server.lower()


def not_in_federation(domain: str, requirement: str) -> TimkitError:
    """The 403 for ``domain`` missing from the federation list, citing ``requirement``."""
    return TimkitError(
        403,
        Codes.FORBIDDEN,
        f"{domain} is not part of the TI-Messenger federation (Stufe 1, {FEDERATION_RULE})",
        requirement=requirement,
    )


class DomainGate(Protocol):
    """Answers stage 1 of the permission check."""

    def check(self, domain: str, requirement: str) -> None:
        """Return if ``domain`` is in the federation list.

        Raises:
            TimkitError: 403 ``M_FORBIDDEN`` citing ``requirement`` when it is not; 503 when
                no valid list is held (fail closed).
        """

    async def recheck(self, domain: str, requirement: str) -> None:
        """Like :meth:`check`, but a miss may first pull a fresh list (rate-limited)."""

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Whether federation traffic can flow, and the state to report at ``/health``."""


class StaticGate:
    """A :class:`DomainGate` over a fixed set of domains (for tests)."""

    def __init__(self, domains: Iterable[str]) -> None:
        self.domains = frozenset(d.lower() for d in domains)

    def check(self, domain: str, requirement: str) -> None:
        """See :meth:`DomainGate.check`."""
        if domain.lower() not in self.domains:
            raise not_in_federation(domain, requirement)

    async def recheck(self, domain: str, requirement: str) -> None:
        """See :meth:`DomainGate.recheck`."""
        self.check(domain, requirement)

    def health(self) -> tuple[bool, dict[str, Any]]:
        """See :meth:`DomainGate.health`."""
        return True, {"status": "ok", "domains": len(self.domains)}
