"""``python -m timkit.proxy --config proxy.toml``: run the Messenger-Proxy."""

from __future__ import annotations

from timkit.core.lifecycle import run_service
from timkit.proxy.config import ProxyConfig
from timkit.proxy.service import serve


def main(argv: list[str] | None = None) -> int:
    """Load the config and serve until stopped."""
    return run_service("timkit-proxy", __doc__, ProxyConfig, serve, argv)


if __name__ == "__main__":
    raise SystemExit(main())
