"""``python -m timkit.homeserver --config homeserver.toml``: prepare and exec Synapse.

The process *becomes* Synapse (``exec``), so the supervisor's pid is Synapse's pid.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from timkit.core.config import load_toml
from timkit.core.errors import ConfigError
from timkit.homeserver.config import HomeserverConfig
from timkit.homeserver.synapse import prepare


def main(argv: list[str] | None = None) -> int:
    """Write Synapse's files from the TOML config, then replace this process with Synapse."""
    parser = argparse.ArgumentParser(prog="timkit-homeserver", description=__doc__)
    parser.add_argument("--config", type=Path, required=True, help="homeserver TOML config")
    args = parser.parse_args(argv)
    try:
        config = load_toml(HomeserverConfig, args.config)
    except ConfigError as exc:
        print(f"timkit-homeserver: {exc}", file=sys.stderr)
        return 2
    homeserver_yaml = prepare(config)
    argv_synapse = [sys.executable, "-m", "synapse.app.homeserver", "-c", str(homeserver_yaml)]
    sys.stderr.flush()
    os.execv(sys.executable, argv_synapse)  # noqa: S606 - exec is the point here


if __name__ == "__main__":
    raise SystemExit(main())
