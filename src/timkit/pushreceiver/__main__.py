"""``python -m timkit.pushreceiver --config pushreceiver.toml``: run the local push receiver."""

from __future__ import annotations

from timkit.core.lifecycle import run_service
from timkit.pushreceiver.config import PushReceiverConfig
from timkit.pushreceiver.service import serve


def main(argv: list[str] | None = None) -> int:
    """Load the config and serve until stopped."""
    return run_service("timkit-pushreceiver", __doc__, PushReceiverConfig, serve, argv)


if __name__ == "__main__":
    raise SystemExit(main())
