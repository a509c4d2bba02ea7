"""``python -m timkit.directory --config directory.toml``: run the FHIR-Directory."""

from __future__ import annotations

import sys

from timkit.core.errors import ConfigError
from timkit.core.lifecycle import run_service
from timkit.directory.config import DirectoryConfig
from timkit.directory.service import serve


def main(argv: list[str] | None = None) -> int:
    """Load the config and serve until stopped; exit 2 naming the key when it is invalid.

    A missing or short FHIR-Directory token file is found only when serving starts; it
    exits the same way as an invalid config.
    """
    try:
        return run_service("timkit-directory", __doc__, DirectoryConfig, serve, argv)
    except ConfigError as exc:
        print(f"timkit-directory: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
