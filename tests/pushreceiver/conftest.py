"""Push receiver fixtures: the real receiver in-process on a runtime-chosen port, VAPID keys."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from timkit.core.config import parse_config
from timkit.core.jwt import b64url, key_from_pem, sign
from timkit.pushreceiver.config import PushReceiverConfig
from timkit.pushreceiver.service import Receiver, running


@dataclass
class Running:
    """A running receiver and a client for its URL.

    Attributes:
        receiver: what :func:`running` yielded.
        url: its base URL.
        http: client for :attr:`url`.
    """

    receiver: Receiver
    url: str
    http: httpx.AsyncClient

    async def subscribe(self, application_server_key: str | None = None) -> dict[str, Any]:
        """``POST /api/webpush/subscriptions``; the subscription JSON."""
        body = (
            {"application_server_key": application_server_key} if application_server_key else None
        )
        response = await self.http.post(self.url + "/api/webpush/subscriptions", json=body)
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    async def pushes(self, **params: str | int) -> list[dict[str, Any]]:
        """``GET /api/pushes``: the pushes."""
        response = await self.http.get(self.url + "/api/pushes", params=params)
        assert response.status_code == 200, response.text
        result: list[dict[str, Any]] = response.json()["pushes"]
        return result

    async def attempts(self, target: str) -> dict[str, Any]:
        """``GET /api/attempts?target=``."""
        response = await self.http.get(self.url + "/api/attempts", params={"target": target})
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result


@dataclass(frozen=True)
class VapidKey:
    """An application server's VAPID key pair.

    Attributes:
        private: the signing key.
        public: base64url of the uncompressed public point (``k``, ``applicationServerKey``).
        pem: the private key as PEM (what pywebpush and the Push-Gateway read).
    """

    private: ec.EllipticCurvePrivateKey
    public: str
    pem: str

    @classmethod
    def generate(cls) -> VapidKey:
        key = ec.generate_private_key(ec.SECP256R1())
        raw = key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        return cls(key, b64url(raw), pem)

    def header(self, claims: dict[str, Any], *, k: str | None = None) -> str:
        """``vapid t=<JWT over claims>, k=<k or own public key>``."""
        token = sign(claims, key_from_pem(self.pem.encode()))
        return f"vapid t={token}, k={k or self.public}"

    def claims(self, audience: str, **changes: Any) -> dict[str, Any]:
        """Valid claims for ``audience``, with ``changes`` applied (None removes a claim)."""
        claims: dict[str, Any] = {
            "aud": audience,
            "exp": int(time.time()) + 3600,
            "sub": "mailto:push@a.tim.test",
        }
        claims.update(changes)
        return {k: v for k, v in claims.items() if v is not None}


def receiver_config(**changes: Any) -> PushReceiverConfig:
    """A config on a runtime-chosen port with ``changes``."""
    return parse_config(PushReceiverConfig, {"port": 0, **changes})


@pytest.fixture
async def rx() -> AsyncIterator[Running]:
    """A receiver accepting bodies up to 4096 bytes, keeping 50 pushes."""
    async with (
        running(receiver_config(max_pushes=50)) as receiver,
        httpx.AsyncClient(timeout=10) as http,
    ):
        yield Running(receiver, receiver.public_url, http)


@pytest.fixture(scope="session")
def vapid() -> VapidKey:
    """The application server's VAPID key."""
    return VapidKey.generate()
