"""Verfahren 2: the organisation's KIM address from the directory, and the mail with the link.

:class:`KimDirectorySource` finds the entry of a TelematikID (blocking; called in a thread):

* LDAP (``kim.directory.ldap_url``): ``(telematikID=<id>)`` below ``base_dn``, simple bind as
  ``bind_dn`` (anonymous when empty), attributes ``mail``, ``professionOID``, ``displayName``,
  ``organization``, ``cn``;
* or a JSON entries file (``kim.directory.entries_file``), the form of
  ``timkit/runtime/ldap-entries.json`` (a list of objects with the LDAP attribute names, or
  ``{"entries": [...]}``), re-read when it changes.

:func:`send_mail` delivers a plain-text mail through ``kim.smtp`` with stdlib ``smtplib``
(blocking; called in a thread), with STARTTLS or implicit TLS as configured.
"""

from __future__ import annotations

import json
import math
import smtplib
import ssl
import warnings
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

from timkit.core.errors import Codes, TimkitError, UpstreamError
from timkit.registration.config import KimDirectory, SmtpSettings

with warnings.catch_warnings():  # ldap3 2.9 imports names that pyasn1 0.6 deprecates
    warnings.simplefilter("ignore", DeprecationWarning)
    import ldap3
    from ldap3.core.exceptions import LDAPException
    from ldap3.utils.conv import escape_filter_chars

ATTRIBUTES = ("telematikID", "mail", "professionOID", "displayName", "organization", "cn")


@dataclass(frozen=True)
class DirectoryEntry:
    """What the directory says about a TelematikID."""

    telematik_id: str
    mails: tuple[str, ...]
    profession_oids: tuple[str, ...]
    name: str


def _first(value: Any) -> str:
    if isinstance(value, list):
        return str(value[0]) if value else ""
    return "" if value is None else str(value)


def _all(value: Any) -> tuple[str, ...]:
    if isinstance(value, list):
        return tuple(str(v) for v in value if str(v).strip())
    return (str(value),) if value else ()


def _entry(telematik_id: str, attributes: dict[str, Any]) -> DirectoryEntry:
    lowered = {k.lower(): v for k, v in attributes.items()}
    name = (
        _first(lowered.get("displayname"))
        or _first(lowered.get("organization"))
        or _first(lowered.get("cn"))
    )
    return DirectoryEntry(
        telematik_id,
        _all(lowered.get("mail")),
        _all(lowered.get("professionoid")),
        name,
    )


class KimDirectorySource:
    """Looks up directory entries by TelematikID (see the module docstring)."""

    def __init__(self, settings: KimDirectory) -> None:
        self.settings = settings
        self._file_cache: tuple[float, dict[str, dict[str, Any]]] | None = None

    @property
    def enabled(self) -> bool:
        """Whether a source is configured (Verfahren 2 available)."""
        return bool(self.settings.ldap_url or self.settings.entries_file)

    def lookup(self, telematik_id: str) -> DirectoryEntry | None:
        """The entry of ``telematik_id``; None when the directory has none.

        Raises:
            UpstreamError: 502 when the directory cannot be read.
        """
        if self.settings.ldap_url:
            return self._ldap(telematik_id)
        if self.settings.entries_file is not None:
            found = self._entries(self.settings.entries_file).get(telematik_id)
            return _entry(telematik_id, found) if found is not None else None
        raise TimkitError(503, Codes.UNAVAILABLE, "no KIM directory is configured")

    def _entries(self, path: Path) -> dict[str, dict[str, Any]]:
        try:
            mtime = path.stat().st_mtime
            if self._file_cache is not None and self._file_cache[0] == mtime:
                return self._file_cache[1]
            data = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError) as e:
            raise UpstreamError(f"cannot read the KIM directory file {path}: {e}") from e
        items = data.get("entries", []) if isinstance(data, dict) else data
        entries = {
            str(item["telematikID"]): item
            for item in (items if isinstance(items, list) else [])
            if isinstance(item, dict) and item.get("telematikID")
        }
        self._file_cache = (mtime, entries)
        return entries

    def _ldap(self, telematik_id: str) -> DirectoryEntry | None:
        settings = self.settings
        tls = None
        if settings.ca_file is not None:
            tls = ldap3.Tls(ca_certs_file=str(settings.ca_file), validate=ssl.CERT_REQUIRED)
        server = ldap3.Server(
            settings.ldap_url,
            get_info=ldap3.NONE,
            connect_timeout=math.ceil(settings.timeout),
            tls=tls,
        )
        connection = ldap3.Connection(
            server,
            user=settings.bind_dn or None,
            password=settings.bind_password or None,
            read_only=True,
            receive_timeout=math.ceil(settings.timeout),
            raise_exceptions=True,
        )
        try:
            connection.bind()
            connection.search(
                settings.base_dn,
                f"(telematikID={escape_filter_chars(telematik_id)})",
                search_scope=ldap3.SUBTREE,
                attributes=list(ATTRIBUTES),
                size_limit=2,
            )
            results = [r for r in connection.response or [] if r.get("type") == "searchResEntry"]
        except LDAPException as e:
            raise UpstreamError(f"cannot search the KIM directory: {e}") from e
        finally:
            connection.unbind()
        if not results:
            return None
        raw = results[0]["raw_attributes"]
        attributes = {
            str(name): [v.decode("utf-8", "replace") for v in values]
            for name, values in dict(raw).items()
        }
        return _entry(telematik_id, attributes)


def send_mail(settings: SmtpSettings, to: str, subject: str, body: str) -> None:
    """Send a plain-text mail to ``to`` through the configured relay.

    Raises:
        UpstreamError: 502 when the relay cannot be reached or refuses the mail.
    """
    message = EmailMessage()
    message["From"] = settings.sender
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain=settings.sender.rpartition("@")[2] or None)
    message.set_content(body)
    context = ssl.create_default_context(
        cafile=str(settings.ca_file) if settings.ca_file is not None else None
    )
    try:
        smtp: smtplib.SMTP
        if settings.tls:
            smtp = smtplib.SMTP_SSL(
                settings.host, settings.port, timeout=settings.timeout, context=context
            )
        else:
            smtp = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
        with smtp:
            if settings.starttls and not settings.tls:
                smtp.starttls(context=context)
            if settings.username:
                smtp.login(settings.username, settings.password)
            smtp.send_message(message)
    except (smtplib.SMTPException, OSError) as e:
        raise UpstreamError(f"cannot send the KIM mail via {settings.host}: {e}") from e
