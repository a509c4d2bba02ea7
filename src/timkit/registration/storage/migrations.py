"""Numbered schema migrations of the Registrierungs-Dienst (component ``registration``).

1. organisations, Org-Admin accounts, second factors, sessions, KIM confirmations, audit;
2. Messenger-Services and their provisioning state machine, the federation list cache.

Times the code compares (expiry, lockout, idle) are integer Unix seconds (``BIGINT``); times
only shown to people (``created``, audit ``at``) are ISO 8601 text in UTC. Secrets (session
tokens, registration tokens, KIM links, OIDC ``state``) are stored as SHA-256 hex digests only.
"""

from __future__ import annotations

from timkit.core.db import Migration

# Migration 1 (AF_10103, Org-Admin accounts):
# * ``organisations``: verified organisations (TelematikID, professionOID, name, how verified);
# * ``registrations``: single-use registration tokens a verification (or an invitation by an
#   existing admin, ML-128757) hands out to create one Org-Admin account;
# * ``oidc_flows``: started Verfahren-1 flows (``state`` → PKCE verifier, nonce), single use;
# * ``kim_links``: Verfahren-2 confirmation links sent by KIM, single use;
# * ``accounts``: Org-Admins (argon2 password hash, TOTP secret, lockout counters);
# * ``webauthn_credentials`` / ``webauthn_challenges``: FIDO2 authenticators and ceremonies;
# * ``sessions``: logged-in Org-Admins (idle and absolute expiry);
# * ``audit``: one row per admin action (who, action, target, result; no secrets).
_SCHEMA = """
CREATE TABLE organisations (
    telematik_id TEXT PRIMARY KEY,
    profession_oid TEXT NOT NULL,
    name TEXT NOT NULL,
    verified_by TEXT NOT NULL,
    verified_at TEXT NOT NULL
);
CREATE TABLE registrations (
    token_hash TEXT PRIMARY KEY,
    telematik_id TEXT NOT NULL REFERENCES organisations (telematik_id) ON DELETE CASCADE,
    source TEXT NOT NULL,
    created_by TEXT NOT NULL,
    expires BIGINT NOT NULL,
    used BIGINT NOT NULL
);
CREATE INDEX registrations_org ON registrations (telematik_id);
CREATE TABLE oidc_flows (
    state_hash TEXT PRIMARY KEY,
    verifier TEXT NOT NULL,
    nonce TEXT NOT NULL,
    mode TEXT NOT NULL,
    lang TEXT NOT NULL,
    expires BIGINT NOT NULL
);
CREATE INDEX oidc_flows_expires ON oidc_flows (expires);
CREATE TABLE kim_links (
    token_hash TEXT PRIMARY KEY,
    telematik_id TEXT NOT NULL,
    profession_oid TEXT NOT NULL,
    name TEXT NOT NULL,
    mail TEXT NOT NULL,
    created TEXT NOT NULL,
    expires BIGINT NOT NULL,
    used BIGINT NOT NULL
);
CREATE INDEX kim_links_org ON kim_links (telematik_id);
CREATE TABLE accounts (
    id {serial} PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    telematik_id TEXT NOT NULL REFERENCES organisations (telematik_id),
    password_hash TEXT NOT NULL,
    totp_secret TEXT NOT NULL,
    totp_confirmed INTEGER NOT NULL,
    totp_last_step BIGINT NOT NULL,
    enrolment_hash TEXT NOT NULL,
    active INTEGER NOT NULL,
    failures INTEGER NOT NULL,
    locked_until BIGINT NOT NULL,
    created TEXT NOT NULL
);
CREATE INDEX accounts_org ON accounts (telematik_id);
CREATE TABLE webauthn_credentials (
    credential_id TEXT PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    public_key {blob} NOT NULL,
    sign_count BIGINT NOT NULL,
    name TEXT NOT NULL,
    created TEXT NOT NULL
);
CREATE INDEX webauthn_credentials_account ON webauthn_credentials (account_id);
CREATE TABLE webauthn_challenges (
    id TEXT PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    challenge {blob} NOT NULL,
    expires BIGINT NOT NULL
);
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    created BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    expires BIGINT NOT NULL
);
CREATE INDEX sessions_account ON sessions (account_id);
CREATE TABLE audit (
    id {serial} PRIMARY KEY,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    telematik_id TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    result TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX audit_at ON audit (at);
CREATE INDEX audit_org ON audit (telematik_id, at)
"""

# Migration 2 (AF_10060, AF_10064):
# * ``services``: one row per Messenger-Service and its provisioning state machine
#   (:mod:`timkit.registration.storage.services`); ``revision`` guards every transition
#   (compare-and-set), times the worker compares are Unix milliseconds;
# * ``federation_list``: the last verified federation list, byte-for-byte, one row.
_SCHEMA_2 = """
CREATE TABLE services (
    domain TEXT PRIMARY KEY,
    telematik_id TEXT NOT NULL,
    organisation TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    state TEXT NOT NULL,
    step TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    error TEXT NOT NULL,
    client_url TEXT NOT NULL,
    federation_url TEXT NOT NULL,
    registered INTEGER NOT NULL,
    revision BIGINT NOT NULL,
    run_started_ms BIGINT NOT NULL,
    step_started_ms BIGINT NOT NULL,
    next_attempt_ms BIGINT NOT NULL,
    created TEXT NOT NULL,
    updated TEXT NOT NULL
);
CREATE INDEX services_org ON services (telematik_id);
CREATE INDEX services_state ON services (state, next_attempt_ms);
CREATE TABLE federation_list (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL,
    jws {blob} NOT NULL,
    refreshed_ms BIGINT NOT NULL,
    received TEXT NOT NULL
)
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "organisations, Org-Admin accounts, second factors, sessions, KIM links, audit",
        {
            "sqlite": _SCHEMA.format(serial="INTEGER", blob="BLOB"),
            "postgresql": _SCHEMA.format(serial="BIGSERIAL", blob="BYTEA"),
        },
    ),
    Migration(
        2,
        "Messenger-Services (provisioning state machine), federation list cache",
        {
            "sqlite": _SCHEMA_2.format(blob="BLOB"),
            "postgresql": _SCHEMA_2.format(blob="BYTEA"),
        },
    ),
)
