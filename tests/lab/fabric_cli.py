"""The lab fabric's command line: `python -m tests.lab.fabric cleanup --state-dir D`
removes what a crashed lab recorded in D/resources.json."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from tests.lab import ledger as ledger_mod


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: `python -m tests.lab.fabric cleanup --state-dir D` removes a crashed lab."""
    parser = argparse.ArgumentParser(prog="python -m tests.lab.fabric")
    commands = parser.add_subparsers(dest="command", required=True)
    cleanup = commands.add_parser("cleanup", help="remove what resources.json records")
    cleanup.add_argument("--state-dir", required=True, type=Path)
    args = parser.parse_args(argv)
    path = args.state_dir / "resources.json"
    if not path.exists():
        print(f"nothing to clean: no {path}")
        return 0
    record = ledger_mod.ResourceLedger.load(path)
    count = len(record.entries())
    leftovers = record.release_all()
    for leftover in leftovers:
        print(f"left behind: {leftover}", file=sys.stderr)
    print(f"removed {count - len(leftovers)} of {count} recorded resources")
    return 1 if leftovers else 0
