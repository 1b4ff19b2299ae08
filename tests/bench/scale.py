"""Scale benchmark: the sample task at rising concurrency on the lab (root; prints a
table, asserts nothing).

    python -m tests.bench scale [--concurrency 1,10,50,100] [--probe-interval 1]
                                [--no-baseline] [--lab imitation|cloud]

For each concurrency C: one lab, the sample task with times = 2 x C (one VM per
iteration), then rally-openstack's own NovaServers.boot_and_live_migrate_server with
the same runner as the baseline. Reports successes, lost or unparseable probe logs,
SSH errors, the meter's own atomic actions at p50/p95, the Rally host's CPU and
peak memory (the rally process tree) and the lab's, and the ratio of iteration
durations (ours / baseline) with our recovery wait shown apart. Each run's workload
(Rally's JSON) and Rally's log are kept in artifacts/bench/scale-c<C>.json and
rally-c<C>.log.

The lab's guests share this machine's cores with the lab's metadata service and
Rally: every guest's probe launches a curl per interval, so concurrency / interval
is the metadata request rate the machine itself must serve (printed). On a cloud
each VM has its own CPU; here that rate, not the plugin, sets the ceiling, which
is why --probe-interval is a knob of the benchmark.

--lab cloud runs the same on the cloud lab (real Keystone, Nova, Neutron with OVN,
its real metadata path; concurrency 1, 5, 10 by default): one cloud for all
concurrencies, the sample over samples/cloud-args.yaml, rally-openstack's
boot_and_live_migrate_server as the baseline. Its network holds 11 guests and a
project's quota 10 servers, so it stops at 10; 50 and 100 stay on the imitation.
"""

from __future__ import annotations

import argparse
import collections
import json
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from rally_metadata_downtime.plugins.charts import OUTAGES_TITLE
from tests.lab import rally_report
from tests.lab.harness import REPO_ROOT, LabProcess
from tests.lab.openstack.config import env_spec
from tests.lab.rally_cli import RallyHome

SAMPLE = REPO_ROOT / "samples" / "live_migrate_metadata.yaml"
LAB_ARGS = REPO_ROOT / "samples" / "lab-args.yaml"
REPORTS_DIR = REPO_ROOT / "artifacts" / "bench"   # each run's workload, for a closer look
METER_STEPS = ("metadata_meter.start", "metadata_meter.wait_answering",
               "metadata_meter.collect")
BASELINE = {"version": 2, "title": "baseline", "subtasks": [{"title": "baseline",
            "workloads": [{"scenario": {"NovaServers.boot_and_live_migrate_server": {
                "image": {"name": "cirros-lab"}, "flavor": {"name": "m1.tiny"}}},
                "runner": {"constant": {"times": 0, "concurrency": 0}},
                "contexts": {"users": {"tenants": 1, "users_per_tenant": 1},
                             "network": {}}}]}]}


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _atomic(iteration: dict, name: str) -> float | None:
    for action in iteration["atomic_actions"]:
        if action["name"] == name and action.get("finished_at"):
            return action["finished_at"] - action["started_at"]
    return None


def _workload(report: dict) -> dict:
    return report["tasks"][0]["subtasks"][0]["workloads"][0]


def _machine_cpu() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]   # idle + iowait
    return sum(fields) - idle, sum(fields)


def run_task(rally: RallyHome, task: Path, args: dict | None, args_file: Path | None,
             env: str = "lab"):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy_before, total_before = _machine_cpu()
    started = time.monotonic()
    _, uuid = rally.start_task(task, env, args=args, args_file=args_file)
    wall = time.monotonic() - started
    busy_after, total_after = _machine_cpu()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return _workload(rally.json_report(uuid)), {
        "wall_s": wall, "rally_cpu_s": cpu, "rally_peak_mib": after.ru_maxrss / 1024,
        "machine_busy": (busy_after - busy_before) / max(1, total_after - total_before)}


def probe_failure_reasons(iterations: list[dict]) -> collections.Counter:
    """Failed probes by reason (curl=28, http=503, ...) over the outage tables."""
    reasons: collections.Counter = collections.Counter()
    for it in iterations:
        for chart in it["output"]["complete"]:
            if chart["title"] != OUTAGES_TITLE:
                continue
            cols = chart["data"]["cols"]
            for row in chart["data"]["rows"]:
                for part in filter(None, str(row[cols.index("reasons")]).split(", ")):
                    reason, _, count = part.rpartition(" x")
                    reasons[reason] += int(count)
    return reasons


def keep_run(ours: dict, rally: RallyHome, name: str, concurrency: int) -> None:
    """Rally's workload and log of one run, in REPORTS_DIR for a closer look."""
    REPORTS_DIR.mkdir(parents=True, exist_ok=True)
    (REPORTS_DIR / f"{name}-c{concurrency}.json").write_text(json.dumps(ours))
    if rally.log_file.exists():
        log_name = "rally" if name == "scale" else f"rally-{name}"
        shutil.copy(rally.log_file, REPORTS_DIR / f"{log_name}-c{concurrency}.log")


def table_row(ours: dict, usage: dict, concurrency: int, probe_interval: float) -> dict:
    """The table's figures of one run of the sample (Rally's workload and usage;
    pure)."""
    times = 2 * concurrency
    row = {"concurrency": concurrency, "times": times, **usage,
           "probe_interval": probe_interval}
    data = ours["data"]
    errors = [" ".join(map(str, it["error"])) for it in data if it["error"]]
    row["succeeded"] = len(data) - len(errors)
    row["ssh_errors"] = sum("SSH" in e for e in errors)
    row["lost_logs"] = sum(("MetadataNotMeasured" in e or "probe log" in e)
                           for e in errors)
    row["other_errors"] = sorted({e.split(" ", 1)[0] for e in errors})
    row["first_errors"] = {e.split(" ", 1)[0]: e[:300] for e in reversed(errors)}
    row["failed_reasons"] = probe_failure_reasons([it for it in data if it["error"]])
    row["succeeded_reasons"] = probe_failure_reasons(
        [it for it in data if not it["error"]])
    for step in METER_STEPS:
        values = [v for it in data if (v := _atomic(it, step)) is not None]
        row[f"{step} p50"] = percentile(values, 0.5)
        row[f"{step} p95"] = percentile(values, 0.95)
    durations = [it["duration"] for it in data if not it["error"]]
    recovery = [v for it in data if not it["error"]
                and (v := _atomic(it, "metadata_meter.wait_recovery")) is not None]
    row["ours_mean_s"] = statistics.mean(durations) if durations else float("nan")
    row["recovery_wait_mean_s"] = statistics.mean(recovery) if recovery else float("nan")
    return row


def _baseline_mean(rally: RallyHome, task: Path, spec: dict, env: str) -> float:
    task.write_text(json.dumps(spec))
    base, _ = run_task(rally, task, None, None, env=env)
    durations = [it["duration"] for it in base["data"] if not it["error"]]
    return statistics.mean(durations) if durations else float("nan")


def probe_requests(workload: dict) -> int:
    """Metadata requests the probes logged (answered or not), every family."""
    return sum(figures.probes_ok + figures.probes_failed
               for record in rally_report.iteration_records(workload) if record
               for figures in record.metadata_by_family.values())


def measure(concurrency: int, probe_interval: float, baseline: bool, root: Path,
            name: str = "scale") -> dict:
    """One concurrency on a fresh imitation lab."""
    times = 2 * concurrency
    with LabProcess(root / "lab") as lab:
        rally = RallyHome(root / "rally")
        rally.create_env("lab", env_spec(lab.url))
        ours, usage = run_task(rally, SAMPLE, {"times": times, "concurrency": concurrency,
                                               "probe_interval": probe_interval}, LAB_ARGS)
        lab_after_ours = lab.resource_usage()
        keep_run(ours, rally, name, concurrency)
        row = {**table_row(ours, usage, concurrency, probe_interval),
               "lab_cpu_s": lab_after_ours["cpu_s"],
               "lab_peak_mib": lab_after_ours["peak_mib"]}
        if baseline:
            spec = json.loads(json.dumps(BASELINE))
            spec["subtasks"][0]["workloads"][0]["runner"]["constant"].update(
                times=times, concurrency=concurrency)
            row["baseline_mean_s"] = _baseline_mean(rally, root / "baseline.json", spec,
                                                    "lab")
        row["leftovers"] = lab.leftovers()
    return row


def measure_on_cloud(cloud, facts: dict, concurrency: int, probe_interval: float,
                     baseline: bool, root: Path, name: str = "scale-cloud") -> dict:
    """One concurrency on the running cloud lab (real Nova, Neutron, the real
    metadata path): the sample over samples/cloud-args.yaml, and rally-openstack's
    NovaServers.boot_and_live_migrate_server on the same network as the baseline.
    Lab CPU: every lab process's, reaped children included, over our task; lab
    memory: the services' PSS after it."""
    from tests.lab.cloud import hypervisor, openstack, rally_task
    times = 2 * concurrency
    rally = rally_task.CloudRally(root / "rally", live_migrate_timeout=120)
    rally.create_env("cloud", rally_task.env_spec(facts))
    cpu_before = cloud.cpu_seconds()
    ours, usage = run_task(rally, SAMPLE, {"times": times, "concurrency": concurrency,
                                           "probe_interval": probe_interval},
                           rally_task.CLOUD_ARGS, env="cloud")
    lab_cpu_s = cloud.cpu_seconds() - cpu_before
    keep_run(ours, rally, name, concurrency)
    row = {**table_row(ours, usage, concurrency, probe_interval),
           "lab_cpu_s": lab_cpu_s,
           "lab_peak_mib": sum(m["pss_mb"] for m in cloud.memory().values())}
    row["requests"] = probe_requests(ours)
    if baseline:
        spec = {"NovaServers.boot_and_live_migrate_server": rally_task.task(
            facts, ("NovaServers.boot_and_live_migrate_server",), times,
            concurrency)["NovaServers.boot_and_live_migrate_server"]}
        cpu_before = cloud.cpu_seconds()
        row["baseline_mean_s"] = _baseline_mean(rally, root / "baseline.json", spec,
                                                "cloud")
        row["baseline_lab_cpu_s"] = cloud.cpu_seconds() - cpu_before
    left = {kind: ids for kind, ids in openstack.leftovers(facts["auth_url"]).items() if ids}
    guests = hypervisor.ask(cloud.state, "/guests")
    row["leftovers"] = {**left, **({"guests": guests} if guests else {})}
    return row


def print_table(rows: list[dict]) -> None:
    """One block per concurrency (printed as each finishes: a large run takes long)."""
    for row in rows:
        print(f"\n== concurrency {row['concurrency']} ({row['times']} iterations, "
              f"{row['wall_s']:.0f} s), probe interval {row['probe_interval']:g} s: up to "
              f"{row['concurrency'] / row['probe_interval']:.0f} metadata requests/s ==")
        print(f"  succeeded {row['succeeded']}/{row['times']}   lost/unparseable probe logs "
              f"{row['lost_logs']}   SSH errors {row['ssh_errors']}   other errors "
              f"{row['other_errors'] or 'none'}   leftovers {row['leftovers'] or 'none'}")
        for step in METER_STEPS:
            print(f"  {step:<32} p50 {row[f'{step} p50']:6.2f} s   "
                  f"p95 {row[f'{step} p95']:6.2f} s")
        print(f"  Rally host: CPU {row['rally_cpu_s']:.0f} s, peak process "
              f"{row['rally_peak_mib']:.0f} MiB   lab: CPU {row['lab_cpu_s']:.0f} s, peak "
              f"{row['lab_peak_mib']:.0f} MiB   machine busy "
              f"{100 * row['machine_busy']:.0f}% of all cores during our task")
        for kind, message in sorted(row["first_errors"].items()):
            print(f"  first {kind}: {message}")
        for which in ("succeeded", "failed"):
            reasons = row[f"{which}_reasons"]
            if reasons:
                print(f"  failed probes in {which} iterations: " + ", ".join(
                    f"{r} x{n}" for r, n in reasons.most_common()))
        line = (f"  iteration mean: ours {row['ours_mean_s']:.1f} s (of which recovery "
                f"wait {row['recovery_wait_mean_s']:.1f} s)")
        if "baseline_mean_s" in row:
            ratio = row["ours_mean_s"] / row["baseline_mean_s"]
            without = ((row["ours_mean_s"] - row["recovery_wait_mean_s"])
                       / row["baseline_mean_s"])
            line += (f", baseline {row['baseline_mean_s']:.1f} s; ratio {ratio:.2f} "
                     f"({without:.2f} without the recovery wait)")
        print(line)
        if "baseline_lab_cpu_s" in row:
            # Per iteration, ours and the baseline's (the same boots and migrations
            # without probes): their difference is what serving our probes cost
            # the real path, when it rises above how much Nova's own work varies.
            times = row["times"]
            print(f"  lab CPU per iteration: ours {row['lab_cpu_s'] / times:.1f} s, "
                  f"baseline {row['baseline_lab_cpu_s'] / times:.1f} s; "
                  f"{row['requests']} metadata requests in ours")

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench scale")
    parser.add_argument("--concurrency", default=None,
                        help="comma-separated (default: 1,10,50,100 on the imitation, "
                             "1,5,10 on the cloud lab)")
    # The lab's guests share two cores: at 1 s, 100 VMs make 100 requests a second,
    # which the lab serves; the plugin's default (0.1 s) saturates it from about 50.
    parser.add_argument("--probe-interval", type=float, default=1.0)
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--lab", choices=("imitation", "cloud"), default="imitation",
                        help="cloud: the real services (tests/lab/cloud), whose network "
                             "holds 11 guests and whose projects 10 servers")
    args = parser.parse_args(argv)
    default = "1,5,10" if args.lab == "cloud" else "1,10,50,100"
    concurrencies = [int(c) for c in (args.concurrency or default).split(",")]
    if args.lab == "cloud":
        return _main_on_cloud(concurrencies, args.probe_interval, not args.no_baseline)
    rows = []
    for concurrency in concurrencies:
        root = Path(tempfile.mkdtemp(prefix="rmdscale"))
        try:
            rows.append(measure(concurrency, args.probe_interval, not args.no_baseline,
                                root))
        finally:
            shutil.rmtree(root, ignore_errors=True)
        print_table(rows[-1:])
        sys.stdout.flush()
    return 0


def _main_on_cloud(concurrencies: list[int], probe_interval: float,
                   baseline: bool) -> int:
    from tests.lab.cloud.lab import Cloud
    cloud = Cloud()
    facts = cloud.up()
    try:
        for concurrency in concurrencies:
            root = Path(tempfile.mkdtemp(prefix="rmdscale"))
            try:
                row = measure_on_cloud(cloud, facts, concurrency, probe_interval,
                                       baseline, root)
            finally:
                shutil.rmtree(root, ignore_errors=True)
            print_table([row])
            sys.stdout.flush()
    finally:
        left = cloud.down()
    if left:
        print(f"cloud lab: could not remove {', '.join(left)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
