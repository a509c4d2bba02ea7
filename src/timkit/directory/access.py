"""The FHIR-Directory's bearer token: the shared secret between it and its FHIR-Proxy.

The FHIR-Directory is the VZD's internal store; only the FHIR-Proxy may talk to it. Loopback
is one layer of that (the directory binds to it by default), the token is the other: in
production the directory may run on another host. The secret sits in a file (mode 0600)
named by both configs (the directory's ``token_file``, the FHIR-Proxy's
``upstream_token_file``); ``timkit up`` generates it once under the data directory, and
:func:`timkit.core.fhir.read_token_file` reads it for both (fail closed: a directory without a
token does not start).

Contracts:

* :func:`presented_token` reads ``Authorization: Bearer <token>`` given exactly once;
* :func:`token_matches` compares in constant time.
"""

from __future__ import annotations

import hmac

from multidict import MultiMapping

from timkit.core.request_target import single_header


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
