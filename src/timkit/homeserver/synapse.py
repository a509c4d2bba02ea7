"""Render Synapse's configuration from a :class:`HomeserverConfig` and prepare its files.

Files under ``data_dir``::

    homeserver.yaml     generated on every start (do not edit; change the TOML instead)
    log.yaml            logging to stderr, which the supervisor writes to the component log
    signing.key         the server's ed25519 signing key (created once)
    secrets/            registration shared secret, macaroon and form secrets (created once)
    media/              media store
    homeserver.db       SQLite database (when ``database = "sqlite"``)
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml
from signedjson.key import generate_signing_key, write_signing_keys

from timkit.homeserver.config import HomeserverConfig

SECRETS = ("registration_shared_secret", "macaroon_secret_key", "form_secret")

# Synapse's limits suit public servers; a local federation under test sends in bursts.
_RELAXED_LIMIT = {"per_second": 1000, "burst_count": 1000}
RELAXED_RATE_LIMITS: dict[str, Any] = {
    "rc_message": _RELAXED_LIMIT,
    "rc_registration": _RELAXED_LIMIT,
    "rc_login": {
        "address": _RELAXED_LIMIT,
        "account": _RELAXED_LIMIT,
        "failed_attempts": _RELAXED_LIMIT,
    },
    "rc_joins": {"local": _RELAXED_LIMIT, "remote": _RELAXED_LIMIT},
    "rc_joins_per_room": _RELAXED_LIMIT,
    "rc_invites": {
        "per_room": _RELAXED_LIMIT,
        "per_user": _RELAXED_LIMIT,
        "per_issuer": _RELAXED_LIMIT,
    },
    "rc_admin_redaction": _RELAXED_LIMIT,
    "rc_3pid_validation": _RELAXED_LIMIT,
    "rc_presence": {"per_user": _RELAXED_LIMIT},
    "rc_room_creation": _RELAXED_LIMIT,
    "rc_federation": {
        "window_size": 1000,
        "sleep_limit": 1000,
        "sleep_delay": 1,
        "reject_limit": 1000,
        "concurrent": 100,
    },
}


def secret_path(data_dir: Path, name: str) -> Path:
    """Where the secret ``name`` (one of :data:`SECRETS`) is stored."""
    return data_dir / "secrets" / name


def database_section(database: str, data_dir: Path) -> dict[str, Any]:
    """Synapse's ``database`` section for ``sqlite`` or a PostgreSQL DSN."""
    if database == "sqlite":
        return {"name": "sqlite3", "args": {"database": str(data_dir / "homeserver.db")}}
    dsn = urlsplit(database)
    args: dict[str, Any] = {"database": dsn.path.strip("/"), "cp_min": 1, "cp_max": 10}
    if dsn.hostname:
        args["host"] = dsn.hostname
    if dsn.port:
        args["port"] = dsn.port
    if dsn.username:
        args["user"] = unquote(dsn.username)
    if dsn.password:
        args["password"] = unquote(dsn.password)
    return {"name": "psycopg2", "args": args}


def render(config: HomeserverConfig) -> dict[str, Any]:
    """Synapse's ``homeserver.yaml`` content for ``config``."""
    data = config.data_dir
    tls = config.tls_cert is not None
    rendered: dict[str, Any] = {
        "server_name": config.server_name,
        "public_baseurl": config.public_baseurl,
        "pid_file": str(data / "homeserver.pid"),
        "report_stats": False,
        "listeners": [
            {
                "port": config.port,
                "bind_addresses": [config.bind],
                "type": "http",
                "tls": tls,
                "x_forwarded": not tls,
                "resources": [{"names": ["client", "federation"], "compress": False}],
            }
        ],
        # Other servers find us via https://<server_name>/.well-known/matrix/server, which
        # names port 443 explicitly, so they never fall back to SRV lookups in DNS.
        "serve_server_wellknown": True,
        # TI-M clients find the homeserver from the Matrix domain the actor types (AF_10057)
        # via https://<server_name>/.well-known/matrix/client: {"m.homeserver": {"base_url":
        # public_baseurl}}, the Messenger-Proxy's client URL, which relays exactly this path.
        "serve_client_wellknown": True,
        "federation_verify_certificates": True,
        "federation_client_minimum_tls_version": "1.2",
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        "database": database_section(config.database, data),
        "log_config": str(data / "log.yaml"),
        "media_store_path": str(data / "media"),
        "signing_key_path": str(data / "signing.key"),
        "enable_registration": False,
        "registration_shared_secret_path": str(secret_path(data, "registration_shared_secret")),
        "macaroon_secret_key_path": str(secret_path(data, "macaroon_secret_key")),
        "form_secret_path": str(secret_path(data, "form_secret")),
        "no_proxy_hosts": list(config.no_proxy_hosts),
        "default_room_version": config.default_room_version,
        "user_directory": {
            "search_all_users": config.search_all_users,
            "exclude_remote_users": True,
        },
        "enable_authenticated_media": config.authenticated_media,
    }
    if tls:
        rendered["tls_certificate_path"] = str(config.tls_cert)
        rendered["tls_private_key_path"] = str(config.tls_key)
    if config.federation_ca is not None:
        rendered["federation_custom_ca_list"] = [str(config.federation_ca)]
    if config.https_proxy is not None:
        rendered["https_proxy"] = config.https_proxy
    if config.ip_range_whitelist:
        rendered["ip_range_whitelist"] = list(config.ip_range_whitelist)
    if config.relaxed_rate_limits:
        rendered.update(RELAXED_RATE_LIMITS)
    return rendered


def log_config(level: str) -> dict[str, Any]:
    """A Synapse log config that writes everything to stderr."""
    return {
        "version": 1,
        "formatters": {
            "precise": {"format": "%(asctime)s %(levelname)s %(name)s [%(request)s]: %(message)s"}
        },
        "filters": {
            "context": {"()": "synapse.logging.context.LoggingContextFilter", "request": ""}
        },
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "precise",
                "filters": ["context"],
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {"synapse.storage.SQL": {"level": "WARNING"}},
        "root": {"level": level.upper(), "handlers": ["console"]},
        "disable_existing_loggers": False,
    }


def _ensure_secret(path: Path) -> None:
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_urlsafe(32))


def prepare(config: HomeserverConfig) -> Path:
    """Write Synapse's config and create its keys and secrets when missing.

    Returns:
        Path of the generated ``homeserver.yaml``.
    """
    data = config.data_dir
    (data / "media").mkdir(parents=True, exist_ok=True)
    for name in SECRETS:
        _ensure_secret(secret_path(data, name))
    key_path = data / "signing.key"
    if not key_path.exists():
        with open(key_path, "w", encoding="ascii") as fh:
            write_signing_keys(fh, [generate_signing_key("a_" + secrets.token_hex(2))])
    (data / "log.yaml").write_text(yaml.safe_dump(log_config(config.log_level)), "utf-8")
    homeserver_yaml = data / "homeserver.yaml"
    homeserver_yaml.write_text(yaml.safe_dump(render(config), sort_keys=False), "utf-8")
    return homeserver_yaml
