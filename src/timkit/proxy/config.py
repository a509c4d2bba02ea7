"""Configuration of the Messenger-Proxy (``timkit-proxy``); see ``config/proxy.sample.toml``.

One proxy serves one Messenger-Service (seed 002 §4.3.3.1.3): its inbound listener is the
service's public client and federation URL, its forward proxy is its Synapse's
``https_proxy``, and Synapse itself listens on loopback only (:class:`UpstreamConfig`).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from timkit.core.config import StrictModel
from timkit.core.federation_list import LIST_SIGNER_ROLE, ROLE_PATTERN
from timkit.core.names import Routes
from timkit.core.rawdata import RawDataConfig
from timkit.proxy.inbound.versions import parse_version


class Unrouted(StrEnum):
    """What the forward proxy does with a CONNECT target that has no route."""

    REJECT = "reject"
    """Answer 403: the local federation has no DNS, so an unknown name is a mistake."""
    DIRECT = "direct"
    """Connect to the requested host and port via the system resolver (production)."""


class SupportedClient(StrictModel):
    """A TI-M client the provider supports (AF_10057).

    Attributes:
        client_id: what the client sends in ``X-TIM-Client-ID`` (visible ASCII).
        secret_sha256: SHA-256 of its ``client_secret`` (``X-TIM-Client-Secret``), lowercase
            hex; the secret itself is never stored.
    """

    client_id: str = Field(pattern=r"^[\x21-\x7e]{1,128}$")
    secret_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class InboundConfig(StrictModel):
    """The public listener: client-server and server-server traffic, and the Freigabeliste API.

    Attributes:
        bind: address to listen on.
        port: the service's public HTTPS port (its ``client_url`` and ``federation_url``).
        tls_cert: PEM certificate covering the server name; None serves plain HTTP (only
            behind a TLS-terminating load balancer).
        tls_key: PEM private key of ``tls_cert``.
        max_body: largest request body in bytes (larger gets 413 ``M_TOO_LARGE``).
        checked_body: largest body of a request the proxy must read to check (invites,
            ``createRoom``); larger gets 413.
        push_gateways: the provider's Push-Gateway notify URLs
            (``…/_matrix/push/v1/notify``): the only ``data.url`` an HTTP pusher may name
            (``POST …/pushers/set``); empty refuses every HTTP pusher (fail closed).
        head_timeout: seconds a client may take to send a request head; then the
            connection is closed (slowloris; see ``timkit.core.web.ReadTimeouts``).
        body_stall_timeout: seconds a request body may deliver nothing before it is
            answered 408.
        body_timeout: seconds a request body may take in all before it is answered 408
            (15 minutes, so a large media upload on a slow mobile line still fits; a body
            that delivers nothing is ended sooner by ``body_stall_timeout``).
        keepalive_timeout: seconds an idle keep-alive connection stays open.
        supported_clients: the TI-M clients allowed to log in or register (AF_10057,
            ``timkit.proxy.inbound.client_check``); empty (the default): every client.
        max_matrix_version: the highest Matrix version ``GET /_matrix/client/versions``
            advertises (TI-M 1.1.x: ``v1.3``, gematik's approval suite 00.05); a later TI-M
            version raises it.
    """

    bind: str = "127.0.0.1"
    port: int = Field(default=8443, ge=0, le=65535)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    max_body: int = Field(default=100 * 1024 * 1024, gt=0)
    checked_body: int = Field(default=1024 * 1024, gt=0)
    push_gateways: tuple[str, ...] = ()
    head_timeout: float = Field(default=10.0, gt=0)
    body_stall_timeout: float = Field(default=10.0, gt=0)
    body_timeout: float = Field(default=900.0, gt=0)
    keepalive_timeout: float = Field(default=75.0, gt=0)
    max_matrix_version: str = "v1.3"
    supported_clients: tuple[SupportedClient, ...] = ()

    @field_validator("supported_clients")
    @classmethod
    def _unique_clients(cls, clients: tuple[SupportedClient, ...]) -> tuple[SupportedClient, ...]:
        ids = [c.client_id for c in clients]
        if len(set(ids)) != len(ids):
            raise ValueError("a client_id is registered twice")
        return clients

    @field_validator("max_matrix_version")
    @classmethod
    def _matrix_version(cls, value: str) -> str:
        if parse_version(value) is None:
            raise ValueError(f"{value!r} is not a Matrix version like 'v1.3'")
        return value

    @field_validator("push_gateways")
    @classmethod
    def _plain_urls(cls, urls: tuple[str, ...]) -> tuple[str, ...]:
        for url in urls:
            try:
                parts = urlsplit(url)
                parts.port  # noqa: B018 - raises ValueError for a bad port
            except ValueError:
                raise ValueError(f"{url!r} is not a URL") from None
            if parts.scheme not in ("http", "https") or not parts.hostname or parts.fragment:
                raise ValueError(f"{url!r} is not an http(s) URL of a Push-Gateway")
        return urls


class UpstreamConfig(StrictModel):
    """The Synapse behind the proxy (plain HTTP on loopback).

    Attributes:
        url: Synapse's listener, e.g. ``http://127.0.0.1:8008``.
        connect_timeout: seconds to wait for a connection to Synapse.
        timeout: seconds a request to Synapse may take in total (``/sync`` long-polls up to
            the client's ``timeout``, so keep this above the largest one clients use).
        pool_size: most connections kept open to Synapse.
    """

    url: str = "http://127.0.0.1:8008"
    connect_timeout: float = Field(default=5.0, gt=0)
    timeout: float = Field(default=300.0, gt=0)
    pool_size: int = Field(default=100, ge=1)


class ForwardProxyConfig(StrictModel):
    """The outbound forward proxy Synapse uses as ``https_proxy`` (TLS-intercepting).

    Attributes:
        bind: address to listen on; keep it on loopback next to Synapse.
        port: port to listen on.
        interception_ca_cert: PEM CA certificate the proxy mints the certificates it shows
            its Synapse with; only this Synapse trusts it (``federation_custom_ca_list``).
        interception_ca_key: PEM private key of ``interception_ca_cert``.
        ca_file: CA bundle the onward TLS connections to other services are verified
            against; None uses the system trust store.
        routes: server name → ``host:port`` that requests for that name (any port) go to.
        routes_file: JSON route file (``{name: "host:port"}``, see :mod:`timkit.core.names`)
            re-read when it changes; its entries take precedence over ``routes``. Empty = none.
        unrouted: what to do with names that have no route.
        connect_timeout: seconds to wait for the onward connection.
        timeout: seconds an outbound federation request may take in total.
        pool_size: most onward connections kept open (per destination at most a quarter).
    """

    bind: str = "127.0.0.1"
    port: int = Field(default=8491, ge=0, le=65535)
    interception_ca_cert: Path | None = None
    interception_ca_key: Path | None = None
    ca_file: Path | None = None
    routes: Routes = Field(default_factory=dict)
    routes_file: Path | None = None
    unrouted: Unrouted = Unrouted.REJECT
    connect_timeout: float = Field(default=5.0, gt=0)
    timeout: float = Field(default=120.0, gt=0)
    pool_size: int = Field(default=100, ge=1)


class FederationListConfig(StrictModel):
    """Where the proxy gets the federation list (AF_10064, annex 8.2) and how it trusts it.

    Attributes:
        url: the Registrierungs-Dienst's ``/federation`` endpoint.
        token_file: file holding the bearer token the RD expects from its proxies.
        ca_file: CA bundle for the TLS connection to the RD; None = system trust store.
        trust_anchors: PEM files whose certificates the list signer's ``x5c`` chain must
            lead to (test or production anchors of the VZD-FHIR-Directory).
        sig_alg: JWS algorithm of the list (``BP256R1``, gematik's default, or ``ES256``).
        signer_role: the role OID (Admission professionOID) the list signer's C.FD.SIG
            certificate must carry (ML-123677); default ``oid_vzd_ti``, the VZD's.
        interval: seconds between pulls (ML-137902: once per hour).
        retry_interval: seconds between pulls while none succeeds.
        ttl: seconds without a valid list after which all federation traffic is blocked.
        miss_refresh_interval: least seconds between extra pulls caused by a domain that is
            not in the held list (a newly admitted service is accepted without waiting an hour).
        state_file: where the last good list and the highest version ever accepted (the
            floor below which no list is used again, ML-123891) are kept across restarts.
    """

    url: str = "https://127.0.0.1:8460/federation"
    token_file: Path | None = None
    ca_file: Path | None = None
    trust_anchors: tuple[Path, ...] = ()
    sig_alg: Literal["BP256R1", "ES256"] = "BP256R1"
    signer_role: str = Field(default=LIST_SIGNER_ROLE, pattern=ROLE_PATTERN)
    interval: float = Field(default=3600.0, gt=0)
    retry_interval: float = Field(default=300.0, gt=0)
    ttl: float = Field(default=72 * 3600.0, gt=0)
    miss_refresh_interval: float = Field(default=60.0, ge=0)
    state_file: Path = Path("var/proxy/federation-list.json")


class InviteCheckConfig(StrictModel):
    """Stage 3 of the permission check: the RD's ``POST /vzd/invite``.

    Attributes:
        url: the RD's ``/vzd/invite`` endpoint.
        token_file: file holding the proxies' bearer token at the RD.
        ca_file: CA bundle for the TLS connection to the RD; None = system trust store.
        timeout: seconds to wait for the RD's answer (on time-out the invite is refused).
    """

    url: str = "https://127.0.0.1:8460/vzd/invite"
    token_file: Path | None = None
    ca_file: Path | None = None
    timeout: float = Field(default=10.0, gt=0)


class ContactsConfig(StrictModel):
    """The Freigabeliste (I_TiMessengerContactManagement 1.0.2) and the proxy's own state.

    Attributes:
        database: ``sqlite:///path`` or a PostgreSQL DSN for contacts and 1:1-room records.
        token_cache_seconds: how long a Matrix OpenID token validated at the homeserver's
            userinfo endpoint is trusted without asking again.
        max_contacts: most contact settings one user may hold.
    """

    database: str = "sqlite:///var/proxy/proxy.db"
    token_cache_seconds: float = Field(default=60.0, ge=0)
    max_contacts: int = Field(default=10_000, ge=1)


class ProxyConfig(StrictModel):
    """Top level of the proxy's TOML file.

    Attributes:
        server_name: the Matrix server name of the service (its users' domain).
        inbound: the public listener.
        upstream: the Synapse behind it.
        forward: the outbound forward proxy.
        federation_list: the federation list source and its trust.
        invite_check: stage 3 at the RD.
        contacts: the Freigabeliste storage.
        rawdata: the Rohdatenerfassung sink (default: ``rawdata.jsonl`` beside the list's
            ``state_file``).
        log_level: root log level.
    """

    server_name: str = "localhost"
    inbound: InboundConfig = Field(default_factory=InboundConfig)
    upstream: UpstreamConfig = Field(default_factory=UpstreamConfig)
    forward: ForwardProxyConfig = Field(default_factory=ForwardProxyConfig)
    federation_list: FederationListConfig = Field(default_factory=FederationListConfig)
    invite_check: InviteCheckConfig = Field(default_factory=InviteCheckConfig)
    contacts: ContactsConfig = Field(default_factory=ContactsConfig)
    rawdata: RawDataConfig = Field(default_factory=RawDataConfig)
    log_level: str = "INFO"
