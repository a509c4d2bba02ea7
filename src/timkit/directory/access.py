"""The FHIR-Directory's bearer token: the shared secret between it and its FHIR-Proxy.

The FHIR-Directory is the VZD's internal store; only the FHIR-Proxy may talk to it. Loopback
is one layer of that (the directory binds to it by default), the token is the other: in
production the directory may run on another host. The secret sits in a file (mode 0600)
named by both configs (the directory's ``token_file``, the FHIR-Proxy's
``upstream_token_file``); ``timkit up`` generates it once under the data directory.

Contracts:

* :func:`read_token_file` refuses a missing, unreadable or short token (fail closed: a
  directory without a token does not start);
* :func:`presented_token` reads ``Authorization: Bearer <token>`` given exactly once;
* :func:`token_matches` compares in constant time.
"""

from __future__ import annotations

import hmac
from pathlib import Path

from multidict import MultiMapping

from timkit.core.errors import ConfigError
from timkit.core.request_target import single_header

MIN_TOKEN_LENGTH = 32
"""Shortest accepted token (``secrets.token_urlsafe(32)`` gives 43 characters)."""


def read_token_file(path: Path, key: str) -> str:
    """The token in ``path`` (surrounding white space stripped).

    Args:
        path: the token file.
        key: the config key naming it, for the error message.

    Raises:
        ConfigError: the file is missing, unreadable, or holds fewer than
            :data:`MIN_TOKEN_LENGTH` characters.
    """
    try:
        token = path.read_text("utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(
            f"cannot read the FHIR-Directory token file {path}: {e.__class__.__name__}",
            path=key,
        ) from None
    if len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError(
            f"the FHIR-Directory token in {path} must have at least {MIN_TOKEN_LENGTH} characters",
            path=key,
        )
    return token


def presented_token(headers: MultiMapping[str]) -> str | None:
    """The token of a single ``Authorization: Bearer <token>`` header, else None.

    Raises:
        UnparsableRequest: ``Authorization`` was given more than once.
    """
    value = single_header(headers, "Authorization")
    if value is None:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def token_matches(presented: str | None, expected: str) -> bool:
    """Whether ``presented`` is ``expected``, compared in constant time."""
    if presented is None:
        return False
    return hmac.compare_digest(presented.encode("utf-8"), expected.encode("utf-8"))


def authorization(token: str) -> dict[str, str]:
    """The header the FHIR-Proxy (and tools) send to the FHIR-Directory."""
    return {"Authorization": f"Bearer {token}"}
