"""Profiles: where sessions live, their modes (ML-123575), corrupt files, forgetting."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from timkit.client.profile import Profile, StoredSession, default_home, list_profiles
from timkit.core.errors import TimkitError

SESSION = StoredSession("@a:x.test", "DEV", "syt_secret", "https://127.0.0.1:1")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_ml_123575_the_session_is_kept_0600_in_a_0700_profile(tmp_path: Path) -> None:
    profile = Profile("alice", tmp_path)
    profile.save(SESSION)
    assert profile.load() == SESSION
    assert _mode(profile.root) == 0o700
    assert _mode(profile.store_dir) == 0o700
    assert _mode(profile.session_file) == 0o600
    (profile.store_dir / "keys.db").write_bytes(b"x")
    profile.protect_store()
    assert _mode(profile.store_dir / "keys.db") == 0o600
    assert list_profiles(tmp_path) == ["alice"]


def test_forget_deletes_token_and_keys_but_keeps_the_profile(tmp_path: Path) -> None:
    profile = Profile("alice", tmp_path)
    profile.save(SESSION)
    (profile.store_dir / "keys.db").write_bytes(b"x")
    profile.forget()
    assert profile.load() is None
    assert not profile.store_dir.exists()
    assert profile.root.is_dir()
    assert list_profiles(tmp_path) == []


def test_a_corrupt_session_file_is_one_clear_error(tmp_path: Path) -> None:
    profile = Profile("alice", tmp_path)
    profile.prepare()
    profile.session_file.write_text('{"user_id": 1}')
    with pytest.raises(TimkitError) as corrupt:
        profile.load()
    assert str(profile.session_file) in corrupt.value.message


@pytest.mark.parametrize("name", ["", "../up", "a/b", ".hidden", "x" * 65, "a b"])
def test_profile_names_cannot_leave_the_home(name: str, tmp_path: Path) -> None:
    with pytest.raises(TimkitError) as refused:
        Profile(name, tmp_path)
    assert refused.value.status == 400


def test_the_home_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TIMKIT_CLIENT_HOME", str(tmp_path / "explicit"))
    assert default_home() == tmp_path / "explicit"
    monkeypatch.delenv("TIMKIT_CLIENT_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_home() == tmp_path / "xdg" / "timkit" / "client"
