"""Composition root of the Messenger-Proxy process.

Starts, in order: the proxy database (migrated), the federation list gate (persisted list
first, then the hourly pull), the pooled clients (Synapse, the RD's stage-3 check), the
forward proxy for Synapse's outbound federation and the inbound listener. On SIGTERM the
listeners stop accepting, requests in flight get ``SHUTDOWN_GRACE`` seconds, then
everything closes in reverse order.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web

from timkit.core.lifecycle import wait_for_stop
from timkit.core.rawdata import RawDataSink
from timkit.core.tls import optional_server_ssl_context
from timkit.core.web import ReadTimeouts, TimedAppRunner
from timkit.proxy.config import ProxyConfig
from timkit.proxy.contacts.api import contacts_app
from timkit.proxy.contacts.handlers import ContactsService
from timkit.proxy.inbound.app import Inbound
from timkit.proxy.inbound.synapse_relay import Relay
from timkit.proxy.invite_check import InviteCheck
from timkit.proxy.list_gate import FederationGate
from timkit.proxy.metrics import ProxyMetrics
from timkit.proxy.openid import OpenIdValidator
from timkit.proxy.outbound.forward import ForwardProxy
from timkit.proxy.storage import open_database

log = logging.getLogger(__name__)

SHUTDOWN_GRACE = 10.0
"""Seconds requests in flight may take to finish after SIGTERM."""


@dataclass
class RunningProxy:
    """A started proxy: its parts and bound ports (for tests and benchmarks)."""

    config: ProxyConfig
    gate: FederationGate
    contacts: ContactsService
    metrics: ProxyMetrics
    relay: Relay
    forward: ForwardProxy
    inbound_port: int


@contextlib.asynccontextmanager
async def running_proxy(config: ProxyConfig) -> AsyncIterator[RunningProxy]:
    """The proxy serving inside the context; stopped gracefully on leaving."""
    metrics = ProxyMetrics()
    rawdata = RawDataSink(
        config.rawdata, default_path=config.federation_list.state_file.parent / "rawdata.jsonl"
    )
    db = open_database(config.contacts.database)
    contacts = ContactsService(db, config.contacts.max_contacts)
    gate = FederationGate(config.federation_list, metrics, rawdata)
    relay = Relay(config.upstream, metrics)
    invite_check = InviteCheck(config.invite_check)
    forward = ForwardProxy(config.forward, gate, metrics)
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(rawdata.aclose)
        stack.callback(db.close)
        stack.callback(contacts.close)
        await gate.start()
        stack.push_async_callback(gate.close)
        await relay.start()
        stack.push_async_callback(relay.close)
        await invite_check.start()
        stack.push_async_callback(invite_check.close)
        validator = OpenIdValidator(
            config.upstream.url,
            config.server_name,
            config.contacts.token_cache_seconds,
            relay.session,
        )
        stack.push_async_callback(validator.close)
        await forward.start()
        stack.push_async_callback(forward.close)
        inbound = Inbound(
            config.server_name,
            config.inbound,
            gate,
            relay,
            contacts,
            invite_check,
            metrics,
            rawdata,
        )
        app = inbound.app(contacts_app(contacts, validator))
        settings = config.inbound
        timeouts = ReadTimeouts(
            head=settings.head_timeout,
            body_stall=settings.body_stall_timeout,
            body_total=settings.body_timeout,
            keepalive=settings.keepalive_timeout,
        )
        runner = TimedAppRunner(
            app, timeouts=timeouts, access_log=None, shutdown_timeout=SHUTDOWN_GRACE
        )
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        site = web.TCPSite(
            runner,
            settings.bind,
            settings.port,
            ssl_context=optional_server_ssl_context(settings.tls_cert, settings.tls_key),
        )
        await site.start()
        port = int(runner.addresses[0][1])
        log.info(
            "Messenger-Proxy for %s: inbound on %s:%d, forward proxy on %s:%d, upstream %s",
            config.server_name,
            settings.bind,
            port,
            config.forward.bind,
            forward.port,
            config.upstream.url,
        )
        yield RunningProxy(config, gate, contacts, metrics, relay, forward, port)


async def serve(config: ProxyConfig) -> None:
    """Run the proxy until SIGTERM or SIGINT."""
    async with running_proxy(config):
        await wait_for_stop()
