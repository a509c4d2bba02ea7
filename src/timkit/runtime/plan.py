"""Turn the runtime config into component config files and process specs.

The static plan holds the components the federation shares, built by
:data:`SHARED_COMPONENTS` (a list of builders, so new shared kinds are one entry each):
``fhir-directory`` (the FHIR store on loopback, seeded with the demo data set) behind
``fhir-proxy`` (the FHIR-Proxy over TLS, its only door; its signers are component
certificates of the local PKI, and it reaches the homeservers by name through the route file
``run/names.json`` for ``/tim-authenticate``), ``idp`` (the IDP stand-in with one virtual
SMC-B per organisation, :func:`timkit.runtime.demo.cards_document`), ``mailbox`` (the SMTP
relay of KIM mails with its page), ``pushreceiver`` and ``push`` (the Push-Gateway every
homeserver's pushers use, delivering to the receiver, :mod:`timkit.runtime.push_chain`) and
``registration`` (the Registrierungs-Dienst over TLS:
OIDC client of ``idp``, KIM mails through ``mailbox``, provider at ``fhir-proxy``,
provisioning through the control API). All start at once; the Registrierungs-Dienst fetches
the IDP's discovery and keys when first needed and retries its federation list pull, so it
tolerates its neighbours coming up after it.

Messenger-Services are not in the static plan: the supervisor's control API adds and removes
them while the federation runs (:mod:`timkit.runtime.backend`). :func:`plan_service` is the
one function that plans a service ``D``'s two components:

* ``proxy@D``: the Messenger-Proxy on the service's public HTTPS port (client and
  federation traffic, the Freigabeliste API) and its TLS-intercepting forward proxy, which
  routes Synapse's outbound federation by the route file to the other services' proxies;
* ``homeserver@D``: Synapse on a loopback HTTP port behind it, using ``proxy@D``'s forward
  proxy as ``https_proxy`` and trusting only that proxy's interception CA.
"""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import Callable
from pathlib import Path

import yaml
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import BaseModel, ConfigDict

from timkit.core.config import dump_toml
from timkit.core.files import write_private
from timkit.core.rawdata import RawDataConfig
from timkit.core.signers import SignerConfig
from timkit.core.tls import LOOPBACK_NAMES, CertPaths, LocalPKI
from timkit.directory.config import DirectoryConfig
from timkit.fhirproxy.config import FhirProxyConfig, LdapConfig, MatrixConfig, TrustedIdp
from timkit.homeserver.config import HomeserverConfig
from timkit.idp.config import ClientConfig, IdpConfig
from timkit.idp.config import SignerConfig as IdpSignerConfig
from timkit.mailbox.config import MailboxConfig
from timkit.proxy.config import (
    ContactsConfig,
    FederationListConfig,
    ForwardProxyConfig,
    InboundConfig,
    InviteCheckConfig,
    ProxyConfig,
    UpstreamConfig,
)
from timkit.registration import config as rd
from timkit.runtime.config import MessengerServiceConfig, TimkitConfig
from timkit.runtime.demo import LDAP_ENTRIES, cards_document, kim_entries, write_demo_data
from timkit.runtime.layout import Layout
from timkit.runtime.push_chain import (
    NOTIFY_PATH,
    gateway_config,
    gateway_url,
    receiver_config,
    receiver_url,
)
from timkit.runtime.services import control_url
from timkit.runtime.supervisor import ProcessSpec, RestartPolicy

DIRECTORY_KIND = "fhir-directory"
FHIR_PROXY_KIND = "fhir-proxy"
LEGACY_FHIR_PROXY_HOME = "directory"
"""The FHIR-Proxy's data directory below the data root while its kind was ``directory``
(before issue 15); :func:`build_plan` moves it to ``<data>/fhir-proxy`` once."""
IDP_KIND = "idp"
MAILBOX_KIND = "mailbox"
PUSH_KIND = "push"
PUSH_RECEIVER_KIND = "pushreceiver"
REGISTRATION_KIND = "registration"
RD_CLIENT_ID = "registration"
"""The Registrierungs-Dienst's client id at the IDP stand-in."""
RD_PROVIDER = "timkit-registration"
"""The Registrierungs-Dienst's provider id (OAuth client) at the FHIR-Proxy."""
RD_TOKEN_SIGNER = "registration-token-signer"  # noqa: S105 - a file stem, not a secret
"""File stem of the RD's RegService-OpenID-Token signer (BP256R1) in the local PKI."""
CALLBACK_PATH = "/oidc/callback"
FHIR_PROXY_CLIENT_ID = "fhir-proxy"
"""The FHIR-Proxy's client id at the IDP stand-in (owner sign-in with an HBA, AF_10058)."""
SIGNIN_PATH = "/signin-gematik-idp-dienst"
"""The FHIR-Proxy's redirect URI path for the owner sign-in at the IDP (ML-123873)."""


class ServiceEndpoints(BaseModel):
    """How to reach one Messenger-Service (as printed by ``timkit status``)."""

    domain: str
    organisation: str
    client_url: str
    federation_url: str


class ServiceRecord(MessengerServiceConfig):
    """A provisioned Messenger-Service, persisted in ``services/<domain>/service.json``.

    The fields of :class:`MessengerServiceConfig` (``homeserver_port`` None only in records
    written before Synapse moved behind the proxy; the backend assigns one on restore), read
    as a record rather than a config section: unknown keys ignored, lax types, copies with
    changes allowed.
    """

    model_config = ConfigDict(extra="ignore", frozen=False, strict=False)


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
    """Everything the supervisor needs; written to ``run/plan.json`` by ``timkit up``.

    ``components`` are the shared ones; ``config`` lets the supervisor's control API plan
    Messenger-Services the same way (:func:`plan_service`).
    """

    config: TimkitConfig
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


def endpoints(config: TimkitConfig, service: ServiceRecord) -> ServiceEndpoints:
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


def fhir_proxy_home(layout: Layout) -> Path:
    """The FHIR-Proxy's directory below the data root: ``<data>/fhir-proxy``, or the legacy
    ``<data>/directory`` of a data directory that ``timkit up`` has not upgraded yet."""
    home = layout.root / FHIR_PROXY_KIND
    legacy = layout.root / LEGACY_FHIR_PROXY_HOME
    return legacy if legacy.is_dir() and not home.exists() else home


def _upgrade_fhir_proxy_home(layout: Layout) -> None:
    """Move a legacy ``<data>/directory`` (the FHIR-Proxy's state: database, config) to
    ``<data>/fhir-proxy``; only ``timkit up`` calls this, while no supervisor runs."""
    legacy = layout.root / LEGACY_FHIR_PROXY_HOME
    if legacy.is_dir() and not (layout.root / FHIR_PROXY_KIND).exists():
        (legacy / f"{LEGACY_FHIR_PROXY_HOME}.toml").unlink(missing_ok=True)  # rewritten anew
        legacy.rename(layout.root / FHIR_PROXY_KIND)


def fhir_proxy_database(config: TimkitConfig) -> str:
    """Database URL of the local FHIR-Proxy's own state (beside the directory's tables on PG)."""
    if config.directory.database == "sqlite":
        return f"sqlite:///{fhir_proxy_home(Layout(config.data_dir)) / 'fhir-proxy.db'}"
    return config.directory.database


def directory_token_file(layout: Layout) -> Path:
    """The FHIR-Directory's bearer token (shared with the FHIR-Proxy), made once (mode 0600).

    ``<data>/fhir-directory/token``; both components' configs name this file.
    """
    path = layout.root / DIRECTORY_KIND / "token"
    if path.exists() and path.read_text("utf-8").strip():
        return path
    write_private(path, secrets.token_urlsafe(32) + "\n")
    return path


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
        token_file=directory_token_file(layout),
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
        upstream_token_file=directory_token_file(layout),
        database=fhir_proxy_database(config),
        pki_dir=layout.pki,
        matrix=MatrixConfig(routes_file=layout.names_file, ca_file=layout.ca_cert),
        ldap=LdapConfig(seed_file=LDAP_ENTRIES if config.directory.demo_data else None),
        idps=(
            TrustedIdp(
                issuer=idp_url(config),
                token_endpoint=idp_url(config) + "/token",
                jwks_uri=idp_url(config) + "/jwks",
                client_id=FHIR_PROXY_CLIENT_ID,
                redirect_uri=url + SIGNIN_PATH,
                ca_file=layout.ca_cert,
            ),
        ),
        log_level=config.runtime.log_level,
    )
    return _component(layout, FHIR_PROXY_KIND, None, proxy, url, module="fhirproxy")


def idp_url(config: TimkitConfig) -> str:
    """The IDP stand-in's issuer (and base URL)."""
    return f"https://{config.runtime.bind}:{config.idp.port}"


def mailbox_url(config: TimkitConfig) -> str:
    """The mailbox page (``GET /api/messages?to=`` is its JSON API)."""
    return f"http://{config.runtime.bind}:{config.mailbox.http_port}"


def registration_url(config: TimkitConfig) -> str:
    """The Registrierungs-Dienst's public base URL (portal, JSON API, ``/federation``)."""
    return f"https://{config.runtime.bind}:{config.registration.port}"


def _write_if_changed(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text("utf-8") != text:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, "utf-8")
        tmp.replace(path)
    return path


def _idp(config: TimkitConfig, layout: Layout, pki: LocalPKI) -> ComponentPlan:
    """The IDP stand-in: one SMC-B per organisation, the RD as its registered client."""
    home = layout.root / IDP_KIND
    cards = _write_if_changed(
        home / "cards.yaml",
        yaml.safe_dump(cards_document(config.messenger_services), sort_keys=False),
    )
    tls = pki.ensure_server_cert(IDP_KIND, list(LOOPBACK_NAMES))
    signer = pki.ensure_signing_cert("idp-signer", "timkit IDP stand-in ID token signer")
    url = idp_url(config)
    idp = IdpConfig(
        bind=config.runtime.bind,
        port=config.idp.port,
        tls_cert=tls.cert,
        tls_key=tls.key,
        issuer=url,
        pki_dir=layout.pki,
        signer=IdpSignerConfig(cert=signer.cert, key=signer.key),
        cards_file=cards,
        clients=(
            ClientConfig(
                client_id=RD_CLIENT_ID,
                redirect_uris=(registration_url(config) + CALLBACK_PATH,),
            ),
            ClientConfig(
                client_id=FHIR_PROXY_CLIENT_ID,
                redirect_uris=(fhir_proxy_url(config) + SIGNIN_PATH,),
            ),
        ),
        log_level=config.runtime.log_level,
    )
    return _component(layout, IDP_KIND, None, idp, url)


def _mailbox(config: TimkitConfig, layout: Layout, pki: LocalPKI) -> ComponentPlan:
    """The mailbox on loopback: SMTP relay of the RD's KIM mails, page and JSON API."""
    mailbox = MailboxConfig(
        bind=config.runtime.bind,
        smtp_port=config.mailbox.smtp_port,
        http_port=config.mailbox.http_port,
        log_level=config.runtime.log_level,
    )
    return _component(layout, MAILBOX_KIND, None, mailbox, mailbox_url(config))


def _push(config: TimkitConfig, layout: Layout, pki: LocalPKI) -> ComponentPlan:
    """The provider's Push-Gateway on loopback, one app per backend (:mod:`.push`)."""
    gateway = gateway_config(config, layout)
    return _component(layout, PUSH_KIND, None, gateway, gateway_url(config))


def _pushreceiver(config: TimkitConfig, layout: Layout, pki: LocalPKI) -> ComponentPlan:
    """The push receiver standing in for devices, FCM and APNs (:mod:`.push`)."""
    receiver = receiver_config(config, layout, pki)
    return _component(layout, PUSH_RECEIVER_KIND, None, receiver, receiver_url(config))


def rd_token_signer(pki: LocalPKI) -> CertPaths:
    """The RD's RegService-OpenID-Token signer (BP256R1), issued by the local CA."""
    return pki.ensure_signing_cert(
        RD_TOKEN_SIGNER,
        "TI-M Registrierungs-Dienst RegService-Token-Signer",
        curve=ec.BrainpoolP256R1(),
    )


def _registration(config: TimkitConfig, layout: Layout, pki: LocalPKI) -> ComponentPlan:
    """The Registrierungs-Dienst over TLS, wired to the IDP, mailbox, FHIR-Proxy and runtime."""
    bind = config.runtime.bind
    home = layout.registration
    kim_file = _write_if_changed(
        home / "kim-directory.json",
        json.dumps({"entries": kim_entries(config.messenger_services)}, indent=2),
    )
    tls = pki.ensure_server_cert(REGISTRATION_KIND, list(LOOPBACK_NAMES))
    signer = rd_token_signer(pki)
    url = registration_url(config)
    registration = rd.RegistrationConfig(
        bind=bind,
        port=config.registration.port,
        tls_cert=tls.cert,
        tls_key=tls.key,
        base_url=url,
        database=f"sqlite:///{home / 'registration.db'}",
        pki_dir=layout.pki,
        log_level=config.runtime.log_level,
        idp=rd.IdpSettings(
            issuer=idp_url(config),
            client_id=RD_CLIENT_ID,
            redirect_uri=url + CALLBACK_PATH,
            ca_file=layout.ca_cert,
        ),
        kim=rd.KimSettings(
            directory=rd.KimDirectory(entries_file=kim_file),
            smtp=rd.SmtpSettings(host=bind, port=config.mailbox.smtp_port),
        ),
        rawdata=RawDataConfig(path=home / "rawdata.jsonl"),
        directory=rd.DirectorySettings(
            base_url=fhir_proxy_url(config),
            client_id=RD_PROVIDER,
            client_secret_file=layout.provider_credentials,
            ca_file=layout.ca_cert,
        ),
        federation=rd.FederationSettings(retry_interval=10.0, trust_anchors=(layout.ca_cert,)),
        proxies=rd.ProxiesSettings(token_files=(layout.proxies_token,)),
        provisioning=rd.ProvisioningSettings(
            embedded=rd.EmbeddedSettings(url=control_url(config), token_file=layout.control_token),
            max_services=max(5, len(config.messenger_services)),
            retry_interval=2.0,
            healthy_timeout=config.runtime.startup_timeout,
        ),
        token_signer=SignerConfig(cert=signer.cert, key=signer.key),
    )
    return _component(layout, REGISTRATION_KIND, None, registration, url)


SharedBuilder = Callable[[TimkitConfig, Layout, LocalPKI], ComponentPlan]
"""Writes one shared component's config file and plans it."""


def _directory_builder(config: TimkitConfig, layout: Layout, pki: LocalPKI) -> ComponentPlan:
    return _directory(config, layout)


SHARED_COMPONENTS: list[SharedBuilder] = [
    _directory_builder,
    _fhir_proxy,
    _idp,
    _mailbox,
    _pushreceiver,
    _push,
    _registration,
]
"""The federation's shared components, started in this order (extend for new kinds)."""


def route_target(config: TimkitConfig, service: ServiceRecord) -> str:
    """The ``host:port`` other services reach ``service`` at (its entry in the route file)."""
    return f"{config.runtime.bind}:{service.port}"


def plan_service(
    config: TimkitConfig, layout: Layout, pki: LocalPKI, service: ServiceRecord
) -> list[ComponentPlan]:
    """Write the certificates and both config files of ``service``; plan its components.

    Returns ``[proxy@D, homeserver@D]``: the Messenger-Proxy on the service's public port
    (TLS with the local CA's certificate for ``D``) in front of Synapse on a loopback HTTP
    port; Synapse sends its outbound federation through the proxy's forward proxy and trusts
    only the proxy's interception CA (``services/D/interception/ca.crt``). The proxy pulls
    the federation list from the RD (trust anchor: the local CA, which signs the directory's
    list signer) and asks the RD's stage-3 check, both with the proxies' token. Idempotent:
    re-planning an existing service rewrites the same files and keeps its certificates, its
    Synapse data and the proxy's database and list.

    Raises:
        ValueError: when the record has no ``homeserver_port`` (the backend assigns one).
    """
    if service.homeserver_port is None:
        raise ValueError(f"service {service.domain} has no homeserver_port")
    bind = config.runtime.bind
    domain = service.domain
    home = layout.service_dir(domain)
    cert = pki.ensure_server_cert(domain, [domain, *LOOPBACK_NAMES])
    interception = LocalPKI(home / "interception", ca_name=f"timkit interception CA {domain}")
    interception.ensure_ca()
    forward_url = f"http://{bind}:{service.forward_proxy_port}"
    homeserver_url = f"http://{bind}:{service.homeserver_port}"
    rd_url = registration_url(config)
    proxy = ProxyConfig(
        server_name=domain,
        inbound=InboundConfig(
            bind=bind,
            port=service.port,
            tls_cert=cert.cert,
            tls_key=cert.key,
            # pushers may only notify the provider's Push-Gateway (issue 14, finding 7)
            push_gateways=(gateway_url(config) + NOTIFY_PATH,),
        ),
        upstream=UpstreamConfig(url=homeserver_url),
        forward=ForwardProxyConfig(
            bind=bind,
            port=service.forward_proxy_port,
            interception_ca_cert=interception.ca_cert_path,
            interception_ca_key=interception.ca_key_path,
            ca_file=layout.ca_cert,
            routes_file=layout.names_file,
        ),
        federation_list=FederationListConfig(
            url=rd_url + "/federation",
            token_file=layout.proxies_token,
            ca_file=layout.ca_cert,
            trust_anchors=(layout.ca_cert,),
            retry_interval=10.0,
            miss_refresh_interval=2.0,
            state_file=home / "proxy" / "federation-list.json",
        ),
        invite_check=InviteCheckConfig(
            url=rd_url + "/vzd/invite", token_file=layout.proxies_token, ca_file=layout.ca_cert
        ),
        contacts=ContactsConfig(database=f"sqlite:///{home / 'proxy' / 'proxy.db'}"),
        log_level=config.runtime.log_level,
    )
    client_url = endpoints(config, service).client_url
    homeserver = HomeserverConfig(
        server_name=domain,
        bind=bind,
        port=service.homeserver_port,
        public_baseurl=client_url + "/",
        data_dir=home / "synapse",
        federation_ca=interception.ca_cert_path,
        https_proxy=forward_url,
        # The Push-Gateway is on loopback: reached directly, past Synapse's IP block list.
        no_proxy_hosts=(bind,),
        ip_range_whitelist=(bind,),
        database=service.database,
        relaxed_rate_limits=True,
        log_level=config.runtime.log_level,
    )
    return [
        _component(layout, "proxy", domain, proxy, client_url),
        _component(layout, "homeserver", domain, homeserver, homeserver_url),
    ]


def build_plan(config: TimkitConfig) -> Plan:
    """Create the PKI and the shared components' config files; return the plan to supervise."""
    layout = Layout(config.data_dir)
    pki = LocalPKI(layout.pki)
    pki.ensure_ca()
    _upgrade_fhir_proxy_home(layout)
    return Plan(
        config=config,
        data_dir=config.data_dir,
        state_file=layout.state_file,
        lock_file=layout.lock_file,
        ca_cert=layout.ca_cert,
        max_restarts=config.runtime.max_restarts,
        health_interval=config.runtime.health_interval,
        log_level=config.runtime.log_level,
        components=[build(config, layout, pki) for build in SHARED_COMPONENTS],
    )
