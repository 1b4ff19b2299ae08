"""One iteration's figures: written once by the scenario, read by everything else.

Pure: no Rally calls, no I/O. The scenario fills a Measurement step by step and
turns it into an IterationRecord; the charts draw it, the metadata_downtime SLA and
any export read it back from the iteration's output, where it travels as JSON in a
chart of its own (RECORD_TITLE). Nothing reads a figure back from a human table.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

from rally_metadata_downtime.analysis import DowntimeReport
from rally_metadata_downtime.ping_log import NetworkDowntime
from rally_metadata_downtime.probe_log import ProbeLog

RECORD_TITLE = "Metadata downtime record"
RECORD_VERSION = 3
# Version 1 (before metadata_families): IPv4 only, read as such. Versions 1 and 2
# (before first_answer_after) counted the wait for metadata's first answer as an
# outage: read as they were written.
READABLE_VERSIONS = (1, 2, 3)


class RecordError(ValueError):
    """An iteration's output holds a record this version cannot read."""


@dataclasses.dataclass(frozen=True)
class NovaEvent:
    """One event of Nova's instance action for a migration (host clock, epoch s;
    Nova's controller clock, taken to agree with the Rally host's)."""

    name: str
    start: float | None
    finish: float | None
    result: str | None


@dataclasses.dataclass(frozen=True)
class Migration:
    """One live migration: its window on the guest's uptime clock, its hosts, and
    the downtime that belongs to it: the ping run during it, and the metadata
    outages that began after it started and before the next one did."""

    start: float
    end: float
    source_host: str | None = None
    destination_host: str | None = None
    network_downtime: float | None = None
    metadata_downtime: float | None = None
    # Nova's own account of the migration (its instance action's events); when it
    # has none, `nova_events_note` says why (a policy hides them, an old cloud...).
    nova_events: tuple[NovaEvent, ...] = ()
    nova_events_note: str | None = None

    @property
    def host_pair(self) -> str:
        return f"{self.source_host or '?'} -> {self.destination_host or '?'}"

    @property
    def nova_finished(self) -> float | None:
        """When Nova's last event of this migration finished (host clock)."""
        finishes = [e.finish for e in self.nova_events if e.finish is not None]
        return max(finishes) if finishes else None


@dataclasses.dataclass(frozen=True)
class Watch:
    """MetadataDowntime.boot_and_watch's window: the seconds it watched the VM while
    the task's hooks disrupted the cloud (guest uptime), the host the VM ran on, and
    the ping run's downtime during it."""

    start: float
    end: float
    host: str | None = None
    network_downtime: float | None = None


@dataclasses.dataclass(frozen=True)
class Disruption:
    """One run of a marked hook (the marked_sys_call hook) that overlapped the
    measurement, on the Rally host's clock (epoch s), as the hook wrote it."""

    name: str                      # the hook's command
    triggered_by: str              # Rally's trigger, e.g. "time: 10"
    started_at: float
    finished_at: float | None      # None: still running when the probe stopped
    status: str | None = None      # Rally's hook status: success / failed


@dataclasses.dataclass(frozen=True)
class OutageFigures:
    """One metadata outage (guest uptime, s); max_duration None: an open edge."""

    start: float
    end: float
    duration: float
    min_duration: float
    max_duration: float | None
    failed_probes: int
    reasons: dict[str, int]
    unrecovered: bool


@dataclasses.dataclass(frozen=True)
class MetadataFigures:
    """What the probe log says (seconds; counts of probes)."""

    downtime: float
    longest_outage: float
    recovered: bool
    still_down: float            # seconds down when the probe stopped (unrecovered)
    resolution: float
    tempest_style_downtime: float
    probes_ok: int
    probes_failed: int
    unreadable_lines: int
    outages: tuple[OutageFigures, ...]
    family: str = "ipv4"          # the address family the figures are of
    # Seconds from the probe's first request to metadata's first answer: before
    # it there is no baseline, so it is no downtime. None: a version 1-2 record.
    first_answer_after: float | None = None

    @classmethod
    def from_report(cls, report: DowntimeReport, family: str = "ipv4") -> MetadataFigures:
        return cls(family=family,
            downtime=report.total_downtime, longest_outage=report.longest_outage,
            recovered=report.recovered, still_down=report.unrecovered_downtime,
            resolution=report.resolution,
            tempest_style_downtime=report.tempest_style_downtime,
            first_answer_after=report.first_answer_after,
            probes_ok=report.successes, probes_failed=report.failures,
            unreadable_lines=report.garbage_lines + int(report.truncated_last_line),
            outages=tuple(OutageFigures(
                start=o.start, end=o.end, duration=o.duration,
                min_duration=o.min_duration,
                max_duration=None if math.isinf(o.max_duration) else o.max_duration,
                failed_probes=o.failed_probes, reasons=dict(o.reasons),
                unrecovered=o.unrecovered)
                for o in report.outages))


@dataclasses.dataclass(frozen=True)
class NetworkFigures:
    """What ping from the Rally host says, summed over the migrations."""

    downtime: float
    longest_outage: float
    pings_sent: int
    pings_answered: int
    outages: tuple[tuple[float, float], ...] = ()   # (start, end) on the host clock

    @classmethod
    def from_runs(cls, runs: tuple[NetworkDowntime, ...]) -> NetworkFigures | None:
        if not runs:
            return None
        return cls(downtime=sum(r.total_downtime for r in runs),
                   longest_outage=max(r.longest_outage for r in runs),
                   pings_sent=sum(r.sent for r in runs),
                   pings_answered=sum(r.received for r in runs),
                   outages=tuple(window for r in runs for window in _ping_windows(r)))


def _ping_windows(run: NetworkDowntime) -> list[tuple[float, float]]:
    """Each unanswered run of pings as a window on the host clock: from one interval
    after the last answer before it, for as long as it counts."""
    windows = []
    for outage in run.outages:
        length = outage.duration(run.interval)
        if outage.last_reply_before is not None:
            start = outage.last_reply_before + run.interval
        elif outage.first_reply_after is not None:
            start = outage.first_reply_after - length
        else:
            continue
        windows.append((start, start + length))
    return windows


@dataclasses.dataclass(frozen=True)
class IterationRecord:
    """An iteration's figures. `metadata` is None when nothing was measured (then
    `error` says why); `network` is None when ping did not run to the end.

    `metadata` holds the first family of `families` (the metadata_families argument),
    `more_metadata` the others' figures, each with its `family`."""

    metadata: MetadataFigures | None
    network: NetworkFigures | None
    migrations: tuple[Migration, ...]
    error: str | None
    # Rally host time = guest uptime + clock_offset (None: never read the guest clock).
    clock_offset: float | None = None
    server_id: str | None = None        # the VM measured, to find it in the cloud's logs
    # MetadataDowntime.boot_and_watch: its watch window (no migrations then) and the
    # marked hooks that ran during the measurement.
    watch: Watch | None = None
    disruptions: tuple[Disruption, ...] = ()
    families: tuple[str, ...] = ("ipv4",)
    more_metadata: tuple[MetadataFigures, ...] = ()

    @property
    def measured(self) -> bool:
        return self.metadata is not None

    @property
    def metadata_by_family(self) -> dict[str, MetadataFigures]:
        """Each measured family's figures, in the order of `families`."""
        figures = [m for m in (self.metadata, *self.more_metadata) if m is not None]
        return {m.family: m for m in figures}

    @property
    def event(self) -> str:
        """What the iteration measured metadata around, for people's sentences."""
        return "the watch" if self.watch is not None else "the migration"

    def to_guest(self, host_time: float | None) -> float | None:
        """A Rally host time on the guest's uptime clock (None: unknown)."""
        if host_time is None or self.clock_offset is None:
            return None
        return host_time - self.clock_offset

    def to_json(self) -> str:
        return json.dumps({"version": RECORD_VERSION, **dataclasses.asdict(self)},
                          sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> IterationRecord:
        try:
            data = json.loads(text)
            version = data.pop("version", None)
            if version not in READABLE_VERSIONS:
                raise RecordError(f"record version {version!r}, this plugin reads "
                                  f"{', '.join(map(str, READABLE_VERSIONS))}")
            metadata = data["metadata"]
            if metadata is not None:
                metadata = _metadata_figures(metadata)
            network = data["network"]
            if network is not None:
                network = NetworkFigures(**{**network, "outages": tuple(
                    tuple(window) for window in network["outages"])})
            return cls(metadata=metadata, network=network,
                       migrations=tuple(Migration(**{**m, "nova_events": tuple(
                           NovaEvent(**e) for e in m["nova_events"])})
                           for m in data["migrations"]),
                       error=data["error"], clock_offset=data["clock_offset"],
                       server_id=data["server_id"],
                       # Records written before boot_and_watch existed have neither.
                       watch=Watch(**data["watch"]) if data.get("watch") else None,
                       disruptions=tuple(Disruption(**d)
                                         for d in data.get("disruptions", ())),
                       # Version 1 records are IPv4 only.
                       families=tuple(data.get("families", ("ipv4",))),
                       more_metadata=tuple(_metadata_figures(m)
                                           for m in data.get("more_metadata", ())))
        except (ValueError, KeyError, TypeError) as e:
            raise RecordError(f"unreadable {RECORD_TITLE}: {e}") from e

    def to_output(self) -> dict:
        """The record as a complete output chart (Rally carries only charts)."""
        return {"title": RECORD_TITLE,
                "description": "This iteration's figures as JSON: what the "
                               "metadata_downtime SLA and exports read.",
                "chart_plugin": "TextArea", "data": [self.to_json()]}

    @classmethod
    def from_output(cls, output: dict[str, Any]) -> IterationRecord | None:
        """The record in an iteration's output (Rally's `output` dict), None if the
        iteration added none (it failed before the scenario could)."""
        for chart in output.get("complete", []):
            if chart.get("title") == RECORD_TITLE:
                return cls.from_json(chart["data"][0])
        return None


def _metadata_figures(data: dict) -> MetadataFigures:
    return MetadataFigures(**{**data, "outages": tuple(
        # Versions 1-2 flagged an outage the log began inside (the first answer's wait).
        OutageFigures(**{k: v for k, v in o.items() if k != "began_before_log"})
        for o in data["outages"])})


@dataclasses.dataclass
class Measurement:
    """What an iteration has measured so far; the scenario fills it in step by step."""

    log: ProbeLog | None = None
    report: DowntimeReport | None = None
    networks: list[NetworkDowntime] = dataclasses.field(default_factory=list)
    migrations: list[Migration] = dataclasses.field(default_factory=list)
    error: str | None = None
    clock_offset: float | None = None
    server_id: str | None = None
    watch: Watch | None = None
    disruptions: list[Disruption] = dataclasses.field(default_factory=list)
    # metadata_families; `report` is the first one's, `more_reports` the others'.
    families: tuple[str, ...] = ("ipv4",)
    more_reports: dict[str, DowntimeReport] = dataclasses.field(default_factory=dict)

    def record(self) -> IterationRecord:
        error = self.error
        if error is None and self.report is None:
            error = "the iteration stopped before measuring"
        metadata = (MetadataFigures.from_report(self.report, self.families[0])
                    if self.report else None)
        return IterationRecord(
            families=tuple(self.families),
            more_metadata=tuple(MetadataFigures.from_report(report, family)
                                for family, report in self.more_reports.items()),
            metadata=metadata, network=NetworkFigures.from_runs(tuple(self.networks)),
            migrations=_attribute(tuple(self.migrations), metadata), error=error,
            clock_offset=self.clock_offset, server_id=self.server_id, watch=self.watch,
            disruptions=tuple(self.disruptions))


def owning_migration_index(migrations: tuple[Migration, ...], start: float) -> int | None:
    """The migration an outage beginning at `start` belongs to: the last one that
    started before it (the first one when it began before all of them)."""
    if not migrations:
        return None
    started_before = [i for i, m in enumerate(migrations) if m.start <= start]
    return started_before[-1] if started_before else 0


def owning_migration(migrations: tuple[Migration, ...], start: float) -> Migration | None:
    index = owning_migration_index(migrations, start)
    return None if index is None else migrations[index]


def _attribute(migrations: tuple[Migration, ...],
               metadata: MetadataFigures | None) -> tuple[Migration, ...]:
    """Each migration's metadata downtime: the outages that belong to it."""
    if metadata is None or not migrations:
        return migrations
    downtime = [0.0] * len(migrations)
    for outage in metadata.outages:
        downtime[owning_migration_index(migrations, outage.start)] += outage.duration
    return tuple(dataclasses.replace(m, metadata_downtime=d)
                 for m, d in zip(migrations, downtime))


def owning_disruption(record: IterationRecord, start: float) -> Disruption | None:
    """The marked hook run an outage beginning at `start` (guest uptime) belongs to:
    the last one that started before it (the first one when it began before all)."""
    runs = [d for d in record.disruptions if record.to_guest(d.started_at) is not None]
    if not runs:
        return None
    started_before = [d for d in runs if record.to_guest(d.started_at) <= start]
    return started_before[-1] if started_before else runs[0]
