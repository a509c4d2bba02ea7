"""Everything a FHIR-Proxy request handler may use, built once per process."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from timkit.core.db import Database
from timkit.fhirproxy.auth.access_tokens import TokenService
from timkit.fhirproxy.config import FhirProxyConfig
from timkit.fhirproxy.handlers.signed_list import Federation
from timkit.fhirproxy.storage.audit import AuditLog
from timkit.fhirproxy.storage.domains import DomainStore
from timkit.fhirproxy.storage.providers import ProviderStore


@dataclass
class FhirProxyContext:
    """Shared state of one FHIR-Proxy process.

    Attributes:
        config: the proxy's configuration.
        db: the proxy's own database (migrated).
        providers: registered TI-M providers.
        domains: registered TI-M domains.
        federation: domain changes and the signed federation list.
        audit: the audit log.
        tokens: issues and checks access tokens.
        executor: threads for blocking database work.
        http: the outbound HTTP client session (upstream FHIR-Directory, homeservers, IDPs).
        upstream_token: the FHIR-Directory's bearer token (``upstream_token_file``), sent
            only to the directory.
    """

    config: FhirProxyConfig
    db: Database
    providers: ProviderStore
    domains: DomainStore
    federation: Federation
    audit: AuditLog
    tokens: TokenService
    executor: ThreadPoolExecutor
    http: aiohttp.ClientSession
    upstream_token: str

    @property
    def base(self) -> str:
        """The public base URL."""
        return self.config.public_base()


CONTEXT_KEY = web.AppKey("fhirproxy.context", FhirProxyContext)


def context(request: web.Request) -> FhirProxyContext:
    """The context of the app serving ``request``."""
    return request.app[CONTEXT_KEY]
