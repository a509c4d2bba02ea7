"""A Messenger-Service whose Synapse stores its data in PostgreSQL (set by a DSN)."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import psycopg2  # type: ignore[import-untyped]

from tests.support.federation import running, write_config
from tests.support.postgres import PostgresServer


def test_homeserver_runs_on_postgresql_when_given_a_dsn(
    tmp_path: Path, postgres: PostgresServer
) -> None:
    dsn = postgres.create_database("synapse_praxis")
    config = write_config(tmp_path, services=1, database=[dsn])
    with running(config) as federation:
        mxid = federation.add_user("praxis-sonnenschein.tim.test", "erika", "pw-erika")
        verify = ssl.create_default_context(cafile=federation.ca_cert)
        login = httpx.post(
            federation.client_url("praxis-sonnenschein.tim.test") + "/_matrix/client/v3/login",
            json={
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": "erika"},
                "password": "pw-erika",
            },
            verify=verify,
        )
        assert login.status_code == 200
        assert login.json()["user_id"] == mxid

    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT name FROM users")
            assert cur.fetchall() == [(mxid,)]
    finally:
        conn.close()
    assert not (
        tmp_path / "var/services/praxis-sonnenschein.tim.test/synapse/homeserver.db"
    ).exists()
