"""``python -m timkit.registration --config registration.toml``: run the Registrierungs-Dienst."""

from __future__ import annotations

from timkit.core.lifecycle import run_service
from timkit.registration.config import RegistrationConfig
from timkit.registration.service import serve


def main(argv: list[str] | None = None) -> int:
    """Load the config and serve until stopped."""
    return run_service("timkit-registration", __doc__, RegistrationConfig, serve, argv)


if __name__ == "__main__":
    raise SystemExit(main())
