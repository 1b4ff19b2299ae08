"""python -m tests.lab.cloud up|down|status|bench|rally|sample|agents|restart-agent
[--state-dir DIR]"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from tests.lab.cloud import config
from tests.lab.cloud.lab import Cloud


def bench_line(cloud: Cloud, facts: dict, idle_cpu: float | None = None) -> str:
    memory = cloud.memory()
    total = sum(m["pss_mb"] for m in memory.values())
    parts = [f"{name} {m['pss_mb']:.0f}" for name, m in memory.items()]
    t = facts["timings"]
    versions = " ".join(f"{n.removeprefix('openstack-')} {v}"
                        for n, v in facts.get("versions", {}).items())
    return (f"cloud lab ({versions}): up in {t['total']:.1f} s (databases {t['databases']:.1f} s "
            f"from {t['databases_from']}, APIs {t['apis']:.1f} s, computes "
            f"{t['computes']:.1f} s)"
            + (f", idle CPU {idle_cpu:.0f} % of a core" if idle_cpu is not None else "")
            + f"; memory PSS {total:.0f} MB: " + ", ".join(parts))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.lab.cloud")
    parser.add_argument("command", choices=("up", "down", "status", "bench", "rally",
                                             "sample", "agents", "restart-agent"))
    parser.add_argument("--state-dir", default=str(config.DEFAULT_STATE_DIR))
    parser.add_argument("--times", type=int, default=2,
                        help="rally: iterations of each scenario")
    parser.add_argument("--concurrency", type=int, default=1,
                        help="rally: iterations at once")
    parser.add_argument("--task-args", type=json.loads, default=None,
                        help="sample: JSON over samples/cloud-args.yaml")
    parser.add_argument("--release", choices=tuple(config.AGENT_VENVS), default=None,
                        help="agents: run this release's metadata agents instead")
    parser.add_argument("--host", choices=config.COMPUTE_HOSTS, default=None,
                        help="restart-agent: the compute host whose agent restarts")
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
    elif args.command == "rally":
        from tests.lab.cloud import rally_task
        root = Path(args.state_dir) / "rally"
        shutil.rmtree(root, ignore_errors=True)
        report = rally_task.run(cloud.info(), root, times=args.times,
                                 concurrency=args.concurrency)
        result = rally_task.summary(report)
        print(json.dumps(result, indent=1))
        return 0 if all(r["pass_sla"] for r in result.values()) else 1
    elif args.command == "sample":
        from tests.lab.cloud import rally_task
        run = rally_task.run_sample(cloud.info(), cloud.state, cloud.state / "sample",
                                    task_args=args.task_args, html=True)
        print(json.dumps(rally_task.summary(run["report"]), indent=1))
        print(f"injected: {len(run['injected'])} windows; guests left: "
              f"{len(run['guests_left'])}")
        print(run["html"])
        return run["exit_code"]
    elif args.command == "agents":
        if args.release:
            cloud.use_metadata_agents(args.release)
        agent = cloud.info()["metadata_agent"]
        print(f"metadata agents: {agent['release']} (neutron {agent['neutron']})")
    elif args.command == "restart-agent":
        if args.host is None:
            parser.error("restart-agent needs --host")
        window = cloud.restart_metadata_agent(args.host)
        print(f"metadata agent on {args.host}: answered nothing for "
              f"{window['end_boottime'] - window['start_boottime']:.2f} s")
    elif args.command == "bench":
        facts = cloud.up()
        try:
            # Neutron's workers start last: let them settle before measuring idle.
            time.sleep(20)
            print(bench_line(cloud, facts, cloud.idle_cpu()))
        finally:
            cloud.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
