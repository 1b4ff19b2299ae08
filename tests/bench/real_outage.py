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
from tests.lab import rally_report
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


def _migrations(run: dict, logs: Path) -> tuple[list[float], list[float], list]:
    """Print each migration of `run`; its metadata and network downtimes and where
    each outage sat against the cut and the agents' log lines."""
    [(_, workload)] = rally_report.report_workloads(run["report"])
    events = [e for host in config.COMPUTE_HOSTS for e in agent_timeline.parse_agent_log(
        (logs / f"metadata-agent-{host}.log").read_text(), host)]
    cuts = {w["server_id"]: w["start_wall"] for w in run["injected"]
            if w["kind"] == "network"}
    metadata, network, placed = [], [], []
    print("iteration  host pair                        metadata s  network s  resolution"
          "  outage from/to (s after the cut)  dest. provisioning  source cleanup")
    for i, record in enumerate(rally_report.iteration_records(workload), start=1):
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
    return metadata, network, placed


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench real-outage")
    parser.add_argument("--times", type=int, default=20, help="iterations (VMs)")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--agents", default="current",
                        help="metadata agent releases, comma-separated (current, "
                             "2023.2: the last without the fix for bug 2036118), each "
                             "run in turn on the same lab")
    parser.add_argument("--allowed-metadata-downtime", type=float, default=None,
                        help="the SLA's limit (s); default: the sample's")
    parser.add_argument("--allowed-median-metadata-downtime", type=float, default=None,
                        help="the SLA's limit on the median iteration (s)")
    parser.add_argument("--boot-host", choices=config.COMPUTE_HOSTS, default=None,
                        help="boot every VM there (default: where Nova's scheduler "
                             f"puts it); {config.RALLY_PORT_HOST} keeps a port of the "
                             "network, so migrations leave it for a host without one")
    args = parser.parse_args(argv)
    releases = args.agents.split(",")
    unknown = [r for r in releases if r not in config.AGENT_VENVS]
    if unknown:
        parser.error(f"--agents: unknown release {', '.join(unknown)} "
                     f"(known: {', '.join(config.AGENT_VENVS)})")
    task_args = {"times": args.times, "concurrency": args.concurrency}
    if args.allowed_metadata_downtime is not None:
        task_args["allowed_metadata_downtime"] = args.allowed_metadata_downtime
    if args.allowed_median_metadata_downtime is not None:
        task_args["allowed_median_metadata_downtime"] = \
            args.allowed_median_metadata_downtime
    if args.boot_host:
        task_args["boot_server_kwargs"] = {"availability_zone": f"nova:{args.boot_host}"}
    state = Path(tempfile.mkdtemp(prefix="rmdc-test-bench", dir="/tmp"))
    cloud = Cloud(state)
    out = Path(tempfile.mkdtemp(prefix="rmd-real-outage-"))
    cloud.keep_logs = out / "service-logs"
    cloud.up()
    runs = {}
    try:
        for release in releases:
            version = cloud.use_metadata_agents(release)
            runs[release] = (version, rally_task.run_sample(
                cloud.info(), state, out / release, task_args=task_args))
        crashes = cloud.vswitchd_crashes()
    finally:
        cloud.down()
    rows, complete = [], True
    for release, (version, run) in runs.items():
        print(f"--- metadata agents: {release} (neutron {version})")
        metadata, network, placed = _migrations(run, cloud.keep_logs)
        complete &= len(metadata) == args.times
        print(f"metadata downtime: {spread(metadata)}")
        print(f"network downtime:  {spread(network)}")
        for line in agent_timeline.summary(placed):
            print(line)
        print(f"report: {run['html']}")
        [(_, workload)] = rally_report.report_workloads(run["report"])
        rows.append(f"| {release} | {version} | {spread(metadata)} | "
                    f"{'pass' if workload['pass_sla'] else 'FAIL'} |")
    print("| metadata agent | neutron | metadata downtime | SLA |")
    print("|---|---|---|---|")
    print("\n".join(rows))
    print(f"vswitchd crashes during the run (restarted by its monitor): {crashes}")
    print(f"service logs: {cloud.keep_logs}")
    return 0 if complete else 1
