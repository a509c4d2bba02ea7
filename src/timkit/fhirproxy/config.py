"""Configuration of the FHIR-Proxy (``python -m timkit.fhirproxy``).

See ``config/fhir-proxy.sample.toml``. Every key has a default so a development run needs no
file: keys and certificates are then issued by a local PKI under ``pki_dir``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from timkit.core.config import StrictModel
from timkit.core.names import Routes
from timkit.core.ratelimit import RateLimit
from timkit.core.signers import SignerConfig


class TokenLifetimes(StrictModel):
    """Seconds each access token the FHIR-Proxy issues is valid (defaults per the seed).

    Attributes:
        search: search-accesstoken from ``/tim-authenticate`` (seed §5.2.1.2: 24 h).
        owner: owner-accesstoken from ``/owner-authenticate`` and the IDP sign-in.
        provider: provider-accesstoken for ``/tim-provider-services`` (seed §5.2.1.4: 30 min).
        ti_provider: ti-provider-accesstoken from the OAuth ``/token`` endpoint.
    """

    search: int = Field(default=86400, ge=60)
    owner: int = Field(default=86400, ge=60)
    provider: int = Field(default=1800, ge=60)
    ti_provider: int = Field(default=300, ge=60)


class MatrixConfig(StrictModel):
    """How ``/tim-authenticate`` reaches homeservers to check Matrix OpenID tokens.

    Attributes:
        routes: server name → ``host:port`` used instead of discovery (the local federation
            has no DNS); names without a route are discovered as Matrix federation does
            (``/.well-known/matrix/server``, then port 8448).
        routes_file: JSON route file (``{name: "host:port"}``, see :mod:`timkit.core.names`)
            re-read when it changes; its entries take precedence over ``routes``. Empty = none.
        ca_file: CA bundle for the homeservers' TLS certificates; empty = system trust store.
        timeout: seconds for discovery plus the userinfo call.
    """

    routes: Routes = Field(default_factory=dict)
    routes_file: Path | None = None
    ca_file: Path | None = None
    timeout: float = Field(default=10.0, gt=0)


class TrustedIdp(StrictModel):
    """An IDP of the TI federation whose users may sign in as owners.

    Attributes:
        issuer: the IDP's ``iss``.
        token_endpoint: where authorization codes are redeemed.
        jwks_uri: the IDP's signing keys (JWKS URL).
        client_id: this directory's client id at the IDP.
        client_secret: its secret, when the IDP wants one.
        redirect_uri: the ``/signin-gematik-idp-dienst`` URL registered at the IDP.
        ca_file: CA bundle for the IDP's TLS certificate; empty = system trust store.
    """

    issuer: str
    token_endpoint: str
    jwks_uri: str
    client_id: str
    client_secret: str = ""
    redirect_uri: str = ""
    ca_file: Path | None = None


class PassportConfig(StrictModel):
    """The seed's VZD 1.0.0 compatibility mode (``/tim-search`` with PASSporTs).

    Attributes:
        enabled: serve ``/tim-search``, ``/PASSporTCertificates`` and the hashed
            ``/tim-provider-services/FederationList``.
        signer: the PASSporT signing certificate (ES256); empty = local PKI.
        x5u: URL published in the PASSporT header; empty = this proxy's
            ``/PASSporTCertificates/passport.cer``.
    """

    enabled: bool = False
    signer: SignerConfig = Field(default_factory=SignerConfig)
    x5u: str = ""


class LdapConfig(StrictModel):
    """Synchronisation of base entries from the VZD-LDAP-Directory (AF_10047).

    Attributes:
        url: ``ldap://host:port`` or ``ldaps://…``; empty = no LDAP server.
        bind_dn: DN to bind as; empty = anonymous.
        password: its password.
        base_dn: subtree holding the entries.
        interval: seconds between synchronisations (seed §5.2.2: 2 h).
        seed_file: JSON file of LDAP entries (``samples/eGBR`` form) applied at start-up
            instead of, or in addition to, an LDAP server; used by the local run.
    """

    url: str = ""
    bind_dn: str = ""
    password: str = ""
    base_dn: str = "dc=data,dc=vzd"
    interval: float = Field(default=7200.0, gt=0)
    seed_file: Path | None = None


class FhirProxyConfig(StrictModel):
    """Top level of the FHIR-Proxy's TOML file.

    Attributes:
        bind: listen address.
        port: listen port (HTTPS when ``tls_cert`` is set).
        tls_cert: server certificate (PEM); empty = plain HTTP (only behind a TLS terminator).
        tls_key: its key.
        base_url: public base URL, e.g. ``https://fhir-directory.vzd.ti-dienste.de``; token
            ``iss``/``aud`` and every link derive from it. Empty = ``https://<bind>:<port>``.
        upstream: base URL of the FHIR-Directory (on loopback or an internal network).
        upstream_token_file: file (mode 0600) holding the FHIR-Directory's bearer token (its
            ``token_file``); sent on every call to the directory. The proxy does not start
            without it (at least 32 characters).
        database: the proxy's own state (providers, domains, federation lists, audit):
            ``sqlite:///<path>`` or a PostgreSQL URL; several instances may share one.
        pki_dir: local PKI issuing any signer left empty below (development and local run).
        token_signer: key signing the access tokens this proxy issues (ES256).
        federation_signer: federation list signer, BP256R1 (gematik's default).
        federation_signer_es256: federation list signer for ``sigAlg=ES256``.
        tokens: access token lifetimes.
        matrix: reaching homeservers for ``/tim-authenticate``.
        idps: IDPs trusted for the owner sign-in.
        rate_limit: limits on the authentication endpoints.
        passport: the seed's VZD 1.0.0 compatibility mode.
        ldap: synchronisation of base entries.
        owner_search_limit: maximum results of a search on ``/owner``.
        workers: threads for database work.
        log_level: Python log level.
    """

    bind: str = "127.0.0.1"
    port: int = Field(default=8493, ge=0, le=65535)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    base_url: str = ""
    upstream: str = "http://127.0.0.1:8490"
    upstream_token_file: Path = Path("var/fhir-directory/token")
    database: str = "sqlite:///var/fhir-proxy/fhir-proxy.db"
    pki_dir: Path = Path("var/fhir-proxy/pki")
    token_signer: SignerConfig = Field(default_factory=SignerConfig)
    federation_signer: SignerConfig = Field(default_factory=SignerConfig)
    federation_signer_es256: SignerConfig = Field(default_factory=SignerConfig)
    tokens: TokenLifetimes = Field(default_factory=TokenLifetimes)
    matrix: MatrixConfig = Field(default_factory=MatrixConfig)
    idps: tuple[TrustedIdp, ...] = ()
    rate_limit: RateLimit = RateLimit(per_minute=120, burst=30)
    passport: PassportConfig = Field(default_factory=PassportConfig)
    ldap: LdapConfig = Field(default_factory=LdapConfig)
    owner_search_limit: int = Field(default=100, ge=1)
    workers: int = Field(default=8, ge=1, le=64)
    log_level: str = "INFO"

    @field_validator("base_url", "upstream")
    @classmethod
    def _strip_slash(cls, url: str) -> str:
        return url.rstrip("/")

    def public_base(self) -> str:
        """The public base URL (``base_url`` or derived from bind and port)."""
        return self.base_url or f"https://{self.bind}:{self.port}"
