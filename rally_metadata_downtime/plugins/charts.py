"""An iteration's record (and its probe log) -> Rally `add_output` charts. Pure: no
Rally calls, no I/O.

Rally's HTML report pairs additive charts across iterations by position, so every
iteration emits the same additive charts in the same order, failed ones included,
with placeholders where nothing was measured. The tables are for people: the SLA
reads the record itself (records.py), never a table.
"""

from __future__ import annotations

import math

from rally_metadata_downtime import records
from rally_metadata_downtime.probe_log import ProbeLog
from rally_metadata_downtime.records import IterationRecord

SUMMARY_TITLE = "Metadata measurement summary"
TIMELINE_TITLE = "Metadata probe timeline"
OUTAGES_TITLE = "Metadata outages"
ADDITIVE_TITLES = ("Metadata downtime", "Longest metadata outage", "Network downtime",
                   "Failed metadata probes", "Downtime by host pair")
MAX_TIMELINE_POINTS = 400
# The timeline's migration box: just outside the probe lines' 0 and 1; Nova's own
# account of it just outside that.
MIGRATION_LOW, MIGRATION_HIGH = -0.1, 1.1
NOVA_LOW, NOVA_HIGH = -0.2, 1.2

# Row labels of the summary table that tests of the drawn report look up.
ROW_MEASURED = "metadata measured"
ROW_DOWNTIME = "metadata downtime (s)"
ROW_RECOVERED = "metadata recovered"
ROW_NETWORK = "network downtime (s)"


def _area(title: str, description: str, label: str, value: float, unit: str) -> dict:
    return {"title": title, "description": description, "chart_plugin": "StackedArea",
            "data": [[label, round(value, 3)]], "label": unit,
            "axis_label": "Iteration"}


_NOT_MEASURED = " 0 when this iteration did not measure it: see its summary table."


def host_pair_table(record: IterationRecord) -> dict:
    """Per migration, its metadata and network downtime under its source -> destination
    pair (a watch: under the VM's host); Rally's StatsTable aggregates the rows of
    every iteration by name."""
    rows = []
    watch = record.watch
    if watch is not None:
        if record.metadata is not None:
            rows.append([f"{watch.host or '?'} (watched): metadata",
                         round(record.metadata.downtime, 3)])
        if watch.network_downtime is not None:
            rows.append([f"{watch.host or '?'} (watched): network",
                         round(watch.network_downtime, 3)])
    for migration in record.migrations:
        if migration.metadata_downtime is not None:
            rows.append([f"{migration.host_pair}: metadata",
                         round(migration.metadata_downtime, 3)])
        if migration.network_downtime is not None:
            rows.append([f"{migration.host_pair}: network",
                         round(migration.network_downtime, 3)])
    return {"title": ADDITIVE_TITLES[4],
            "description": "Metadata and network downtime of each live migration by "
                           "source -> destination host (seconds; Count: "
                           "migrations), or of each watch by the VM's host. A "
                           "metadata outage belongs to the last migration that "
                           "started before it.",
            "chart_plugin": "StatsTable", "data": rows}


def _family_areas(record: IterationRecord) -> list[dict]:
    """Each family after the first (metadata_families) has its own downtime trend,
    after the others: every iteration of a workload asks for the same families."""
    by_family = record.metadata_by_family
    return [_area(f"Metadata downtime ({family})",
                  f"Total time the metadata service did not answer this VM correctly "
                  f"over {family}." + _NOT_MEASURED,
                  f"{family} metadata downtime",
                  by_family[family].downtime if family in by_family else 0.0, "seconds")
            for family in record.families[1:]]


def additive_charts(record: IterationRecord) -> list[dict]:
    """The trend charts across iterations, always these, in this order (a family
    after the first adds its own downtime last)."""
    metadata, network = record.metadata, record.network
    first = ("" if record.families == ("ipv4",)
             else f" The first of metadata_families: {record.families[0]}.")
    return [
        _area(ADDITIVE_TITLES[0],
              "Total time the metadata service did not answer this VM correctly, "
              "estimated from the in-guest probe (an unrecovered outage counts only "
              "what the probe saw)." + first + _NOT_MEASURED,
              "metadata downtime", metadata.downtime if metadata else 0.0, "seconds"),
        _area(ADDITIVE_TITLES[1],
              "The longest single outage seen by the in-guest probe." + _NOT_MEASURED,
              "longest outage", metadata.longest_outage if metadata else 0.0, "seconds"),
        _area(ADDITIVE_TITLES[2],
              "Unanswered pings from the Rally host to the VM during the live "
              "migration(s) or the watch, times the ping interval." + _NOT_MEASURED,
              "network downtime", network.downtime if network else 0.0, "seconds"),
        _area(ADDITIVE_TITLES[3],
              "Probe requests that failed (timeout, refused, HTTP error or an answer "
              "that was not this instance's)." + _NOT_MEASURED,
              "failed probes", metadata.probes_failed if metadata else 0, "probes"),
        host_pair_table(record),
        *_family_areas(record),
    ]


def _seconds(value: float | None) -> float | str:
    return "unbounded" if value is None or math.isinf(value) else round(value, 3)


def summary_table(record: IterationRecord) -> dict:
    """The iteration's figures as a table, for people."""
    metadata, network = record.metadata, record.network
    rows: list[list] = [[ROW_MEASURED, "yes" if metadata else
                         f"no: {record.error or 'unknown reason'}"]]
    if metadata:
        rows += [
            [ROW_DOWNTIME, round(metadata.downtime, 3)],
            ["longest metadata outage (s)", round(metadata.longest_outage, 3)],
            ["metadata outages", len(metadata.outages)],
            [ROW_RECOVERED, "yes" if metadata.recovered else "no"],
            ["still down when the probe stopped (s)", round(metadata.still_down, 3)],
            ["probes ok / failed", f"{metadata.probes_ok} / {metadata.probes_failed}"],
            ["resolution (s)", round(metadata.resolution, 3)],
            ["Tempest-style sum of failed probes (s)",
             round(metadata.tempest_style_downtime, 3)],
            ["metadata's first answer, after the probe started (s; no downtime)",
             "not recorded" if metadata.first_answer_after is None
             else round(metadata.first_answer_after, 3)],
            ["unreadable log lines", metadata.unreadable_lines],
        ]
    if record.families != ("ipv4",):
        rows.insert(1, ["metadata families", ", ".join(record.families)
                        + f" (rows without a family: {record.families[0]})"])
        for family, figures in list(record.metadata_by_family.items())[1:]:
            rows += [
                [f"{family} {ROW_DOWNTIME}", round(figures.downtime, 3)],
                [f"{family} longest metadata outage (s)", round(figures.longest_outage, 3)],
                [f"{family} metadata outages", len(figures.outages)],
                [f"{family} {ROW_RECOVERED}", "yes" if figures.recovered else "no"],
                [f"{family} probes ok / failed",
                 f"{figures.probes_ok} / {figures.probes_failed}"],
                [f"{family} resolution (s)", round(figures.resolution, 3)],
            ]
    if network:
        rows += [[ROW_NETWORK, round(network.downtime, 3)],
                 ["longest network outage (s)", round(network.longest_outage, 3)],
                 ["pings sent / answered",
                  f"{network.pings_sent} / {network.pings_answered}"]]
    if record.migrations:
        rows.append(["live migrations (s)", ", ".join(
            f"{m.end - m.start:.1f}" for m in record.migrations)])
    if record.watch is not None:
        rows += [["watched (s)", round(record.watch.end - record.watch.start, 1)],
                 ["host of the VM", record.watch.host or "unknown"],
                 ["marked hook runs", "; ".join(
                     _hook_run_text(d, record) for d in record.disruptions) or "none"]]
    if metadata and record.error:
        rows.append(["error", record.error])
    return {"title": SUMMARY_TITLE,
            "description": "Figures of this iteration (times in seconds).",
            "chart_plugin": "Table", "data": {"cols": ["Figure", "Value"], "rows": rows}}


def _hook_run_text(run: records.Disruption, record: IterationRecord) -> str:
    """A hook run for people: its command and its times in the watch's seconds."""
    start = record.to_guest(run.started_at)
    origin = record.watch.start if record.watch else 0.0
    if start is None:
        return run.name
    end = record.to_guest(run.finished_at)
    until = f"{end - origin:.2f}" if end is not None else "still running"
    return (f"{run.name} ({run.triggered_by}; {start - origin:.2f} - {until} s, "
            f"{run.status or 'running'})")


def _thin(points: list[tuple[float, int]], limit: int = MAX_TIMELINE_POINTS
          ) -> list[tuple[float, int]]:
    """Keep both sides of every state change and an even spread of the rest."""
    if len(points) <= limit:
        return points
    keep = {0, len(points) - 1}
    for i in range(1, len(points)):
        if points[i][1] != points[i - 1][1]:
            keep.update((i - 1, i))
    step = max(1, len(points) // max(1, limit - len(keep)))
    keep.update(range(0, len(points), step))
    return [points[i] for i in sorted(keep)]


def _box_series(spans: list[tuple[float, float]], origin: float, first_x: float,
                last_x: float, low: float, high: float) -> list[list[float]]:
    """A box per span, at `high` within it and `low` elsewhere: both outside the
    probes' 0 and 1, so a box never hides a probe line and its edges cross the
    whole chart."""
    points = [[min(first_x, 0.0), low]]
    for span_start, span_end in spans:
        start, end = round(span_start - origin, 2), round(span_end - origin, 2)
        points += [[start, low], [start, high], [end, high], [end, low]]
    points.append([max(last_x, points[-1][0]), low])
    return points


def _nova_spans(record: IterationRecord) -> list[tuple[float, float]]:
    """Each migration as Nova's events span it, on the guest's clock."""
    if record.clock_offset is None:
        return []
    spans = []
    for migration in record.migrations:
        starts = [e.start for e in migration.nova_events if e.start is not None]
        if starts and migration.nova_finished is not None:
            spans.append((min(starts) - record.clock_offset,
                          migration.nova_finished - record.clock_offset))
    return spans


def timeline_chart(log: ProbeLog | None, record: IterationRecord) -> dict | None:
    """Probe verdicts over time, x = seconds since the first migration started (or
    the watch began)."""
    if record.watch is not None:
        return _watch_timeline(log, record)
    migrations = record.migrations
    if log is None or not log.probes or not migrations:
        return None
    origin = migrations[0].start
    verdicts = _verdicts(log, record.families[0], origin)
    if not verdicts:
        return None
    first_x, last_x = verdicts[0][0], verdicts[-1][0]
    series = [["probe ok", [[x, ok] for x, ok in verdicts]],
              ["live migration", _box_series([(m.start, m.end) for m in migrations],
                                             origin, first_x, last_x,
                                             MIGRATION_LOW, MIGRATION_HIGH)],
              ["probe failed", [[x, 1 - ok] for x, ok in verdicts]]]
    series += _family_series(log, record, origin)
    nova = _nova_spans(record)
    if nova:
        series.append(["live migration (Nova's events)", _box_series(
            nova, origin, first_x, last_x, NOVA_LOW, NOVA_HIGH)])
        nova_text = (" The 'live migration (Nova's events)' box spans Nova's own "
                     "instance-action events of each migration (the cloud's clock).")
    else:
        notes = {m.nova_events_note for m in migrations if m.nova_events_note}
        nova_text = (" Nova's events are not shown: " + "; ".join(sorted(notes)) + "."
                     if notes else "")
    return {"title": TIMELINE_TITLE,
            "description": "Each in-guest probe at its launch time: 'probe ok' is 1 "
                           "when metadata answered this VM correctly, 'probe failed' "
                           "is 1 when it did not. The 'live migration' box spans the "
                           "time Nova live-migrated the VM as Rally saw it (from the "
                           "request to ACTIVE on the new host)." + nova_text +
                           _families_text(record) +
                           " x: seconds since the first live migration started.",
            "chart_plugin": "Lines",
            "axis_label": "seconds since the live migration started",
            "label": "1 = yes",
            # Rally colours series by position (dark blue, light blue, orange):
            # this order draws failures in orange, the box in a pale line.
            "data": series}


def _verdicts(log: ProbeLog, family: str, origin: float) -> list[tuple[float, int]]:
    return _thin([(round(p.start - origin, 2), int(p.ok)) for p in log.probes
                  if p.family == family])


def _family_series(log: ProbeLog, record: IterationRecord, origin: float) -> list:
    """The probe lines of each family after the first, after every other series
    (Rally colours series by position: the first family's keep their colours)."""
    series = []
    for family in record.families[1:]:
        verdicts = _verdicts(log, family, origin)
        series += [[f"{family} probe ok", [[x, ok] for x, ok in verdicts]],
                   [f"{family} probe failed", [[x, 1 - ok] for x, ok in verdicts]]]
    return series


def _families_text(record: IterationRecord) -> str:
    if record.families == ("ipv4",):
        return ""
    return (f" The probe polled {' and '.join(record.families)} metadata; 'probe ok' "
            f"and 'probe failed' are {record.families[0]}'s, each other family has its "
            f"own pair of lines.")


def _hook_spans(record: IterationRecord, last: float) -> list[tuple[float, float]]:
    """Each marked hook run on the guest's clock; one still running ends at `last`."""
    spans = []
    for run in record.disruptions:
        start, end = record.to_guest(run.started_at), record.to_guest(run.finished_at)
        if start is not None:
            spans.append((start, last if end is None else end))
    return spans


def _watch_timeline(log: ProbeLog | None, record: IterationRecord) -> dict | None:
    """boot_and_watch's timeline: the same probe lines, the marked hook runs where
    the migrations are, and the watch window outside them."""
    if log is None or not log.probes:
        return None
    watch = record.watch
    origin = watch.start
    verdicts = _verdicts(log, record.families[0], origin)
    if not verdicts:
        return None
    first_x, last_x = verdicts[0][0], verdicts[-1][0]
    last_probe = max(p.start for p in log.probes)
    series = [["probe ok", [[x, ok] for x, ok in verdicts]],
              ["hook run", _box_series(_hook_spans(record, last_probe), origin,
                                       first_x, last_x, MIGRATION_LOW, MIGRATION_HIGH)],
              ["probe failed", [[x, 1 - ok] for x, ok in verdicts]],
              ["watch", _box_series([(watch.start, watch.end)], origin, first_x,
                                    last_x, NOVA_LOW, NOVA_HIGH)],
              *_family_series(log, record, origin)]
    if record.disruptions:
        hooks = ("The 'hook run' box spans each run of a marked_sys_call hook as "
                 "the Rally host's clock saw it: " + "; ".join(
                     _hook_run_text(d, record) for d in record.disruptions) + ".")
    else:
        hooks = ("No marked hook ran during the measurement (runs of Rally's own "
                 "sys_call are not marked: use marked_sys_call; Rally's Hooks tab "
                 "has their times).")
    return {"title": TIMELINE_TITLE,
            "description": "Each in-guest probe at its launch time: 'probe ok' is 1 "
                           "when metadata answered this VM correctly, 'probe failed' "
                           "is 1 when it did not. " + hooks + " The 'watch' box spans "
                           "the watch." + _families_text(record) +
                           " x: seconds since the watch began.",
            "chart_plugin": "Lines",
            "axis_label": "seconds since the watch began",
            "label": "1 = yes",
            "data": series}


def _outage_row(number, outage, origin: float) -> list:
    """An outage table's columns up to its reasons, in seconds since `origin`."""
    end = "not recovered" if outage.unrecovered else round(outage.end - origin, 2)
    return [number, round(outage.start - origin, 2), end, round(outage.duration, 2),
            f"{_seconds(outage.min_duration)} - {_seconds(outage.max_duration)}",
            outage.failed_probes,
            ", ".join(f"{r} x{n}" for r, n in sorted(outage.reasons.items()))]


def outage_table(record: IterationRecord) -> dict | None:
    """One row per outage, placed on the migration's timeline."""
    if record.metadata is None:
        return None
    if record.watch is not None:
        return _watch_outage_table(record)
    origin = record.migrations[0].start if record.migrations else 0.0
    rows = []
    for number, outage in _numbered_outages(record):
        rows.append(_outage_row(number, outage, origin) + [
            _relative(outage.start, outage.end, _nova_finish(record, outage))])
    where = "the first migration started" if record.migrations else "the guest booted"
    return {"title": OUTAGES_TITLE,
            "description": f"Start and end in seconds since {where} (negative: "
                           f"before it); the estimate takes the middle of each edge's "
                           f"interval, the bounds are the shortest and longest "
                           f"durations the probes allow. The last column places the "
                           f"outage against the end of Nova's events for its "
                           f"migration (negative: before Nova was done).",
            "chart_plugin": "Table",
            "data": {"cols": ["#", "start (s)", "end (s)", "duration (s)",
                              "bounds (s)", "failed probes", "reasons",
                              "start / end after Nova finished (s)"],
                     "rows": rows}}


def _watch_outage_table(record: IterationRecord) -> dict:
    """boot_and_watch's outages, placed against the watch and the marked hook run
    each belongs to (the last one that started before it)."""
    origin = record.watch.start
    rows = []
    for number, outage in _numbered_outages(record):
        run = records.owning_disruption(record, outage.start)
        rows.append(_outage_row(number, outage, origin) + [
            _relative(outage.start, outage.end, record.to_guest(run.started_at))
            if run else "no marked hook ran"])
    return {"title": OUTAGES_TITLE,
            "description": "Start and end in seconds since the watch began "
                           "(negative: before it); the estimate takes the middle of "
                           "each edge's interval, the bounds are the shortest and "
                           "longest durations the probes allow. The last column "
                           "places the outage against the start of the marked hook "
                           "run it belongs to (the last one started before it).",
            "chart_plugin": "Table",
            "data": {"cols": ["#", "start (s)", "end (s)", "duration (s)",
                              "bounds (s)", "failed probes", "reasons",
                              "start / end after the hook run started (s)"],
                     "rows": rows}}


def _numbered_outages(record: IterationRecord) -> list[tuple[int | str, records.OutageFigures]]:
    """Every family's outages, numbered 1, 2...; "ipv6 1" when the probe polled more
    than IPv4."""
    named = record.families != ("ipv4",)
    return [(f"{family} {number}" if named else number, outage)
            for family, figures in record.metadata_by_family.items()
            for number, outage in enumerate(figures.outages, start=1)]


def _nova_finish(record: IterationRecord, outage: records.OutageFigures) -> float | None:
    """When Nova finished the outage's migration (guest clock), if known."""
    owner = records.owning_migration(record.migrations, outage.start)
    finish = owner.nova_finished if owner else None
    return None if finish is None or record.clock_offset is None \
        else finish - record.clock_offset


def _relative(start: float, end: float, finish: float | None) -> str:
    if finish is None:
        return "unknown"
    return f"{start - finish:+.2f} / {end - finish:+.2f}"


def complete_charts(record: IterationRecord, log: ProbeLog | None) -> list[dict]:
    """Per-iteration charts: summary (always), timeline and outages if known, and
    last the record itself."""
    charts = [summary_table(record), timeline_chart(log, record),
              outage_table(record), record.to_output()]
    return [c for c in charts if c is not None]
