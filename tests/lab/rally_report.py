"""Reading `rally task report --json`: its workloads, and each iteration's record
(rally_metadata_downtime.records) and figures (pure: no I/O)."""

from __future__ import annotations

from rally_metadata_downtime.records import IterationRecord


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
