"""Turn the runtime config into component config files and process specs.

For every Messenger-Service ``D`` the plan holds two components:

* ``proxy@D``: the Messenger-Proxy's forward proxy; routes ``CONNECT <domain>:<any port>``
  of every local service to that service's HTTPS port on loopback.
* ``homeserver@D``: Synapse with a TLS listener for client and federation traffic, using
  ``proxy@D`` as ``https_proxy`` and the local CA as its federation trust store.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pydantic import BaseModel

from timkit.core.config import dump_toml
from timkit.core.supervisor import ProcessSpec, RestartPolicy
from timkit.core.tls import LOOPBACK_NAMES, LocalPKI
from timkit.homeserver.config import HomeserverConfig
from timkit.proxy.config import ForwardProxyConfig, ProxyConfig
from timkit.runtime.config import MessengerServiceConfig, TimkitConfig
from timkit.runtime.layout import Layout


class ServiceEndpoints(BaseModel):
    """How to reach one Messenger-Service (as printed by ``timkit status``)."""

    domain: str
    organisation: str
    client_url: str
    federation_url: str


class ComponentPlan(BaseModel):
    """A :class:`ProcessSpec` in serialisable form."""

    name: str
    kind: str
    argv: list[str]
    url: str
    health_url: str
    log_file: Path

    def spec(self) -> ProcessSpec:
        """The process spec the supervisor runs."""
        return ProcessSpec(
            name=self.name,
            kind=self.kind,
            argv=tuple(self.argv),
            url=self.url,
            health_url=self.health_url,
            log_file=self.log_file,
        )


class Plan(BaseModel):
    """Everything the supervisor needs; written to ``run/plan.json`` by ``timkit up``."""

    data_dir: Path
    state_file: Path
    lock_file: Path
    ca_cert: Path
    max_restarts: int
    health_interval: float
    log_level: str
    components: list[ComponentPlan]

    def policy(self) -> RestartPolicy:
        """The restart policy for every component."""
        return RestartPolicy(max_restarts=self.max_restarts)


def endpoints(config: TimkitConfig, service: MessengerServiceConfig) -> ServiceEndpoints:
    """Client and federation URLs of ``service`` on this machine."""
    url = f"https://{config.runtime.bind}:{service.port}"
    return ServiceEndpoints(
        domain=service.domain,
        organisation=service.organisation,
        client_url=url,
        federation_url=url,
    )


def _component(
    layout: Layout, kind: str, domain: str, component_config: BaseModel, url: str
) -> ComponentPlan:
    """Write ``component_config`` to ``<service dir>/<kind>.toml``; plan ``timkit.<kind>`` with it.

    Every component answers ``GET <url>/health`` when ready.
    """
    config_file = layout.service_dir(domain) / f"{kind}.toml"
    dump_toml(component_config, config_file)
    name = f"{kind}@{domain}"
    return ComponentPlan(
        name=name,
        kind=kind,
        argv=[sys.executable, "-m", f"timkit.{kind}", "--config", str(config_file)],
        url=url,
        health_url=f"{url}/health",
        log_file=layout.log_file(name),
    )


def build_plan(config: TimkitConfig) -> Plan:
    """Create the PKI and every component's config file; return the plan to supervise."""
    layout = Layout(config.data_dir)
    pki = LocalPKI(layout.pki)
    pki.ensure_ca()
    bind = config.runtime.bind
    routes = {s.domain: f"{bind}:{s.port}" for s in config.messenger_services}
    components: list[ComponentPlan] = []
    for service in config.messenger_services:
        service_dir = layout.service_dir(service.domain)
        cert = pki.ensure_server_cert(service.domain, [service.domain, *LOOPBACK_NAMES])
        proxy_url = f"http://{bind}:{service.forward_proxy_port}"
        proxy = ProxyConfig(
            log_level=config.runtime.log_level,
            forward=ForwardProxyConfig(bind=bind, port=service.forward_proxy_port, routes=routes),
        )
        components.append(_component(layout, "proxy", service.domain, proxy, proxy_url))
        client_url = endpoints(config, service).client_url
        homeserver = HomeserverConfig(
            server_name=service.domain,
            bind=bind,
            port=service.port,
            public_baseurl=client_url + "/",
            data_dir=service_dir / "synapse",
            tls_cert=cert.cert,
            tls_key=cert.key,
            federation_ca=layout.ca_cert,
            https_proxy=proxy_url,
            database=service.database,
            relaxed_rate_limits=True,
            log_level=config.runtime.log_level,
        )
        components.append(_component(layout, "homeserver", service.domain, homeserver, client_url))
    return Plan(
        data_dir=config.data_dir,
        state_file=layout.state_file,
        lock_file=layout.lock_file,
        ca_cert=layout.ca_cert,
        max_restarts=config.runtime.max_restarts,
        health_interval=config.runtime.health_interval,
        log_level=config.runtime.log_level,
        components=components,
    )
