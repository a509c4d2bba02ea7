"""Configuration of the local push receiver (``python -m timkit.pushreceiver --config …``).

See ``config/pushreceiver.sample.toml``. Every key has a default, so a development run
needs no file; FCM and APNs are served when their tables name the keys they accept.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from timkit.core.config import StrictModel


class FcmServerConfig(StrictModel):
    """The FCM HTTP v1 stand-in (``/token`` and ``/v1/projects/<id>/messages:send``).

    Attributes:
        project_id: the only project it accepts messages for.
        service_account_files: service-account JSON files whose keys may obtain access
            tokens (the JWT bearer assertion is verified with the account's key).
        token_lifetime: seconds an access token is valid.
    """

    project_id: str = Field(min_length=1)
    service_account_files: tuple[Path, ...] = Field(min_length=1)
    token_lifetime: int = Field(default=3600, ge=60)


class ApnsServerConfig(StrictModel):
    """The APNs stand-in: HTTP/2 over TLS, ``POST /3/device/<token>`` with token auth.

    Attributes:
        port: its own TLS port (HTTP/2 only); needs ``tls_cert`` of the receiver.
        team_id: the team whose provider tokens are accepted (``iss``).
        keys: ``key_id`` → PEM file with the EC P-256 key (private ``.p8`` or public) that
            verifies provider tokens with that ``kid``.
        topics: the bundle ids accepted in ``apns-topic``.
    """

    port: int = Field(default=8430, ge=0, le=65535)
    team_id: str = Field(min_length=1)
    keys: dict[str, Path] = Field(min_length=1)
    topics: tuple[str, ...] = Field(min_length=1)


class PushReceiverConfig(StrictModel):
    """Top level of the receiver's TOML file.

    Attributes:
        bind: listen address (loopback: the receiver has no authentication).
        port: HTTP(S) port of the WebPush, UnifiedPush and FCM endpoints, the page and the
            JSON API.
        tls_cert: PEM certificate (the local CA's); None serves plain HTTP. APNs needs it.
        tls_key: PEM private key of ``tls_cert``.
        public_url: base URL the endpoints it hands out start with; None derives it from
            ``bind`` and ``port``.
        max_pushes: pushes kept in the inbox (memory only).
        max_payload: largest push body accepted (WebPush and UnifiedPush allow 4096 bytes).
        fcm: serve the FCM stand-in; None = off.
        apns: serve the APNs stand-in; None = off.
        log_level: Python log level.
    """

    bind: str = "127.0.0.1"
    port: int = Field(default=8429, ge=0, le=65535)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    public_url: str | None = None
    max_pushes: int = Field(default=1000, ge=1, le=100_000)
    max_payload: int = Field(default=4096, ge=1)
    fcm: FcmServerConfig | None = None
    apns: ApnsServerConfig | None = None
    log_level: str = "INFO"
