"""Configuration of the IDP stand-in (``python -m timkit.idp --config idp.toml``).

See ``config/idp.sample.toml``. Every key has a default, so a development run needs no file:
the TLS certificate and the signing key then come from a local PKI under ``pki_dir`` and the
identities are the built-in demo cards.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from timkit.core.config import StrictModel
from timkit.core.signers import SignerConfig as SignerConfig


class ClientConfig(StrictModel):
    """A relying party registered at the IDP.

    Attributes:
        client_id: the id the relying party sends as ``client_id``.
        redirect_uris: the exact redirect URIs it may use (compared as strings).
        client_secret: its secret for the token endpoint (Basic or form); empty = a public
            client, which authenticates by PKCE alone.
    """

    client_id: str = Field(min_length=1, max_length=255)
    redirect_uris: tuple[str, ...] = Field(min_length=1)
    client_secret: str = ""

    @field_validator("redirect_uris")
    @classmethod
    def _absolute(cls, uris: tuple[str, ...]) -> tuple[str, ...]:
        for uri in uris:
            parts = urlsplit(uri)
            if parts.scheme not in ("https", "http") or not parts.netloc or parts.fragment:
                raise ValueError(f"{uri!r} is not an absolute http(s) URL without a fragment")
        return uris


class IdpConfig(StrictModel):
    """Top level of the IDP stand-in's TOML file.

    Attributes:
        bind: listen address.
        port: listen port (always HTTPS).
        tls_cert: server certificate (PEM); empty = issued by the local PKI for the issuer's
            host name, ``127.0.0.1`` and ``localhost``.
        tls_key: its key.
        issuer: the ``iss`` of every token and the base of every endpoint; empty =
            ``https://127.0.0.1:<port>``.
        pki_dir: local PKI issuing the TLS certificate and the signer when left empty.
        signing: ID token algorithm, ``ES256`` (P-256) or gematik's ``BP256R1``.
        signer: the signing key and certificate (PEM; the certificate chain, leaf first, is
            published as ``x5c``); the key's curve must fit ``signing``; empty = issued by
            the local PKI.
        cards_file: YAML file of the virtual smartcards (SMC-B, HBA); empty = the built-in
            demo cards (those of ``config/idp-cards.sample.yaml``).
        clients: the registered relying parties.
        code_lifetime: seconds an authorization code may be redeemed.
        id_token_lifetime: seconds an ID token (and its access token) is valid; gematik's
            IDP-Dienst issues at most 24 h.
        login_lifetime: seconds the card-selection page stays valid.
        log_level: Python log level.
    """

    bind: str = "127.0.0.1"
    port: int = Field(default=8470, ge=0, le=65535)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    issuer: str = ""
    pki_dir: Path = Path("var/idp/pki")
    signing: Literal["ES256", "BP256R1"] = "ES256"
    signer: SignerConfig = Field(default_factory=SignerConfig)
    cards_file: Path | None = None
    clients: tuple[ClientConfig, ...] = ()
    code_lifetime: int = Field(default=60, ge=1, le=600)
    id_token_lifetime: int = Field(default=300, ge=1, le=86400)
    login_lifetime: int = Field(default=600, ge=10, le=3600)
    log_level: str = "INFO"

    @field_validator("issuer")
    @classmethod
    def _issuer_url(cls, issuer: str) -> str:
        issuer = issuer.rstrip("/")
        parts = urlsplit(issuer)
        if issuer and (parts.scheme != "https" or not parts.hostname or parts.query):
            raise ValueError("issuer must be an https URL without query")
        return issuer

    @field_validator("clients")
    @classmethod
    def _unique_clients(cls, clients: tuple[ClientConfig, ...]) -> tuple[ClientConfig, ...]:
        seen: set[str] = set()
        for client in clients:
            if client.client_id in seen:
                raise ValueError(f"client_id {client.client_id!r} is registered twice")
            seen.add(client.client_id)
        return clients

    def public_issuer(self) -> str:
        """The issuer URL (``issuer`` or derived from the port)."""
        return self.issuer or f"https://127.0.0.1:{self.port}"

    def client(self, client_id: str) -> ClientConfig | None:
        """The registered client ``client_id``, if any."""
        return next((c for c in self.clients if c.client_id == client_id), None)
