"""Composition root of the Registrierungs-Dienst process."""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import aiohttp

from timkit.core.db import Database
from timkit.core.rawdata import RawDataSink
from timkit.core.tls import optional_server_ssl_context
from timkit.core.web import serve_app
from timkit.registration.api import create_app
from timkit.registration.config import RegistrationConfig
from timkit.registration.context import RegistrationContext
from timkit.registration.directory_client import DirectoryClient
from timkit.registration.list_cache import FederationCache, trust_anchor_files
from timkit.registration.provisioning.backend import EmbeddedBackend
from timkit.registration.provisioning.state_machine import Provisioner
from timkit.registration.requesttoken import load_token_signer
from timkit.registration.storage.migrations import MIGRATIONS

log = logging.getLogger(__name__)


def open_database(url: str) -> Database:
    """The RD database at ``url``, migrated."""
    db = Database.open(url)
    db.migrate("registration", MIGRATIONS)
    return db


@contextlib.asynccontextmanager
async def open_context(config: RegistrationConfig) -> AsyncIterator[RegistrationContext]:
    """Build the shared context; close database, threads and HTTP client afterwards."""
    db = open_database(config.database)
    executor = ThreadPoolExecutor(config.workers, thread_name_prefix="registration")
    http = aiohttp.ClientSession()
    rawdata = RawDataSink(config.rawdata, default_path=config.rawdata_path())
    directory = DirectoryClient(config.directory)
    federation = FederationCache(
        db, config.federation, directory, trust_anchor_files(config), executor=executor
    )
    backend = EmbeddedBackend(config.provisioning.embedded)
    provisioner = Provisioner(
        db,
        config.provisioning,
        backend,
        directory,
        rawdata,
        executor=executor,
        on_federation_change=federation.kick,
    )
    provisioner.start()
    if directory.configured:
        federation.start()
    try:
        yield RegistrationContext(
            config=config,
            db=db,
            executor=executor,
            http=http,
            rawdata=rawdata,
            directory=directory,
            federation=federation,
            provisioner=provisioner,
            token_signer=functools.cache(functools.partial(load_token_signer, config)),
        )
    finally:
        await provisioner.stop()
        await federation.stop()
        await backend.aclose()
        await directory.aclose()
        await rawdata.aclose()
        await http.close()
        executor.shutdown(wait=True)
        db.close()


async def serve(config: RegistrationConfig) -> None:
    """Serve the Registrierungs-Dienst until SIGTERM or SIGINT."""
    async with open_context(config) as ctx:
        await serve_app(
            create_app(ctx),
            config.bind,
            config.port,
            optional_server_ssl_context(config.tls_cert, config.tls_key),
            f"Registrierungs-Dienst on {config.public_base()}",
            logger=log,
        )
