"""Everything a Registrierungs-Dienst request handler may use, built once per process."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
from aiohttp import web

from timkit.core.db import Database
from timkit.core.rawdata import RawDataSink
from timkit.core.signers import Signer
from timkit.registration.config import RegistrationConfig
from timkit.registration.directory_client import DirectoryClient
from timkit.registration.list_cache import FederationCache
from timkit.registration.provisioning.state_machine import Provisioner

T = TypeVar("T")


@dataclass
class RegistrationContext:
    """Shared state of one Registrierungs-Dienst process.

    Attributes:
        config: the RD's configuration.
        db: the RD's own database (migrated).
        executor: threads for blocking database and crypto work.
        http: the outbound HTTP client session (IDP, directory, provisioning backend).
        rawdata: the Rohdatenerfassung sink (``rawdata.measure("AF_10103", COMPONENT)``).
        directory: the VZD-FHIR-Directory client (the RD as a TI-M provider).
        federation: the federation list held for the proxies (AF_10064).
        provisioner: the AF_10060 state machine's worker.
        token_signer: the signer of RegService-OpenID-Tokens (I_requestToken), loaded on
            first use.
    """

    config: RegistrationConfig
    db: Database
    executor: ThreadPoolExecutor
    http: aiohttp.ClientSession
    rawdata: RawDataSink
    directory: DirectoryClient
    federation: FederationCache
    provisioner: Provisioner
    token_signer: Callable[[], Signer]

    @property
    def base(self) -> str:
        """The public base URL."""
        return self.config.public_base()

    async def blocking(self, function: Callable[..., T], *args: Any) -> T:
        """Run ``function(*args)`` (database, argon2, SMTP, LDAP) on the worker threads."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, function, *args)


COMPONENT = "registration"
"""The component name in raw-data records."""

CONTEXT_KEY = web.AppKey("registration.context", RegistrationContext)


def context(request: web.Request) -> RegistrationContext:
    """The context of the app serving ``request``."""
    return request.app[CONTEXT_KEY]
