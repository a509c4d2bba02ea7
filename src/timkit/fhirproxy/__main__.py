"""``python -m timkit.fhirproxy --config fhir-proxy.toml``: run the FHIR-Proxy."""

from __future__ import annotations

from timkit.core.lifecycle import run_service
from timkit.fhirproxy.config import FhirProxyConfig
from timkit.fhirproxy.service import serve


def main(argv: list[str] | None = None) -> int:
    """Load the config and serve until stopped; exit 2 naming the key when it is invalid
    (a missing or short FHIR-Directory token file included)."""
    return run_service("timkit-fhir-proxy", __doc__, FhirProxyConfig, serve, argv)


if __name__ == "__main__":
    raise SystemExit(main())
