"""The interception CA of the forward proxy: TLS server contexts minted per host on demand.

The forward proxy shows its Synapse, for every ``CONNECT host:port``, a certificate for
``host`` issued by the interception CA (``forward.interception_ca_cert``/``_key``), which
only that Synapse trusts (``federation_custom_ca_list``). Leaves are EC P-256 with
``subjectAltName = host`` and a short validity (:data:`LEAF_LIFETIME`); all leaves of one
process share one key pair, generated at start and never written anywhere but a private
temporary file that lives only while :mod:`ssl` loads it. The resulting
:class:`ssl.SSLContext` objects are kept in a bounded LRU cache (one per host), so minting
(about a millisecond) happens once per host, not per tunnel. A client whose TLS SNI names
another host than its ``CONNECT`` target (Synapse after an SRV lookup connects to the SRV
target but verifies the delegated name) is switched to that name's context in the handshake.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
import ssl
import tempfile
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from timkit.core.errors import ConfigError
from timkit.core.tls import SIGNATURE_ONLY

LEAF_LIFETIME = dt.timedelta(days=7)
"""How long a minted certificate is valid."""
REMINT_AFTER = 24 * 3600.0
"""Seconds after which a cached context is replaced by a freshly minted one."""
CACHE_SIZE = 1024
"""Most per-host contexts kept (least recently used ones are dropped first)."""
_BACKDATE = dt.timedelta(hours=1)
_MAX_CN = 64

CAKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


_HOST = re.compile(r"[a-z0-9_](?:[a-z0-9_.-]{0,251}[a-z0-9_])?")


def valid_host(host: str) -> bool:
    """Whether ``host`` (lower-case) is a DNS name or an IP literal a certificate can name."""
    if _HOST.fullmatch(host):
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class HostContext(ssl.SSLContext):
    """A server-side context presenting a minted certificate for :attr:`host`."""

    host: str


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


class InterceptionCA:
    """Mints and caches TLS server contexts for host names, signed by one CA.

    Args:
        cert_path: PEM certificate of the interception CA.
        key_path: PEM private key (EC or RSA, unencrypted) of ``cert_path``.
        cache_size: most per-host contexts kept.
        clock: seconds (a test seam for cache expiry).

    Raises:
        ConfigError: when either path is missing or does not hold a usable CA.
    """

    def __init__(
        self,
        cert_path: Path | None,
        key_path: Path | None,
        *,
        cache_size: int = CACHE_SIZE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if cert_path is None or key_path is None:
            raise ConfigError(
                "the forward proxy inspects every outbound request (ML-123665) and needs an"
                " interception CA; set interception_ca_cert and interception_ca_key",
                path="forward.interception_ca_cert",
            )
        self.cert, self.key = _load_ca(cert_path, key_path)
        self.cache_size = cache_size
        self._clock = clock
        self._leaf_key = ec.generate_private_key(ec.SECP256R1())
        self._leaf_key_pem = self._leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self._aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key())
        self._contexts: OrderedDict[str, tuple[float, HostContext]] = OrderedDict()

    def __len__(self) -> int:
        """How many per-host contexts are cached."""
        return len(self._contexts)

    def context_for(self, host: str) -> HostContext:
        """A server-side context presenting a certificate for ``host`` (cached, LRU).

        A client that names another host in its TLS SNI is switched, during the handshake,
        to that host's context; the context actually used tells which (:attr:`HostContext.host`).
        """
        now = self._clock()
        entry = self._contexts.get(host)
        if entry is not None and now - entry[0] < REMINT_AFTER:
            self._contexts.move_to_end(host)
            return entry[1]
        ctx = self._make_context(host, self.issue(host))
        self._contexts[host] = (now, ctx)
        self._contexts.move_to_end(host)
        while len(self._contexts) > self.cache_size:
            self._contexts.popitem(last=False)
        return ctx

    def issue(self, host: str) -> x509.Certificate:
        """A fresh leaf certificate for ``host`` (a DNS name or an IP literal)."""
        now = dt.datetime.now(dt.UTC)
        subject = x509.Name(
            [x509.NameAttribute(NameOID.COMMON_NAME, host)] if len(host) <= _MAX_CN else []
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.cert.subject)
            .public_key(self._leaf_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + LEAF_LIFETIME)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName([_san(host)]), critical=len(subject) == 0)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
            .add_extension(SIGNATURE_ONLY, critical=True)
            .add_extension(self._aki, critical=False)
        )
        return builder.sign(self.key, hashes.SHA256())

    def _make_context(self, host: str, cert: x509.Certificate) -> HostContext:
        ctx = HostContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.host = host
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_alpn_protocols(["http/1.1"])
        ctx.sni_callback = self._on_sni
        # ssl loads certificates from files only: a 0600 temporary file, removed at once.
        fd, name = tempfile.mkstemp(prefix="timkit-leaf-", suffix=".pem")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(cert.public_bytes(serialization.Encoding.PEM))
                fh.write(self._leaf_key_pem)
            ctx.load_cert_chain(name)
        finally:
            os.unlink(name)
        return ctx

    def _on_sni(
        self, ssl_object: ssl.SSLObject, server_name: str | None, ctx: ssl.SSLContext
    ) -> int | None:
        """Switch to the context of the SNI name when it differs from the CONNECT host."""
        if server_name is None:
            return None
        name = server_name.lower()
        if isinstance(ctx, HostContext) and name == ctx.host:
            return None
        if not valid_host(name):
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
        try:
            ssl_object.context = self.context_for(name)
        except (ValueError, ssl.SSLError):
            return ssl.ALERT_DESCRIPTION_INTERNAL_ERROR
        return None


def _load_ca(cert_path: Path, key_path: Path) -> tuple[x509.Certificate, CAKey]:
    where = "forward.interception_ca_cert"
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as e:
        raise ConfigError(f"cannot load the interception CA: {e}", path=where) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ConfigError("the interception CA key must be EC or RSA", path=where)
    if _spki(key.public_key()) != _spki(cert.public_key()):
        raise ConfigError("interception_ca_key does not belong to the certificate", path=where)
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        raise ConfigError(f"{cert_path} is not a CA certificate", path=where)
    return cert, key


def _spki(public_key: CertificatePublicKeyTypes) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
