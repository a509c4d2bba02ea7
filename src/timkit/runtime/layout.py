"""Where the local runtime keeps its files inside the data directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Layout:
    """Paths below the data directory ``root``::

    pki/                 local CA and server certificates
    logs/<component>.log one log file per component, plus supervisor.log
    run/                 plan.json, state.json, supervisor.lock, names.json, control-token
    services/<domain>/   per Messenger-Service: service.json, component configs, Synapse's files
    fhir-directory/      the FHIR-Directory's config, SQLite database and demo data
    fhir-proxy/          the FHIR-Proxy's config and database
    idp/                 the IDP stand-in's config and cards file
    mailbox/             the mailbox's config
    registration/        the Registrierungs-Dienst's config, database, KIM directory, provider
                         credentials, proxy token, raw data and the demo Org-Admins
    """

    root: Path

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def ca_cert(self) -> Path:
        return self.pki / "ca.crt"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def plan_file(self) -> Path:
        return self.run / "plan.json"

    @property
    def state_file(self) -> Path:
        return self.run / "state.json"

    @property
    def lock_file(self) -> Path:
        return self.run / "supervisor.lock"

    @property
    def names_file(self) -> Path:
        """The federation's route file (server name → ``host:port``, :mod:`timkit.core.names`)."""
        return self.run / "names.json"

    @property
    def control_token(self) -> Path:
        """Bearer token of the control API (mode 0600)."""
        return self.run / "control-token"

    @property
    def services(self) -> Path:
        """Parent of every Messenger-Service's directory."""
        return self.root / "services"

    @property
    def supervisor_log(self) -> Path:
        return self.logs / "supervisor.log"

    @property
    def registration(self) -> Path:
        """Files of the Registrierungs-Dienst."""
        return self.root / "registration"

    @property
    def demo_admins(self) -> Path:
        """The demo organisations' Org-Admin credentials (mode 0600, written by ``up``)."""
        return self.registration / "demo-admins.json"

    @property
    def provider_credentials(self) -> Path:
        """The Registrierungs-Dienst's OAuth client at the FHIR-Proxy (mode 0600)."""
        return self.registration / "provider.json"

    @property
    def proxies_token(self) -> Path:
        """Bearer token the Messenger-Proxies present at the RD's ``/federation`` (0600)."""
        return self.registration / "proxies-token"

    def log_file(self, component: str) -> Path:
        """The log file of ``component``."""
        return self.logs / f"{component}.log"

    def service_dir(self, domain: str) -> Path:
        """Files of the Messenger-Service ``domain``."""
        return self.services / domain

    def service_record(self, domain: str) -> Path:
        """The persisted record of the provisioned Messenger-Service ``domain``."""
        return self.service_dir(domain) / "service.json"
