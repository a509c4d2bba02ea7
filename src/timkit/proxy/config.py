"""Configuration of the Messenger-Proxy (``timkit-proxy``); see ``config/proxy.sample.toml``."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import Field

from timkit.core.config import StrictModel
from timkit.core.names import Routes


class Unrouted(StrEnum):
    """What the forward proxy does with a CONNECT target that has no route."""

    REJECT = "reject"
    """Answer 403: the local federation has no DNS, so an unknown name is a mistake."""
    DIRECT = "direct"
    """Connect to the requested host and port via the system resolver (production)."""


class ForwardProxyConfig(StrictModel):
    """The outbound forward proxy Synapse uses as ``https_proxy``.

    Attributes:
        bind: address to listen on; keep it on loopback next to Synapse.
        port: port to listen on.
        routes: server name → ``host:port`` that a CONNECT to that name (any port) is sent to.
        routes_file: JSON route file (``{name: "host:port"}``, see :mod:`timkit.core.names`)
            re-read when it changes; its entries take precedence over ``routes``. Empty = none.
        unrouted: what to do with names that have no route.
        connect_timeout: seconds to wait for the upstream TCP connection.
    """

    bind: str = "127.0.0.1"
    port: int = Field(default=8491, ge=0, le=65535)
    routes: Routes = Field(default_factory=dict)
    routes_file: Path | None = None
    unrouted: Unrouted = Unrouted.REJECT
    connect_timeout: float = Field(default=5.0, gt=0)


class ProxyConfig(StrictModel):
    """Top level of the proxy's TOML file."""

    log_level: str = "INFO"
    forward: ForwardProxyConfig = Field(default_factory=ForwardProxyConfig)
