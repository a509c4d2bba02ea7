"""Registered TI-M providers: OAuth client credentials and RegService signing certificates.

Client secrets are generated (256 bits of randomness) and stored only as SHA-256 digests;
a slow password hash adds nothing for secrets of that entropy and would cost every
``/token`` call milliseconds. Certificates are stored as PEM, found by SHA-256 fingerprint.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from timkit.core.db import Database
from timkit.core.errors import IssueType, TimkitError


@dataclass(frozen=True)
class Provider:
    """A registered TI-M provider (its Registrierungs-Dienst is the OAuth client)."""

    client_id: str
    name: str
    created: str


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 fingerprint of ``cert`` (lower-case hex of the DER encoding)."""
    return cert.fingerprint(hashes.SHA256()).hex()


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class ProviderStore:
    """Providers in the proxy database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, client_id: str, name: str, *, secret: str | None = None) -> tuple[Provider, str]:
        """Register a provider; return it and its client secret (generated when not given).

        Raises:
            TimkitError: 409 when ``client_id`` exists.
        """
        secret = secret or secrets.token_urlsafe(32)
        created = datetime.now(UTC).isoformat(timespec="seconds")
        with self.db.write() as tx:
            if tx.execute("SELECT 1 FROM providers WHERE client_id = ?", (client_id,)).fetchone():
                raise TimkitError(409, IssueType.DUPLICATE, f"provider {client_id!r} exists")
            tx.execute(
                "INSERT INTO providers (client_id, name, secret_hash, created) VALUES (?, ?, ?, ?)",
                (client_id, name, _digest(secret), created),
            )
        return Provider(client_id, name, created), secret

    def add_certificate(self, client_id: str, pem: bytes) -> str:
        """Register a RegService signing certificate for ``client_id``; return its fingerprint.

        Raises:
            TimkitError: 404 for an unknown provider, 400 for a malformed certificate.
        """
        try:
            cert = x509.load_pem_x509_certificate(pem)
        except ValueError as e:
            raise TimkitError(400, IssueType.INVALID, f"not a PEM certificate: {e}") from e
        digest = fingerprint(cert)
        text = cert.public_bytes(serialization.Encoding.PEM).decode()
        with self.db.write() as tx:
            if not tx.execute(
                "SELECT 1 FROM providers WHERE client_id = ?", (client_id,)
            ).fetchone():
                raise TimkitError(404, IssueType.NOT_FOUND, f"no provider {client_id!r}")
            tx.execute(
                "DELETE FROM provider_certs WHERE client_id = ? AND fingerprint = ?",
                (client_id, digest),
            )
            tx.execute(
                "INSERT INTO provider_certs (client_id, fingerprint, pem) VALUES (?, ?, ?)",
                (client_id, digest, text),
            )
        return digest

    def get(self, client_id: str) -> Provider | None:
        """The provider ``client_id``, or None."""
        with self.db.read() as cur:
            row = cur.execute(
                "SELECT client_id, name, created FROM providers WHERE client_id = ?", (client_id,)
            ).fetchone()
        return Provider(*row) if row else None

    def authenticate(self, client_id: str, secret: str) -> Provider | None:
        """The provider when ``secret`` is its client secret (constant-time), else None."""
        with self.db.read() as cur:
            row = cur.execute(
                "SELECT client_id, name, created, secret_hash FROM providers WHERE client_id = ?",
                (client_id,),
            ).fetchone()
        if row is None:
            hmac.compare_digest(_digest(secret), _digest(""))
            return None
        if not hmac.compare_digest(_digest(secret), row[3]):
            return None
        return Provider(row[0], row[1], row[2])

    def by_certificate(self, cert: x509.Certificate) -> Provider | None:
        """The provider that registered ``cert`` (exact certificate match), or None."""
        with self.db.read() as cur:
            row = cur.execute(
                "SELECT p.client_id, p.name, p.created FROM provider_certs c"
                " JOIN providers p ON p.client_id = c.client_id WHERE c.fingerprint = ?",
                (fingerprint(cert),),
            ).fetchone()
        return Provider(*row) if row else None

    def all(self) -> list[Provider]:
        """Every provider, by client id."""
        with self.db.read() as cur:
            rows = cur.execute(
                "SELECT client_id, name, created FROM providers ORDER BY client_id"
            ).fetchall()
        return [Provider(*row) for row in rows]
