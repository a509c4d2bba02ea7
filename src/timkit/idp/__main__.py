"""``python -m timkit.idp --config idp.toml``: run the IDP stand-in."""

from __future__ import annotations

from timkit.core.lifecycle import run_service
from timkit.idp.config import IdpConfig
from timkit.idp.service import serve


def main(argv: list[str] | None = None) -> int:
    """Load the config and serve until stopped."""
    return run_service("timkit-idp", __doc__, IdpConfig, serve, argv)


if __name__ == "__main__":
    raise SystemExit(main())
