"""Numbered schema migrations of the FHIR-Directory (see :meth:`Database.migrate`).

Layout (ADR 0003): ``resources`` holds the current-version pointer of every (type, id) with a
small integer ``rid``; ``versions`` stores every version whole (JSON) including delete
tombstones; the ``idx_*`` tables hold the search index rows of the current version only, keyed
by the parameter's stable key (:func:`timkit.directory.searchparams.param_key`), clustered by
``rid`` (SQLite ``WITHOUT ROWID``) so per-resource probes are covering seeks, with a value
index for lookups; ``idx_ref.trid`` is the target's ``rid`` once the target exists (chains
join on it); ``fts`` is the full-text index (SQLite FTS5 / PostgreSQL ``tsvector``).
"""

from __future__ import annotations

from timkit.core.db import Migration

_COMMON = """
CREATE TABLE resources (
    rid {serial} PRIMARY KEY,
    type TEXT NOT NULL,
    id TEXT NOT NULL,
    version INTEGER NOT NULL,
    last_updated TEXT NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    UNIQUE (type, id)
);
CREATE INDEX resources_updated ON resources (type, last_updated);
CREATE INDEX resources_type ON resources (type, deleted, rid);
CREATE TABLE versions (
    rid BIGINT NOT NULL,
    version INTEGER NOT NULL,
    last_updated TEXT NOT NULL,
    deleted INTEGER NOT NULL,
    method TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (rid, version)
);
CREATE TABLE idx_token (
    rid BIGINT NOT NULL,
    key INTEGER NOT NULL,
    code TEXT {collate} NOT NULL,
    system TEXT {collate} NOT NULL,
    text TEXT {collate} NOT NULL,
    PRIMARY KEY (rid, key, code, system, text)
){without_rowid};
CREATE INDEX idx_token_value ON idx_token (key, code, system, rid);
CREATE TABLE idx_string (
    rid BIGINT NOT NULL,
    key INTEGER NOT NULL,
    norm TEXT {collate} NOT NULL,
    exact TEXT {collate} NOT NULL,
    PRIMARY KEY (rid, key, norm, exact)
){without_rowid};
CREATE INDEX idx_string_value ON idx_string (key, norm, rid);
CREATE TABLE idx_ref (
    rid BIGINT NOT NULL,
    key INTEGER NOT NULL,
    ttype TEXT {collate} NOT NULL,
    tid TEXT {collate} NOT NULL,
    trid BIGINT,
    PRIMARY KEY (rid, key, ttype, tid)
){without_rowid};
CREATE INDEX idx_ref_target ON idx_ref (ttype, tid, key, rid);
CREATE INDEX idx_ref_trid ON idx_ref (key, trid, rid);
CREATE TABLE idx_date (
    rid BIGINT NOT NULL,
    key INTEGER NOT NULL,
    low TEXT NOT NULL,
    high TEXT NOT NULL,
    PRIMARY KEY (rid, key, low, high)
){without_rowid};
CREATE INDEX idx_date_value ON idx_date (key, low, high, rid);
CREATE TABLE idx_geo (
    rid BIGINT PRIMARY KEY,
    lat DOUBLE PRECISION NOT NULL,
    lon DOUBLE PRECISION NOT NULL
);
CREATE INDEX idx_geo_position ON idx_geo (lat, lon);
"""

_SQLITE = (
    _COMMON.format(serial="INTEGER", collate="", without_rowid=" WITHOUT ROWID")
    + """
CREATE VIRTUAL TABLE fts USING fts5(doc, tokenize = 'unicode61 remove_diacritics 2');
"""
)

_POSTGRESQL = (
    _COMMON.format(serial="BIGSERIAL", collate='COLLATE "C"', without_rowid="")
    + """
CREATE TABLE fts (
    rid BIGINT PRIMARY KEY,
    doc TSVECTOR NOT NULL
);
CREATE INDEX fts_doc ON fts USING GIN (doc);
CREATE FUNCTION tk_distance(lat1 DOUBLE PRECISION, lon1 DOUBLE PRECISION,
    lat2 DOUBLE PRECISION, lon2 DOUBLE PRECISION) RETURNS DOUBLE PRECISION
    LANGUAGE sql IMMUTABLE AS $$ SELECT 12742.0 * asin(sqrt(
        power(sin(radians(lat2 - lat1) / 2), 2)
        + cos(radians(lat1)) * cos(radians(lat2)) * power(sin(radians(lon2 - lon1) / 2), 2))) $$;
"""
)

MIGRATIONS = (
    Migration(
        1, "resources, versions, search index", {"sqlite": _SQLITE, "postgresql": _POSTGRESQL}
    ),
)
