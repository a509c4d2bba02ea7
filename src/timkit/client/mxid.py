"""Matrix user ids and their URI form (Matrix spec appendix "URIs", v1.3).

The SDK checks every user id an actor types or scans before it is sent anywhere:
:func:`parse_mxid` validates ``@localpart:server`` (historical localpart grammar, a server
name of a DNS name, IPv4 or bracketed IPv6 address with an optional port) and lower-cases the
server name as the Messenger-Proxy stores it. :func:`matrix_uri` writes the Matrix URI
``matrix:u/<localpart>:<server>`` that the VZD and the QR vCard use; :func:`mxid_from_uri`
reads it back, and also reads Client.adoc's ``matrix://<MXID>`` spelling (see its docstring).
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import quote, unquote

from timkit.core.errors import Codes, TimkitError

MAX_MXID = 255
"""Longest user id in bytes (Matrix spec, "User Identifiers")."""

_LOCALPART = re.compile(r"[\x21-\x39\x3b-\x7e]+")
"""Historical user id localparts: printable ASCII except ``:``."""
_DNS_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9-]{1,63})*")
_PORT = re.compile(r"[0-9]{1,5}")

_URI_SAFE = "!$&'()*+=:@"
"""Path characters (RFC 3986 ``pchar``) left as they are in a Matrix URI; ``,`` and ``;``
are percent-encoded too, so that the URI needs no escaping inside a vCard."""
_USER_TYPES = ("u", "user")
"""Type qualifiers of a user in a Matrix URI: ``u`` (the spec) and ``user`` (MSC2312)."""


def invalid(field: str, message: str, requirement: str | None = None) -> TimkitError:
    """A 400 ``M_INVALID_PARAM`` whose message starts with the offending ``field``."""
    return TimkitError(400, Codes.INVALID_PARAM, f"{field}: {message}", requirement=requirement)


def parse_mxid(value: str, field: str = "mxid") -> str:
    """``value`` as a user id ``@localpart:server``, the server name lower-cased.

    Raises:
        TimkitError: 400 ``M_INVALID_PARAM`` naming ``field`` when ``value`` is no user id.
    """
    if len(value.encode("utf-8")) > MAX_MXID:
        raise invalid(field, f"a user id has at most {MAX_MXID} bytes")
    localpart, sep, server = value[1:].partition(":")
    if not value.startswith("@") or not sep:
        raise invalid(field, f"{value!r} is not a Matrix user id (@localpart:domain)")
    if not _LOCALPART.fullmatch(localpart):
        raise invalid(field, f"{value!r} has an invalid localpart")
    if not _valid_server(server):
        raise invalid(field, f"{value!r} has an invalid server name")
    return f"@{localpart}:{server.lower()}"


def _valid_server(server: str) -> bool:
    """Whether ``server`` is ``host[:port]`` (a DNS name, IPv4 or ``[IPv6]``)."""
    if server.startswith("["):
        host, sep, rest = server[1:].partition("]")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return False
        if not sep or (rest and not rest.startswith(":")):
            return False
        port = rest[1:] if rest else None
    else:
        host, sep, port_text = server.partition(":")
        if not _DNS_NAME.fullmatch(host) or len(host) > 253:
            return False
        port = port_text if sep else None
    return port is None or (_PORT.fullmatch(port) is not None and 0 < int(port) < 65536)


def matrix_uri(mxid: str) -> str:
    """The Matrix URI of user ``mxid``: ``@alice:example.org`` → ``matrix:u/alice:example.org``.

    Characters outside the URI path grammar (and ``,``/``;``) are percent-encoded.

    Raises:
        TimkitError: 400 naming ``mxid`` when it is no user id.
    """
    return "matrix:u/" + quote(parse_mxid(mxid)[1:], safe=_URI_SAFE)


def mxid_from_uri(uri: str, field: str = "uri") -> str:
    """The user id a Matrix URI names, checked with :func:`parse_mxid`.

    Accepted spellings (scheme case-insensitive, query and fragment ignored, the id
    percent-decoded once):

    * ``matrix:u/<localpart>:<server>``, the spec's form (also ``matrix:user/…``);
    * ``matrix://<MXID>``, as Client.adoc's vCard sample writes it (``matrix://@a:b``, also
      without the ``@``). The appendix reserves the ``//authority`` part for future use, so
      this is no Matrix URI in the spec's sense; it is read because clients built from
      Client.adoc's sample may produce it. :func:`matrix_uri` never writes it.

    Raises:
        TimkitError: 400 naming ``field`` for anything else (another scheme, a room, more
            than one path segment, an invalid user id).
    """
    scheme, sep, rest = uri.strip().partition(":")
    if not sep or scheme.lower() != "matrix":
        raise invalid(field, f"{uri[:80]!r} is not a Matrix URI (matrix:u/localpart:domain)")
    rest = rest.split("#", 1)[0].split("?", 1)[0]
    if rest.startswith("//"):
        target = rest[2:].removesuffix("/")
        if "/" in target:
            raise invalid(field, f"{uri[:80]!r} names no single user")
        user = unquote(target)
        return parse_mxid(user if user.startswith("@") else "@" + user, field)
    segments = rest.split("/")
    if len(segments) != 2 or segments[0] not in _USER_TYPES:
        raise invalid(field, f"{uri[:80]!r} names no user (matrix:u/localpart:domain)")
    return parse_mxid("@" + unquote(segments[1]), field)
