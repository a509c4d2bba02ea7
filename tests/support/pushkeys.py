"""Keys and certificates for the FCM and APNs tests: service accounts, ``.p8`` keys, TLS."""

from __future__ import annotations

import functools
import secrets
import time
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwcrypto import jwk, jws

from timkit.core.tls import CertPaths, LocalPKI

FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
TEAM_ID = "TEAMID1234"
KEY_ID = "KEYID12345"
TOPIC = "de.timkit.messenger"
DEVICE_TOKEN = "ab" * 32


@functools.cache
def rsa_pem(index: int = 0) -> str:
    """A PKCS#8 PEM RSA-2048 key, one per ``index`` for the whole session (keygen is slow)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def write_service_account(
    path: Path,
    token_uri: str,
    *,
    email: str = "gateway@timkit-test.iam.gserviceaccount.com",
    key_index: int = 0,
) -> dict[str, Any]:
    """Write a Google service-account JSON file with a fresh key id; returns its content."""
    account = {
        "type": "service_account",
        "project_id": "timkit-test",
        "private_key_id": secrets.token_hex(20),
        "private_key": rsa_pem(key_index),
        "client_email": email,
        "client_id": "1234567890",
        "token_uri": token_uri,
    }
    path.write_bytes(orjson.dumps(account))
    return account


def assertion(
    account: dict[str, Any],
    *,
    key_pem: str | None = None,
    header: dict[str, Any] | None = None,
    **claims: Any,
) -> str:
    """An RS256 JWT bearer assertion for ``account``; ``claims`` override (None removes)."""
    now = int(time.time())
    body: dict[str, Any] = {
        "iss": account["client_email"],
        "scope": FCM_SCOPE,
        "aud": account["token_uri"],
        "iat": now,
        "exp": now + 3600,
    }
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    protected = {"alg": "RS256", "typ": "JWT", "kid": account["private_key_id"], **(header or {})}
    key = jwk.JWK()
    key.import_from_pem((key_pem or account["private_key"]).encode())
    token = jws.JWS(orjson.dumps(body))
    token.add_signature(key, alg=protected["alg"], protected=orjson.dumps(protected).decode())
    return str(token.serialize(compact=True))


def write_p8(path: Path) -> Path:
    """Write a fresh EC P-256 private key as an APNs ``.p8`` (PEM PKCS#8) file."""
    key = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def server_tls(tmp_path: Path) -> tuple[CertPaths, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1/localhost: (cert, CA file)."""
    pki = LocalPKI(tmp_path / "pki")
    return pki.ensure_server_cert("push", ["127.0.0.1", "localhost"]), pki.ca_cert_path
