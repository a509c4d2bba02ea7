"""Random tokens and how they are stored: only their SHA-256 digest ever reaches the database."""

from __future__ import annotations

import hashlib
import secrets


def new_token() -> str:
    """A fresh random token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def digest(token: str) -> str:
    """The stored form of ``token`` (SHA-256, hex)."""
    return hashlib.sha256(token.encode()).hexdigest()
