"""Configuration of one homeserver (``python -m timkit.homeserver``).

See ``config/homeserver.sample.toml``. timkit turns it into Synapse's ``homeserver.yaml``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field

from timkit.core.config import StrictModel

# A DNS name of at least two labels, lowercase, no port: what TI-M server names look like.
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,62}$")


def check_domain(value: str) -> str:
    """Validate a Matrix server name as TI-M uses it: a DNS name without port.

    Raises:
        ValueError: naming what is wrong.
    """
    if ":" in value:
        raise ValueError(f"server name {value!r} must not carry a port")
    if not _DOMAIN.match(value):
        raise ValueError(
            f"server name {value!r} is not a lowercase DNS name like 'praxis.example.de'"
        )
    return value


def check_database(value: str) -> str:
    """``sqlite`` or a ``postgresql://`` DSN.

    Raises:
        ValueError: for anything else.
    """
    if value == "sqlite":
        return value
    parts = urlsplit(value)
    if parts.scheme not in ("postgresql", "postgres") or not parts.path.strip("/"):
        raise ValueError("database must be 'sqlite' or a DSN 'postgresql://user:pw@host:port/db'")
    return value


def check_room_version(value: str) -> str:
    """A stable room version Synapse 1.163 knows ("1" to "12").

    Raises:
        ValueError: for anything else.
    """
    if value not in STABLE_ROOM_VERSIONS:
        raise ValueError(
            f"room version {value!r} is not one of {', '.join(STABLE_ROOM_VERSIONS)}"
            " (TI-M 1.1.x accepts 1 to 10)"
        )
    return value


STABLE_ROOM_VERSIONS = tuple(str(n) for n in range(1, 13))
"""The stable room versions of Synapse 1.163."""

ServerName = Annotated[str, AfterValidator(check_domain)]
"""A Matrix server name as TI-M uses it (see :func:`check_domain`)."""

DatabaseUrl = Annotated[str, AfterValidator(check_database)]
"""``sqlite`` or a PostgreSQL DSN (see :func:`check_database`)."""

RoomVersion = Annotated[str, AfterValidator(check_room_version)]
"""A stable room version (see :func:`check_room_version`)."""


class HomeserverConfig(StrictModel):
    """One Synapse homeserver.

    Attributes:
        server_name: the Matrix server name (a domain without port).
        bind: listen address of the listener.
        port: listener for client and federation traffic and ``.well-known``.
        public_baseurl: base URL clients use to reach this homeserver (its Messenger-Proxy).
        data_dir: directory for Synapse's files (config, keys, media, SQLite database).
        tls_cert: PEM certificate for the listener (must cover ``server_name``); None = plain
            HTTP behind the Messenger-Proxy on loopback, trusting its ``X-Forwarded-For``.
        tls_key: PEM private key of ``tls_cert``.
        federation_ca: CA that outbound federation TLS is checked against (behind a
            Messenger-Proxy: its interception CA); ``None`` uses the system trust store.
        https_proxy: forward proxy for outbound federation (``http://host:port``).
        no_proxy_hosts: hosts Synapse reaches directly although ``https_proxy`` is set (the
            provider's Push-Gateway: the Messenger-Proxy forwards federation only).
        ip_range_whitelist: addresses Synapse may reach although they are private or
            loopback (its default block list covers them): the Push-Gateway on loopback.
        database: ``sqlite`` or a PostgreSQL DSN.
        relaxed_rate_limits: lift Synapse's client rate limits (local federations and tests).
        log_level: Synapse's root log level.
        default_room_version: the room version of new rooms. TI-M 1.1.x clients and
            gematik's approval suite accept "1" to "10" only (Synapse 1.163's own default is
            "12").
        search_all_users: the user directory finds every local user, not only those who
            share a room with the searcher (ML-123896, AF_10104); remote users are never
            listed either way.
        authenticated_media: new media can be fetched only through the authenticated media
            API of Matrix v1.11. False for TI-M 1.1.x (Matrix v1.3): media stay fetchable
            through the legacy ``/_matrix/media/v3`` API by v1.3 clients and peers, and
            through the authenticated API as well.
    """

    server_name: ServerName
    bind: str = "127.0.0.1"
    port: int = Field(ge=1, le=65535)
    public_baseurl: str
    data_dir: Path
    tls_cert: Path | None = None
    tls_key: Path | None = None
    federation_ca: Path | None = None
    https_proxy: str | None = None
    no_proxy_hosts: tuple[str, ...] = ()
    ip_range_whitelist: tuple[str, ...] = ()
    database: DatabaseUrl = "sqlite"
    relaxed_rate_limits: bool = False
    log_level: str = "INFO"
    default_room_version: RoomVersion = "10"
    search_all_users: bool = True
    authenticated_media: bool = False
