"""Bulk loading: Bundles and NDJSON files into the directory, validated and indexed.

``load_files`` reads every ``*.json`` (a Bundle or a single resource) and ``*.ndjson`` file
given (directories are walked in name order), then hands the resources to :func:`load`.
:func:`load` upserts by id (resources without an id get one), in batches of one write
transaction each: a batch with an invalid resource is refused whole, with an error naming
the file position and element, and nothing of that batch is stored. Validation and index
extraction, the CPU-heavy part, run in worker processes while the writer stores the
previous batch.
"""

from __future__ import annotations

import itertools
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from timkit.core.errors import IssueType, TimkitError
from timkit.directory.handlers import Directory
from timkit.directory.indexing import IndexRows, index_resource
from timkit.directory.validation import validate

Progress = Callable[[int], object]
ANALYZE_AFTER = 10_000
"""Loads at least this big refresh the query planner's statistics at the end."""


@dataclass(frozen=True)
class LoadStats:
    """What a load did."""

    resources: int
    seconds: float

    @property
    def rate(self) -> float:
        """Resources per second."""
        return self.resources / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        """One line for humans."""
        return f"{self.resources} resources in {self.seconds:.1f} s ({self.rate:,.0f}/s)"


def read_resources(paths: Iterable[Path]) -> Iterator[dict[str, Any]]:
    """Resources from Bundle/resource JSON and NDJSON files (directories walked)."""
    for path in paths:
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix in (".json", ".ndjson"))
            yield from read_resources(files)
            continue
        if not path.exists():
            raise TimkitError(400, IssueType.NOT_FOUND, f"{path}: no such file")
        if path.suffix == ".ndjson":
            with path.open("rb") as lines:
                for number, line in enumerate(lines, 1):
                    if line.strip():
                        yield _parse(line, f"{path}:{number}")
            continue
        document = _parse(path.read_bytes(), str(path))
        if document.get("resourceType") == "Bundle":
            for entry in document.get("entry") or []:
                if isinstance(entry, dict) and isinstance(entry.get("resource"), dict):
                    yield entry["resource"]
        else:
            yield document


def _parse(raw: bytes, where: str) -> dict[str, Any]:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise TimkitError(400, IssueType.STRUCTURE, f"{where}: not valid JSON ({e})") from e
    if not isinstance(value, dict):
        raise TimkitError(400, IssueType.STRUCTURE, f"{where}: not a JSON object")
    return value


Prepared = list[tuple[dict[str, Any], IndexRows]]


@dataclass(frozen=True)
class _Rejected:
    """Why a worker refused a batch, as data: a :class:`TimkitError` does not survive pickling."""

    position: int  # of the refused resource in its batch
    status: int
    errcode: str
    message: str
    requirement: str | None
    extra: dict[str, Any]


def prepare(resources: Sequence[dict[str, Any]]) -> Prepared:
    """Validate and index a batch."""
    out = []
    for resource in resources:
        checked = validate(resource)
        checked.setdefault("id", str(uuid.uuid4()))
        out.append((checked, index_resource(checked)))
    return out


def _prepare_batch(resources: Sequence[dict[str, Any]]) -> Prepared | _Rejected:
    """:func:`prepare` in a worker process; a refused resource comes back as :class:`_Rejected`."""
    out: Prepared = []
    for position, resource in enumerate(resources):
        try:
            out += prepare([resource])
        except TimkitError as e:
            return _Rejected(position, e.status, e.errcode, e.message, e.requirement, e.extra)
    return out


def _batches(resources: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    iterator = iter(resources)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def load(
    directory: Directory,
    resources: Iterable[dict[str, Any]],
    *,
    batch_size: int = 5000,
    workers: int | None = None,
    progress: Progress | None = None,
) -> LoadStats:
    """Upsert ``resources`` (see the module docstring); ``progress`` gets batch sizes.

    Worker processes validate and index; a writer thread stores each batch in one
    transaction while the next batches are prepared (SQLite works without the GIL).
    """
    started = time.perf_counter()
    workers = workers if workers is not None else max(1, (os.cpu_count() or 1))
    writer = _Writer(directory)
    total = 0
    try:
        with _executor(workers) as pool:
            pending: list[Future[Prepared | _Rejected]] = []
            batches = _batches(resources, batch_size)
            for batch in itertools.islice(batches, workers + 1):
                pending.append(pool.submit(_prepare_batch, batch))
            offset = 0
            while pending:
                prepared = pending.pop(0).result()
                if isinstance(prepared, _Rejected):
                    writer.finish()
                    raise TimkitError(
                        prepared.status,
                        prepared.errcode,
                        f"resource #{offset + prepared.position + 1} (in the batch starting at"
                        f" #{offset + 1}, none of which was stored): {prepared.message}",
                        requirement=prepared.requirement,
                        extra=prepared.extra,
                    )
                next_batch = next(batches, None)
                if next_batch is not None:
                    pending.append(pool.submit(_prepare_batch, next_batch))
                writer.put(prepared)
                offset += len(prepared)
                total += len(prepared)
                if progress is not None:
                    progress(len(prepared))
    finally:
        writer.finish()
    if total >= ANALYZE_AFTER:
        directory.db.analyze()
    return LoadStats(total, time.perf_counter() - started)


class _Writer:
    """Stores prepared batches on its own thread, in order; re-raises its first error."""

    def __init__(self, directory: Directory) -> None:
        self._directory = directory
        self._queue: queue.Queue[Prepared | None] = queue.Queue(maxsize=2)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="directory-load-writer")
        self._thread.start()

    def _run(self) -> None:
        db = self._directory.db
        with db.bulk():
            while (prepared := self._queue.get()) is not None:
                if self._error is None:
                    try:
                        _write(self._directory, prepared)
                    except BaseException as e:
                        self._error = e

    def put(self, prepared: Prepared) -> None:
        """Queue a batch (blocks while two are waiting); raise an earlier write's error."""
        self._raise()
        self._queue.put(prepared)

    def finish(self) -> None:
        """Wait for every queued batch; raise the first write error."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        self._raise()

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error


def _write(directory: Directory, prepared: Prepared) -> None:
    with directory.db.write() as tx:
        directory.store.save_many(tx, prepared, method="PUT", skip_unchanged=True)


class _InlineExecutor(Executor):
    """Runs work in the calling thread (``workers=0``: tests, tiny seed files)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as e:
            future.set_exception(e)
        return future


def _executor(workers: int) -> Executor:
    return _InlineExecutor() if workers == 0 else ProcessPoolExecutor(workers)


def load_files(
    directory: Directory,
    paths: Iterable[Path],
    *,
    workers: int = 0,
    progress: Progress | None = None,
) -> LoadStats:
    """:func:`load` the resources of ``paths``."""
    return load(directory, read_resources(paths), workers=workers, progress=progress)
