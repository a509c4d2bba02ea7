"""``timkit directory …``: the FHIR-Directory's data and the FHIR-Proxy's operator commands.

* ``load|generate`` fill a FHIR-Directory database, with a progress bar;
* ``provider add|list|cert``, ``audit`` and ``domains`` work on the FHIR-Proxy database:
  register TI-M providers (client secret, RegService signing certificates), read the audit
  log, show the current federation list.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import orjson
from cryptography import x509
from tqdm import tqdm

from timkit.core.db import Database
from timkit.core.errors import TimkitError
from timkit.directory.demo.generate import Shape, generate
from timkit.directory.load import load, read_resources
from timkit.directory.service import open_directory
from timkit.fhirproxy.handlers.signed_list import current_list
from timkit.fhirproxy.service import open_database
from timkit.fhirproxy.storage.audit import AuditLog
from timkit.fhirproxy.storage.providers import ProviderStore


def directory_command(args: argparse.Namespace, database: str) -> int:
    """Run ``timkit directory <action>`` against ``database``."""
    if args.directory_command == "generate":
        return _generate(args, database)
    directory = open_directory(database)
    try:
        with tqdm(desc="loading", unit=" resources", file=sys.stderr) as bar:
            stats = load(directory, read_resources(args.paths), progress=bar.update)
    finally:
        directory.db.close()
    print(f"loaded {stats.summary()} into {database}")
    return 0


def _generate(args: argparse.Namespace, database: str) -> int:
    total = Shape(args.organizations, args.practitioners).total()
    resources = generate(args.organizations, args.practitioners, seed=args.seed)
    if args.output is not None:
        with (
            args.output.open("wb") as out,
            tqdm(resources, total=total, desc="generating", unit=" resources") as bar,
        ):
            for resource in bar:
                out.write(orjson.dumps(resource) + b"\n")
        print(f"wrote {total} resources to {args.output}")
        return 0
    directory = open_directory(database)
    try:
        with tqdm(total=total, desc="loading", unit=" resources", file=sys.stderr) as bar:
            stats = load(directory, resources, progress=bar.update)
    finally:
        directory.db.close()
    print(f"loaded {stats.summary()} into {database}")
    return 0


# -- the FHIR-Proxy's operator commands (providers, audit log, federation list) --------------

PROXY_COMMANDS = frozenset({"provider", "audit", "domains"})
"""``timkit directory`` actions that work on the FHIR-Proxy database."""


def _proxy_database_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--proxy-database", help="FHIR-Proxy database URL (default: the local federation's)"
    )


def add_proxy_parsers(directory: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``provider add|list|cert``, ``audit`` and ``domains`` to ``timkit directory``."""
    provider = directory.add_parser(
        "provider", help="TI-M providers registered at the FHIR-Proxy"
    ).add_subparsers(dest="provider_command", required=True, metavar="ACTION")
    add = provider.add_parser("add", help="register a provider; prints its client secret")
    add.add_argument("client_id", metavar="CLIENT_ID")
    add.add_argument("--name", required=True, help="the provider's name")
    add.add_argument(
        "--cert",
        type=Path,
        action="append",
        default=[],
        metavar="PEM",
        help="RegService signing certificate (repeatable)",
    )
    add.add_argument("--secret", help="client secret (default: 256 random bits)")
    _proxy_database_option(add)
    listing = provider.add_parser("list", help="registered providers")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    _proxy_database_option(listing)
    cert = provider.add_parser("cert", help="add a RegService signing certificate")
    cert.add_argument("client_id", metavar="CLIENT_ID")
    cert.add_argument("pem", type=Path, metavar="PEM")
    _proxy_database_option(cert)

    audit = directory.add_parser("audit", help="the FHIR-Proxy's audit log, newest first")
    audit.add_argument("--actor", help="exact actor, e.g. provider:timkit-demo")
    audit.add_argument("--since", help="ISO date or timestamp (UTC unless it has an offset)")
    audit.add_argument("--target", help="substring of the target, e.g. a domain")
    audit.add_argument("--limit", type=int, default=100)
    audit.add_argument("--json", action="store_true", help="machine-readable output")
    _proxy_database_option(audit)

    domains = directory.add_parser("domains", help="the current federation list")
    domains.add_argument("--json", action="store_true", help="machine-readable output")
    _proxy_database_option(domains)


def proxy_command(args: argparse.Namespace, database: str) -> int:
    """Run a :data:`PROXY_COMMANDS` action against the FHIR-Proxy database ``database``.

    Raises:
        TimkitError: for unreadable certificates, unknown or duplicate providers, bad dates.
    """
    db = open_database(database)
    try:
        if args.directory_command == "provider":
            return _provider(args, db)
        if args.directory_command == "audit":
            return _audit(args, db)
        return _domains(args, db)
    finally:
        db.close()


def _read_certificate(path: Path) -> bytes:
    try:
        pem = path.read_bytes()
        x509.load_pem_x509_certificate(pem)
    except (OSError, ValueError) as e:
        raise TimkitError(400, "invalid", f"{path}: not a readable PEM certificate ({e})") from e
    return pem


def _provider(args: argparse.Namespace, db: Database) -> int:
    store = ProviderStore(db)
    if args.provider_command == "add":
        pems = [_read_certificate(path) for path in args.cert]
        provider, secret = store.add(args.client_id, args.name, secret=args.secret)
        fingerprints = [store.add_certificate(provider.client_id, pem) for pem in pems]
        print(
            json.dumps(
                {
                    "client_id": provider.client_id,
                    "client_secret": secret,
                    "certificates": fingerprints,
                }
            )
        )
        return 0
    if args.provider_command == "cert":
        fingerprint = store.add_certificate(args.client_id, _read_certificate(args.pem))
        print(json.dumps({"client_id": args.client_id, "fingerprint": fingerprint}))
        return 0
    providers = store.all()
    if args.json:
        print(json.dumps([dataclasses.asdict(p) for p in providers], indent=2))
    else:
        for p in providers:
            print(f"{p.client_id:<32} {p.created:<26} {p.name}")
    return 0


def _since(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as e:
        raise TimkitError(400, "invalid", f"--since {value!r} is not an ISO date") from e
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _audit(args: argparse.Namespace, db: Database) -> int:
    entries = AuditLog(db).query(
        actor=args.actor, since=_since(args.since), target=args.target, limit=args.limit
    )
    if args.json:
        print(json.dumps([dataclasses.asdict(e) for e in entries], indent=2))
    else:
        for e in entries:
            print(f"{e.at}  {e.actor:<28} {e.status}  {e.action}  {e.target}")
    return 0


def _domains(args: argparse.Namespace, db: Database) -> int:
    current = current_list(db)
    if args.json:
        document = {
            "version": current.version,
            "domainList": [entry.to_json() for entry in current.entries],
        }
        print(json.dumps(document, indent=2))
        return 0
    print(f"federation list version {current.version}: {len(current.entries)} domains")
    for e in current.entries:
        insurance = f" insurance IK {','.join(e.ik)}" if e.is_insurance else ""
        print(f"  {e.domain:<40} {e.telematik_id:<28} {e.tim_anbieter}{insurance}")
    return 0
