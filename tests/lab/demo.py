"""The main job: run the sample task against the cloud lab and point at the HTML report.

    python -m tests.lab.demo [--out-dir DIR] [--task-args JSON]

Starts the cloud lab (tests/lab/cloud: the real OpenStack services; needs root and
tools/install-lab-cloud.sh), creates a Rally environment for it in a private Rally
home, runs samples/live_migrate_metadata.yaml with samples/cloud-args.yaml, writes
the HTML and JSON reports, prints each iteration's figures and the SLA verdict,
stops the lab, and ends with the path of the HTML report.

The rest of this module runs tasks against the imitation lab (tests/lab/openstack),
which the tests still on it use.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from rally_metadata_downtime.records import IterationRecord
from tests.lab.harness import REPO_ROOT, LabProcess
from tests.lab.openstack.config import env_spec
from tests.lab.rally_cli import RallyHome


@contextlib.contextmanager
def lab_with_rally(root: Path, *lab_args: str, live_migrate_timeout: float = 120
                   ) -> Iterator[tuple[LabProcess, RallyHome]]:
    """A fresh lab under root/lab and a private Rally home under root/rally with the
    environment "lab" pointing at it; the lab stops (and is swept) on leaving."""
    with LabProcess(root / "lab", *lab_args) as lab:
        rally = RallyHome(root / "rally", live_migrate_timeout=live_migrate_timeout)
        rally.create_env("lab", env_spec(lab.url))
        yield lab, rally


def report_workloads(report: dict) -> list[tuple[str, dict]]:
    """(subtask title, workload) of every workload in a `rally task report --json`."""
    return [(subtask["title"], workload) for task in report["tasks"]
            for subtask in task["subtasks"] for workload in subtask["workloads"]]


def iteration_records(workload: dict) -> list[IterationRecord | None]:
    """Each iteration's record, in the report's order (None: it added none)."""
    return [IterationRecord.from_output(it["output"]) for it in workload["data"]]


def iteration_figures(report: dict) -> list[dict]:
    """Per-iteration figures of every workload, from the iterations' records."""
    rows = []
    for _, workload in report_workloads(report):
        for i, (it, record) in enumerate(zip(workload["data"],
                                             iteration_records(workload)), start=1):
            figures = {"iteration": i, "error": bool(it["error"])}
            if record and record.metadata:
                figures.update(metadata_downtime=round(record.metadata.downtime, 3),
                               resolution=round(record.metadata.resolution, 3),
                               recovered=record.metadata.recovered)
            if record and record.network:
                figures["network_downtime"] = round(record.network.downtime, 3)
            rows.append(figures)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.lab.demo",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=REPO_ROOT / "artifacts" / "demo")
    parser.add_argument("--task-args", type=json.loads, default=None,
                        help="JSON dict over samples/cloud-args.yaml")
    args = parser.parse_args(argv)

    from tests.lab.cloud import rally_task
    from tests.lab.cloud.__main__ import bench_line
    from tests.lab.cloud.lab import Cloud
    # A short path: the services' unix sockets are limited to 107 bytes.
    state = Path(tempfile.mkdtemp(prefix="rmdc-demo-", dir="/tmp"))
    cloud = Cloud(state)
    try:
        facts = cloud.up()
        print(bench_line(cloud, facts), flush=True)
        result = rally_task.run_sample(facts, state, args.out_dir.resolve(),
                                       task_args=args.task_args)
        sla_check = result["rally_home"].sla_check(result["task_uuid"]).returncode
    finally:
        left = cloud.down()
        shutil.rmtree(state, ignore_errors=True)
    for row in iteration_figures(result["report"]):
        print("  ".join(f"{k}={v}" for k, v in row.items()))
    passed = all(t["pass_sla"] for t in result["report"]["tasks"])
    print(f"SLA: {'PASS' if passed else 'FAIL'} (rally task start exited "
          f"{result['exit_code']}; sla-check exited {sla_check})")
    leaks = {**result["leftovers"], **({"guests": result["guests_left"]}
                                       if result["guests_left"] else {})}
    if leaks:
        print(f"LEAK: left in the cloud after the task: {leaks}")
    if left:
        print(f"LEAK: the lab could not remove {', '.join(left)}")
    print(f"HTML report: {result['html']}")
    return 1 if leaks or left else 0


if __name__ == "__main__":
    sys.exit(main())
