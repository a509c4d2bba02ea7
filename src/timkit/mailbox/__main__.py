"""``python -m timkit.mailbox --config mailbox.toml``: run the local SMTP server and mailbox."""

from __future__ import annotations

from timkit.core.lifecycle import run_service
from timkit.mailbox.config import MailboxConfig
from timkit.mailbox.service import serve


def main(argv: list[str] | None = None) -> int:
    """Load the config and serve until stopped."""
    return run_service("timkit-mailbox", __doc__, MailboxConfig, serve, argv)


if __name__ == "__main__":
    raise SystemExit(main())
