"""The local federation's configuration: one optional TOML file (``config/timkit.sample.toml``).

Lookup order: ``--config PATH``, then ``$TIMKIT_CONFIG``, then ``./timkit.toml``; with none of
them the defaults start the two demo organisations.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from pydantic import Field

from timkit.core.config import StrictModel, load_toml
from timkit.core.errors import ConfigError
from timkit.homeserver.config import DatabaseUrl, ServerName

ENV_CONFIG = "TIMKIT_CONFIG"
DEFAULT_CONFIG_FILE = Path("timkit.toml")


class MessengerServiceConfig(StrictModel):
    """One organisation's Messenger-Service (Synapse + Messenger-Proxy).

    Attributes:
        domain: Matrix server name, a domain without port.
        organisation: the organisation's display name.
        port: HTTPS port of its Messenger-Proxy: the service's client and federation URL.
        forward_proxy_port: port of the proxy's outbound forward proxy Synapse uses.
        homeserver_port: loopback port of Synapse behind the proxy; None = a free port
            chosen when the service is first started (kept in its service record).
        database: ``sqlite`` or a PostgreSQL DSN for this service's Synapse.
    """

    domain: ServerName
    organisation: str
    port: int = Field(ge=1, le=65535)
    forward_proxy_port: int = Field(ge=1, le=65535)
    homeserver_port: int | None = Field(default=None, ge=1, le=65535)
    database: DatabaseUrl = "sqlite"


class RuntimeSettings(StrictModel):
    """How the supervisor runs the components.

    Attributes:
        bind: loopback address every component listens on.
        startup_timeout: seconds ``timkit up`` waits for all components to become healthy.
        max_restarts: consecutive restarts of a crashed component before it is marked failed.
        health_interval: seconds between health probes.
        log_level: log level of timkit's own processes and Synapse.
        control_port: loopback HTTP port of the supervisor's control API (the embedded
            provisioning backend: Messenger-Services are added and removed through it).
    """

    bind: str = "127.0.0.1"
    startup_timeout: float = Field(default=90.0, gt=0)
    max_restarts: int = Field(default=5, ge=0)
    health_interval: float = Field(default=0.25, gt=0)
    log_level: str = "INFO"
    control_port: int = Field(default=8400, ge=1, le=65535)


DEMO_SERVICES = (
    MessengerServiceConfig(
        domain="praxis-sonnenschein.tim.test",
        organisation="Praxis Dr. Sonnenschein",
        port=8481,
        forward_proxy_port=8491,
    ),
    MessengerServiceConfig(
        domain="klinikum-nord.tim.test",
        organisation="Klinikum Nord",
        port=8482,
        forward_proxy_port=8492,
    ),
)


class DirectorySettings(StrictModel):
    """The VZD FHIR-Directory of the local federation.

    Attributes:
        port: loopback HTTP port of the FHIR-Directory (never exposed beyond loopback).
        proxy_port: HTTPS port of the FHIR-Proxy, the directory's only door.
        database: ``sqlite`` (files in the data directory) or a PostgreSQL DSN (directory
            and FHIR-Proxy tables side by side).
        demo_data: load the demo organisations plus synthetic practices and practitioners.
    """

    port: int = Field(default=8490, ge=1, le=65535)
    proxy_port: int = Field(default=8480, ge=1, le=65535)
    database: DatabaseUrl = "sqlite"
    demo_data: bool = True


class IdpSettings(StrictModel):
    """The IDP stand-in (virtual SMC-B/HBA cards) the Registrierungs-Dienst signs in at.

    Attributes:
        port: HTTPS port of the IDP (issuer ``https://<bind>:<port>``).
    """

    port: int = Field(default=8470, ge=1, le=65535)


class MailboxSettings(StrictModel):
    """The local mailbox: the SMTP relay of KIM mails and the page that shows them.

    Attributes:
        smtp_port: SMTP port (the Registrierungs-Dienst's relay).
        http_port: HTTP port of the mailbox page and ``GET /api/messages?to=``.
    """

    smtp_port: int = Field(default=8425, ge=1, le=65535)
    http_port: int = Field(default=8426, ge=1, le=65535)


class PushSettings(StrictModel):
    """The provider's Push-Gateway and the local push receiver standing in for devices.

    Attributes:
        port: loopback HTTP port of the Push-Gateway (``/_matrix/push/v1/notify``); the
            homeservers' pushers point here.
        receiver_port: HTTPS port of the push receiver: WebPush and UnifiedPush endpoints,
            the FCM stand-in, the page of received pushes and its JSON API.
        apns_port: HTTPS (HTTP/2) port of the receiver's APNs stand-in.
    """

    port: int = Field(default=8428, ge=1, le=65535)
    receiver_port: int = Field(default=8429, ge=1, le=65535)
    apns_port: int = Field(default=8430, ge=1, le=65535)


class RegistrationSettings(StrictModel):
    """The Registrierungs-Dienst: org authentication, Org-Admin accounts, provisioning.

    Attributes:
        port: HTTPS port of its portal, JSON API and proxy interface.
    """

    port: int = Field(default=8460, ge=1, le=65535)


class TimkitConfig(StrictModel):
    """Top level of ``timkit.toml``.

    Attributes:
        data_dir: where keys, certificates, databases, logs and run state live; a relative
            path is taken relative to the config file (or the working directory).
        runtime: supervisor settings.
        directory: the VZD FHIR-Directory.
        idp: the IDP stand-in.
        mailbox: the local mailbox (SMTP relay for KIM mails).
        registration: the Registrierungs-Dienst.
        push: the Push-Gateway and the local push receiver.
        messenger_services: the organisations' Messenger-Services, onboarded by ``timkit up``
            through the Registrierungs-Dienst (one organisation per distinct
            ``organisation`` name).
    """

    data_dir: Path = Path("var")
    runtime: RuntimeSettings = Field(default_factory=RuntimeSettings)
    directory: DirectorySettings = Field(default_factory=DirectorySettings)
    idp: IdpSettings = Field(default_factory=IdpSettings)
    mailbox: MailboxSettings = Field(default_factory=MailboxSettings)
    registration: RegistrationSettings = Field(default_factory=RegistrationSettings)
    push: PushSettings = Field(default_factory=PushSettings)
    messenger_services: tuple[MessengerServiceConfig, ...] = DEMO_SERVICES


def find_config_file(explicit: Path | None) -> Path | None:
    """The config file to use: ``explicit``, ``$TIMKIT_CONFIG``, ``./timkit.toml`` or none."""
    if explicit is not None:
        return explicit
    if env := os.environ.get(ENV_CONFIG):
        return Path(env)
    return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.exists() else None


def load_config(path: Path | None) -> TimkitConfig:
    """Load and cross-check the configuration; ``data_dir`` comes back absolute.

    Raises:
        ConfigError: naming the key, for invalid values, duplicate domains or ports.
    """
    config = load_toml(TimkitConfig, path)
    base = path.parent if path is not None else Path.cwd()
    data_dir = (base / config.data_dir).resolve()
    config = config.model_copy(update={"data_dir": data_dir})
    _check_unique(config, source=str(path) if path else "")
    return config


def _check_unique(config: TimkitConfig, *, source: str) -> None:
    domains: dict[str, str] = {}
    ports: dict[int, str] = {config.runtime.control_port: "runtime.control_port"}
    for key, port in shared_ports(config)[1:]:
        if port in ports:
            raise ConfigError(
                f"port {port} is already used by {ports[port]}", path=key, source=source
            )
        ports[port] = key
    for i, service in enumerate(config.messenger_services):
        key = f"messenger_services.{i}"
        if service.domain in domains:
            raise ConfigError(
                f"domain {service.domain!r} is already used by {domains[service.domain]}",
                path=f"{key}.domain",
                source=source,
            )
        domains[service.domain] = key
        for field in ("port", "forward_proxy_port", "homeserver_port"):
            port = getattr(service, field)
            if port is None:
                continue
            if port in ports:
                raise ConfigError(
                    f"port {port} is already used by {ports[port]}",
                    path=f"{key}.{field}",
                    source=source,
                )
            ports[port] = f"{key}.{field}"


def shared_ports(config: TimkitConfig) -> list[tuple[str, int]]:
    """(key, port) of every port the runtime itself and its shared components use."""
    return [
        ("runtime.control_port", config.runtime.control_port),
        ("directory.port", config.directory.port),
        ("directory.proxy_port", config.directory.proxy_port),
        ("idp.port", config.idp.port),
        ("mailbox.smtp_port", config.mailbox.smtp_port),
        ("mailbox.http_port", config.mailbox.http_port),
        ("registration.port", config.registration.port),
        ("push.port", config.push.port),
        ("push.receiver_port", config.push.receiver_port),
        ("push.apns_port", config.push.apns_port),
    ]


def check_ports_free(config: TimkitConfig) -> None:
    """Fail early, naming the key, when a configured port is already taken on this machine.

    Raises:
        ConfigError: for the first port that cannot be bound.
    """
    wanted = shared_ports(config)
    for i, service in enumerate(config.messenger_services):
        for field in ("port", "forward_proxy_port", "homeserver_port"):
            if getattr(service, field) is not None:
                wanted.append((f"messenger_services.{i}.{field}", getattr(service, field)))
    for key, port in wanted:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((config.runtime.bind, port))
            except OSError as exc:
                raise ConfigError(
                    f"port {port} on {config.runtime.bind} is not available ({exc.strerror})",
                    path=key,
                ) from None
