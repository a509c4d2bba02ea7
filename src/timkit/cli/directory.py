"""``timkit directory load|generate``: fill a FHIR-Directory database, with a progress bar."""

from __future__ import annotations

import argparse
import sys

import orjson
from tqdm import tqdm

from timkit.directory.generate import Shape, generate
from timkit.directory.load import load, read_resources
from timkit.directory.service import open_directory


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
