"""Composition root of the FHIR-Directory process.

With ``processes > 1`` the directory serves from several processes sharing the port
(``SO_REUSEPORT``): the first loads the seed files, then starts the others, which die with
it. Every process reads the database in parallel; writes stay serialised by the database
(one SQLite writer lock, PostgreSQL transactions).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from multiprocessing.process import BaseProcess

from timkit.core.db import Database
from timkit.core.fhir import read_token_file
from timkit.core.logging import setup_logging
from timkit.core.process import die_with_parent
from timkit.core.web import serve_app
from timkit.directory.api import create_app
from timkit.directory.config import DirectoryConfig
from timkit.directory.handlers import Directory
from timkit.directory.load import load_files
from timkit.directory.storage.store import Store

log = logging.getLogger(__name__)


def open_directory(database: str) -> Directory:
    """The directory on ``database`` (schema migrated)."""
    return Directory(Store(Database.open(database)))


async def _serve_http(config: DirectoryConfig, directory: Directory) -> None:
    """Serve ``directory`` until SIGTERM or SIGINT."""
    token = read_token_file(config.token_file, "token_file")
    app = create_app(directory, token=token, workers=config.workers, base_url=config.base_url)
    try:
        await serve_app(app, config.bind, config.port, reuse_port=config.processes > 1)
    finally:
        directory.db.close()


def _child(config: DirectoryConfig) -> None:
    """Entry point of an additional serving process."""
    die_with_parent()
    setup_logging(config.log_level)
    asyncio.run(_serve_http(config, open_directory(config.database)))


async def serve(config: DirectoryConfig) -> None:
    """Load the seed files, start the other serving processes, serve until stopped.

    Raises:
        ConfigError: the token file is missing or too short (checked before anything else).
    """
    read_token_file(config.token_file, "token_file")
    directory = open_directory(config.database)
    if config.seed_files:
        stats = await asyncio.to_thread(load_files, directory, config.seed_files)
        log.info("seed data: %s", stats.summary())
    context = multiprocessing.get_context("spawn")
    children: list[BaseProcess] = []
    for _ in range(config.processes - 1):
        child = context.Process(target=_child, args=(config,), daemon=True)
        child.start()
        children.append(child)
    log.info(
        "FHIR-Directory on http://%s:%s (%s, %d processes)",
        config.bind,
        config.port,
        directory.db.dialect,
        config.processes,
    )
    try:
        await _serve_http(config, directory)
    finally:
        for process in children:
            process.terminate()
        for process in children:
            process.join(timeout=10)
