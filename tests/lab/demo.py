"""The main job: run the sample task against the lab and point at the HTML report.

    python -m tests.lab.demo [--out-dir DIR] [--task-args JSON]

Starts the lab (needs root), creates a Rally environment for it in a private Rally
home, runs samples/live_migrate_metadata.yaml with samples/lab-args.yaml, writes the
HTML and JSON reports, prints each iteration's figures and the SLA verdict, stops the
lab, and ends with the path of the HTML report.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

from rally_metadata_downtime.records import IterationRecord
from tests.lab.harness import REPO_ROOT, LabProcess
from tests.lab.openstack.config import env_spec
from tests.lab.rally_cli import RallyHome

SAMPLE_TASK = REPO_ROOT / "samples" / "live_migrate_metadata.yaml"
LAB_ARGS = REPO_ROOT / "samples" / "lab-args.yaml"


@contextlib.contextmanager
def lab_with_rally(root: Path, *lab_args: str, live_migrate_timeout: float = 120
                   ) -> Iterator[tuple[LabProcess, RallyHome]]:
    """A fresh lab under root/lab and a private Rally home under root/rally with the
    environment "lab" pointing at it; the lab stops (and is swept) on leaving."""
    with LabProcess(root / "lab", *lab_args) as lab:
        rally = RallyHome(root / "rally", live_migrate_timeout=live_migrate_timeout)
        rally.create_env("lab", env_spec(lab.url))
        yield lab, rally


def run_sample(out_dir: Path, task_args: dict | None = None,
               task_file: Path = SAMPLE_TASK, args_file: Path = LAB_ARGS,
               lab_args: tuple[str, ...] = ()) -> dict:
    """Run a task against a fresh lab; return what the run produced.

    Keys: task_uuid, exit_code (2 = SLA failed), report (the JSON report), html
    (path), injected (the lab's ground-truth windows), leftovers (tenant resources
    still in the lab after the task: empty when Rally cleaned up everything),
    rally_errors (the ERROR lines of Rally's log).
    """
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    with lab_with_rally(out_dir, *lab_args) as (lab, rally):
        rally.run("env", "check", "lab")
        exit_code, task_uuid = rally.start_task(task_file, "lab", args=task_args,
                                                args_file=args_file)
        html = rally.html_report(task_uuid, out_dir / "report.html")
        report = rally.json_report(task_uuid)
        sla_check = rally.sla_check(task_uuid)
        return {
            "task_uuid": task_uuid,
            "exit_code": exit_code,
            "report": report,
            "sla_check_exit_code": sla_check.returncode,
            "html": html,
            "injected": lab.injected_windows(),
            "leftovers": lab.leftovers(),
            "rally_errors": [line for line in rally.log_file.read_text().splitlines()
                             if " ERROR " in line] if rally.log_file.exists() else [],
        }


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
                        help="JSON dict overriding samples/lab-args.yaml")
    args = parser.parse_args(argv)

    result = run_sample(args.out_dir.resolve(), task_args=args.task_args)
    for row in iteration_figures(result["report"]):
        print("  ".join(f"{k}={v}" for k, v in row.items()))
    passed = all(t["pass_sla"] for t in result["report"]["tasks"])
    print(f"SLA: {'PASS' if passed else 'FAIL'} (rally task start exited "
          f"{result['exit_code']}; sla-check exited {result['sla_check_exit_code']})")
    if result["leftovers"]:
        print(f"LEAK: resources left in the lab: {result['leftovers']}")
    print(f"HTML report: {result['html']}")
    return 1 if result["leftovers"] else 0


if __name__ == "__main__":
    sys.exit(main())
