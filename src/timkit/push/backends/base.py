"""The contract every delivery backend fulfils, and the outcomes it may report.

A backend delivers one notification to one device, once. Retrying, concurrency limits and
turning outcomes into the ``rejected`` list are the dispatcher's job, not the backend's::

    PushError                 delivery failed
    ├── PushkeyRejected       the device is gone (404/410, UNREGISTERED, BadDeviceToken …)
    │                         or can never be served (its endpoint is no URL or points at a
    │                         refused address, ``ssrf.OutboundRefused``): its pushkey goes
    │                         into ``rejected``; never retried
    ├── PermanentPushError    the request itself is wrong (400, 401, 413 …): not retried,
    │                         not rejected (the pushkey may be fine)
    └── TemporaryPushError    5xx, 429, time-out, connection refused: retried with back-off,
                              ``retry_after`` (seconds) when the service named one
"""

from __future__ import annotations

import email.utils
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Self

import httpx

from timkit.core.errors import ConfigError
from timkit.core.http import async_client
from timkit.push.config import DeliveryConfig, OutboundConfig
from timkit.push.notify_request import Device, Notification


class PushError(Exception):
    """Delivery of one notification to one device failed; ``str()`` says why (no content)."""


class PushkeyRejected(PushError):
    """The push service says the device no longer exists: reject its pushkey."""


class PermanentPushError(PushError):
    """The push service refused the request for good; retrying would not help."""


class TemporaryPushError(PushError):
    """The push service could not take the request now; try again later.

    Args:
        message: what happened (status, time-out …).
        retry_after: seconds the service asked us to wait (``Retry-After``), if any.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def parse_retry_after(value: str | None) -> float | None:
    """A ``Retry-After`` header value in seconds from now (never negative), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class Backend(ABC):
    """Delivers notifications for one ``app_id`` to one kind of push service.

    Construct through :meth:`create` (async set-up such as sessions or key loading); close
    with :meth:`close`. The gateway holds one backend per ``app_id``.
    """

    kind: str
    """The config ``type`` this backend implements (``webpush``, ``fcm`` …)."""

    def __init__(self, app_id: str) -> None:
        self.app_id = app_id

    @classmethod
    @abstractmethod
    async def create(cls, app_id: str, config: Any, outbound: OutboundConfig) -> Self:
        """Build the backend for ``app_id`` from its ``[apps.<app_id>]`` table.

        Args:
            app_id: the app this backend serves.
            config: the app's config model (the subclass's own type, e.g. ``FcmApp``).
            outbound: the SSRF guard's settings, for backends that send to device-supplied
                URLs (WebPush, UnifiedPush).

        Raises:
            ConfigError: a key file or service account is missing or unreadable.
        """

    @abstractmethod
    async def send(self, notification: Notification, device: Device) -> None:
        """Deliver ``notification`` to ``device`` once.

        Raises:
            PushkeyRejected: the device is gone.
            PermanentPushError: refused for good (bad request, payload too large …).
            TemporaryPushError: worth retrying.
        """

    async def close(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release connections and sessions."""


def service_client(ca_file: Path | None, delivery: DeliveryConfig) -> httpx.AsyncClient:
    """The HTTP/2-capable client a backend uses for its push service (FCM, APNs).

    Trusts ``ca_file`` only, or the system store; at most ``max_concurrency`` connections;
    never follows redirects.

    Raises:
        ConfigError: the CA file cannot be read.
    """
    try:
        return async_client(
            ca_file or None,
            timeout=delivery.timeout,
            http2=True,
            max_connections=delivery.max_concurrency,
        )
    except OSError as e:
        raise ConfigError(f"cannot read CA file: {e}", source=str(ca_file)) from e
