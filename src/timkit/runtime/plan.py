"""Turn the runtime config into component config files and process specs.

The federation shares one VZD-FHIR-Directory: ``fhir-directory`` (the FHIR store on
loopback, seeded with the demo data set) behind ``directory`` (the FHIR-Proxy over TLS, its
only door; its signers are component certificates of the local PKI, and it reaches the
local homeservers by name for ``/tim-authenticate``). For every Messenger-Service ``D`` the
plan holds two components:

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
from timkit.directory.config import DirectoryConfig
from timkit.directory.fhirproxy.config import FhirProxyConfig, LdapConfig, MatrixConfig
from timkit.homeserver.config import HomeserverConfig
from timkit.proxy.config import ForwardProxyConfig, ProxyConfig
from timkit.runtime.config import MessengerServiceConfig, TimkitConfig
from timkit.runtime.demo import LDAP_ENTRIES, write_demo_data
from timkit.runtime.layout import Layout

DIRECTORY_KIND = "fhir-directory"
FHIR_PROXY_KIND = "directory"


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
    layout: Layout,
    kind: str,
    domain: str | None,
    component_config: BaseModel,
    url: str,
    *,
    module: str | None = None,
) -> ComponentPlan:
    """Write ``component_config`` to ``<dir>/<kind>.toml``; plan ``timkit.<module>`` with it.

    ``dir`` is the service directory of ``domain``, or ``<data>/<kind>`` for a component
    shared by the federation (``domain`` None). ``module`` defaults to ``kind``. Every
    component answers ``GET <url>/health`` when ready.
    """
    directory = layout.service_dir(domain) if domain else layout.root / kind
    config_file = directory / f"{kind}.toml"
    dump_toml(component_config, config_file)
    name = f"{kind}@{domain}" if domain else kind
    return ComponentPlan(
        name=name,
        kind=kind,
        argv=[sys.executable, "-m", f"timkit.{module or kind}", "--config", str(config_file)],
        url=url,
        health_url=f"{url}/health",
        log_file=layout.log_file(name),
    )


def directory_database(config: TimkitConfig) -> str:
    """Database URL of the local FHIR-Directory (``sqlite`` maps into the data directory)."""
    if config.directory.database == "sqlite":
        path = Layout(config.data_dir).root / DIRECTORY_KIND / "directory.db"
        return f"sqlite:///{path}"
    return config.directory.database


def fhir_proxy_database(config: TimkitConfig) -> str:
    """Database URL of the local FHIR-Proxy's own state (beside the directory's tables on PG)."""
    if config.directory.database == "sqlite":
        return f"sqlite:///{Layout(config.data_dir).root / FHIR_PROXY_KIND / 'fhir-proxy.db'}"
    return config.directory.database


def _directory(config: TimkitConfig, layout: Layout) -> ComponentPlan:
    """The FHIR-Directory on loopback, seeded with the demo data set when enabled."""
    settings = config.directory
    home = layout.root / DIRECTORY_KIND
    home.mkdir(parents=True, exist_ok=True)
    database = directory_database(config)
    seed_files: tuple[Path, ...] = ()
    if settings.demo_data:
        seed_files = (write_demo_data(home / "demo.ndjson", config.messenger_services),)
    directory = DirectoryConfig(
        bind=config.runtime.bind,
        port=settings.port,
        database=database,
        seed_files=seed_files,
        log_level=config.runtime.log_level,
    )
    url = f"http://{config.runtime.bind}:{settings.port}"
    return _component(layout, DIRECTORY_KIND, None, directory, url, module="directory")


def fhir_proxy_url(config: TimkitConfig) -> str:
    """The FHIR-Proxy's public base URL on this machine."""
    return f"https://{config.runtime.bind}:{config.directory.proxy_port}"


def _fhir_proxy(config: TimkitConfig, layout: Layout, pki: LocalPKI) -> ComponentPlan:
    """The FHIR-Proxy over TLS in front of the FHIR-Directory."""
    bind = config.runtime.bind
    cert = pki.ensure_server_cert(FHIR_PROXY_KIND, list(LOOPBACK_NAMES))
    url = fhir_proxy_url(config)
    proxy = FhirProxyConfig(
        bind=bind,
        port=config.directory.proxy_port,
        tls_cert=cert.cert,
        tls_key=cert.key,
        base_url=url,
        upstream=f"http://{bind}:{config.directory.port}",
        database=fhir_proxy_database(config),
        pki_dir=layout.pki,
        matrix=MatrixConfig(
            routes={s.domain: f"{bind}:{s.port}" for s in config.messenger_services},
            ca_file=layout.ca_cert,
        ),
        ldap=LdapConfig(seed_file=LDAP_ENTRIES if config.directory.demo_data else None),
        log_level=config.runtime.log_level,
    )
    return _component(layout, FHIR_PROXY_KIND, None, proxy, url, module="directory.fhirproxy")


def build_plan(config: TimkitConfig) -> Plan:
    """Create the PKI and every component's config file; return the plan to supervise."""
    layout = Layout(config.data_dir)
    pki = LocalPKI(layout.pki)
    pki.ensure_ca()
    bind = config.runtime.bind
    routes = {s.domain: f"{bind}:{s.port}" for s in config.messenger_services}
    components = [_directory(config, layout), _fhir_proxy(config, layout, pki)]
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
