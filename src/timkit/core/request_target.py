"""Request targets and security headers read the way the upstreams read them.

A proxy's check is only as good as its parsing: it must see the path the upstream will route
(Synapse matches its servlet regexes against the *raw* path and percent-decodes each captured
group afterwards; the FHIR store splits on ``/`` before decoding). aiohttp's ``request.path``
is decoded *before* splitting, so ``%2F`` turns into a segment boundary there and a check
would look at a different path than the upstream. Every proxy in timkit therefore matches
routes on :func:`parse_target`'s segments: the raw path is split on ``/`` first and each
segment is percent-decoded exactly once afterwards, so a decoded ``/`` can only ever be
*inside* a segment, never between two.

A target that cannot be read unambiguously is refused (:class:`UnparsableRequest`), never
relayed:

* anything but origin-form (``/path?query``): absolute-form, authority-form, ``*``;
* bytes outside visible ASCII in the raw target (spaces, control characters, raw UTF-8);
  a ``#`` (fragments are never sent);
* a malformed percent escape (``%`` not followed by two hex digits);
* a decoded segment with a control character (``%00`` to ``%1F``, ``%7F``) or invalid UTF-8;
* ``.`` and ``..`` segments, raw or encoded (``%2e%2E``): servers disagree on resolving them;
* an empty segment inside the path (``//``): servers disagree on merging them. A single
  trailing ``/`` is tolerated and reported as :attr:`RequestTarget.trailing_slash`.

:func:`single_header` reads a header that decides a security question (``Authorization``,
``Content-Type`` of a checked body …) and refuses a request that carries it twice, where a
proxy and its upstream could each read a different copy.
"""

from __future__ import annotations

import re
from typing import NamedTuple
from urllib.parse import unquote_to_bytes

from multidict import MultiMapping

__all__ = [
    "RequestTarget",
    "UnparsableRequest",
    "parse_target",
    "single_header",
]

_VISIBLE_ASCII = re.compile(r"[!-~]*")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class UnparsableRequest(ValueError):
    """A request target or header the proxy cannot read unambiguously; refuse the request.

    The message names what was wrong (never echoes more than 100 characters of input).
    """


class RequestTarget(NamedTuple):
    """An origin-form request target, split before decoding (immutable; a named tuple
    rather than a frozen dataclass because it is built for every proxied request).

    Attributes:
        raw: the target exactly as received (path and query).
        raw_path: the raw path (before ``?``).
        query: the raw query string (after the first ``?``; empty when there is none).
        segments: the path's segments, each percent-decoded once after splitting (a decoded
            segment may contain ``/``); the root ``/`` has none.
        raw_segments: the same segments as received (not decoded).
        trailing_slash: whether the raw path ended in ``/`` (the empty last segment is not
            in :attr:`segments`).
    """

    raw: str
    raw_path: str
    query: str
    segments: tuple[str, ...]
    raw_segments: tuple[str, ...]
    trailing_slash: bool

    def has_prefix(self, *prefix: str) -> bool:
        """Whether the decoded segments start with ``prefix`` (literal segments)."""
        return self.segments[: len(prefix)] == prefix

    def match(self, pattern: str) -> dict[str, str] | None:
        """Match ``pattern`` against the decoded segments, segment by segment.

        ``pattern`` is a path like ``/_matrix/client/{version}/rooms/{room_id}/invite``:
        a literal segment must equal the decoded segment exactly (so ``invit%65`` matches
        ``invite``: every spelling of a path is checked alike); ``{name}`` captures exactly
        one decoded segment, which may hold a ``/`` the client encoded as ``%2F``. The
        pattern and the target must have the same number of segments (a trailing slash is
        ignored).

        Returns:
            The captured segments by name, or None when the target does not match.
        """
        parts = _pattern_segments(pattern)
        if len(parts) != len(self.segments):
            return None
        captured: dict[str, str] = {}
        for part, segment in zip(parts, self.segments, strict=True):
            placeholder = _PLACEHOLDER.fullmatch(part)
            if placeholder:
                captured[placeholder.group(1)] = segment
            elif part != segment:
                return None
        return captured


def _pattern_segments(pattern: str) -> tuple[str, ...]:
    if not pattern.startswith("/"):
        raise ValueError(f"a route pattern starts with '/': {pattern!r}")
    return tuple(pattern[1:].split("/")) if pattern != "/" else ()


def _describe(value: str) -> str:
    return repr(value[:100]) + ("…" if len(value) > 100 else "")


def _decode_segment(raw_segment: str) -> str:
    if "%" not in raw_segment:  # visible ASCII without escapes: decoding changes nothing
        if raw_segment in (".", ".."):
            raise UnparsableRequest(f"path segment {_describe(raw_segment)} is a dot segment")
        return raw_segment
    try:
        decoded = unquote_to_bytes(raw_segment).decode("utf-8")
    except UnicodeDecodeError:
        raise UnparsableRequest(
            f"path segment {_describe(raw_segment)} is not UTF-8 once percent-decoded"
        ) from None
    if _CONTROL.search(decoded):
        raise UnparsableRequest(f"path segment {_describe(raw_segment)} holds a control character")
    if decoded in (".", ".."):
        raise UnparsableRequest(f"path segment {_describe(raw_segment)} is a dot segment")
    return decoded


def parse_target(raw: str) -> RequestTarget:
    """Split an HTTP request target (``request.raw_path`` in aiohttp) as upstreams do.

    Args:
        raw: the request target as received on the request line.

    Returns:
        The parsed target.

    Raises:
        UnparsableRequest: when the target cannot be read unambiguously (see the module
            docstring for each case); the message names the case.
    """
    if not raw.startswith("/"):
        raise UnparsableRequest(f"the request target must be a path, got {_describe(raw)}")
    if not _VISIBLE_ASCII.fullmatch(raw):
        raise UnparsableRequest(
            f"the request target holds a byte outside visible ASCII: {_describe(raw)}"
        )
    if "#" in raw:
        raise UnparsableRequest(f"the request target holds a fragment: {_describe(raw)}")
    raw_path, _, query = raw.partition("?")
    if _BAD_ESCAPE.search(raw):
        raise UnparsableRequest(f"malformed percent escape in {_describe(raw)}")
    raw_segments = raw_path[1:].split("/") if raw_path != "/" else []
    trailing_slash = raw_path != "/" and raw_path.endswith("/")
    if trailing_slash:
        raw_segments.pop()
    if "" in raw_segments:
        raise UnparsableRequest(f"empty path segment ('//') in {_describe(raw_path)}")
    segments = tuple(_decode_segment(s) for s in raw_segments)
    return RequestTarget(
        raw=raw,
        raw_path=raw_path,
        query=query,
        segments=segments,
        raw_segments=tuple(raw_segments),
        trailing_slash=trailing_slash,
    )


def single_header(headers: MultiMapping[str], name: str) -> str | None:
    """The one value of header ``name``, or None when absent.

    Args:
        headers: the request's headers (a multidict: every copy of a header is seen).
        name: the header name (case-insensitive).

    Raises:
        UnparsableRequest: when the header is given more than once (a proxy and its
            upstream could each read a different copy).
    """
    values = headers.getall(name, [])
    if len(values) > 1:
        raise UnparsableRequest(f"header {name} given {len(values)} times")
    return values[0] if values else None
