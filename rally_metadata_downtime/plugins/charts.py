"""Measurements -> Rally `add_output` charts. Pure: no Rally calls, no I/O.

Rally's HTML report pairs additive charts across iterations by position, so every
iteration emits the same additive charts in the same order, failed ones included.
The per-iteration summary table is also what the metadata_downtime SLA reads.
"""

from __future__ import annotations

import dataclasses

from rally_metadata_downtime.analysis import DowntimeReport
from rally_metadata_downtime.ping_log import NetworkDowntime
from rally_metadata_downtime.probe_log import ProbeLog

SUMMARY_TITLE = "Metadata measurement summary"
MAX_TIMELINE_POINTS = 400

# Row labels of the summary table: the SLA's contract with this module.
ROW_MEASURED = "metadata measured"
ROW_DOWNTIME = "metadata downtime (s)"
ROW_LONGEST = "longest metadata outage (s)"
ROW_RECOVERED = "metadata recovered after migration"
ROW_NETWORK = "network downtime (s)"


@dataclasses.dataclass(frozen=True)
class Migration:
    """One live migration, on the guest's uptime clock."""

    start: float
    end: float


@dataclasses.dataclass(frozen=True)
class IterationResult:
    """Everything one iteration measured; any part may be missing after a failure."""

    log: ProbeLog | None = None
    report: DowntimeReport | None = None
    network: NetworkDowntime | None = None
    migrations: tuple[Migration, ...] = ()
    error: str | None = None


def _area(title: str, description: str, label: str, value: float, unit: str) -> dict:
    return {"title": title, "description": description, "chart_plugin": "StackedArea",
            "data": [[label, round(value, 3)]], "label": unit,
            "axis_label": "Iteration"}


def additive_charts(result: IterationResult) -> list[dict]:
    """The four trend charts across iterations, always in this order."""
    report, network = result.report, result.network
    return [
        _area("Metadata downtime",
              "Total time the metadata service did not answer this VM correctly, "
              "estimated from the in-guest probe (0 when the iteration failed before "
              "measuring: see the iteration's error).",
              "downtime", report.total_downtime if report else 0.0, "seconds"),
        _area("Longest metadata outage",
              "The longest single outage seen by the in-guest probe.",
              "longest outage", report.longest_outage if report else 0.0, "seconds"),
        _area("Network downtime",
              "Unanswered pings from the Rally host to the VM during the "
              "migration(s), times the ping interval.",
              "network downtime", network.total_downtime if network else 0.0, "seconds"),
        _area("Failed metadata probes",
              "Probe requests that failed (timeout, refused, HTTP error or an answer "
              "that was not this instance's).",
              "failed probes", report.failures if report else 0, "probes"),
    ]


def summary_table(result: IterationResult) -> dict:
    """The iteration's figures as a table; the SLA reads it by its row labels."""
    report = result.report
    rows = [[ROW_MEASURED, "yes" if report else f"no: {result.error or 'unknown'}"]]
    if report:
        rows += [
            [ROW_DOWNTIME, round(report.total_downtime, 3)],
            [ROW_LONGEST, round(report.longest_outage, 3)],
            ["metadata outages", report.outage_count],
            [ROW_RECOVERED, "yes" if report.recovered else "no"],
            ["probes ok / failed", f"{report.successes} / {report.failures}"],
            ["resolution (s)", round(report.resolution, 3)],
            ["Tempest-style sum of failed probes (s)",
             round(report.tempest_style_downtime, 3)],
            ["unreadable log lines", report.garbage_lines
             + int(report.truncated_last_line)],
        ]
    if result.network:
        rows += [[ROW_NETWORK, round(result.network.total_downtime, 3)],
                 ["pings sent / answered",
                  f"{result.network.sent} / {result.network.received}"]]
    return {"title": SUMMARY_TITLE,
            "description": "Figures of this iteration (times in seconds).",
            "chart_plugin": "Table", "data": {"cols": ["Figure", "Value"], "rows": rows}}


def _thin(points: list[tuple[float, int]]) -> list[tuple[float, int]]:
    """Keep every state change and an even spread of the rest."""
    if len(points) <= MAX_TIMELINE_POINTS:
        return points
    keep = {0, len(points) - 1}
    keep.update(i for i in range(1, len(points)) if points[i][1] != points[i - 1][1])
    keep.update(i - 1 for i in list(keep) if i > 0)
    step = max(1, len(points) // (MAX_TIMELINE_POINTS // 2))
    keep.update(range(0, len(points), step))
    return [points[i] for i in sorted(keep)]


def timeline_chart(result: IterationResult) -> dict | None:
    """Probe verdicts over time, x = seconds since the first migration started."""
    if result.log is None or not result.migrations:
        return None
    origin = result.migrations[0].start
    verdicts = _thin([(round(p.start - origin, 2), int(p.ok)) for p in result.log.probes])
    xs = [x for x, _ in verdicts]
    migrating = [(x, int(any(m.start - origin <= x <= m.end - origin
                             for m in result.migrations))) for x in xs]
    return {"title": "Metadata probe timeline",
            "description": "1 = metadata answered this VM correctly, 0 = it did not; "
                           "the second line is 1 while Nova live-migrated the VM. "
                           "x: seconds since the first migration started.",
            "chart_plugin": "Lines", "axis_label": "seconds since migration start",
            "label": "state (1 = up / migrating)",
            "data": [["metadata answered", [list(v) for v in verdicts]],
                     ["live migration", [list(v) for v in migrating]]]}


def outage_table(result: IterationResult) -> dict | None:
    """One row per outage, placed on the migration's timeline."""
    if result.report is None:
        return None
    origin = result.migrations[0].start if result.migrations else 0.0
    rows = []
    for number, outage in enumerate(result.report.outages, start=1):
        end = "not recovered" if outage.unrecovered else round(outage.end - origin, 2)
        rows.append([number, round(outage.start - origin, 2), end,
                     round(outage.duration, 2),
                     f"{outage.min_duration:.2f} - {outage.max_duration:.2f}",
                     outage.failed_probes,
                     ", ".join(f"{r} x{n}" for r, n in sorted(outage.reasons.items()))])
    return {"title": "Metadata outages",
            "description": "Start and end in seconds since the first migration "
                           "started (negative: before it); duration with its bounds.",
            "chart_plugin": "Table",
            "data": {"cols": ["#", "start (s)", "end (s)", "duration (s)",
                              "bounds (s)", "failed probes", "reasons"],
                     "rows": rows}}


def complete_charts(result: IterationResult) -> list[dict]:
    """Per-iteration charts: summary (always), then timeline and outages if known."""
    charts = [summary_table(result), timeline_chart(result), outage_table(result)]
    return [c for c in charts if c is not None]
