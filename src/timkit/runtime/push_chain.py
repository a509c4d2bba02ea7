"""The local run's push chain: Push-Gateway apps, the push receiver and their keys.

Every homeserver's pushers point at the Push-Gateway on loopback (:func:`gateway_url`).
The gateway has one app per delivery backend, each delivering to the local push receiver,
which stands in for browsers, UnifiedPush distributors, FCM and APNs:

========================  ===========  =================================================
app id                    backend      delivered to
========================  ===========  =================================================
``de.timkit.webpush``     WebPush      ``<receiver>/wp/<id>`` (VAPID, ``aes128gcm``)
``de.timkit.unifiedpush`` UnifiedPush  ``<receiver>/up/<id>``
``de.timkit.fcm``         FCM HTTP v1  the receiver's FCM stand-in (service account below)
``de.timkit.apns``        APNs         the receiver's HTTP/2 APNs stand-in (``.p8`` key)
========================  ===========  =================================================

Device-supplied URLs (WebPush endpoints, UnifiedPush pushkeys) may reach exactly the
receiver's origin (``outbound.allowed_origins``) besides public hosts; the FCM and APNs apps
send only to the stand-ins' configured origins.

Keys live in ``<data>/push/keys/`` and are created once: the VAPID key, an FCM service
account (RSA, its ``token_uri`` the stand-in's ``/token``) and an APNs signing key.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from timkit.core.files import write_private
from timkit.core.tls import LOOPBACK_NAMES, LocalPKI
from timkit.push.config import (
    ApnsApp,
    FcmApp,
    OutboundConfig,
    PushConfig,
    UnifiedPushApp,
    WebPushApp,
)
from timkit.pushreceiver.config import ApnsServerConfig, FcmServerConfig, PushReceiverConfig
from timkit.runtime.config import TimkitConfig
from timkit.runtime.layout import Layout

WEBPUSH_APP = "de.timkit.webpush"
UNIFIEDPUSH_APP = "de.timkit.unifiedpush"
FCM_APP = "de.timkit.fcm"
APNS_APP = "de.timkit.apns"
FCM_PROJECT = "timkit-local"
APNS_TEAM = "TIMKITTEAM"
APNS_KEY_ID = "TIMKITKEY1"
APNS_TOPIC = "de.timkit.messenger"
VAPID_CONTACT = "mailto:push@timkit.invalid"
NOTIFY_PATH = "/_matrix/push/v1/notify"


def gateway_url(config: TimkitConfig) -> str:
    """The Push-Gateway's base URL (loopback HTTP; pushers use ``+ NOTIFY_PATH``)."""
    return f"http://{config.runtime.bind}:{config.push.port}"


def receiver_url(config: TimkitConfig) -> str:
    """The push receiver's base URL (page, JSON API, WebPush/UnifiedPush/FCM endpoints)."""
    return f"https://{config.runtime.bind}:{config.push.receiver_port}"


def _ec_key(path: Path) -> Path:
    """An EC P-256 private key in PKCS#8 PEM at ``path`` (created once)."""
    if not path.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        write_private(path, pem, parent_mode=0o700)
    return path


def vapid_key_file(layout: Layout) -> Path:
    """The gateway's VAPID private key (PEM)."""
    return layout.root / "push" / "keys" / "vapid.pem"


def vapid_public_key(layout: Layout) -> str:
    """The VAPID public key as a browser's ``applicationServerKey`` (base64url, unpadded)."""
    key = serialization.load_pem_private_key(vapid_key_file(layout).read_bytes(), None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TypeError(f"{vapid_key_file(layout)} is not an EC key")
    point = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return base64.urlsafe_b64encode(point).rstrip(b"=").decode("ascii")


def _service_account(path: Path, token_uri: str) -> Path:
    """A Google service-account JSON for the FCM stand-in (key created once).

    The ``token_uri`` is rewritten on every plan so a changed receiver port takes effect.
    """
    account: dict[str, str] = {}
    if path.exists():
        account = json.loads(path.read_text("utf-8"))
    if "private_key" not in account:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        account = {
            "type": "service_account",
            "project_id": FCM_PROJECT,
            "private_key_id": os.urandom(20).hex(),
            "private_key": pem.decode("ascii"),
            "client_email": f"push-gateway@{FCM_PROJECT}.iam.gserviceaccount.com",
            "client_id": str(int.from_bytes(os.urandom(8), "big")),
        }
    if account.get("token_uri") != token_uri:
        account["token_uri"] = token_uri
        write_private(path, json.dumps(account, indent=2).encode("utf-8"), parent_mode=0o700)
    return path


def _apns_key(layout: Layout) -> Path:
    """The APNs signing key (``.p8``) the gateway signs and the receiver verifies with."""
    return _ec_key(layout.root / "push" / "keys" / f"AuthKey_{APNS_KEY_ID}.p8")


def _fcm_account(config: TimkitConfig, layout: Layout) -> Path:
    """The FCM service account the gateway uses and the receiver's stand-in accepts."""
    path = layout.root / "push" / "keys" / "fcm-service-account.json"
    return _service_account(path, receiver_url(config) + "/token")


def gateway_config(config: TimkitConfig, layout: Layout) -> PushConfig:
    """The Push-Gateway's config for the local run: every app delivers to the receiver.

    Creates the VAPID key, the APNs key and the FCM service account when missing.
    """
    bind = config.runtime.bind
    return PushConfig(
        bind=bind,
        port=config.push.port,
        apps={
            WEBPUSH_APP: WebPushApp(
                type="webpush",
                vapid_private_key=_ec_key(vapid_key_file(layout)),
                vapid_contact=VAPID_CONTACT,
            ),
            UNIFIEDPUSH_APP: UnifiedPushApp(type="unifiedpush"),
            FCM_APP: FcmApp(
                type="fcm",
                project_id=FCM_PROJECT,
                service_account_file=_fcm_account(config, layout),
                endpoint=receiver_url(config),
                ca_file=layout.ca_cert,
            ),
            APNS_APP: ApnsApp(
                type="apns",
                team_id=APNS_TEAM,
                key_id=APNS_KEY_ID,
                key_file=_apns_key(layout),
                topic=APNS_TOPIC,
                endpoint=f"https://{bind}:{config.push.apns_port}",
                ca_file=layout.ca_cert,
            ),
        },
        # The receiver is on loopback, which the SSRF guard refuses unless allowed: exactly
        # its origin is, not loopback (a pushkey aimed at another loopback port is rejected).
        # FCM and APNs go to their configured endpoints, never to a device-supplied URL.
        outbound=OutboundConfig(allowed_origins=(receiver_url(config),), ca_file=layout.ca_cert),
        log_level=config.runtime.log_level,
    )


def receiver_config(config: TimkitConfig, layout: Layout, pki: LocalPKI) -> PushReceiverConfig:
    """The push receiver's config for the local run (TLS with the local CA's certificate).

    Its FCM and APNs stand-ins accept the gateway's service account and APNs key (created
    when missing).
    """
    tls = pki.ensure_server_cert("pushreceiver", list(LOOPBACK_NAMES))
    return PushReceiverConfig(
        bind=config.runtime.bind,
        port=config.push.receiver_port,
        tls_cert=tls.cert,
        tls_key=tls.key,
        public_url=receiver_url(config),
        fcm=FcmServerConfig(
            project_id=FCM_PROJECT, service_account_files=(_fcm_account(config, layout),)
        ),
        apns=ApnsServerConfig(
            port=config.push.apns_port,
            team_id=APNS_TEAM,
            keys={APNS_KEY_ID: _apns_key(layout)},
            topics=(APNS_TOPIC,),
        ),
        log_level=config.runtime.log_level,
    )
