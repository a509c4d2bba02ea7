"""What the keys module needs of matrix-nio's Olm machine (``nio.crypto.OlmMachine``).

Declared as protocols so that the module states exactly which of nio's hooks it relies on
(client-anchors §3.1) and nio's types never appear in timkit's signatures.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Protocol


class DeviceAccount(Protocol):
    """The device's Olm account: its identity keys and Ed25519 signing."""

    @property
    def identity_keys(self) -> Mapping[str, str]:
        """``{"ed25519": ..., "curve25519": ...}`` in unpadded base64."""
        ...

    def sign(self, message: str) -> str:
        """The unpadded base64 Ed25519 signature of ``message`` by the device key."""
        ...


class GroupSessions(Protocol):
    """nio's store of inbound Megolm sessions (``GroupSessionStore``)."""

    def __iter__(self) -> Iterator[Any]:
        """Every ``InboundGroupSession``."""
        ...

    def add(self, session: Any) -> bool:
        """Keep ``session`` in memory; ``False`` when that very session is already there."""
        ...

    def get(self, room_id: str, sender_key: str, session_id: str) -> Any:
        """The session with these ids, or ``None``."""
        ...


class OlmDevice(Protocol):
    """The parts of ``nio.crypto.OlmMachine`` the keys module uses."""

    user_id: str
    device_id: str
    account: DeviceAccount
    inbound_group_store: GroupSessions

    def save_inbound_group_session(self, session: Any) -> None:
        """Persist ``session`` in the crypto store."""
        ...
