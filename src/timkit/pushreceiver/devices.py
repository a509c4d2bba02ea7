"""The stand-in devices: WebPush subscriptions and UnifiedPush endpoints, by id.

Ids are random URL tokens (``secrets.token_urlsafe``), so the two kinds share one name
space, as faults and attempt counts do. Everything lives in memory for the process's life.
"""

from __future__ import annotations

import secrets
from typing import Any

from timkit.core.errors import Codes, TimkitError
from timkit.pushreceiver.webpush import Subscription, origin

WEBPUSH_PATH = "/wp/"
"""Path prefix of WebPush push resources (``<public_url>/wp/<id>``)."""

UNIFIEDPUSH_PATH = "/up/"
"""Path prefix of UnifiedPush endpoints (``<public_url>/up/<id>``)."""


class Devices:
    """WebPush subscriptions and UnifiedPush endpoints handed out so far.

    Args:
        public_url: base URL the endpoints start with (without trailing slash). The
            composition root sets it once the port is bound, before any request is served.
    """

    def __init__(self, public_url: str = "") -> None:
        self.public_url = public_url.rstrip("/")
        self._webpush: dict[str, Subscription] = {}
        self._unifiedpush: set[str] = set()
        self._unsubscribed: set[str] = set()

    @property
    def audience(self) -> str:
        """The origin VAPID tokens must name in ``aud`` (that of the endpoints)."""
        return origin(self.public_url)

    def subscribe_webpush(
        self, application_server_key: str | None = None, label: str | None = None
    ) -> dict[str, Any]:
        """A new WebPush subscription, as the browser's ``PushSubscription`` JSON plus ``id``.

        Args:
            application_server_key: base64url VAPID public key the pushes must be signed
                with; None accepts any key.
            label: whose device this is (recorded with each push as ``meta.label``).

        Raises:
            TimkitError: 400 when ``application_server_key`` is not a P-256 public key.
        """
        subscription = Subscription.create(application_server_key, label)
        self._webpush[subscription.id] = subscription
        return {
            "id": subscription.id,
            "endpoint": self.public_url + WEBPUSH_PATH + subscription.id,
            "keys": subscription.keys(),
        }

    def unsubscribe_webpush(self, id: str) -> None:
        """End subscription ``id``: later pushes to it answer 410 Gone.

        Raises:
            TimkitError: 404 when there is no such (current) subscription.
        """
        if self._webpush.pop(id, None) is None:
            raise TimkitError(404, Codes.NOT_FOUND, f"no WebPush subscription {id!r}")
        self._unsubscribed.add(id)

    def webpush(self, id: str) -> Subscription:
        """The current subscription ``id``.

        Raises:
            TimkitError: 410 when it was unsubscribed, 404 when it never existed.
        """
        if subscription := self._webpush.get(id):
            return subscription
        if id in self._unsubscribed:
            raise TimkitError(410, Codes.NOT_FOUND, f"WebPush subscription {id!r} has expired")
        raise TimkitError(404, Codes.NOT_FOUND, f"no WebPush subscription {id!r}")

    def create_unifiedpush_endpoint(self) -> dict[str, Any]:
        """A new UnifiedPush endpoint: ``{"id", "endpoint"}``."""
        token = secrets.token_urlsafe(16)
        self._unifiedpush.add(token)
        return {"id": token, "endpoint": self.public_url + UNIFIEDPUSH_PATH + token}

    def delete_unifiedpush_endpoint(self, id: str) -> None:
        """Remove endpoint ``id``: later pushes to it answer 404 (SERV_1.2.0: gone).

        Raises:
            TimkitError: 404 when there is no such endpoint.
        """
        if id not in self._unifiedpush:
            raise TimkitError(404, Codes.NOT_FOUND, f"no UnifiedPush endpoint {id!r}")
        self._unifiedpush.discard(id)

    def check_unifiedpush(self, id: str) -> None:
        """Raise TimkitError 404 unless ``id`` is a current UnifiedPush endpoint."""
        if id not in self._unifiedpush:
            raise TimkitError(404, Codes.NOT_FOUND, f"no UnifiedPush endpoint {id!r}")

    def counts(self) -> dict[str, int]:
        """How many subscriptions and endpoints are current (for the page)."""
        return {"webpush": len(self._webpush), "unifiedpush": len(self._unifiedpush)}
