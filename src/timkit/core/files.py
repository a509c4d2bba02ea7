"""Files only their owner may read: keys, tokens, credentials."""

from __future__ import annotations

import os
from pathlib import Path


def write_private(path: Path, data: bytes | str, *, parent_mode: int = 0o777) -> None:
    """Write ``data`` (text as UTF-8) to ``path`` with mode 0600, atomically.

    The file is written beside ``path`` under a temporary name (created 0600, so it is never
    readable by others, not even for a moment) and renamed over ``path``; a reader sees the
    old content or the new, never a part. Missing parent directories are created with
    ``parent_mode`` (masked by the umask).
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=parent_mode)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data.encode("utf-8") if isinstance(data, str) else data)
    tmp.replace(path)
