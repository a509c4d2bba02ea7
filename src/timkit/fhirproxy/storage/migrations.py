"""Numbered schema migrations of the FHIR-Proxy (component ``fhir-proxy``).

The proxy's tables live beside the FHIR-Directory's (same database or a separate one):

* ``providers``/``provider_certs``: registered TI-M providers (OAuth client credentials, the
  RegService signing certificates whose tokens ``/owner-authenticate`` accepts);
* ``domains``: the TI-M domains providers registered via ``/federation``;
* ``federation_lists``: every signed federation list, by strictly increasing ``version``
  (the payload bytes and both signatures as detached compact JWS, RFC 7515 Appendix F);
* ``domain_iks`` (3): each IK of an insurance domain once, so IKs are unique list-wide;
* ``audit``: one row per write (who, what, when, result);
* ``used_regservice_tokens`` (4): RegService-OpenID-Tokens already exchanged, until their
  expiry (single use at ``/owner-authenticate``).
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

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "providers, domains, federation lists, audit",
        {
            "sqlite": _SCHEMA.format(blob="BLOB", serial="INTEGER"),
            "postgresql": _SCHEMA.format(blob="BYTEA", serial="BIGSERIAL"),
        },
    ),
)

# Migration 2 (AF_10047): state of the LDAP synchronisation. ``ldap_sync`` has one row: the
# high-water mark (largest ``modifyTimestamp`` synchronised), the lease that lets one of several
# proxy instances sync at a time, and the last run's outcome. ``ldap_entries``: every entry the
# sync has written (source ``ldap`` or ``seed``), so entries gone from LDAP can be found.
_LDAP_SCHEMA = """
CREATE TABLE ldap_sync (
    id INTEGER PRIMARY KEY,
    high_water TEXT NOT NULL,
    lease_holder TEXT NOT NULL,
    lease_until DOUBLE PRECISION NOT NULL,
    runs BIGINT NOT NULL,
    last_run TEXT NOT NULL,
    last_result TEXT NOT NULL
);
INSERT INTO ldap_sync (id, high_water, lease_holder, lease_until, runs, last_run, last_result)
VALUES (1, '', '', 0, 0, '', '');
CREATE TABLE ldap_entries (
    telematik_id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    kind TEXT NOT NULL,
    present INTEGER NOT NULL,
    updated TEXT NOT NULL
);
CREATE INDEX ldap_entries_source ON ldap_entries (source, present);
"""

MIGRATIONS = (
    *MIGRATIONS,
    Migration(
        2,
        "LDAP synchronisation state",
        {"sqlite": _LDAP_SCHEMA, "postgresql": _LDAP_SCHEMA},
    ),
)

# Migration 3 (AF_10048): every IK of an insurance domain once, so an IK is unique list-wide
# even with several proxy instances writing.
_DOMAIN_IKS = """
CREATE TABLE domain_iks (
    ik TEXT PRIMARY KEY,
    domain TEXT NOT NULL REFERENCES domains (domain) ON DELETE CASCADE
);
CREATE INDEX domain_iks_domain ON domain_iks (domain);
"""

MIGRATIONS = (
    *MIGRATIONS,
    Migration(
        3,
        "IKs of insurance domains, unique list-wide",
        {"sqlite": _DOMAIN_IKS, "postgresql": _DOMAIN_IKS},
    ),
)

# Migration 4 (issue 14, ML-123873): a RegService-OpenID-Token is exchanged once. Its digest
# (SHA-256 of header.payload) is kept until its exp, shared by every proxy instance.
_USED_TOKENS = """
CREATE TABLE used_regservice_tokens (
    digest TEXT PRIMARY KEY,
    expires DOUBLE PRECISION NOT NULL
);
CREATE INDEX used_regservice_tokens_expires ON used_regservice_tokens (expires);
"""

MIGRATIONS = (
    *MIGRATIONS,
    Migration(
        4,
        "RegService-OpenID-Tokens already exchanged (single use)",
        {"sqlite": _USED_TOKENS, "postgresql": _USED_TOKENS},
    ),
)
