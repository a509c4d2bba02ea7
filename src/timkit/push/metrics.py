"""The Push-Gateway's Prometheus metrics (``GET /metrics``, loopback peers only).

``timkit_push_notifications_total``
    notifications accepted at ``/_matrix/push/v1/notify``.
``timkit_push_deliveries_total{app_id, outcome}``
    per device and notification, how delivery ended: ``sent``, ``rejected`` (gone),
    ``failed`` (permanent error), ``exhausted`` (temporary errors until ``max_attempts``),
    ``duplicate`` (already delivered), ``error`` (a bug; logged with its traceback).
    Device-supplied ``app_id``\\s without a backend are counted as ``unknown``.
``timkit_push_rejected_total{app_id}``
    pushkeys answered in ``rejected`` (gone, or an unknown ``app_id``).
``timkit_push_retries_total{app_id}``
    attempts repeated after a temporary failure.
``timkit_push_delivery_seconds{app_id}``
    from receiving the notification to a device's final outcome (queueing and retries
    included).
``timkit_push_in_flight{app_id}``
    delivery attempts running now (bounded by ``max_concurrency``).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 30.0)

UNKNOWN_APP = "unknown"
"""The ``app_id`` label of devices whose app has no backend (keeps labels bounded)."""


class PushMetrics:
    """The gateway's metrics on a registry of its own."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.notifications = Counter(
            "timkit_push_notifications", "Notifications accepted", registry=self.registry
        )
        self.deliveries = Counter(
            "timkit_push_deliveries",
            "Deliveries to devices by final outcome",
            ["app_id", "outcome"],
            registry=self.registry,
        )
        self.rejected = Counter(
            "timkit_push_rejected",
            "Pushkeys answered as rejected",
            ["app_id"],
            registry=self.registry,
        )
        self.retries = Counter(
            "timkit_push_retries",
            "Delivery attempts repeated after a temporary failure",
            ["app_id"],
            registry=self.registry,
        )
        self.delivery_seconds = Histogram(
            "timkit_push_delivery_seconds",
            "Seconds from receiving a notification to a device's final outcome",
            ["app_id"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "timkit_push_in_flight",
            "Delivery attempts running now",
            ["app_id"],
            registry=self.registry,
        )
