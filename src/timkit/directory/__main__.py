"""``python -m timkit.directory --config directory.toml``: run the FHIR-Directory."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from timkit.core.config import load_toml
from timkit.core.errors import ConfigError
from timkit.core.logging import setup_logging
from timkit.directory.config import DirectoryConfig
from timkit.directory.service import serve


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, load the config and serve until stopped."""
    parser = argparse.ArgumentParser(prog="timkit-directory", description=__doc__)
    parser.add_argument("--config", type=Path, help="TOML config (defaults apply without)")
    args = parser.parse_args(argv)
    try:
        config = load_toml(DirectoryConfig, args.config)
    except ConfigError as exc:
        print(f"timkit-directory: {exc}", file=sys.stderr)
        return 2
    setup_logging(config.log_level)
    asyncio.run(serve(config))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
