"""The SDK's typed view of what a sync delivers: messages, invites, memberships, redactions.

matrix-nio decrypts Megolm events during the sync; :func:`timeline_event` turns each of its
events into one of the frozen dataclasses here, so no nio type leaves the SDK. An event nio
could not decrypt is an :class:`Undecryptable` (counted as a decryption failure).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import nio

ENCRYPTED = "m.room.encrypted"


@dataclass(frozen=True)
class Attachment:
    """A file of a media message.

    Attributes:
        url: the ``mxc://`` URI of the (possibly encrypted) upload.
        name: the file name the sender gave.
        mimetype: its media type (``application/octet-stream`` when unknown).
        size: its size in bytes, when the sender gave it.
        encryption: the ``EncryptedFile`` object (key, iv, hashes) in encrypted rooms, else
            ``None``.
    """

    url: str
    name: str
    mimetype: str
    size: int | None
    encryption: dict[str, Any] | None


@dataclass(frozen=True)
class Message:
    """An ``m.room.message`` in a room's timeline.

    Attributes:
        room_id: the room.
        event_id: the event.
        sender: the sender's MXID.
        body: the text (for media the file name).
        msgtype: ``m.text``, ``m.notice``, ``m.file``, ``m.image`` …
        timestamp: ``origin_server_ts`` in milliseconds.
        encrypted: whether it arrived Megolm-encrypted (and was decrypted).
        replaces: for an edit (``m.replace``), the event it replaces; its ``body`` is the new
            text.
        attachment: the file of a media message.
    """

    room_id: str
    event_id: str
    sender: str
    body: str
    msgtype: str
    timestamp: int
    encrypted: bool
    replaces: str | None = None
    attachment: Attachment | None = None


@dataclass(frozen=True)
class Undecryptable:
    """An encrypted event this device holds no key for (a decryption failure)."""

    room_id: str
    event_id: str
    sender: str
    session_id: str
    timestamp: int


@dataclass(frozen=True)
class Membership:
    """A change of ``user_id``'s membership (``join``, ``leave``, ``invite``, ``ban``)."""

    room_id: str
    event_id: str
    sender: str
    user_id: str
    membership: str


@dataclass(frozen=True)
class Redaction:
    """``sender`` redacted ``redacts`` in ``room_id``."""

    room_id: str
    event_id: str
    sender: str
    redacts: str


@dataclass(frozen=True)
class StateChange:
    """Any other state event (``m.room.name``, ``de.gematik.tim.room.default.v1`` …)."""

    room_id: str
    event_id: str
    sender: str
    type: str
    state_key: str
    content: dict[str, Any]


@dataclass(frozen=True)
class Invite:
    """This user was invited to ``room_id`` by ``inviter`` (``is_direct``: as a 1:1 chat)."""

    room_id: str
    inviter: str
    is_direct: bool


TimelineEvent = Message | Undecryptable | Membership | Redaction | StateChange
Event = TimelineEvent | Invite


def timeline_event(room_id: str, event: nio.Event) -> TimelineEvent | None:
    """The SDK event for one nio timeline event, or ``None`` for kinds the SDK ignores."""
    source: dict[str, Any] = event.source if isinstance(event.source, dict) else {}
    content = source.get("content")
    content = content if isinstance(content, dict) else {}
    sender, event_id = str(event.sender), str(event.event_id)
    if isinstance(event, nio.MegolmEvent):
        return Undecryptable(room_id, event_id, sender, event.session_id, event.server_timestamp)
    if isinstance(event, nio.RedactionEvent):
        return Redaction(room_id, event_id, sender, event.redacts)
    if isinstance(event, nio.RoomMemberEvent):
        return Membership(room_id, event_id, sender, event.state_key, event.membership)
    if source.get("type") == "m.room.message" or isinstance(event, nio.RoomMessage):
        return _message(room_id, event, content)
    if "state_key" in source:
        return StateChange(
            room_id, event_id, sender, str(source.get("type")), str(source["state_key"]), content
        )
    return None


def _message(room_id: str, event: nio.Event, content: dict[str, Any]) -> Message:
    relation = content.get("m.relates_to")
    replaces = None
    if isinstance(relation, dict) and relation.get("rel_type") == "m.replace":
        replaces = str(relation.get("event_id"))
        new = content.get("m.new_content")
        content = new if isinstance(new, dict) else content
    return Message(
        room_id=room_id,
        event_id=str(event.event_id),
        sender=str(event.sender),
        body=str(content.get("body", "")),
        msgtype=str(content.get("msgtype", "")),
        timestamp=int(event.server_timestamp),
        encrypted=bool(getattr(event, "decrypted", False)),
        replaces=replaces,
        attachment=_attachment(content),
    )


def _attachment(content: dict[str, Any]) -> Attachment | None:
    encryption = content.get("file")
    url = encryption.get("url") if isinstance(encryption, dict) else content.get("url")
    if not isinstance(url, str):
        return None
    info = content.get("info")
    info = info if isinstance(info, dict) else {}
    size = info.get("size")
    return Attachment(
        url=url,
        name=str(content.get("filename") or content.get("body", "")),
        mimetype=str(info.get("mimetype") or "application/octet-stream"),
        size=size if isinstance(size, int) else None,
        encryption=encryption if isinstance(encryption, dict) else None,
    )


def invite(room_id: str, user_id: str, info: nio.InviteInfo) -> Invite | None:
    """The invite of ``user_id`` in an invited room's stripped state, if there is one."""
    for event in info.invite_state:
        if (
            isinstance(event, nio.InviteMemberEvent)
            and event.state_key == user_id
            and event.membership == "invite"
        ):
            return Invite(room_id, str(event.sender), bool(event.content.get("is_direct")))
    return None
