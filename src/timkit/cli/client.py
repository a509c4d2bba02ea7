"""``timkit client …``: the TI-M client for actors and testers, on :mod:`timkit.client`.

One profile per logged-in actor (``--profile``, default ``$TIMKIT_PROFILE`` or ``default``);
token, device and crypto store stay in the profile (0600). Against the local federation the
client finds services, the VZD and the CA from the config (``timkit --config``); against a
real one give ``--directory-url`` (and ``--ca-file`` where the system store is not right).
Every listing takes ``--json``; errors are one line (``timkit: …``) and exit 1.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import getpass
import json
import mimetypes
import os
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from timkit.client import events as ev
from timkit.client.contacts import accept_scanned
from timkit.client.options import ClientOptions
from timkit.client.profile import Profile, list_profiles
from timkit.client.qr import decode_png, qr_png, qr_terminal
from timkit.client.session import TimClient
from timkit.client.vcard import confirmation, make_vcard, own_card, parse_vcard
from timkit.core.errors import Codes, TimkitError
from timkit.runtime.actors import client_options
from timkit.runtime.config import find_config_file, load_config

T = TypeVar("T")


def add_client_parser(commands: Any) -> None:
    """Add ``timkit client`` and its actions to the top-level subparsers."""
    client = commands.add_parser("client", help="TI-M client for actors (login, chat, search)")
    client.add_argument("--profile", default=os.environ.get("TIMKIT_PROFILE", "default"))
    client.add_argument("--home", type=Path, help="directory of the profiles")
    client.add_argument("--directory-url", help="VZD-FHIR-Directory (default: local run's)")
    client.add_argument("--ca-file", type=Path, help="CA bundle to trust (default: local CA)")
    actions = client.add_subparsers(dest="client_command", required=True, metavar="ACTION")

    for action, text in (
        ("login", "log in (AF_10057) and keep the session"),
        ("register", "register where the homeserver allows it, then as login"),
    ):
        login = actions.add_parser(action, help=text)
        login.add_argument("user_id", help="@name:domain")
        secret = login.add_mutually_exclusive_group()
        secret.add_argument("--password")
        secret.add_argument("--password-stdin", action="store_true", help="read it from stdin")
    actions.add_parser("logout", help="log out and delete token and keys of this profile")
    _json(actions.add_parser("whoami", help="the profile's user and device"))
    _json(actions.add_parser("profiles", help="the profiles with a session"))
    name = actions.add_parser("name", help="set the display name '[Name], [Vorname]' once")
    name.add_argument("family_name")
    name.add_argument("given_name")
    _json(actions.add_parser("rooms", help="rooms and invites"))
    create = actions.add_parser("create", help="create a TI-M room (at most one invitee)")
    create.add_argument("--invite", help="@name:domain to invite")
    create.add_argument("--name")
    create.add_argument("--topic")
    create.add_argument("--unencrypted", action="store_true", help="without E2EE")
    dm = actions.add_parser("dm", help="the 1:1 chat with an actor (reused or created)")
    dm.add_argument("user_id")
    for action, text in (
        ("join", "join a room"),
        ("reject", "reject an invite"),
        ("leave", "leave a room"),
    ):
        actions.add_parser(action, help=text).add_argument("room_id")
    invite = actions.add_parser("invite", help="invite an actor into a room")
    invite.add_argument("room_id")
    invite.add_argument("user_id")
    send = actions.add_parser("send", help="send a text or a file")
    send.add_argument("room_id")
    send.add_argument("text", nargs="?")
    send.add_argument("--file", type=Path)
    tail = _json(actions.add_parser("tail", help="the decrypted timeline"))
    tail.add_argument("room_id", nargs="?", help="one room (default: all)")
    tail.add_argument("-f", "--follow", action="store_true", help="keep printing new events")
    tail.add_argument("--limit", type=int, default=20, help="earlier events to show")
    search = actions.add_parser("search", help="find actors").add_subparsers(
        dest="search_command", required=True, metavar="WHERE"
    )
    users = _json(search.add_parser("users", help="the own homeserver's user directory"))
    users.add_argument("term")
    vzd = _json(search.add_parser("directory", help="the VZD-FHIR-Directory (AF_10061)"))
    vzd.add_argument("text", help="name, TelematikID or MXID")
    contacts = actions.add_parser("contacts", help="the Freigabeliste").add_subparsers(
        dest="contacts_command", required=True, metavar="ACTION"
    )
    _json(contacts.add_parser("list", help="who may invite you"))
    add = contacts.add_parser("add", help="allow an actor to invite you")
    add.add_argument("user_id")
    add.add_argument("--name", help="display name (default: the MXID)")
    add.add_argument("--from", dest="start", help="ISO time (default: now)")
    add.add_argument("--until", dest="end", help="ISO time (default: open)")
    contacts.add_parser("remove", help="remove an actor").add_argument("user_id")
    qr = actions.add_parser("qr", help="exchange contacts by QR code").add_subparsers(
        dest="qr_command", required=True, metavar="ACTION"
    )
    show = qr.add_parser("show", help="your contact as QR code (terminal or --png)")
    show.add_argument("--png", type=Path, help="write a PNG here")
    scan = qr.add_parser("scan", help="read a QR image and add the contact after asking")
    scan.add_argument("image", type=Path)
    scan.add_argument("--yes", action="store_true", help="confirm without asking")
    directory = actions.add_parser("directory", help="your entry in the VZD (User-HBA)")
    entry = directory.add_subparsers(dest="directory_command", required=True, metavar="ACTION")
    for action, text in (
        ("publish", "publish your MXID on your PractitionerRole (AF_10058)"),
        ("hide", "switch your entry off"),
        ("show", "switch it on again"),
        ("remove", "delete your MXID's entry"),
    ):
        entry.add_parser(action, help=text).add_argument(
            "--card", required=True, help="the HBA (the IDP stand-in's card id)"
        )
    _json(actions.add_parser("devices", help="your devices"))
    keys = actions.add_parser("keys", help="key backup and recovery").add_subparsers(
        dest="keys_command", required=True, metavar="ACTION"
    )
    _json(keys.add_parser("status", help="the account's key backup"))
    enable = keys.add_parser("enable", help="cross-signing + backup; prints the recovery key")
    enable.add_argument("--password-stdin", action="store_true")
    keys.add_parser("backup", help="upload room keys the backup lacks")
    restore = keys.add_parser("restore", help="this device: sign and restore with the key")
    restore.add_argument("--recovery-key-stdin", action="store_true")


def _json(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def client_command(args: argparse.Namespace) -> int:
    """Run ``timkit client <action>``; returns the exit status."""
    return asyncio.run(_run(args))


async def _run(args: argparse.Namespace) -> int:
    profile = Profile(args.profile, args.home)
    action = args.client_command
    if action == "profiles":
        names = list_profiles(args.home)
        _print(args, names, lambda: "\n".join(names) or "keine Profile")
        return 0
    options = _options(args)
    if action == "login":
        password = _secret(args.password, args.password_stdin, "Passwort: ")
        client = await TimClient.login(profile, options, args.user_id, password, progress=_progress)
        await client.close()
        print(f"angemeldet: {client.user_id} (Profil {profile.name})")
        return 0
    client = await TimClient.restore(profile, options)
    try:
        return await _logged_in(args, client)
    finally:
        if action != "logout":
            await client.close()


async def _logged_in(args: argparse.Namespace, client: TimClient) -> int:
    handler = _ACTIONS.get(args.client_command)
    if handler is None:
        raise AssertionError(args.client_command)
    return await handler(args, client)


def _options(args: argparse.Namespace) -> ClientOptions:
    if args.directory_url:
        return ClientOptions(directory_url=args.directory_url, ca_file=args.ca_file)
    local = client_options(load_config(find_config_file(args.config)))
    if args.ca_file:
        return dataclasses.replace(local, ca_file=args.ca_file)
    return local


def _secret(value: str | None, from_stdin: bool, prompt: str) -> str:
    if value is not None:
        return value
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return getpass.getpass(prompt)


def _progress(line: str) -> None:
    print(f"  {line}", file=sys.stderr, flush=True)


def _print(args: argparse.Namespace, data: Any, text: Callable[[], str]) -> None:
    if getattr(args, "json", False):
        print(json.dumps(data, indent=2, ensure_ascii=False, default=str))
    else:
        print(text())


# -- actions -------------------------------------------------------------------------------


async def _logout(args: argparse.Namespace, client: TimClient) -> int:
    await client.logout()
    print(f"abgemeldet; Token und Schlüssel von Profil {args.profile} gelöscht")
    return 0


async def _whoami(args: argparse.Namespace, client: TimClient) -> int:
    data = {
        "user_id": client.user_id,
        "device_id": client.device_id,
        "homeserver": client.session.base_url,
    }
    _print(args, data, lambda: f"{client.user_id} Gerät {client.device_id}")
    return 0


async def _name(args: argparse.Namespace, client: TimClient) -> int:
    print(await client.set_display_name(args.family_name, args.given_name))
    return 0


async def _rooms(args: argparse.Namespace, client: TimClient) -> int:
    await client.sync_once()
    rooms = client.rooms.list()
    data = [dataclasses.asdict(r) for r in rooms]

    def text() -> str:
        lines = []
        for r in rooms:
            state = "eingeladen" if client.user_id in r.invited else "Mitglied"
            lock = "E2EE" if r.encrypted else "offen"
            lines.append(f"{r.room_id}  {lock:5} {state:10} {r.name}")
        return "\n".join(lines) or "keine Räume"

    _print(args, data, text)
    return 0


async def _create(args: argparse.Namespace, client: TimClient) -> int:
    room_id = await client.rooms.create(
        args.invite, name=args.name, topic=args.topic, encrypted=not args.unencrypted
    )
    print(room_id)
    return 0


async def _dm(args: argparse.Namespace, client: TimClient) -> int:
    await client.sync_once()
    print(await client.rooms.dm(args.user_id))
    return 0


async def _join(args: argparse.Namespace, client: TimClient) -> int:
    await client.sync_once()
    invite = client.nio.invited_rooms.get(args.room_id)
    inviter = None
    if invite is not None and invite.is_group is False:
        inviter = next(iter(set(invite.users) - {client.user_id}), None)
    await client.rooms.join(args.room_id, direct_with=inviter)
    print(f"beigetreten: {args.room_id}")
    return 0


async def _reject(args: argparse.Namespace, client: TimClient) -> int:
    await client.rooms.reject(args.room_id)
    print(f"abgelehnt: {args.room_id}")
    return 0


async def _leave(args: argparse.Namespace, client: TimClient) -> int:
    await client.rooms.leave(args.room_id)
    print(f"verlassen: {args.room_id}")
    return 0


async def _invite(args: argparse.Namespace, client: TimClient) -> int:
    await client.rooms.invite(args.room_id, args.user_id)
    print(f"eingeladen: {args.user_id}")
    return 0


async def _send(args: argparse.Namespace, client: TimClient) -> int:
    if (args.text is None) == (args.file is None):
        raise TimkitError(400, Codes.INVALID_PARAM, "send: entweder TEXT oder --file angeben")
    await client.sync_once()
    if args.file is not None:
        data = args.file.read_bytes()
        print(await client.messages.send_file(args.room_id, data, args.file.name, _mime(args.file)))
    else:
        print(await client.messages.send_text(args.room_id, args.text))
    return 0


def _mime(path: Path) -> str:
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"


async def _tail(args: argparse.Namespace, client: TimClient) -> int:
    await client.sync_once()
    rooms = [args.room_id] if args.room_id else sorted(client.nio.rooms)
    for room_id in rooms:
        for earlier in await client.messages.history(room_id, args.limit):
            _show(args, earlier)
    if not args.follow:
        return 0
    client.start()
    async for event in client.events():
        if args.room_id is None or getattr(event, "room_id", None) == args.room_id:
            _show(args, event)
    return 0


def _show(args: argparse.Namespace, event: ev.Event) -> None:
    if args.json:
        print(
            json.dumps(
                {"kind": type(event).__name__, **dataclasses.asdict(event)}, ensure_ascii=False
            ),
            flush=True,
        )
        return
    print(describe(event), flush=True)


def describe(event: ev.Event) -> str:
    """One line for the actor (German) describing ``event``."""
    if isinstance(event, ev.Invite):
        kind = "1:1-Chat" if event.is_direct else "Raum"
        return f"Einladung in {kind} {event.room_id} von {event.inviter}"
    stamp = ""
    if isinstance(event, ev.Message | ev.Undecryptable):
        stamp = datetime.fromtimestamp(event.timestamp / 1000, UTC).strftime("%H:%M:%S ")
    if isinstance(event, ev.Message):
        lock = "🔒" if event.encrypted else "  "
        edit = " (bearbeitet)" if event.replaces else ""
        file = f" [Datei {event.attachment.name}]" if event.attachment else ""
        return f"{stamp}{lock} {event.sender}: {event.body}{edit}{file}"
    if isinstance(event, ev.Undecryptable):
        return f"{stamp}⚠ {event.sender}: nicht entschlüsselbar (Sitzung {event.session_id})"
    if isinstance(event, ev.Membership):
        return f"{event.user_id}: {event.membership} ({event.room_id})"
    if isinstance(event, ev.Redaction):
        return f"{event.sender} hat {event.redacts} gelöscht"
    return f"{event.sender}: {event.type} {json.dumps(event.content, ensure_ascii=False)}"


async def _search(args: argparse.Namespace, client: TimClient) -> int:
    if args.search_command == "users":
        users = await client.search_users(args.term)
        _print(
            args,
            [dataclasses.asdict(u) for u in users],
            lambda: (
                "\n".join(f"{u.user_id}  {u.display_name or ''}" for u in users) or "keine Treffer"
            ),
        )
        return 0
    hits = await client.directory.search(args.text)
    _print(
        args,
        [dataclasses.asdict(h) for h in hits],
        lambda: "\n".join(f"{h.label()}\n    {' '.join(h.mxids)}" for h in hits) or "keine Treffer",
    )
    return 0


async def _contacts(args: argparse.Namespace, client: TimClient) -> int:
    command = args.contacts_command
    if command == "list":
        contacts = await client.contacts.list()

        def text() -> str:
            lines = []
            for c in contacts:
                until = f" bis {c.end:%Y-%m-%d %H:%M}" if c.end else ""
                lines.append(f"{c.mxid}  {c.display_name}{until}")
            return "\n".join(lines) or "Freigabeliste ist leer"

        _print(args, [dataclasses.asdict(c) for c in contacts], text)
        return 0
    if command == "add":
        contact = await client.contacts.add(
            args.user_id, args.name or args.user_id, _when(args.start), _when(args.end)
        )
        print(f"freigegeben: {contact.mxid}")
        return 0
    await client.contacts.remove(args.user_id)
    print(f"entfernt: {args.user_id}")
    return 0


def _when(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as e:
        raise TimkitError(400, Codes.INVALID_PARAM, f"{value!r} ist keine ISO-Zeit") from e
    return moment if moment.tzinfo else moment.astimezone()


async def _qr(args: argparse.Namespace, client: TimClient) -> int:
    if args.qr_command == "show":
        name = await client.display_name() or client.user_id
        text = make_vcard(own_card(client.user_id, name))
        if args.png:
            args.png.write_bytes(qr_png(text))
            print(f"QR-Code geschrieben: {args.png}")
        else:
            print(qr_terminal(text))
        return 0
    card = parse_vcard(decode_png(args.image.read_bytes()))
    print(confirmation(card))
    if not args.yes:
        answer = await asyncio.to_thread(input, "In die Freigabeliste aufnehmen? [j/N] ")
        answer = answer.strip().lower()
        if answer not in ("j", "ja", "y", "yes"):
            print("nicht aufgenommen")
            return 1
    contact = await accept_scanned(client.contacts, card)
    print(f"freigegeben: {contact.mxid} ({contact.display_name})")
    return 0


async def _directory(args: argparse.Namespace, client: TimClient) -> int:
    if args.directory_command == "publish":
        published = await client.publish_in_directory(args.card)
        print(f"veröffentlicht: {published.mxid} an {published.role} ({published.endpoint})")
        return 0
    if args.directory_command == "remove":
        removed = await client.remove_from_directory(args.card)
        print(f"entfernt: {', '.join(removed) or 'nichts'}")
        return 0
    visible = args.directory_command == "show"
    result = await client.set_directory_visibility(args.card, visible)
    print(f"{result.mxid}: {'sichtbar' if result.visible else 'unsichtbar'}")
    if result.hint:
        print(result.hint, file=sys.stderr)
    return 0


async def _devices(args: argparse.Namespace, client: TimClient) -> int:
    devices = await client.devices()
    _print(
        args,
        [dataclasses.asdict(d) for d in devices],
        lambda: "\n".join(
            f"{'*' if d.current else ' '} {d.device_id}  {d.display_name or ''}" for d in devices
        ),
    )
    return 0


async def _keys(args: argparse.Namespace, client: TimClient) -> int:
    command = args.keys_command
    if command == "status":
        status = await client.backup_status()
        _print(
            args,
            dataclasses.asdict(status),
            lambda: (
                f"Backup {status.version} mit {status.count} Schlüsseln"
                if status.enabled
                else "kein Schlüssel-Backup"
            ),
        )
        return 0
    await client.sync_once()
    if command == "enable":
        password = _secret(None, args.password_stdin, "Passwort: ")
        key = await _timed("Cross-Signing und Backup einrichten", client.setup_recovery(password))
        print("Wiederherstellungsschlüssel (sicher aufbewahren):", file=sys.stderr)
        print(key)
        return 0
    if command == "backup":
        print(f"{await client.backup_keys()} Schlüssel gesichert")
        return 0
    key = _secret(None, args.recovery_key_stdin, "Wiederherstellungsschlüssel: ")
    result = await _timed("Schlüssel wiederherstellen", client.recover(key))
    print(
        f"{result.imported} von {result.total} Schlüsseln aus Backup {result.version} "
        f"übernommen ({result.failed} abgelehnt)"
    )
    return 0


async def _timed(label: str, work: Awaitable[T]) -> T:
    _progress(f"{label} …")
    begin = time.monotonic()
    result = await work
    _progress(f"{label}: {time.monotonic() - begin:.1f}s")
    return result


Action = Callable[[argparse.Namespace, TimClient], Awaitable[int]]
_ACTIONS: dict[str, Action] = {
    "logout": _logout,
    "whoami": _whoami,
    "name": _name,
    "rooms": _rooms,
    "create": _create,
    "dm": _dm,
    "join": _join,
    "reject": _reject,
    "leave": _leave,
    "invite": _invite,
    "send": _send,
    "tail": _tail,
    "search": _search,
    "contacts": _contacts,
    "qr": _qr,
    "directory": _directory,
    "devices": _devices,
    "keys": _keys,
}
