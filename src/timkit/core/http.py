"""The one way timkit builds HTTP clients: explicit trust, explicit time-outs."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx

from timkit.core.tls import client_ssl_context

DEFAULT_TIMEOUT = 10.0


def async_client(
    ca_cert: Path | None = None, *, timeout: float = DEFAULT_TIMEOUT
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` that trusts ``ca_cert`` only (system trust when ``None``).

    Args:
        ca_cert: PEM CA bundle, usually the local CA of the data directory.
        timeout: seconds for connect, read, write and pool acquisition.
    """
    verify: ssl.SSLContext = (
        client_ssl_context(ca_cert) if ca_cert is not None else ssl.create_default_context()
    )
    return httpx.AsyncClient(verify=verify, timeout=timeout)
