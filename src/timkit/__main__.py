"""Run the timkit CLI as ``python -m timkit``."""

from timkit.cli.main import main

raise SystemExit(main())
