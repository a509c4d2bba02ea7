"""``timkit client`` as a newcomer uses it (README "Using the local federation"): a complete
cross-organisation chat — login, the practitioner's MXID published with the HBA, found in the
VZD by an actor of another organisation, the Freigabeliste filled by QR code, a 1:1 chat
invite, encrypted messages both ways — every step a real ``timkit`` process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.support.federation import Federation
from tests.support.users import PASSWORD, A, B
from tests.support.wait import wait_until

pytestmark = pytest.mark.timeout(600)


class Cli:
    """``timkit --config … client --profile P …`` with the profiles under ``home``."""

    def __init__(self, federation: Federation, home: Path) -> None:
        self.config = federation.config
        self.env = {**os.environ, "TIMKIT_CLIENT_HOME": str(home)}

    def run(
        self, profile: str, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "timkit",
                "--config",
                str(self.config),
                "client",
                "--profile",
                profile,
                *args,
            ],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=180,
        )
        if check:
            assert done.returncode == 0, f"{args}: {done.returncode}\n{done.stdout}\n{done.stderr}"
        return done

    def json(self, profile: str, *args: str) -> Any:
        return json.loads(self.run(profile, *args, "--json").stdout)


def test_af_10057_af_10058_af_10061_af_10062_cross_organisation_chat_with_the_cli(
    federation: Federation, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:6]
    clara = federation.add_user(A, f"clara-{tag}", PASSWORD)
    bob = federation.add_user(B, f"bob-{tag}", PASSWORD)
    cli = Cli(federation, tmp_path / "profiles")

    login = cli.run("clara", "login", clara, "--password-stdin", stdin=PASSWORD + "\n")
    assert f"angemeldet: {clara}" in login.stdout
    assert "Föderationsprüfung" in login.stderr  # the steps are shown while they run
    cli.run("bob", "login", bob, "--password-stdin", stdin=PASSWORD + "\n")
    assert cli.json("clara", "whoami")["user_id"] == clara
    assert sorted(cli.json("clara", "profiles")) == ["bob", "clara"]

    assert cli.run("clara", "name", "Sonnenschein", "Clara").stdout.strip() == "Sonnenschein, Clara"
    published = cli.run("clara", "directory", "publish", "--card", "hba-dr-demo")
    try:
        assert f"veröffentlicht: {clara}" in published.stdout
        hits = cli.json("bob", "search", "directory", "Sonnenschein")
        assert any(clara in [e["mxid"] for e in hit["endpoints"]] for hit in hits)
    finally:  # the demo HBA's entry is shared by the session's tests
        cli.run("clara", "directory", "remove", "--card", "hba-dr-demo")
    hits = cli.json("bob", "search", "directory", "Sonnenschein")
    assert not any(clara in [e["mxid"] for e in hit["endpoints"]] for hit in hits)

    refused = cli.run("bob", "dm", clara, check=False)  # Bob is not on Clara's list yet
    assert refused.returncode == 1
    assert refused.stderr.startswith("timkit: ")
    assert len(refused.stderr.strip().splitlines()) == 1  # one clear line, no traceback

    png = tmp_path / "bob.png"
    cli.run("bob", "qr", "show", "--png", str(png))
    scanned = cli.run("clara", "qr", "scan", str(png), "--yes")
    assert f"MXID: {bob}" in scanned.stdout
    assert bob in [c["mxid"] for c in cli.json("clara", "contacts", "list")]

    room_id = cli.run("bob", "dm", clara).stdout.strip()
    assert room_id.startswith("!")
    wait_until(
        lambda: room_id in [r["room_id"] for r in cli.json("clara", "rooms")],
        "Clara sees the invite",
        timeout=60,
    )
    cli.run("clara", "join", room_id)
    rooms = {r["room_id"]: r for r in cli.json("clara", "rooms")}
    assert rooms[room_id]["encrypted"] is True

    cli.run("clara", "send", room_id, "Guten Tag, Befund anbei")
    cli.run("bob", "send", room_id, "Danke, erhalten")

    def messages(profile: str) -> list[dict[str, Any]]:
        lines = cli.run(profile, "tail", room_id, "--json").stdout.splitlines()
        return [e for e in map(json.loads, lines) if e["kind"] == "Message"]

    wait_until(lambda: len(messages("bob")) >= 2, "both messages at Bob", timeout=60)
    seen = {m["body"]: m for m in messages("bob")}
    assert seen["Guten Tag, Befund anbei"]["encrypted"] is True
    assert seen["Guten Tag, Befund anbei"]["sender"] == clara
    at_clara = {m["body"] for m in messages("clara")}
    assert "Danke, erhalten" in at_clara

    cli.run("clara", "logout")
    assert cli.run("clara", "whoami", check=False).returncode == 1
