"""The metadata downtime real code produces: python -m tests.bench real-outage

Brings the cloud lab up (real Nova, Neutron with OVN, one neutron-ovn-metadata-agent
per host in front of Nova's metadata API), runs samples/live_migrate_metadata.yaml
through the real `rally` with no fault profile at all (the lab injects nothing: the
switchover is the guest's NIC moving to the destination's bridge and its RARP), and
prints each migration's figures and their median and spread. Root; the cloud lab
installed (tools/install-lab-cloud.sh).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from tests.lab import demo
from tests.lab.cloud import rally_task
from tests.lab.cloud.lab import Cloud


def spread(values: list[float]) -> str:
    if not values:
        return "no figure"
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return (f"median {statistics.median(ordered):.2f} s, min {ordered[0]:.2f}, "
            f"p90 {p90:.2f}, max {ordered[-1]:.2f} (n={len(ordered)})")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench real-outage")
    parser.add_argument("--times", type=int, default=20, help="iterations (VMs)")
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args(argv)
    state = Path(tempfile.mkdtemp(prefix="rmdc-test-bench", dir="/tmp"))
    cloud = Cloud(state)
    facts = cloud.up()
    try:
        out = Path(tempfile.mkdtemp(prefix="rmd-real-outage-"))
        run = rally_task.run_sample(facts, state, out, task_args={
            "times": args.times, "concurrency": args.concurrency})
        crashes = cloud.vswitchd_crashes()
    finally:
        cloud.down()
    [(_, workload)] = demo.report_workloads(run["report"])
    metadata, network = [], []
    print("iteration  host pair                        metadata s  network s  resolution")
    for i, record in enumerate(demo.iteration_records(workload), start=1):
        if record is None or record.error or not record.metadata:
            print(f"{i:9}  failed: {record.error if record else 'no record'}")
            continue
        [migration] = record.migrations
        metadata.append(record.metadata.downtime)
        network.append(record.network.downtime if record.network else float("nan"))
        print(f"{i:9}  {migration.source_host} -> {migration.destination_host:14}"
              f"  {record.metadata.downtime:10.2f}  {network[-1]:9.2f}"
              f"  {record.metadata.resolution:10.3f}")
    print(f"metadata downtime: {spread(metadata)}")
    print(f"network downtime:  {spread(network)}")
    print(f"vswitchd crashes during the run (restarted by its monitor): {crashes}")
    print(f"report: {run['html']}")
    return 0 if len(metadata) == args.times else 1
