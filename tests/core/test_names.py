"""The local federation's route file: atomic writes, cheap re-reads, static fallback."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from timkit.core.errors import TimkitError
from timkit.core.names import NameTable, check_target, split_target


def test_file_entries_win_over_static_routes_and_missing_file_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "names.json"
    reader = NameTable(path, {"a.tim.test": "127.0.0.1:1", "b.tim.test": "127.0.0.1:2"})
    assert reader.resolve("a.tim.test") == "127.0.0.1:1"
    assert reader.resolve("nowhere.tim.test") is None

    NameTable(path).set("A.tim.test", "127.0.0.1:10")
    assert reader.resolve("a.tim.test") == "127.0.0.1:10"
    assert reader.resolve("B.TIM.TEST") == "127.0.0.1:2"
    assert reader.routes() == {"a.tim.test": "127.0.0.1:10", "b.tim.test": "127.0.0.1:2"}


def test_reader_sees_every_change_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "names.json"
    writer, reader = NameTable(path), NameTable(path)
    assert reader.resolve("x.tim.test") is None
    for port in range(1000, 1020):  # same size each time: the inode tells the versions apart
        writer.set("x.tim.test", f"127.0.0.1:{port}")
        assert reader.resolve("x.tim.test") == f"127.0.0.1:{port}"
    assert writer.remove("x.tim.test") is True
    assert writer.remove("x.tim.test") is False
    assert reader.resolve("x.tim.test") is None
    path.unlink()
    assert reader.resolve("x.tim.test") is None


def test_check_interval_limits_stat_calls(tmp_path: Path) -> None:
    path = tmp_path / "names.json"
    now = [0.0]
    reader = NameTable(path, check_interval=1.0, clock=lambda: now[0])
    assert reader.resolve("x.tim.test") is None
    NameTable(path).set("x.tim.test", "127.0.0.1:5")
    assert reader.resolve("x.tim.test") is None  # not looked at again yet
    now[0] = 1.5
    assert reader.resolve("x.tim.test") == "127.0.0.1:5"


def test_broken_file_keeps_the_last_good_table(tmp_path: Path) -> None:
    path = tmp_path / "names.json"
    NameTable(path).set("x.tim.test", "127.0.0.1:5")
    reader = NameTable(path)
    assert reader.resolve("x.tim.test") == "127.0.0.1:5"
    path.write_text('{"x.tim.test": "no port here"}')
    assert reader.resolve("x.tim.test") == "127.0.0.1:5"
    path.write_text("[1, 2")
    assert reader.resolve("x.tim.test") == "127.0.0.1:5"
    NameTable(path).set("y.tim.test", "127.0.0.1:6")  # a writer replaces the broken file
    assert reader.resolve("y.tim.test") == "127.0.0.1:6"


def test_writes_are_atomic_json_and_validated(tmp_path: Path) -> None:
    path = tmp_path / "run" / "names.json"
    table = NameTable(path)
    table.set("b.tim.test", "[::1]:8448")
    table.set("a.tim.test", "127.0.0.1:8481")
    assert json.loads(path.read_text()) == {
        "a.tim.test": "127.0.0.1:8481",
        "b.tim.test": "[::1]:8448",
    }
    assert sorted(p.name for p in path.parent.iterdir()) == ["names.json", "names.json.lock"]
    with pytest.raises(TimkitError, match="host:port"):
        table.set("c.tim.test", "127.0.0.1")
    with pytest.raises(TimkitError, match="no route file"):
        NameTable(None).set("c.tim.test", "127.0.0.1:1")
    assert split_target("[::1]:8448") == ("::1", 8448)
    with pytest.raises(ValueError, match="host:port"):
        check_target("host:0")


def _add_many(path: str, prefix: str) -> None:
    table = NameTable(Path(path))
    for i in range(25):
        table.set(f"{prefix}{i}.tim.test", f"127.0.0.1:{1000 + i}")


def test_concurrent_writers_lose_no_update(tmp_path: Path) -> None:
    path = tmp_path / "names.json"
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_add_many, args=(str(path), p)) for p in ("a", "b", "c")]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    assert len(NameTable(path).routes()) == 75
