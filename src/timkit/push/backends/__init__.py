"""Delivery backends, one per config ``type``: an explicit registry, no string imports.

:data:`BACKENDS` maps each ``[apps.<app_id>] type`` to the :class:`Backend` subclass that
delivers it. A type without an entry fails the gateway's config at startup, naming the app.
"""

from __future__ import annotations

from timkit.push.backends.apns import ApnsBackend
from timkit.push.backends.base import Backend
from timkit.push.backends.fcm import FcmBackend
from timkit.push.backends.unifiedpush import UnifiedPushBackend
from timkit.push.backends.webpush import WebPushBackend

BACKENDS: dict[str, type[Backend]] = {
    "webpush": WebPushBackend,
    "unifiedpush": UnifiedPushBackend,
    "fcm": FcmBackend,
    "apns": ApnsBackend,
}
"""The backend class of each config ``type``."""
