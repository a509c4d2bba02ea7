"""PASSporTs (RFC 8225) of the seed's VZD 1.0.0 compatibility mode (ML-123483).

:class:`PassportService` signs a PASSporT from the caller's MXID to each MXID a ``/tim-search``
answer shows and appends it as ``?PASSporT=<token>``; :func:`passport_service` loads (or has
the local PKI issue) its ES256 signer. The routes are in
:mod:`timkit.fhirproxy.api.passport_routes`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from timkit.core import jwt
from timkit.core.signers import Signer, load_signer
from timkit.fhirproxy.context import FhirProxyContext
from timkit.fhirproxy.handlers import rules

CERT_PATH = "/PASSporTCertificates"


PARAM = "PASSporT"


REQUIREMENT = "ML-123483"


@dataclass(frozen=True)
class PassportService:
    """Issues PASSporTs and attaches them to the MXIDs of found entries.

    Attributes:
        signer: the PASSporT signer (ES256).
        x5u: URL of the signer's certificate, put in every PASSporT header.
    """

    signer: Signer
    x5u: str

    def issue(self, orig: str, dest: str) -> str:
        """A PASSporT from ``orig`` to ``dest`` (both MXIDs in URL form)."""
        claims = {"orig": {"uri": orig}, "dest": {"uri": [dest]}, "iat": int(time.time())}
        return jwt.sign(claims, self.signer.key, typ="passport", header={"x5u": self.x5u})

    def decorate(self, claims: dict[str, Any], resource: dict[str, Any]) -> None:
        """Append ``?PASSporT=…`` to every eligible MXID of ``resource`` (in place)."""
        orig = str(claims["sub"])
        for target in list(rules.passport_targets(resource)):
            if target == "address":
                resource["address"] = self._attach(orig, resource["address"])
            else:
                telecom = resource["telecom"][int(target.split("/", 1)[1])]
                telecom["value"] = self._attach(orig, telecom["value"])

    def _attach(self, orig: str, mxid: str) -> str:
        return f"{mxid}?{PARAM}={self.issue(orig, mxid)}"

    def pem_chain(self) -> bytes:
        """The signer's certificate chain as PEM, leaf first."""
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in self.signer.chain)

    def certificates(self) -> dict[str, list[str]]:
        """The ``/PASSporTCertificates`` body."""
        pem = self.signer.certificate.public_bytes(serialization.Encoding.PEM).decode()
        return {"passportSigningCertificates": [pem]}


def passport_service(ctx: FhirProxyContext) -> PassportService:
    """The PASSporT service for ``ctx``'s configuration (signer loaded or issued)."""
    config = ctx.config
    signer = load_signer(
        config.passport.signer,
        config.pki_dir,
        name="passport-signer",
        common_name="VZD-FHIR-Directory PASSporT Signer",
        curve=ec.SECP256R1(),
        path="passport.signer",
    )
    x5u = config.passport.x5u or f"{ctx.base}{CERT_PATH}/passport.cer"
    return PassportService(signer, x5u)
