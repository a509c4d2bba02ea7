"""``python -m timkit.push --config push.toml``: run the Push-Gateway."""

from __future__ import annotations

from timkit.core.lifecycle import run_service
from timkit.push.config import PushConfig
from timkit.push.service import serve


def main(argv: list[str] | None = None) -> int:
    """Load the config and serve until stopped."""
    return run_service("timkit-push", __doc__, PushConfig, serve, argv)


if __name__ == "__main__":
    raise SystemExit(main())
