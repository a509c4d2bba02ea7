"""The Messenger-Proxy's Prometheus metrics (``GET /metrics`` on the inbound listener).

``timkit_proxy_requests_total{listener}``
    requests received; ``listener`` is ``client``, ``federation``, ``contacts`` or ``forward``.
``timkit_proxy_denials_total{listener, rule}``
    requests refused by a permission rule; ``rule`` is the requirement id cited.
``timkit_proxy_upstream_seconds{listener}``
    time from sending a request upstream (Synapse, or the destination service for
    ``forward``) to its response head.
``timkit_proxy_upstream_errors_total{listener}``
    upstream failures answered with 502/504.
``timkit_proxy_federation_list_version`` / ``…_age_seconds``
    the held list's version and seconds since its last valid refresh.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class ProxyMetrics:
    """The proxy's metrics on a registry of its own."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.requests = Counter(
            "timkit_proxy_requests", "Requests received", ["listener"], registry=self.registry
        )
        self.denials = Counter(
            "timkit_proxy_denials",
            "Requests refused by a permission rule",
            ["listener", "rule"],
            registry=self.registry,
        )
        self.upstream_seconds = Histogram(
            "timkit_proxy_upstream_seconds",
            "Seconds from sending a request upstream to its response head",
            ["listener"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.upstream_errors = Counter(
            "timkit_proxy_upstream_errors",
            "Upstream failures answered with 502 or 504",
            ["listener"],
            registry=self.registry,
        )
        self.list_version = Gauge(
            "timkit_proxy_federation_list_version",
            "Version of the held federation list (-1: none)",
            registry=self.registry,
        )
        self.list_age = Gauge(
            "timkit_proxy_federation_list_age_seconds",
            "Seconds since the last valid federation list refresh",
            registry=self.registry,
        )
        self.list_version.set(-1)

    def denied(self, listener: str, rule: str | None) -> None:
        """Count one refusal by ``rule`` (``unknown`` when the error cites none)."""
        self.denials.labels(listener, rule or "unknown").inc()
