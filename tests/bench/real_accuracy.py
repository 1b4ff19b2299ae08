"""Accuracy on the real metadata path: python -m tests.bench real-accuracy

Brings the cloud lab up and runs samples/live_migrate_metadata.yaml through the real
`rally`, one workload per fault shape and length, one VM at a time: each VM is
live-migrated once and its real metadata path is broken for that long
(tests/lab/cloud/path_faults.py: the destination's haproxy killed, the VM's metadata
packets dropped on br-int, the destination's agent cut off from Nova's metadata API,
or the port's device_id changed in Neutron to an unknown server's or to a decoy
server's in the VM's project). Each
measured outage is held against two truths: the window the hypervisor held the fault
(its length), and the last failing answer counted where the fault acts (its end).
Root; the cloud lab installed (tools/install-lab-cloud.sh). Prints a table, asserts
nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import tempfile
from pathlib import Path

from tests.helpers import outages_meeting
from tests.lab import rally_report
from tests.lab.cloud import rally_task
from tests.lab.cloud.lab import Cloud
from tests.lab.cloud.path_faults import PATH_SHAPES

LENGTHS = (2.0, 6.0, 20.0)
REPEATS = 4
# The network cut and OVN's switch to the destination come first and last under a
# second here (python -m tests.bench real-outage): shorter faults would be hidden in
# them, and the truth would no longer be the fault's window alone.
SHORTEST = 1.5


@dataclasses.dataclass
class Figure:
    """One VM's outage against its fault."""

    held: float             # the window the hypervisor held the fault (s)
    measured: float | None  # the one measured outage meeting it; None: not one
    end_after_acted: float | None  # its end after the last effect counted
    resolution: float
    acted: int              # effects counted where the fault acts
    start_after_open: float | None = None  # its start after the window opened

    @property
    def error(self) -> float | None:
        return None if self.measured is None else self.measured - self.held


def variants(shapes: list[str], lengths: list[float], repeats: int) -> dict[str, dict]:
    return {f"{shape} {length:g} s": {
        "times": repeats, "concurrency": 1, "allowed_metadata_downtime": 600,
        "recovery_timeout": max(120, 3 * length), "boot_server_kwargs": {"meta": {
            "lab_metadata_outage": f"{length:g}", "lab_metadata_shape": shape,
            "lab_metadata_fault_site": "path"}}}
        for shape in shapes for length in lengths}


def figures(run: dict) -> dict[str, list[Figure]]:
    windows = {w["server_id"]: w for w in run["injected"] if w["kind"] == "metadata"}
    rows: dict[str, list[Figure]] = {}
    for title, workload in rally_report.report_workloads(run["report"]):
        for record in rally_report.iteration_records(workload):
            if record is None or record.error or record.metadata is None \
                    or record.server_id not in windows:
                rows.setdefault(title, []).append(
                    Figure(0, None, None, 0, 0))
                continue
            window = windows[record.server_id]
            start, end = window["start_boottime"], window["end_boottime"]
            meeting, _ = outages_meeting(record, start, end)
            outage = meeting[0] if len(meeting) == 1 else None
            acted_end = window.get("acted_end_boottime")
            rows.setdefault(title, []).append(Figure(
                held=end - start, measured=outage.duration if outage else None,
                end_after_acted=(outage.end - acted_end
                                 if outage and acted_end is not None else None),
                resolution=record.metadata.resolution,
                acted=window.get("acted_count", 0),
                start_after_open=outage.start - start if outage else None))
    return rows


def _range(values: list[float], form: str = ".2f") -> str:
    return f"{min(values):{form}}-{max(values):{form}}" if values else "-"


def table(rows: dict[str, list[Figure]]) -> list[str]:
    lines = ["| shape, length | measured | error, mean / max | start after the window "
             "opened | end after the last counted effect | resolution | effects "
             "counted | within resolution + 0.1 s |", "|---|---|---|---|---|---|---|---|"]
    for title, figs in rows.items():
        errors = [abs(f.error) for f in figs if f.error is not None]
        ends = [f.end_after_acted for f in figs if f.end_after_acted is not None]
        within = sum(1 for f in figs if f.error is not None
                     and abs(f.error) <= f.resolution + 0.1)
        lines.append(
            f"| {title} | {len(errors)}/{len(figs)} | "
            f"{statistics.mean(errors) if errors else 0:.2f} / "
            f"{max(errors) if errors else 0:.2f} s | "
            f"{_range([f.start_after_open for f in figs if f.start_after_open is not None])}"
            f" s | {_range(ends)} s | "
            f"{_range([f.resolution for f in figs if f.measured is not None])} s | "
            f"{_range([f.acted for f in figs if f.measured is not None], 'd')} | "
            f"{within}/{len(figs)} |")
    return lines


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench real-accuracy")
    parser.add_argument("--shapes", default=",".join(PATH_SHAPES))
    parser.add_argument("--lengths", default=",".join(f"{x:g}" for x in LENGTHS))
    parser.add_argument("--repeats", type=int, default=REPEATS)
    args = parser.parse_args(argv)
    shapes = args.shapes.split(",")
    unknown = [s for s in shapes if s not in PATH_SHAPES]
    if unknown:
        parser.error(f"--shapes: {', '.join(unknown)} not injected in the real path "
                     f"(known: {', '.join(PATH_SHAPES)})")
    try:
        lengths = [float(x) for x in args.lengths.split(",")]
    except ValueError:
        parser.error(f"--lengths: not a comma-separated list of seconds: {args.lengths}")
    if any(x < SHORTEST for x in lengths):
        parser.error(f"--lengths: each at least {SHORTEST} s (the real network cut "
                     "would hide a shorter fault)")
    if args.repeats < 1:
        parser.error("--repeats: at least 1")
    state = Path(tempfile.mkdtemp(prefix="rmdc-test-bench", dir="/tmp"))
    out = Path(tempfile.mkdtemp(prefix="rmd-real-accuracy-"))
    task = out / "task.json"
    task.write_text(json.dumps(rally_task.sample_variants(
        variants(shapes, lengths, args.repeats))))
    cloud = Cloud(state)
    cloud.up()
    try:
        run = rally_task.run_sample(cloud.info(), state, out / "run", task_file=task)
    finally:
        cloud.down()
    rows = figures(run)
    print("\n".join(table(rows)))
    print(f"report: {run['html']}")
    complete = all(f.measured is not None for figs in rows.values() for f in figs)
    return 0 if complete else 1
