"""Composition root of the IDP stand-in process."""

from __future__ import annotations

import logging
import ssl
import time
from urllib.parse import urlsplit

from timkit.core.errors import ConfigError
from timkit.core.tls import LOOPBACK_NAMES, CertPaths, LocalPKI, server_ssl_context
from timkit.core.web import serve_app
from timkit.idp.api import create_app
from timkit.idp.cards import load_cards
from timkit.idp.config import IdpConfig
from timkit.idp.handlers import Provider
from timkit.idp.keys import load_signing_key

log = logging.getLogger(__name__)


def build_provider(config: IdpConfig) -> Provider:
    """The provider for ``config``: cards loaded, signing key loaded or issued.

    Raises:
        ConfigError: for an invalid cards file or signing key.
    """
    cards = load_cards(config.cards_file)
    return Provider(config, cards, load_signing_key(config), time.time)


def tls_context(config: IdpConfig) -> ssl.SSLContext:
    """The server TLS context: the configured certificate, or one from the local PKI.

    Raises:
        ConfigError: when only one of ``tls_cert`` and ``tls_key`` is set.
    """
    if (config.tls_cert is None) != (config.tls_key is None):
        raise ConfigError("set both tls_cert and tls_key, or neither", path="tls_cert")
    if config.tls_cert is not None and config.tls_key is not None:
        return server_ssl_context(CertPaths(config.tls_cert, config.tls_key))
    host = urlsplit(config.public_issuer()).hostname or "127.0.0.1"
    names = list(dict.fromkeys([host, *LOOPBACK_NAMES]))
    return server_ssl_context(LocalPKI(config.pki_dir).ensure_server_cert("idp", names))


async def serve(config: IdpConfig) -> None:
    """Serve the IDP stand-in over HTTPS until SIGTERM or SIGINT.

    Exits with status 2 when the cards file or a key is invalid (the error names it).
    """
    try:
        idp = build_provider(config)
        ssl_context = tls_context(config)
    except ConfigError as e:
        log.error("%s", e)
        raise SystemExit(2) from None
    description = (
        f"IDP stand-in {idp.issuer} on {config.bind}:{config.port}: {len(idp.cards)} cards, "
        f"{len(config.clients)} clients, {idp.key.alg}"
    )
    await serve_app(create_app(idp), config.bind, config.port, ssl_context, description, logger=log)
