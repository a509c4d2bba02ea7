"""Per-actor profile directories: the stored session and the crypto store (ML-123575).

A profile is one logged-in actor on this machine (``timkit client --profile NAME``)::

    <home>/<name>/            0700
        session.json          0600  user id, device id, access token, homeserver URL
        store/                0700  matrix-nio's Olm/Megolm store (SQLite, files 0600)

``<home>`` is ``$TIMKIT_CLIENT_HOME``, else ``$XDG_DATA_HOME/timkit/client``, else
``~/.local/share/timkit/client``. Logging out, or a homeserver that refuses the token, deletes
the session and the store (ML-129870): a device that no longer exists keeps no keys.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from timkit.core.errors import Codes, TimkitError
from timkit.core.files import write_private

PROFILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
DIR_MODE = 0o700
FILE_MODE = 0o600


@dataclass(frozen=True)
class StoredSession:
    """What a profile keeps of a login (the token stays on this machine only).

    Attributes:
        user_id: the actor's MXID.
        device_id: the device the homeserver issued (or kept) at login.
        access_token: the Matrix access token (ML-123576).
        base_url: the homeserver's client base URL found by discovery.
    """

    user_id: str
    device_id: str
    access_token: str
    base_url: str


def default_home() -> Path:
    """Where profiles live when no home is given (see the module docstring)."""
    explicit = os.environ.get("TIMKIT_CLIENT_HOME")
    if explicit:
        return Path(explicit)
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "timkit" / "client"


class Profile:
    """The directory of one profile.

    Args:
        name: the profile's name (letters, digits, ``_.-``; at most 64 characters).
        home: the directory holding all profiles (default :func:`default_home`).

    Raises:
        TimkitError: 400 when ``name`` is not a valid profile name.
    """

    def __init__(self, name: str, home: Path | None = None) -> None:
        if not PROFILE_NAME.match(name):
            raise TimkitError(
                400, Codes.INVALID_PARAM, f"profile name {name!r}: use letters, digits, _ . -"
            )
        self.name = name
        self.root = (home or default_home()) / name

    @property
    def session_file(self) -> Path:
        return self.root / "session.json"

    @property
    def store_dir(self) -> Path:
        return self.root / "store"

    def prepare(self) -> None:
        """Create the profile and store directories (0700) and tighten what is there."""
        for directory in (self.root.parent, self.root, self.store_dir):
            directory.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        os.chmod(self.root, DIR_MODE)
        os.chmod(self.store_dir, DIR_MODE)
        self.protect_store()

    def protect_store(self) -> None:
        """Make every file of the crypto store 0600 (SQLite creates them with the umask)."""
        if self.store_dir.is_dir():
            for path in self.store_dir.iterdir():
                if path.is_file():
                    os.chmod(path, FILE_MODE)

    def load(self) -> StoredSession | None:
        """The stored session, or ``None`` when the profile has none.

        Raises:
            TimkitError: 500 naming the file when it exists but is not a stored session.
        """
        try:
            data = json.loads(self.session_file.read_text("utf-8"))
            return StoredSession(**data)
        except FileNotFoundError:
            return None
        except (ValueError, TypeError) as e:
            raise TimkitError(
                500, Codes.CONFIG, f"{self.session_file} is not a timkit session: {e}"
            ) from e

    def save(self, session: StoredSession) -> None:
        """Store ``session`` (0600, atomically) in the prepared profile."""
        self.prepare()
        write_private(self.session_file, json.dumps(asdict(session), indent=2) + "\n")

    def forget(self) -> None:
        """Delete the session and the crypto store; the profile directory stays."""
        self.session_file.unlink(missing_ok=True)
        shutil.rmtree(self.store_dir, ignore_errors=True)


def list_profiles(home: Path | None = None) -> list[str]:
    """Names of the profiles under ``home`` that hold a session, sorted."""
    root = home or default_home()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "session.json").is_file())
