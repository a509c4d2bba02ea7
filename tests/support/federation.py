"""Boot a local federation with the real ``timkit`` CLI, on free ports in a temporary directory."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from timkit.core.process import free_port

DOMAINS = ("praxis-sonnenschein.tim.test", "klinikum-nord.tim.test", "apotheke-am-markt.tim.test")


def write_config(directory: Path, services: int, *, database: list[str] | None = None) -> Path:
    """Write a ``timkit.toml`` for ``services`` Messenger-Services on free ports."""
    entries = []
    for i in range(services):
        entry: dict[str, Any] = {
            "domain": DOMAINS[i],
            "organisation": f"Test organisation {i}",
            "port": free_port(),
            "forward_proxy_port": free_port(),
        }
        if database and database[i] != "sqlite":
            entry["database"] = database[i]
        entries.append(entry)
    config = {
        "data_dir": "var",
        "runtime": {"startup_timeout": 120.0, "log_level": "INFO", "control_port": free_port()},
        "directory": {"port": free_port(), "proxy_port": free_port()},
        "idp": {"port": free_port()},
        "mailbox": {"smtp_port": free_port(), "http_port": free_port()},
        "registration": {"port": free_port()},
        "push": {
            "port": free_port(),
            "receiver_port": free_port(),
            "apns_port": free_port(),
        },
        "messenger_services": entries,
    }
    path = directory / "timkit.toml"
    path.write_text(tomli_w.dumps(config), "utf-8")
    return path


def timkit(config: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``timkit --config <config> <args>`` as a real process."""
    return subprocess.run(
        [sys.executable, "-m", "timkit", "--config", str(config), *args],
        capture_output=True,
        text=True,
        check=check,
        timeout=180,
    )


@dataclass
class Federation:
    """A running local federation started by ``timkit up``."""

    config: Path

    def status(self) -> dict[str, Any]:
        """``timkit status --json``."""
        return dict(json.loads(timkit(self.config, "status", "--json").stdout))

    @property
    def data_dir(self) -> Path:
        return Path(self.status()["data_dir"])

    @property
    def portal_url(self) -> str:
        """The Registrierungs-Dienst's base URL."""
        return str(self.status()["portal_url"])

    def component(self, kind: str) -> dict[str, Any]:
        """The one supervised component of ``kind`` (e.g. ``registration``, ``idp``)."""
        (found,) = [c for c in self.status()["components"] if c["kind"] == kind]
        return dict(found)

    @property
    def ca_cert(self) -> str:
        return str(self.status()["ca_cert"])

    def client_url(self, domain: str) -> str:
        """The client URL of the service ``domain``."""
        for service in self.status()["services"]:
            if service["domain"] == domain:
                return str(service["client_url"])
        raise KeyError(domain)

    def add_user(self, domain: str, localpart: str, password: str) -> str:
        """Create a user via ``timkit user add``; returns the MXID."""
        out = timkit(self.config, "user", "add", domain, localpart, "--password", password)
        return str(json.loads(out.stdout)["mxid"])

    def pids(self) -> list[int]:
        """Pids of the supervisor and every component."""
        status = self.status()
        pids = [c["pid"] for c in status["components"] if c["pid"]]
        return [status["supervisor_pid"], *pids] if status["supervisor_pid"] else pids
