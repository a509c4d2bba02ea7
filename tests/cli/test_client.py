"""``timkit client`` without a federation: argument errors, event lines, times, profiles."""

from __future__ import annotations

from pathlib import Path

import pytest

from timkit.cli import main as cli_main
from timkit.cli.client import _when, describe
from timkit.cli.main import main
from timkit.client import events as ev
from timkit.core.errors import TimkitError


def test_events_are_one_german_line_each() -> None:
    message = ev.Message("!r:a", "$e", "@a:a", "Hallo", "m.text", 0, True, replaces="$old")
    assert describe(message) == "00:00:00 🔒 @a:a: Hallo (bearbeitet)"
    failed = ev.Undecryptable("!r:a", "$e", "@a:a", "sess", 0)
    assert "nicht entschlüsselbar" in describe(failed)
    invite = ev.Invite("!r:a", "@b:b", True)
    assert describe(invite) == "Einladung in 1:1-Chat !r:a von @b:b"
    assert describe(ev.Redaction("!r:a", "$r", "@a:a", "$e")) == "@a:a hat $e gelöscht"


def test_times_need_iso_format_and_get_the_local_zone() -> None:
    assert _when(None) is None
    moment = _when("2026-12-08T10:00")
    assert moment is not None
    assert moment.tzinfo is not None
    with pytest.raises(TimkitError) as bad:
        _when("morgen")
    assert bad.value.status == 400


def test_a_profile_without_session_is_one_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["client", "--home", str(tmp_path), "--directory-url", "https://vzd.invalid", "whoami"]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("timkit: Profil default: nicht angemeldet")
    assert len(err.strip().splitlines()) == 1


def test_a_bad_profile_name_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["client", "--home", str(tmp_path), "--profile", "../x", "profiles"])
    assert code == 1
    assert "profile name" in capsys.readouterr().err


def test_profiles_lists_none_yet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["client", "--home", str(tmp_path), "profiles", "--json"]) == 0
    assert capsys.readouterr().out.strip() == "[]"


def test_ctrl_c_ends_a_following_command_quietly_with_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(args: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_main, "client_command", interrupted)
    assert main(["client", "tail", "-f"]) == 130
    assert "Traceback" not in capsys.readouterr().err
