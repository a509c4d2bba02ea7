"""Configuration of the Registrierungs-Dienst (``python -m timkit.registration``).

See ``config/registration.sample.toml``. Every key has a default so a development run needs
no file. Sections are added by the parts of the RD that read them: ``idp`` and ``kim``
(AF_10103), ``accounts`` (Org-Admin accounts), ``directory`` (the VZD-FHIR-Directory as a
provider), ``federation`` (list delivery to the proxies), ``provisioning`` (AF_10060),
``token_signer`` (I_requestToken) and ``rawdata`` (Rohdatenerfassung).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from timkit.core.config import StrictModel
from timkit.core.federation_list import LIST_SIGNER_ROLE, ROLE_PATTERN
from timkit.core.ratelimit import RateLimit
from timkit.core.rawdata import RawDataConfig
from timkit.core.signers import SignerConfig


class IdpSettings(StrictModel):
    """AF_10103 Verfahren 1: the IDP-Dienst the RD is registered at as an OIDC client.

    An empty ``issuer`` switches Verfahren 1 off.

    Attributes:
        issuer: the IDP's ``iss`` (its discovery document is ``<issuer>/.well-known/…``).
        discovery: URL of the discovery document; empty = derived from ``issuer``.
        authorization_endpoint: where the browser is sent; empty = from discovery.
        token_endpoint: where codes are redeemed; empty = from discovery.
        jwks_uri: the IDP's signing keys; empty = from discovery.
        client_id: the RD's client id at the IDP (the ``aud`` of its ID tokens).
        client_secret: its secret (HTTP Basic at the token endpoint); empty = public client.
        redirect_uri: the RD's ``/oidc/callback`` as registered; empty = derived from the
            RD's public base URL.
        ca_file: CA bundle for the IDP's TLS certificate; empty = system trust store.
        scopes: scopes requested (``openid`` first).
        flow_lifetime: seconds a started flow (``state``) may be completed, single use.
    """

    issuer: str = ""
    discovery: str = ""
    authorization_endpoint: str = ""
    token_endpoint: str = ""
    jwks_uri: str = ""
    client_id: str = "registration"
    client_secret: str = ""
    redirect_uri: str = ""
    ca_file: Path | None = None
    scopes: tuple[str, ...] = ("openid",)
    flow_lifetime: int = Field(default=600, ge=30, le=3600)


class KimDirectory(StrictModel):
    """Where the KIM address (``mail``) of an organisation is looked up by its TelematikID.

    Exactly one source: an LDAP server (the LDAP-VZD) or a JSON entries file (the local run's
    stand-in, the form of ``timkit/runtime/ldap-entries.json``). Neither = Verfahren 2 off.

    Attributes:
        ldap_url: ``ldap://host:port`` or ``ldaps://…``.
        bind_dn: DN to bind as; empty = anonymous.
        bind_password: its password.
        base_dn: search base.
        ca_file: CA bundle for ``ldaps``; empty = system trust store.
        entries_file: JSON file of entries (a list, or ``{"entries": [...]}``) instead of LDAP.
        timeout: seconds for connect plus search.
    """

    ldap_url: str = ""
    bind_dn: str = ""
    bind_password: str = ""
    base_dn: str = "dc=data,dc=vzd"
    ca_file: Path | None = None
    entries_file: Path | None = None
    timeout: float = Field(default=10.0, gt=0)


class SmtpSettings(StrictModel):
    """The SMTP relay KIM confirmation mails are sent through.

    Attributes:
        host: relay host.
        port: relay port.
        starttls: upgrade with STARTTLS (required when a password is set and ``tls`` is off).
        tls: implicit TLS (SMTPS) instead.
        ca_file: CA bundle for the relay's certificate; empty = system trust store.
        username: login name; empty = no SMTP AUTH.
        password: its password.
        sender: the ``From`` address (the provider's KIM address in production).
        timeout: seconds per SMTP conversation.
    """

    host: str = "127.0.0.1"
    port: int = Field(default=25, ge=1, le=65535)
    starttls: bool = False
    tls: bool = False
    ca_file: Path | None = None
    username: str = ""
    password: str = ""
    sender: str = "registrierung@tim.test"
    timeout: float = Field(default=10.0, gt=0)


class KimSettings(StrictModel):
    """AF_10103 Verfahren 2: a one-time link mailed to the organisation's KIM address.

    Attributes:
        directory: where the KIM address is looked up.
        smtp: how the mail is sent.
        link_lifetime: seconds a confirmation link is valid (default 24 h), single use.
        rate_limit: confirmation mails a client IP may request (``POST /kim/start`` and
            ``POST /api/v1/organisations/kim``): 5 at once, then 1 a minute.
    """

    directory: KimDirectory = KimDirectory()
    smtp: SmtpSettings = SmtpSettings()
    link_lifetime: int = Field(default=86400, ge=60)
    rate_limit: RateLimit = RateLimit(per_minute=1, burst=5)


class AccountSettings(StrictModel):
    """Org-Admin accounts (ML-129853): passwords, second factors, lockout, sessions.

    Attributes:
        max_failures: failed logins (or 2FA codes) in a row before the account locks.
        lockout_seconds: how long a locked account refuses every login.
        session_idle: seconds of inactivity after which a session ends.
        session_lifetime: absolute lifetime of a session in seconds.
        registration_lifetime: seconds a registration token (after verification or an
            invitation) may be used to create an account.
        password_min_length: minimum password length (policy in :mod:`.accounts.passwords`).
        totp_issuer: issuer shown in authenticator apps.
        webauthn_rp_id: WebAuthn relying-party id; empty = host of the public base URL.
        webauthn_rp_name: relying-party name shown by authenticators.
        login_rate_limit: login attempts a client IP may make, whatever the account
            (``POST /login``, ``POST /api/v1/login``, ``POST /api/v1/login/webauthn/begin``):
            20 at once, then 10 a minute.
    """

    max_failures: int = Field(default=5, ge=1, le=100)
    lockout_seconds: int = Field(default=900, ge=1)
    session_idle: int = Field(default=900, ge=30)
    session_lifetime: int = Field(default=28800, ge=60)
    registration_lifetime: int = Field(default=3600, ge=60)
    password_min_length: int = Field(default=12, ge=8, le=128)
    totp_issuer: str = "TI-Messenger Registrierungs-Dienst"
    webauthn_rp_id: str = ""
    webauthn_rp_name: str = "TI-Messenger Registrierungs-Dienst"
    login_rate_limit: RateLimit = RateLimit(per_minute=10, burst=20)


class DirectorySettings(StrictModel):
    """The RD's provider account at the VZD-FHIR-Directory's FHIR-Proxy (AF_10060, AF_10064).

    Attributes:
        base_url: the FHIR-Proxy's base URL; empty = no directory (provisioning waits).
        client_id: the provider's OAuth client id.
        client_secret: its secret; or
        client_secret_file: a file holding it (JSON with ``client_secret``, or the bare secret).
        ca_file: CA bundle for the FHIR-Proxy's TLS certificate; empty = system trust store.
        timeout: seconds per request.
        owner_authenticate_url: ``aud`` of RegService-OpenID-Tokens; empty =
            ``<base_url>/owner-authenticate``.
    """

    base_url: str = ""
    client_id: str = ""
    client_secret: str = ""
    client_secret_file: Path | None = None
    ca_file: Path | None = None
    timeout: float = Field(default=10.0, gt=0)
    owner_authenticate_url: str = ""

    def owner_authenticate(self) -> str:
        """The ``/owner-authenticate`` URL RegService-OpenID-Tokens are addressed to."""
        return self.owner_authenticate_url or f"{self.base_url.rstrip('/')}/owner-authenticate"


class FederationSettings(StrictModel):
    """Pulling the signed federation list and serving it to the proxies (ML-123672, -123891).

    Attributes:
        interval: seconds between pulls while the directory is healthy (1 h).
        retry_interval: seconds between retries after a failed pull (5 min).
        retries: retries before an alert is logged (the last good list is kept).
        ttl: seconds after the last valid refresh at which the list is outdated (72 h).
        sig_alg: signature algorithm requested (``BP256R1`` or ``ES256``).
        trust_anchors: PEM files of the CAs the list signer's x5c chain must lead to;
            empty = the local PKI's ``ca.crt``.
        signer_role: the role OID (Admission professionOID) the list signer's C.FD.SIG
            certificate must carry (ML-123677); default ``oid_vzd_ti``, the VZD's.
    """

    interval: float = Field(default=3600.0, gt=0)
    retry_interval: float = Field(default=300.0, gt=0)
    retries: int = Field(default=3, ge=0)
    ttl: float = Field(default=259200.0, gt=0)
    sig_alg: Literal["BP256R1", "ES256"] = "BP256R1"
    trust_anchors: tuple[Path, ...] = ()
    signer_role: str = Field(default=LIST_SIGNER_ROLE, pattern=ROLE_PATTERN)


class ProxiesSettings(StrictModel):
    """The RD's own Messenger-Proxies, callers of ``/federation`` and ``/vzd/invite``.

    Attributes:
        tokens: bearer tokens the proxies present (none = every proxy request refused).
        token_files: files holding one more token each.
    """

    tokens: tuple[str, ...] = ()
    token_files: tuple[Path, ...] = ()


class EmbeddedSettings(StrictModel):
    """The local runtime's control API (``timkit supervise``), the embedded backend.

    Attributes:
        url: its base URL; empty = no backend (provisioning waits in ``creating``).
        token_file: file holding its bearer token (``<data>/run/control-token``).
        ca_file: CA bundle when ``url`` is ``https``; empty = system trust store.
        timeout: seconds per request.
    """

    url: str = ""
    token_file: Path | None = None
    ca_file: Path | None = None
    timeout: float = Field(default=30.0, gt=0)


class ProvisioningSettings(StrictModel):
    """AF_10060: the provisioning state machine and its backend (ADR 0005).

    Attributes:
        backend: which backend creates services (``embedded`` = the local runtime).
        embedded: the embedded backend's control API.
        domain_suffix: required suffix of new domains (e.g. ``.tim.test``); empty = any.
        domain_pattern: regular expression new domains must match in full; empty = any.
        max_services: services one organisation may hold at a time.
        max_attempts: failed tries of one step (backend or directory unreachable) before the
            service fails and is rolled back.
        retry_interval: seconds between such tries.
        poll_interval: seconds between status polls while a service starts or stops.
        healthy_timeout: seconds a new service may take to become healthy.
    """

    backend: Literal["embedded"] = "embedded"
    embedded: EmbeddedSettings = EmbeddedSettings()
    domain_suffix: str = ""
    domain_pattern: str = ""
    max_services: int = Field(default=5, ge=1)
    max_attempts: int = Field(default=5, ge=1)
    retry_interval: float = Field(default=5.0, gt=0)
    poll_interval: float = Field(default=0.2, gt=0)
    healthy_timeout: float = Field(default=120.0, gt=0)


class RequestTokenSettings(StrictModel):
    """I_requestToken: RegService-OpenID-Tokens for ``/owner-authenticate``.

    Attributes:
        alg: signature algorithm (``BP256R1`` as gematik asks, or ``ES256``); it must fit the
            ``token_signer`` key's curve.
        lifetime: seconds a token is valid.
    """

    alg: Literal["BP256R1", "ES256"] = "BP256R1"
    lifetime: int = Field(default=300, ge=10, le=3600)


class RegistrationConfig(StrictModel):
    """The Registrierungs-Dienst's configuration.

    Attributes:
        bind: listen address.
        port: HTTPS port of the web frontend, the JSON API and the proxies' interface.
        tls_cert: server certificate (PEM); empty with ``tls_key`` = plain HTTP (tests only).
        tls_key: its private key.
        base_url: public base URL (links in mails, redirect URIs, ``iss`` of tokens); empty =
            derived from bind and port.
        database: ``sqlite:///path`` or a PostgreSQL DSN for the RD's own state.
        pki_dir: local PKI for certificates not configured explicitly.
        workers: threads for blocking database and crypto work.
        log_level: log level.
        idp: AF_10103 Verfahren 1 (OIDC at the IDP-Dienst).
        kim: AF_10103 Verfahren 2 (KIM confirmation link).
        accounts: Org-Admin accounts, second factors, sessions.
        rawdata: Rohdatenerfassung (ML-132446 …); the JSON-lines default is
            ``rawdata.jsonl`` beside a SQLite database, else in the working directory.
        directory: the VZD-FHIR-Directory as a provider (AF_10060, federation list).
        federation: the federation list for the proxies (AF_10064).
        proxies: how the RD's Messenger-Proxies authenticate.
        provisioning: AF_10060 state machine and backend.
        token_signer: signing certificate and key of RegService-OpenID-Tokens (issued by
            the local PKI when empty).
        request_token: I_requestToken settings.
    """

    bind: str = "127.0.0.1"
    port: int = Field(default=8460, ge=1, le=65535)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    base_url: str = ""
    database: str = "sqlite:///registration.db"
    pki_dir: Path = Path("pki")
    workers: int = Field(default=4, ge=1, le=64)
    log_level: str = "INFO"
    idp: IdpSettings = IdpSettings()
    kim: KimSettings = KimSettings()
    accounts: AccountSettings = AccountSettings()
    rawdata: RawDataConfig = RawDataConfig()
    directory: DirectorySettings = DirectorySettings()
    federation: FederationSettings = FederationSettings()
    proxies: ProxiesSettings = ProxiesSettings()
    provisioning: ProvisioningSettings = ProvisioningSettings()
    token_signer: SignerConfig = SignerConfig()
    request_token: RequestTokenSettings = RequestTokenSettings()

    def rawdata_path(self) -> Path:
        """Default JSON-lines file of the raw-data sink (see ``rawdata``)."""
        if self.database.startswith("sqlite:///"):
            return Path(self.database.removeprefix("sqlite:///")).parent / "rawdata.jsonl"
        return Path("rawdata.jsonl")

    def public_base(self) -> str:
        """The public base URL (``base_url`` or derived from bind, port and TLS)."""
        if self.base_url:
            return self.base_url.rstrip("/")
        scheme = "https" if self.tls_cert else "http"
        return f"{scheme}://{self.bind}:{self.port}"
