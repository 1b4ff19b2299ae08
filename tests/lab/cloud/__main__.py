"""python -m tests.lab.cloud up|down|status|bench [--state-dir DIR]"""

from __future__ import annotations

import argparse
import json
import sys

from tests.lab.cloud import config
from tests.lab.cloud.lab import Cloud


def bench_line(cloud: Cloud, facts: dict) -> str:
    memory = cloud.memory()
    total = sum(m["pss_mb"] for m in memory.values())
    parts = [f"{name} {m['pss_mb']:.0f}" for name, m in memory.items()]
    t = facts["timings"]
    return (f"cloud lab: up in {t['total']:.1f} s (databases {t['databases']:.1f} s "
            f"from {t['databases_from']}, APIs {t['apis']:.1f} s, computes "
            f"{t['computes']:.1f} s); memory PSS {total:.0f} MB: " + ", ".join(parts))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.lab.cloud")
    parser.add_argument("command", choices=("up", "down", "status", "bench"))
    parser.add_argument("--state-dir", default=str(config.DEFAULT_STATE_DIR))
    args = parser.parse_args(argv)
    cloud = Cloud(args.state_dir)
    if args.command == "up":
        facts = cloud.up()
        print(json.dumps(facts, indent=1))
        print(bench_line(cloud, facts))
    elif args.command == "down":
        left = cloud.down()
        if left:
            print("cloud lab: could not remove " + ", ".join(left), file=sys.stderr)
            return 1
        print("cloud lab: down")
    elif args.command == "status":
        running = cloud.status()
        for name, pids in running.items():
            print(f"{name:40} {'up ' + str(pids) if pids else 'DOWN'}")
        if not running:
            print("cloud lab: not running")
        return 0 if running and all(running.values()) else 3
    elif args.command == "bench":
        facts = cloud.up()
        try:
            print(bench_line(cloud, facts))
        finally:
            cloud.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
