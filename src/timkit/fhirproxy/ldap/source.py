"""Reading the VZD-LDAP-Directory with ldap3 (blocking; the sync calls it in a thread).

Contract of :class:`LdapSource`:

* :meth:`changed` returns every entry with a ``telematikID`` below ``base_dn`` whose
  ``modifyTimestamp`` is at or after the given high-water mark (all entries for an empty mark),
  with all user attributes, plus the largest ``modifyTimestamp`` seen. "At or after" re-reads
  the entries of the boundary second, which the sync recognises as unchanged; it never misses
  an entry changed in the same second as the last one synchronised.
* :meth:`telematik_ids` returns the TelematikIDs of all entries (one attribute per entry,
  paged), which is how deletions are found: incremental searches cannot see them.
* Both read with a simple bind as ``bind_dn`` (anonymous when empty), paged (RFC 2696), and
  raise :class:`LdapError` when the server is unreachable or refuses.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

from timkit.fhirproxy.config import LdapConfig
from timkit.fhirproxy.ldap.mapping import LdapEntry, MappingError

with warnings.catch_warnings():  # ldap3 2.9 imports names that pyasn1 0.6 deprecates
    warnings.simplefilter("ignore", DeprecationWarning)
    import ldap3
    from ldap3.core.exceptions import LDAPException
    from ldap3.utils.conv import escape_filter_chars

PAGE_SIZE = 500
TIMEOUT = 30


class LdapError(RuntimeError):
    """The LDAP server could not be read."""


class LdapSource:
    """Searches of one LDAP server (see the module docstring)."""

    def __init__(self, config: LdapConfig) -> None:
        self.config = config

    def changed(self, high_water: str) -> tuple[list[LdapEntry], list[str], str]:
        """Entries changed at or after ``high_water``; skipped DNs; the new high-water mark.

        An entry that cannot be read as a VZD entry (no TelematikID) is skipped, its DN
        returned so the caller can log it. The returned mark is ``high_water`` when nothing
        changed.
        """
        condition = "(telematikID=*)"
        if high_water:
            condition = f"(&{condition}(modifyTimestamp>={escape_filter_chars(high_water)}))"
        entries: list[LdapEntry] = []
        skipped: list[str] = []
        newest = high_water
        for dn, attributes in self._search(condition, ["*", "modifyTimestamp"]):
            stamp = _text(attributes.pop("modifytimestamp", [b""]))
            newest = max(newest, stamp)
            try:
                entries.append(LdapEntry.of(attributes, dn))
            except MappingError:
                skipped.append(dn)
        return entries, skipped, newest

    def telematik_ids(self) -> set[str]:
        """The TelematikID of every entry below the base DN."""
        return {
            _text(attributes["telematikid"])
            for _, attributes in self._search("(telematikID=*)", ["telematikID"])
            if attributes.get("telematikid")
        }

    def _search(self, condition: str, attributes: list[str]) -> Iterator[tuple[str, Any]]:
        config = self.config
        server = ldap3.Server(config.url, get_info=ldap3.NONE, connect_timeout=TIMEOUT)
        connection = ldap3.Connection(
            server,
            user=config.bind_dn or None,
            password=config.password or None,
            read_only=True,
            receive_timeout=TIMEOUT,
            raise_exceptions=True,
        )
        try:
            connection.open()
            connection.bind()
            results = connection.extend.standard.paged_search(
                config.base_dn,
                condition,
                search_scope=ldap3.SUBTREE,
                attributes=attributes,
                paged_size=PAGE_SIZE,
                generator=True,
            )
            for result in results:
                if result.get("type") == "searchResEntry":
                    yield result["dn"], _raw(result["raw_attributes"])
        except LDAPException as e:
            raise LdapError(f"LDAP {config.url}: {e}") from e
        finally:
            connection.unbind()  # also closes the socket when the bind failed


def _raw(attributes: Any) -> dict[str, list[bytes]]:
    """Raw attribute values keyed by lower-case name."""
    return {str(name).lower(): list(values) for name, values in dict(attributes).items() if values}


def _text(values: list[bytes]) -> str:
    return values[0].decode("utf-8", errors="replace") if values else ""
