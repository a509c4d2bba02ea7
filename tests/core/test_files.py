"""Private files: written whole, readable by the owner only."""

from __future__ import annotations

import stat
from pathlib import Path

from timkit.core.files import write_private


def test_a_private_file_is_0600_and_its_parents_are_made(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "token"
    write_private(path, "geheim\n")
    assert path.read_text("utf-8") == "geheim\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_rewriting_replaces_the_whole_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    write_private(path, b"x" * 1000)
    write_private(path, b"short")
    assert path.read_bytes() == b"short"
    assert [p.name for p in tmp_path.iterdir()] == ["key.pem"]


def test_parent_mode_applies_to_new_directories(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "vapid.pem"
    write_private(path, b"k", parent_mode=0o700)
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
