"""The metadata downtime real code produces: python -m tests.bench real-outage

Brings the cloud lab up (real Nova, Neutron with OVN, one neutron-ovn-metadata-agent
per host in front of Nova's metadata API), runs samples/live_migrate_metadata.yaml
through the real `rally` with no fault profile at all (the lab injects nothing: the
switchover is the guest's NIC moving to the destination's bridge and its RARP), and
prints each migration's figures and their median and spread, and places each
outage against the switchover and the metadata agents' own log lines
(tests/bench/agent_timeline.py). Root; the cloud lab installed
(tools/install-lab-cloud.sh).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from tests.bench import agent_timeline
from tests.lab import demo
from tests.lab.cloud import config, rally_task
from tests.lab.cloud.lab import Cloud


def spread(values: list[float]) -> str:
    if not values:
        return "no figure"
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return (f"median {statistics.median(ordered):.2f} s, min {ordered[0]:.2f}, "
            f"p90 {p90:.2f}, max {ordered[-1]:.2f} (n={len(ordered)})")


def _s(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:+.2f}"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench real-outage")
    parser.add_argument("--times", type=int, default=20, help="iterations (VMs)")
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args(argv)
    state = Path(tempfile.mkdtemp(prefix="rmdc-test-bench", dir="/tmp"))
    cloud = Cloud(state)
    out = Path(tempfile.mkdtemp(prefix="rmd-real-outage-"))
    cloud.keep_logs = out / "service-logs"
    facts = cloud.up()
    try:
        run = rally_task.run_sample(facts, state, out, task_args={
            "times": args.times, "concurrency": args.concurrency})
        crashes = cloud.vswitchd_crashes()
    finally:
        cloud.down()
    [(_, workload)] = demo.report_workloads(run["report"])
    events = [e for host in config.COMPUTE_HOSTS for e in agent_timeline.parse_agent_log(
        (cloud.keep_logs / f"metadata-agent-{host}.log").read_text(), host)]
    cuts = {w["server_id"]: w["start_wall"] for w in run["injected"]
            if w["kind"] == "network"}
    metadata, network, placed = [], [], []
    print("iteration  host pair                        metadata s  network s  resolution"
          "  outage from/to (s after the cut)  dest. provisioning  source cleanup")
    for i, record in enumerate(demo.iteration_records(workload), start=1):
        if record is None or record.error or not record.metadata:
            print(f"{i:9}  failed: {record.error if record else 'no record'}")
            continue
        [migration] = record.migrations
        metadata.append(record.metadata.downtime)
        network.append(record.network.downtime if record.network else float("nan"))
        outages = record.metadata.outages
        span = ((outages[0].start + record.clock_offset,
                 outages[-1].end + record.clock_offset) if outages else None)
        where = agent_timeline.place(record.metadata.downtime, span,
                                     cuts[record.server_id], migration.source_host,
                                     migration.destination_host, events)
        placed.append(where)
        print(f"{i:9}  {migration.source_host} -> {migration.destination_host:14}"
              f"  {record.metadata.downtime:10.2f}  {network[-1]:9.2f}"
              f"  {record.metadata.resolution:10.3f}"
              f"  {_s(where.outage_start):>7} / {_s(where.outage_end):<7}"
              f"                 {_s(where.provisioned):>7}"
              f"         {_s(where.cleaned):>7}")
    print(f"metadata downtime: {spread(metadata)}")
    print(f"network downtime:  {spread(network)}")
    for line in agent_timeline.summary(placed):
        print(line)
    print(f"vswitchd crashes during the run (restarted by its monitor): {crashes}")
    print(f"service logs: {cloud.keep_logs}")
    print(f"report: {run['html']}")
    return 0 if len(metadata) == args.times else 1
