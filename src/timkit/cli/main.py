"""``timkit``: run and inspect a local TI-Messenger federation.

Commands::

    timkit up                 start the federation in the background, wait until healthy
    timkit status [--json]    what runs where
    timkit down               stop everything ``up`` started
    timkit user add D L --password P    create @L:D (an existing one: same password or
                                        --reset-password, else an error)
    timkit user list D [--all] [--json] the service's users
    timkit user remove D L              deactivate @L:D for good
    timkit bench up           measure start-up time and memory (docs/benchmarks.md)
    timkit bench provision    AF_10060 through the Registrierungs-Dienst vs. a direct start
    timkit bench directory    measure the FHIR-Directory at national scale
    timkit bench directory-proxy   what the FHIR-Proxy adds (latency, tokens, list signing)
    timkit bench proxy        what the Messenger-Proxy adds (latency, throughput, delivery, RSS)
    timkit bench client       the client SDK: login with federation check, E2EE latency, load
    timkit directory load PATH...            load Bundles / NDJSON into the directory
    timkit directory generate -o N -p M      synthetic organisations and practitioners
    timkit directory provider add ID --name N [--cert PEM]... [--secret S]   register a provider
    timkit directory provider list|cert ID PEM                               providers, certs
    timkit directory audit [--actor A] [--since T] [--target X] [--limit N] [--json]
    timkit directory domains [--json]       the current federation list
    timkit client [--profile P] ACTION      the TI-M client for actors: login, logout, rooms,
                                            create, dm, join, invite, send, tail -f, search
                                            users|directory, contacts, qr show|scan,
                                            directory publish|hide, devices, keys
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

from timkit import __version__
from timkit.bench import client as client_bench
from timkit.bench import directory as directory_bench
from timkit.bench import directory_proxy as directory_proxy_bench
from timkit.bench import provision as provision_bench
from timkit.bench import proxy as proxy_bench
from timkit.bench import push as push_bench
from timkit.bench import up as up_bench
from timkit.cli import push as push_cli
from timkit.cli.client import add_client_parser, client_command
from timkit.cli.directory import (
    PROXY_COMMANDS,
    add_proxy_parsers,
    directory_command,
    proxy_command,
)
from timkit.core.errors import ConfigError, TimkitError
from timkit.runtime import control
from timkit.runtime.config import find_config_file, load_config
from timkit.runtime.layout import Layout
from timkit.runtime.plan import directory_database, fhir_proxy_database
from timkit.runtime.push_chain import receiver_url
from timkit.runtime.users import add_user, list_users, remove_user, subscribe_user


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="timkit", description="A local TI-Messenger federation.")
    parser.add_argument("--version", action="version", version=f"timkit {__version__}")
    parser.add_argument(
        "--config",
        type=Path,
        help="TOML config (default: $TIMKIT_CONFIG, else ./timkit.toml, else built-in defaults)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = commands.add_parser("up", help="start the local federation and wait until healthy")
    up.add_argument("--timeout", type=float, help="seconds to wait for health")
    commands.add_parser("down", help="stop everything 'up' started")
    status = commands.add_parser("status", help="show components and services")
    status.add_argument("--json", action="store_true", help="machine-readable output")

    user = commands.add_parser("user", help="manage users").add_subparsers(
        dest="user_command", required=True, metavar="ACTION"
    )
    add = user.add_parser("add", help="create a user via shared-secret registration")
    add.add_argument("domain", help="server name of the Messenger-Service")
    add.add_argument("localpart", help="the user's localpart")
    add.add_argument("--password", required=True)
    add.add_argument("--admin", action="store_true", help="make the user a server admin")
    add.add_argument(
        "--reset-password",
        action="store_true",
        help="if the user exists with another password, set this one",
    )
    listing = user.add_parser("list", help="list a service's users")
    listing.add_argument("domain", help="server name of the Messenger-Service")
    listing.add_argument("--all", action="store_true", help="include removed (deactivated) users")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    remove = user.add_parser("remove", help="deactivate a user for good (profile erased)")
    remove.add_argument("domain", help="server name of the Messenger-Service")
    remove.add_argument("localpart", help="the user's localpart")

    push = commands.add_parser("push", help="see pushes arrive at the local push receiver")
    push_commands = push.add_subparsers(dest="push_command", required=True, metavar="ACTION")
    subscribe = push_commands.add_parser(
        "subscribe", help="give a user a WebPush device at the local push receiver"
    )
    subscribe.add_argument("domain", help="server name of the Messenger-Service")
    subscribe.add_argument("localpart", help="the user's localpart")
    subscribe.add_argument("--password", required=True)
    tail = push_commands.add_parser("tail", help="print the pushes the receiver got")
    tail.add_argument("--target", help="only pushes to this device (subscription id, token)")
    tail.add_argument("-f", "--follow", action="store_true", help="keep waiting for more")

    bench = commands.add_parser("bench", help="benchmarks").add_subparsers(
        dest="bench_command", required=True, metavar="BENCH"
    )
    bench_up = bench.add_parser("up", help="time from 'up' to healthy, RSS per Synapse")
    bench_up.add_argument("--runs", type=int, default=3, help="warm runs after the cold one")
    bench_up.add_argument("--services", type=int, default=2, help="Messenger-Services to start")

    bench_provision = bench.add_parser(
        "provision", help="AF_10060 through the RD to 'running and listed', vs. a direct start"
    )
    bench_provision.add_argument("--runs", type=int, default=10, help="provisioning runs")

    bench_directory = bench.add_parser(
        "directory", help="bulk load, reads and searches on a synthetic national directory"
    )
    bench_directory.add_argument(
        "--resources", type=int, default=1_000_000, help="synthetic resources to load"
    )
    bench_directory.add_argument(
        "--database", help="database URL (default: a temporary SQLite file)"
    )
    bench_directory.add_argument(
        "--seconds", type=float, default=10.0, help="duration of each throughput phase"
    )
    bench_proxy = bench.add_parser(
        "directory-proxy",
        help="added latency of the FHIR-Proxy, token issuance, federation list signing",
    )
    bench_proxy.add_argument(
        "--resources", type=int, default=20_000, help="synthetic resources behind the proxy"
    )
    bench_proxy.add_argument("--rounds", type=int, default=300, help="requests per measurement")
    bench_proxy.add_argument(
        "--domains", type=int, default=100_000, help="domains in the signed federation list"
    )
    bench_messenger = bench.add_parser(
        "proxy",
        help="what the Messenger-Proxy adds over direct Synapse: latency, throughput, "
        "cross-organisation delivery, RSS",
    )
    bench_messenger.add_argument(
        "--gets", type=int, default=1000, help="sequential GET versions per target"
    )
    bench_messenger.add_argument(
        "--puts", type=int, default=300, help="sequential PUT send per target"
    )
    bench_messenger.add_argument(
        "--clients", type=int, default=16, help="concurrent clients for throughput"
    )
    bench_messenger.add_argument(
        "--seconds", type=float, default=5.0, help="measured duration per throughput phase"
    )
    bench_messenger.add_argument(
        "--messages", type=int, default=30, help="cross-organisation deliveries per path"
    )
    bench_messenger.add_argument(
        "--keep", type=Path, help="run in this directory and keep it (configs, process logs)"
    )
    bench_push = bench.add_parser(
        "push", help="message → push latency through the Push-Gateway, gateway throughput"
    )
    bench_push.add_argument("--messages", type=int, default=50, help="messages timed one by one")
    bench_push.add_argument("--clients", type=int, default=32, help="concurrent notify clients")
    bench_push.add_argument(
        "--seconds", type=float, default=5.0, help="measured duration per throughput phase"
    )
    bench_client = bench.add_parser(
        "client", help="TI-M client SDK: login with federation check, E2EE latency, 50 actors"
    )
    bench_client.add_argument("--logins", type=int, default=20, help="timed logins")
    bench_client.add_argument("--messages", type=int, default=30, help="timed messages per mode")
    bench_client.add_argument("--actors", type=int, default=50, help="actors in the load phase")
    bench_client.add_argument(
        "--load-messages", type=int, default=20, help="messages each actor sends under load"
    )
    directory = commands.add_parser("directory", help="VZD FHIR-Directory data").add_subparsers(
        dest="directory_command", required=True, metavar="ACTION"
    )
    load = directory.add_parser("load", help="load Bundle (.json) or NDJSON files/directories")
    load.add_argument("paths", type=Path, nargs="+")
    load.add_argument("--database", help="database URL (default: the local federation's)")
    generate = directory.add_parser("generate", help="realistic synthetic directory data")
    generate.add_argument("-o", "--organizations", type=int, required=True)
    generate.add_argument("-p", "--practitioners", type=int, required=True)
    generate.add_argument("--seed", type=int, default=0)
    generate.add_argument("--output", type=Path, help="write NDJSON here instead of loading")
    generate.add_argument("--database", help="database URL (default: the local federation's)")
    add_proxy_parsers(directory)
    add_client_parser(commands)
    supervise = commands.add_parser("supervise")  # internal: the detached supervisor
    supervise.add_argument("--plan", type=Path, required=True)
    return parser


def _print_summary(document: dict[str, Any]) -> None:
    print(f"data dir : {document['data_dir']}")
    print(f"CA cert  : {document['ca_cert']}")
    for c in document["components"]:
        mark = "healthy" if c["healthy"] else c["phase"]
        print(f"  {c['name']:<44} {mark:<10} pid {c['pid'] or '-':<8} {c['url']}")
    for s in document["services"]:
        print(f"  service {s['domain']:<36} client {s['client_url']}")
    print(f"Registrierungs-Dienst portal : {document['portal_url']}")
    print(f"mailbox (KIM mails)          : {document['mailbox_url']}")
    print(f"push receiver (timkit push)  : {document['push_receiver_url']}")
    print(f"demo Org-Admin credentials   : {document['demo_admins']}")


INTERRUPTED_EXIT = 130
"""Exit status after Ctrl-C (128 + SIGINT, as shells report it)."""
SIGPIPE_EXIT = 141
"""Exit status when the output's reader went away (128 + SIGPIPE, as ``git`` or ``cat``)."""


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``timkit`` console script."""
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except KeyboardInterrupt:
        # Ctrl-C ends a following command (``timkit client tail -f``) without a traceback
        print(file=sys.stderr)
        return INTERRUPTED_EXIT
    except BrokenPipeError:
        # the reader left early (``timkit status --json | head``): stop without a traceback,
        # and keep the interpreter's final flush from failing on the closed pipe again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return SIGPIPE_EXIT
    except ConfigError as exc:
        print(f"timkit: config error: {exc}", file=sys.stderr)
        return 2
    except TimkitError as exc:
        print(f"timkit: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    if args.command == "supervise":
        return control.supervise(args.plan)
    if args.command == "bench" and args.bench_command == "up":
        print(up_bench.bench_up(services=args.services, runs=args.runs).markdown())
        return 0
    if args.command == "bench" and args.bench_command == "provision":
        print(provision_bench.bench_provision(runs=args.runs).markdown())
        return 0
    if args.command == "bench" and args.bench_command == "directory-proxy":
        proxied = directory_proxy_bench.bench_directory_proxy(
            args.resources, rounds=args.rounds, domains=args.domains
        )
        print(proxied.markdown())
        return 0
    if args.command == "bench" and args.bench_command == "proxy":
        messenger = proxy_bench.bench_proxy(
            gets=args.gets,
            puts=args.puts,
            clients=args.clients,
            seconds=args.seconds,
            messages=args.messages,
            keep=args.keep,
        )
        print(messenger.markdown())
        return 0
    if args.command == "bench" and args.bench_command == "client":
        measured_client = client_bench.bench_client(
            logins=args.logins,
            messages=args.messages,
            actors=args.actors,
            load_messages=args.load_messages,
        )
        print(measured_client.markdown())
        return 0
    if args.command == "bench" and args.bench_command == "push":
        print(
            push_bench.bench_push(
                messages=args.messages, clients=args.clients, seconds=args.seconds
            ).markdown()
        )
        return 0
    if args.command == "bench":
        measured = directory_bench.bench_directory(
            args.resources, database=args.database, seconds=args.seconds
        )
        print(measured.markdown())
        return 0
    if args.command == "client":
        return client_command(args)
    config = load_config(find_config_file(args.config))
    if args.command == "directory" and args.directory_command in PROXY_COMMANDS:
        return proxy_command(args, args.proxy_database or fhir_proxy_database(config))
    if args.command == "directory":
        return directory_command(args, args.database or directory_database(config))
    if args.command == "up":
        result = control.up(
            config, timeout=args.timeout, progress=lambda line: print(f"  {line}", flush=True)
        )
        if result.started:
            print(f"timkit is up ({result.seconds:.1f}s)")
        else:
            pid = result.state.supervisor_pid
            print(f"timkit is already up (supervisor pid {pid}); nothing changed")
        _print_summary(control.status(config))
        return 0
    if args.command == "down":
        pids = control.down(config)
        print(f"stopped {len(pids)} processes" if pids else "timkit is not running")
        return 0
    if args.command == "status":
        document = control.status(config)
        if args.json:
            print(json.dumps(document, indent=2))
        elif document["running"]:
            _print_summary(document)
        else:
            print("timkit is not running")
        return 0
    if args.command == "push" and args.push_command == "subscribe":
        device = asyncio.run(subscribe_user(config, args.domain, args.localpart, args.password))
        print(json.dumps(device))
        return 0
    if args.command == "push":
        return push_cli.tail(
            receiver_url(config),
            target=args.target,
            follow=args.follow,
            ca_file=Layout(config.data_dir).ca_cert,
            out=sys.stdout,
        )
    if args.command == "user" and args.user_command == "list":
        entries = asyncio.run(list_users(config, args.domain, deactivated=args.all))
        if args.json:
            print(json.dumps([dataclasses.asdict(e) for e in entries], indent=2))
        for entry in [] if args.json else entries:
            flags = [f for f, on in (("admin", entry.admin), ("removed", entry.deactivated)) if on]
            name = entry.display_name or ""
            print(f"{entry.user_id:40} {','.join(flags) or '-':14} {name}".rstrip())
        return 0
    if args.command == "user" and args.user_command == "remove":
        removed = asyncio.run(remove_user(config, args.domain, args.localpart))
        print(json.dumps({"mxid": removed, "removed": True}))
        return 0
    if args.command == "user":
        added = asyncio.run(
            add_user(
                config,
                args.domain,
                args.localpart,
                args.password,
                admin=args.admin,
                reset_password=args.reset_password,
            )
        )
        if added.password_reset:
            print(f"user {added.user_id} exists already; password reset", file=sys.stderr)
        elif not added.created:
            print(f"user {added.user_id} exists already (same password)", file=sys.stderr)
        outcome: dict[str, object] = {"mxid": added.user_id, "created": added.created}
        if added.password_reset:
            outcome["password_reset"] = True
        print(json.dumps(outcome))
        return 0
    raise AssertionError(args.command)  # argparse only admits the commands above
