"""Configuration of the Push-Gateway (``python -m timkit.push --config push.toml``).

See ``config/push.sample.toml``. Each ``[apps.<app_id>]`` table selects a delivery backend by
its ``type``; a notification for an ``app_id`` without a table is rejected. Defaults make a
development run need only the apps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from timkit.core.config import StrictModel


class DeliveryConfig(StrictModel):
    """Limits and retries shared by every app type (override per app).

    Attributes:
        max_concurrency: most deliveries of this app in flight at once; more wait.
        timeout: seconds one delivery attempt may take.
        max_attempts: attempts per device for temporary failures (1 = no retry).
        backoff: seconds before the first retry; doubles each time (capped by
            ``max_backoff``); a service's ``Retry-After`` takes precedence up to the cap.
        max_backoff: the longest wait between two attempts.
    """

    max_concurrency: int = Field(default=64, ge=1, le=10_000)
    timeout: float = Field(default=10.0, gt=0)
    max_attempts: int = Field(default=3, ge=1, le=10)
    backoff: float = Field(default=0.5, ge=0)
    max_backoff: float = Field(default=10.0, ge=0)


class WebPushApp(StrictModel):
    """WebPush (RFC 8030, payload encryption RFC 8291 ``aes128gcm``, VAPID RFC 8292).

    The device's ``pushkey`` is the subscription's ``p256dh`` key; ``data.endpoint`` and
    ``data.auth`` complete the subscription (Sygnal's convention).

    Attributes:
        vapid_private_key: PEM EC P-256 private key that signs the VAPID JWTs.
        vapid_contact: the ``sub`` claim, ``mailto:`` or ``https:`` URL of the operator.
        ttl: seconds the push service keeps an undelivered message.
        allowed_endpoints: glob patterns of endpoint hosts; empty = any host the SSRF guard
            allows.
    """

    type: Literal["webpush"]
    vapid_private_key: Path
    vapid_contact: str = Field(pattern=r"^(mailto:|https://)")
    ttl: int = Field(default=900, ge=0)
    allowed_endpoints: tuple[str, ...] = ()
    delivery: DeliveryConfig = DeliveryConfig()


class UnifiedPushApp(StrictModel):
    """UnifiedPush (SERV_1.2.0): the notification is POSTed to the ``pushkey`` URL.

    Attributes:
        allowed_endpoints: glob patterns of endpoint hosts; empty = any host the SSRF guard
            allows.
    """

    type: Literal["unifiedpush"]
    allowed_endpoints: tuple[str, ...] = ()
    delivery: DeliveryConfig = DeliveryConfig()


class FcmApp(StrictModel):
    """Firebase Cloud Messaging HTTP v1 with a service account (OAuth 2.0 JWT bearer grant).

    Attributes:
        project_id: the Firebase project (``/v1/projects/<project_id>/messages:send``).
        service_account_file: Google service-account JSON (``client_email``,
            ``private_key``, ``token_uri``); its ``token_uri`` is where access tokens come from.
        endpoint: base URL of the FCM API.
        ca_file: CA bundle for the FCM API and the token endpoint; None = system trust.
    """

    type: Literal["fcm"]
    project_id: str = Field(min_length=1)
    service_account_file: Path
    endpoint: str = "https://fcm.googleapis.com"
    ca_file: Path | None = None
    delivery: DeliveryConfig = DeliveryConfig()


class ApnsApp(StrictModel):
    """Apple Push Notification service over HTTP/2 with token (``.p8``, ES256) auth.

    Attributes:
        team_id: the Apple developer team (``iss`` of the provider token).
        key_id: id of the signing key (``kid``).
        key_file: the ``.p8`` PEM EC P-256 private key.
        topic: the app's bundle id (``apns-topic``).
        endpoint: ``https://api.push.apple.com`` (production) or
            ``https://api.sandbox.push.apple.com``.
        ca_file: CA bundle for the endpoint; None = system trust.
    """

    type: Literal["apns"]
    team_id: str = Field(min_length=1)
    key_id: str = Field(min_length=1)
    key_file: Path
    topic: str = Field(min_length=1)
    endpoint: str = "https://api.push.apple.com"
    ca_file: Path | None = None
    delivery: DeliveryConfig = DeliveryConfig()


AppConfig = Annotated[WebPushApp | UnifiedPushApp | FcmApp | ApnsApp, Field(discriminator="type")]


class OutboundConfig(StrictModel):
    """Where the gateway may send (the SSRF guard for device-supplied URLs).

    Attributes:
        allowed_origins: exact origins ``scheme://host[:port]`` that may be sent to although
            their address is private, loopback or link-local (the local run allows exactly
            its push receiver, ``https://127.0.0.1:8429``); scheme, host spelling and port
            must all match.
        allowed_networks: CIDRs whose every address and port is allowed although not
            public; prefer ``allowed_origins``. Everything else non-public is refused, and
            a device URL pointing there is rejected.
        ca_file: extra CA bundle trusted for WebPush/UnifiedPush endpoints (the local CA in
            the local run); None = system trust.
    """

    allowed_origins: tuple[str, ...] = ()
    allowed_networks: tuple[str, ...] = ()
    ca_file: Path | None = None


class PushConfig(StrictModel):
    """Top level of the Push-Gateway's TOML file.

    Attributes:
        bind: listen address.
        port: HTTP(S) port of ``/_matrix/push/v1/notify``, ``/health`` and ``/metrics``.
        tls_cert: PEM certificate; None serves plain HTTP (loopback, or behind a TLS proxy).
        tls_key: PEM private key of ``tls_cert``.
        max_body: largest request body in bytes (larger gets 413).
        dedup_size: how many recent ``event_id``s per pushkey are remembered to drop repeats.
        apps: the backend of each ``app_id``.
        outbound: the SSRF guard.
        log_level: Python log level.
    """

    bind: str = "127.0.0.1"
    port: int = Field(default=8428, ge=0, le=65535)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    max_body: int = Field(default=64 * 1024, gt=0)
    dedup_size: int = Field(default=10_000, ge=0)
    apps: dict[str, AppConfig] = Field(default_factory=dict)
    outbound: OutboundConfig = OutboundConfig()
    log_level: str = "INFO"
