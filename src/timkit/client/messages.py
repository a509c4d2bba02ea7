"""Messages, edits, redactions, receipts, typing and media of one :class:`TimClient`.

In an encrypted room every message is Megolm-encrypted by matrix-nio, its keys shared with
every device of the room's members (``ignore_unverified_devices``: TI-M asks for no manual
verification, trust is on first use). Media go through the Matrix v1.3 media API
(``/_matrix/media/v3``) so that peers of every TI-M version can fetch them; in encrypted rooms
the file is encrypted first (AES-CTR, an ``EncryptedFile`` in the event, Matrix spec
"Sending encrypted attachments").
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
import nio
from nio.crypto.attachments import decrypt_attachment, encrypt_attachment

from timkit.client import events as ev
from timkit.client.matrix_api import segment
from timkit.client.nio_errors import nio_error
from timkit.core.errors import Codes, TimkitError
from timkit.sdk.errors import raise_for_matrix_error

if TYPE_CHECKING:
    from timkit.client.session import TimClient

MEDIA = "/_matrix/media/v3"
MSGTYPE_BY_MAJOR = {"image": "m.image", "audio": "m.audio", "video": "m.video"}


class Messages:
    """The message operations of one :class:`TimClient`."""

    def __init__(self, client: TimClient) -> None:
        self.client = client

    async def send_text(self, room_id: str, body: str, *, notice: bool = False) -> str:
        """Send a text message; returns its event id (encrypted when the room is)."""
        msgtype = "m.notice" if notice else "m.text"
        return await self.send(room_id, {"msgtype": msgtype, "body": body})

    async def edit(self, room_id: str, event_id: str, body: str) -> str:
        """Replace the text of ``event_id`` (``m.replace``); returns the edit's event id."""
        content = {
            "msgtype": "m.text",
            "body": f"* {body}",
            "m.new_content": {"msgtype": "m.text", "body": body},
            "m.relates_to": {"rel_type": "m.replace", "event_id": event_id},
        }
        return await self.send(room_id, content)

    async def send(self, room_id: str, content: dict[str, Any]) -> str:
        """Send an ``m.room.message`` with ``content``; returns its event id.

        Raises:
            TimkitError: the room is unknown to this user (404) or the homeserver refused.
        """
        await self.client.ensure_room(room_id)
        response = await self.client.nio.room_send(
            room_id, "m.room.message", content, ignore_unverified_devices=True
        )
        if not isinstance(response, nio.RoomSendResponse):
            raise nio_error(response, "send")
        return str(response.event_id)

    async def redact(self, room_id: str, event_id: str, reason: str | None = None) -> str:
        """Redact ``event_id``; returns the redaction's event id."""
        txn = secrets.token_hex(8)
        path = f"/_matrix/client/v3/rooms/{segment(room_id)}/redact/{segment(event_id)}/{txn}"
        body = {"reason": reason} if reason else {}
        return str((await self.client.api.call("PUT", path, json=body))["event_id"])

    async def read_receipt(self, room_id: str, event_id: str) -> None:
        """Mark ``event_id`` as read (``m.read`` receipt)."""
        path = f"/_matrix/client/v3/rooms/{segment(room_id)}/receipt/m.read/{segment(event_id)}"
        await self.client.api.call("POST", path, json={})

    async def typing(self, room_id: str, typing: bool = True, timeout_ms: int = 10_000) -> None:
        """Show (or stop showing) that this user is typing in ``room_id``."""
        path = f"/_matrix/client/v3/rooms/{segment(room_id)}/typing/{segment(self.client.user_id)}"
        body: dict[str, Any] = {"typing": typing}
        if typing:
            body["timeout"] = timeout_ms
        await self.client.api.call("PUT", path, json=body)

    async def history(self, room_id: str, limit: int = 50) -> list[ev.TimelineEvent]:
        """The last ``limit`` timeline events of ``room_id``, oldest first, decrypted where
        this device holds the keys."""
        response = await self.client.nio.room_messages(room_id, start="", limit=limit)
        if not isinstance(response, nio.RoomMessagesResponse):
            raise nio_error(response, "history")
        found = [ev.timeline_event(room_id, e) for e in reversed(response.chunk)]
        return [e for e in found if e is not None]

    async def send_file(
        self, room_id: str, data: bytes, name: str, mimetype: str = "application/octet-stream"
    ) -> str:
        """Upload ``data`` and send it as a file (image, audio, video by type); returns the
        event id. In an encrypted room the upload is the encrypted file."""
        await self.client.ensure_room(room_id)
        room = self.client.nio.rooms[room_id]
        msgtype = MSGTYPE_BY_MAJOR.get(mimetype.split("/", 1)[0], "m.file")
        content: dict[str, Any] = {
            "msgtype": msgtype,
            "body": name,
            "filename": name,
            "info": {"mimetype": mimetype, "size": len(data)},
        }
        if room.encrypted:
            ciphertext, keys = encrypt_attachment(data)
            url = await self.upload(ciphertext, "application/octet-stream", None)
            content["file"] = {"url": url, "mimetype": mimetype, **keys}
        else:
            content["url"] = await self.upload(data, mimetype, name)
        return await self.send(room_id, content)

    async def upload(self, data: bytes, mimetype: str, name: str | None) -> str:
        """Upload ``data`` to the media repository; returns its ``mxc://`` URI."""
        params = {"filename": name} if name else None
        try:
            response = await self.client.http.post(
                self.client.api.base_url + MEDIA + "/upload",
                content=data,
                params=params,
                headers=self.client.api.headers({"Content-Type": mimetype}),
            )
        except httpx.HTTPError as e:
            raise TimkitError(502, Codes.UPSTREAM, f"upload failed: {type(e).__name__}") from e
        raise_for_matrix_error(response)
        url = response.json().get("content_uri")
        if not isinstance(url, str):
            raise TimkitError(502, Codes.UPSTREAM, "the upload answer names no content_uri")
        return url

    async def download(self, attachment: ev.Attachment) -> bytes:
        """The file of ``attachment``, decrypted (and its hash checked) when encrypted.

        Raises:
            TimkitError: 400 for a URI that is not ``mxc://server/id``, the homeserver's
                error, or 502 when the encrypted file does not match its hash.
        """
        parts = urlsplit(attachment.url)
        media_id = parts.path.lstrip("/")
        if parts.scheme != "mxc" or not parts.netloc or not media_id or "/" in media_id:
            raise TimkitError(400, Codes.INVALID_PARAM, f"{attachment.url!r} is no mxc URI")
        path = f"{MEDIA}/download/{segment(parts.netloc)}/{segment(media_id)}"
        try:
            response = await self.client.http.get(
                self.client.api.base_url + path, headers=self.client.api.headers()
            )
        except httpx.HTTPError as e:
            raise TimkitError(502, Codes.UPSTREAM, f"download failed: {type(e).__name__}") from e
        raise_for_matrix_error(response)
        if attachment.encryption is None:
            return response.content
        file = attachment.encryption
        try:
            plain: bytes = decrypt_attachment(
                response.content, file["key"]["k"], file["hashes"]["sha256"], file["iv"]
            )
            return plain
        except (KeyError, TypeError, ValueError, nio.EncryptionError) as e:
            raise TimkitError(
                502, Codes.UNKNOWN, f"the encrypted file cannot be decrypted: {e}"
            ) from e
