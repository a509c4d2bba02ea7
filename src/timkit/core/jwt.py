"""Compact JWS/JWT signing and verification, fail-closed, on jwcrypto.

Every token timkit issues or accepts goes through here (directory access tokens, the signed
federation list, RegService-OpenID-Tokens, IDP tokens), so the checks live in one place:

* the header's ``alg`` must be in the caller's allow-list, and must match the key's type and
  curve (``ES256`` = P-256, ``BP256R1`` = brainpoolP256r1): no ``none``, no HMAC with a
  public key, no curve confusion;
* the signature is verified before any claim is trusted;
* ``iss`` and ``aud`` must match exactly (``aud`` may be a list holding the audience);
  ``exp`` is required and ``nbf``/``iat`` are honoured, all with a small leeway.

Failures raise :class:`TokenError` (401, OAuth ``invalid_token``) naming what was wrong.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwcrypto import jwk, jws

from timkit.core.errors import TimkitError

CURVE_ALGS: dict[str, str] = {"P-256": "ES256", "BP-256": "BP256R1"}
"""The signature algorithm belonging to each supported EC curve (JWK ``crv``)."""

DEFAULT_LEEWAY = 30


class TokenError(TimkitError):
    """A token was missing, malformed, badly signed, expired or for someone else (401)."""

    def __init__(self, message: str, *, requirement: str | None = None, status: int = 401) -> None:
        super().__init__(status, "invalid_token", message, requirement=requirement)


def b64url(data: bytes) -> str:
    """Unpadded base64url, as JOSE uses it."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    """Inverse of :func:`b64url` (padding optional)."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def key_from_pem(pem: bytes) -> jwk.JWK:
    """A JWK from a PEM private or public key."""
    key = jwk.JWK()
    key.import_from_pem(pem)
    return key


def key_from_certificate(cert: x509.Certificate) -> jwk.JWK:
    """The public JWK of ``cert``'s subject key."""
    return key_from_pem(
        cert.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def alg_for(key: jwk.JWK) -> str:
    """The one algorithm ``key`` may sign with (by curve); TypeError for other key types."""
    if key.get("kty") != "EC" or key.get("crv") not in CURVE_ALGS:
        raise TypeError(f"unsupported signing key type {key.get('kty')}/{key.get('crv')}")
    return CURVE_ALGS[str(key.get("crv"))]


def x5c_of(certs: Iterable[x509.Certificate]) -> list[str]:
    """The ``x5c`` header value (standard base64 DER, leaf first)."""
    return [base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode() for c in certs]


def sign(
    payload: Mapping[str, Any] | bytes,
    key: jwk.JWK,
    *,
    typ: str | None = "JWT",
    x5c: Sequence[str] | None = None,
    kid: str | None = None,
    header: Mapping[str, Any] | None = None,
) -> str:
    """A compact JWS over ``payload`` (a claims mapping, or raw bytes) signed with ``key``.

    The algorithm follows from the key (:func:`alg_for`).
    """
    alg = alg_for(key)
    protected: dict[str, Any] = {"alg": alg}
    if typ:
        protected["typ"] = typ
    if kid:
        protected["kid"] = kid
    if x5c:
        protected["x5c"] = list(x5c)
    protected.update(header or {})
    body = payload if isinstance(payload, bytes) else orjson.dumps(dict(payload))
    token = jws.JWS(body)
    token.allowed_algs = [alg]
    token.add_signature(key, alg=alg, protected=orjson.dumps(protected).decode())
    return str(token.serialize(compact=True))


def header_of(token: str) -> dict[str, Any]:
    """The unverified protected header of a compact JWS (to pick a key); TokenError if bad."""
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenError("token is not a compact JWS (three base64url parts)")
    try:
        header = orjson.loads(b64url_decode(parts[0]))
    except (ValueError, orjson.JSONDecodeError) as e:
        raise TokenError("token header is not base64url JSON") from e
    if not isinstance(header, dict):
        raise TokenError("token header is not a JSON object")
    return header


def certificates_of(header: Mapping[str, Any]) -> list[x509.Certificate]:
    """The ``x5c`` chain of a header, leaf first; TokenError when absent or malformed."""
    chain = header.get("x5c")
    if not isinstance(chain, list) or not chain:
        raise TokenError("token header has no x5c certificate chain")
    try:
        return [x509.load_der_x509_certificate(base64.b64decode(c)) for c in chain]
    except (ValueError, TypeError) as e:
        raise TokenError(f"x5c is not a base64 DER certificate chain: {e}") from e


def verify_signature(token: str, key: jwk.JWK, algs: Sequence[str]) -> bytes:
    """Check ``token``'s signature with ``key``; return the verified payload bytes.

    Raises:
        TokenError: when ``alg`` is not allowed, does not fit the key, or the signature fails.
    """
    header = header_of(token)
    alg = header.get("alg")
    if alg not in algs:
        raise TokenError(f"token alg {alg!r} is not accepted here (allowed: {', '.join(algs)})")
    try:
        expected = alg_for(key)
    except TypeError as e:
        raise TokenError(str(e)) from e
    if alg != expected:
        raise TokenError(f"token alg {alg!r} does not match the {key.get('crv')} key")
    verifier = jws.JWS()
    try:
        verifier.deserialize(token)
        verifier.allowed_algs = [alg]
        verifier.verify(key, alg=alg)
    except Exception as e:  # jwcrypto raises several unrelated types
        raise TokenError("token signature is invalid") from e
    return bytes(verifier.payload)


def check_claims(
    claims: Mapping[str, Any],
    *,
    issuer: str | Sequence[str] | None,
    audience: str | None,
    leeway: int = DEFAULT_LEEWAY,
    now: float | None = None,
    required: Sequence[str] = ("exp",),
) -> None:
    """Check registered claims; ``issuer``/``audience`` None skip that check.

    Raises:
        TokenError: naming the first claim that fails.
    """
    now = time.time() if now is None else now
    for name in required:
        if name not in claims:
            raise TokenError(f"token has no {name!r} claim")
    for name in ("exp", "nbf", "iat"):
        if name in claims and not isinstance(claims[name], int | float):
            raise TokenError(f"token claim {name!r} is not a number")
    if "exp" in claims and now > claims["exp"] + leeway:
        raise TokenError("token has expired")
    if "nbf" in claims and now < claims["nbf"] - leeway:
        raise TokenError("token is not valid yet (nbf)")
    if "iat" in claims and now < claims["iat"] - leeway:
        raise TokenError("token was issued in the future (iat)")
    if issuer is not None:
        allowed = [issuer] if isinstance(issuer, str) else list(issuer)
        if claims.get("iss") not in allowed:
            raise TokenError(f"token issuer {claims.get('iss')!r} is not accepted here")
    if audience is not None:
        aud = claims.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        if audience not in audiences:
            raise TokenError(f"token audience {aud!r} does not include {audience!r}")


def verify(
    token: str,
    key: jwk.JWK,
    *,
    algs: Sequence[str],
    issuer: str | Sequence[str] | None,
    audience: str | None,
    leeway: int = DEFAULT_LEEWAY,
    required: Sequence[str] = ("exp",),
) -> dict[str, Any]:
    """Verify signature and claims of a JWT; return its claims."""
    payload = verify_signature(token, key, algs)
    try:
        claims = orjson.loads(payload)
    except orjson.JSONDecodeError as e:
        raise TokenError("token payload is not JSON") from e
    if not isinstance(claims, dict):
        raise TokenError("token payload is not a JSON object")
    check_claims(claims, issuer=issuer, audience=audience, leeway=leeway, required=required)
    return claims


def generate_key(curve: str = "P-256") -> ec.EllipticCurvePrivateKey:
    """A new EC private key on ``curve`` (``P-256`` or ``BP-256``)."""
    curves: dict[str, ec.EllipticCurve] = {
        "P-256": ec.SECP256R1(),
        "BP-256": ec.BrainpoolP256R1(),
    }
    return ec.generate_private_key(curves[curve])
