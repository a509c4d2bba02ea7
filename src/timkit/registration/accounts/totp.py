"""TOTP (RFC 6238: SHA-1, 6 digits, 30 s) with pyotp; QR codes as inline SVG with segno.

A code is accepted for the current time step and one step either side (clock drift), and
each time step only once per account (the caller stores the accepted step).
"""

from __future__ import annotations

import hmac
import time

import pyotp
import segno

WINDOW = 1
STEP = 30


def new_secret() -> str:
    """A fresh base32 secret (160 bits)."""
    return pyotp.random_base32(32)


def provisioning_uri(secret: str, username: str, issuer: str) -> str:
    """The ``otpauth://totp/…`` URI authenticator apps read from the QR code."""
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=issuer)


def qr_svg(uri: str) -> str:
    """``uri`` as an inline SVG QR code (no script, no external reference)."""
    return str(segno.make(uri, error="m").svg_inline(scale=5, border=2))


def matching_step(secret: str, code: str, now: float | None = None) -> int | None:
    """The time step whose code is ``code`` (within :data:`WINDOW`), or None."""
    code = code.strip().replace(" ", "")
    if not code.isdigit() or len(code) != 6:
        return None
    totp = pyotp.TOTP(secret)
    moment = time.time() if now is None else now
    current = int(moment // STEP)
    found: int | None = None
    for step in range(current - WINDOW, current + WINDOW + 1):
        if hmac.compare_digest(totp.at(step * STEP), code):
            found = step
    return found
