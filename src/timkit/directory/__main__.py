"""``python -m timkit.directory --config directory.toml``: run the FHIR-Directory."""

from __future__ import annotations

from timkit.core.lifecycle import run_service
from timkit.directory.config import DirectoryConfig
from timkit.directory.service import serve


def main(argv: list[str] | None = None) -> int:
    """Load the config and serve until stopped; exit 2 naming the key when it is invalid
    (a missing or short FHIR-Directory token file included)."""
    return run_service("timkit-directory", __doc__, DirectoryConfig, serve, argv)


if __name__ == "__main__":
    raise SystemExit(main())
