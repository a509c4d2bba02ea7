"""Numbered schema migrations of the FHIR-Proxy (component ``fhir-proxy``).

The proxy's tables live beside the FHIR-Directory's (same database or a separate one):

* ``providers``/``provider_certs``: registered TI-M providers (OAuth client credentials, the
  RegService signing certificates whose tokens ``/owner-authenticate`` accepts);
* ``domains``: the TI-M domains providers registered via ``/federation``;
* ``federation_lists``: every signed federation list, by strictly increasing ``version``;
* ``audit``: one row per write (who, what, when, result).
"""

from __future__ import annotations

from timkit.core.db import Migration

_SCHEMA = """
CREATE TABLE providers (
    client_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    created TEXT NOT NULL
);
CREATE TABLE provider_certs (
    client_id TEXT NOT NULL REFERENCES providers (client_id) ON DELETE CASCADE,
    fingerprint TEXT NOT NULL,
    pem TEXT NOT NULL,
    PRIMARY KEY (client_id, fingerprint)
);
CREATE INDEX provider_certs_fingerprint ON provider_certs (fingerprint);
CREATE TABLE domains (
    domain TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    telematik_id TEXT NOT NULL,
    is_insurance INTEGER NOT NULL,
    ik TEXT NOT NULL,
    redirect_domains TEXT NOT NULL,
    created TEXT NOT NULL,
    updated TEXT NOT NULL
);
CREATE INDEX domains_client ON domains (client_id);
CREATE INDEX domains_telematik_id ON domains (telematik_id);
CREATE TABLE federation_lists (
    version BIGINT PRIMARY KEY,
    payload {blob} NOT NULL,
    jws_bp256r1 TEXT NOT NULL,
    jws_es256 TEXT NOT NULL,
    created TEXT NOT NULL
);
CREATE TABLE audit (
    id {serial} PRIMARY KEY,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    status INTEGER NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX audit_at ON audit (at);
CREATE INDEX audit_actor ON audit (actor, at);
"""

MIGRATIONS = (
    Migration(
        1,
        "providers, domains, federation lists, audit",
        {
            "sqlite": _SCHEMA.format(blob="BLOB", serial="INTEGER"),
            "postgresql": _SCHEMA.format(blob="BYTEA", serial="BIGSERIAL"),
        },
    ),
)
