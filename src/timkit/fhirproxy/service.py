"""Composition root of the FHIR-Proxy process.

Several instances may run against one database (seed 003 §7): all state (providers, domains,
federation lists, audit) lives there, so every instance serves the same federation list.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

from cryptography.hazmat.primitives.asymmetric import ec

from timkit.core.db import Database
from timkit.core.fhir import read_token_file
from timkit.core.http import aiohttp_session
from timkit.core.signers import load_signer
from timkit.core.tls import optional_server_ssl_context
from timkit.core.web import serve_app
from timkit.fhirproxy.api.app import create_app
from timkit.fhirproxy.auth.access_tokens import Kind, TokenService
from timkit.fhirproxy.config import FhirProxyConfig
from timkit.fhirproxy.context import FhirProxyContext
from timkit.fhirproxy.handlers.signed_list import Federation
from timkit.fhirproxy.storage.audit import AuditLog
from timkit.fhirproxy.storage.domains import DomainStore
from timkit.fhirproxy.storage.migrations import MIGRATIONS
from timkit.fhirproxy.storage.providers import ProviderStore

log = logging.getLogger(__name__)


def open_database(url: str) -> Database:
    """The proxy database at ``url``, migrated."""
    db = Database.open(url)
    db.migrate("fhir-proxy", MIGRATIONS)
    return db


def token_service(config: FhirProxyConfig) -> TokenService:
    """The token service for ``config`` (token signer loaded or issued)."""
    signer = load_signer(
        config.token_signer,
        config.pki_dir,
        name="fhir-proxy-token-signer",
        common_name="VZD-FHIR-Proxy Token Signer",
        curve=ec.SECP256R1(),
        path="token_signer",
    )
    base = config.public_base()
    extra = {Kind.SEARCH: [base + "/tim-search"]} if config.passport.enabled else {}
    return TokenService(signer.key, signer.certificate, base, config.tokens, extra)


@contextlib.asynccontextmanager
async def open_context(config: FhirProxyConfig) -> AsyncIterator[FhirProxyContext]:
    """Build the shared context; close database, threads and HTTP client afterwards.

    Raises:
        ConfigError: the FHIR-Directory's token file is missing or too short.
    """
    upstream_token = read_token_file(config.upstream_token_file, "upstream_token_file")
    db = open_database(config.database)
    executor = ThreadPoolExecutor(config.workers, thread_name_prefix="fhir-proxy")
    # aiohttp's default time-outs: the callers bound their exchanges themselves
    http = aiohttp_session(
        timeout=300.0, connect_timeout=30.0, limit=256, keepalive=60.0, decompress=False
    )
    try:
        yield FhirProxyContext(
            config=config,
            db=db,
            providers=ProviderStore(db),
            domains=DomainStore(db),
            federation=Federation.open(config, db),
            audit=AuditLog(db),
            tokens=token_service(config),
            executor=executor,
            http=http,
            upstream_token=upstream_token,
        )
    finally:
        await http.close()
        executor.shutdown(wait=True)
        db.close()


async def serve(config: FhirProxyConfig) -> None:
    """Serve the FHIR-Proxy until SIGTERM or SIGINT."""
    async with open_context(config) as ctx:
        await serve_app(
            create_app(ctx),
            config.bind,
            config.port,
            optional_server_ssl_context(config.tls_cert, config.tls_key),
            f"FHIR-Proxy on {config.public_base()} (upstream {config.upstream})",
            logger=log,
        )
