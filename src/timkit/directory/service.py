"""Composition root of the FHIR-Directory process."""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from timkit.core.db import Database
from timkit.directory.api import create_app
from timkit.directory.config import DirectoryConfig
from timkit.directory.handlers import Directory
from timkit.directory.load import load_files
from timkit.directory.storage.store import Store

log = logging.getLogger(__name__)


def open_directory(database: str) -> Directory:
    """The directory on ``database`` (schema migrated)."""
    return Directory(Store(Database.open(database)))


async def serve(config: DirectoryConfig) -> None:
    """Load the seed files, then serve until SIGTERM or SIGINT."""
    directory = open_directory(config.database)
    if config.seed_files:
        stats = await asyncio.to_thread(load_files, directory, config.seed_files)
        log.info("seed data: %s", stats.summary())
    app = create_app(directory, workers=config.workers, base_url=config.base_url)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, config.bind, config.port)
    await site.start()
    log.info("FHIR-Directory on http://%s:%s (%s)", config.bind, config.port, directory.db.dialect)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        directory.db.close()
