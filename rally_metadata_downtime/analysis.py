"""Outages, downtime and recovery from a parsed probe log. Pure: no I/O.

Each probe is evidence about the service at one instant, its *sample time*: a failure
at its launch (`start`: from then on, nothing answered within the timeout), a success
at its end (the answer arrived then; a request launched into a blackout can still
succeed once the path is back, and must not count as "up" at its launch). An outage
is a maximal run, in sample-time order, of failed probes j..k with sample times
t[j]..t[k]:

- it began in (t[j-1], t[j]]: after the last success before it, by the first failure;
- it ended in (t[k], t[k+1]]: after the last failure, by the next success.

Each edge is estimated at the middle of its interval, so an edge estimate is off by
at most half the spacing around that edge, and a duration by at most half the
spacing at each of its two edges (the resolution). One with no success after it is
*unrecovered*: its estimate then only counts what the log saw, its upper bound is
infinite, and the report says so.

Failures before the first success are not an outage: metadata had not answered this
VM yet (on a real cloud, its host's metadata proxy may still be being set up when
the VM boots), so there is no baseline to measure a loss against. They are reported
apart, as the wait for the first answer, and the scenarios start the disruption only
after it.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import statistics

from rally_metadata_downtime.probe_log import Probe, ProbeLog


class AnalysisError(ValueError):
    """The log cannot give a trustworthy figure."""


class NoSuccessfulProbe(AnalysisError):
    """Metadata never answered this VM correctly: there is no baseline to measure from."""


@dataclasses.dataclass(frozen=True)
class Outage:
    """Failed probes j..k and the successes that bound them (None: the log ended
    inside the outage).

    Times are guest uptime seconds. The four launch times are the bounds of the
    outage's edges; `start`/`end`/`duration` are the midpoint estimates and
    `min_duration`/`max_duration` the bounds of the duration (max is math.inf when
    unrecovered).
    """

    last_ok_before: float          # s[j-1]: earliest possible start
    first_failed: float            # s[j]:   latest possible start
    last_failed: float             # s[k]:   earliest possible end
    first_ok_after: float | None   # s[k+1]: latest possible end
    failed_probes: int
    reasons: dict[str, int]

    @property
    def earliest_start(self) -> float:
        return self.last_ok_before

    @property
    def latest_start(self) -> float:
        return self.first_failed

    @property
    def earliest_end(self) -> float:
        return self.last_failed

    @property
    def latest_end(self) -> float | None:
        return self.first_ok_after

    @property
    def unrecovered(self) -> bool:
        return self.first_ok_after is None

    @property
    def start(self) -> float:
        """Estimated start."""
        return (self.last_ok_before + self.first_failed) / 2

    @property
    def end(self) -> float:
        """Estimated end; the last failure when the log ended inside the outage."""
        if self.first_ok_after is None:
            return self.last_failed
        return (self.last_failed + self.first_ok_after) / 2

    @property
    def duration(self) -> float:
        """The estimate: end - start (a lower bound when an edge is open)."""
        return self.end - self.start

    @property
    def estimate(self) -> float:
        return self.duration

    @property
    def min_duration(self) -> float:
        return self.last_failed - self.first_failed

    @property
    def max_duration(self) -> float:
        if self.first_ok_after is None:
            return math.inf
        return self.first_ok_after - self.last_ok_before

    @property
    def bounds(self) -> tuple[float, float]:
        return self.min_duration, self.max_duration

    def to_dict(self) -> dict:
        """Plain JSON data; an unknown bound (open edge) is None."""
        return {"start": self.start, "end": self.end, "duration": self.duration,
                "min_duration": self.min_duration,
                "max_duration": None if math.isinf(self.max_duration) else self.max_duration,
                "earliest_start": self.earliest_start, "latest_start": self.latest_start,
                "earliest_end": self.earliest_end, "latest_end": self.latest_end,
                "failed_probes": self.failed_probes, "reasons": dict(self.reasons),
                "unrecovered": self.unrecovered}


@dataclasses.dataclass(frozen=True)
class DowntimeReport:
    """What one probe log says about metadata availability (times: guest uptime, s)."""

    probes: int
    successes: int
    failures: int
    outages: tuple[Outage, ...]
    total_downtime: float
    tempest_style_downtime: float
    longest_outage: float
    first_probe_at: float
    last_probe_at: float
    first_answer_after: float      # from the first probe to the first success
    recovered: bool
    recovered_at: float | None
    settled_for: float
    unrecovered_downtime: float
    resolution: float
    interval: float | None
    garbage_lines: int
    truncated_last_line: bool
    stopped: bool
    clock_reset: bool

    @property
    def outage_count(self) -> int:
        return len(self.outages)

    def to_dict(self) -> dict:
        """Plain JSON-serialisable figures, for Rally's output and the SLA."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["outages"] = [o.to_dict() for o in self.outages]
        data["outage_count"] = self.outage_count
        return data


def sample_time(probe: Probe) -> float:
    """When a probe tells the service's state: a success at its end, a failure at its launch."""
    return probe.end if probe.ok else probe.start


def _outages(probes: tuple[Probe, ...]) -> list[Outage]:
    """The outages of `probes`, which begin with a success."""
    outages = []
    run: list[Probe] = []
    last_ok = probes[0].end
    for probe in probes:
        if not probe.ok:
            run.append(probe)
            continue
        if run:
            outages.append(_outage(run, last_ok, probe.end))
            run = []
        last_ok = probe.end
    if run:
        outages.append(_outage(run, last_ok, None))
    return outages


def _outage(run: list[Probe], last_ok: float, next_ok: float | None) -> Outage:
    return Outage(last_ok_before=last_ok, first_failed=run[0].start,
                  last_failed=run[-1].start, first_ok_after=next_ok,
                  failed_probes=len(run),
                  reasons=dict(collections.Counter(p.reason for p in run)))


def _resolution(probes: tuple[Probe, ...], outages: list[Outage],
                interval: float | None) -> float:
    """How far a measured outage duration can be from the true one, in seconds.

    An outage's start lies in (s[j-1], s[j]] and its end in (s[k], s[k+1]]; each
    estimate is the middle of its interval, so the duration is off by at most half
    of each width: their mean. The resolution is the largest such bound over all
    outages (an edge the log does not bound adds nothing to it). The probe
    re-probes sooner while requests fail fast, so an outage's end is often known
    more closely than its start. Without outages it is the median launch spacing:
    roughly the shortest outage the probe would have caught. With a single probe
    it is the configured interval.
    """
    bounds = []
    for outage in outages:
        widths = [outage.first_failed - outage.last_ok_before]
        if outage.first_ok_after is not None:
            widths.append(outage.first_ok_after - outage.last_failed)
        bounds.append(sum(widths) / 2)
    if bounds:
        return max(bounds)
    gaps = [sample_time(b) - sample_time(a) for a, b in zip(probes, probes[1:])]
    if gaps:
        return statistics.median(gaps)
    return interval or 0.0


def _tempest_style(probes: tuple[Probe, ...]) -> float:
    """Tempest's figure: each failed line books the time since the previous line."""
    return sum(sample_time(b) - sample_time(a) for a, b in zip(probes, probes[1:])
               if not b.ok)


def _recovery(probes: tuple[Probe, ...], since: float,
              settle: float) -> tuple[float, float] | None:
    """(recovered_at, settled_for) of the first run of successes at or after `since`
    that lasted `settle` s, or else of the run that ends the log; None if neither."""
    runs: list[list[float]] = [[]]
    for probe in probes:
        if not probe.ok:
            runs.append([])
        elif probe.end >= since:
            runs[-1].append(probe.end)
    for i, run in enumerate(runs):
        if run and (i == len(runs) - 1 or run[-1] - run[0] >= settle):
            last = sample_time(probes[-1]) if i == len(runs) - 1 else run[-1]
            return run[0], last - run[0]
    return None


def analyse(log: ProbeLog, recovered_after: float | None = None,
            settle: float = math.inf) -> DowntimeReport:
    """Measure outages in `log`; judge recovery after `recovered_after` (guest uptime).

    Metadata has recovered when, at or after `recovered_after` (e.g. the end of the
    live migration), it kept answering for `settle` s, or the log ends with a run of
    successes that holds such a probe. `recovered_at` is when that run, or its part
    after `recovered_after`, began, and `settled_for` how long it lasted. A failure
    after a settled recovery (the probe's last requests on a loaded guest) is an
    outage of its own, counted in the downtime; it does not undo the recovery. A log
    spanning two boots (`clock_reset`) never counts as recovered.

    Raises NoSuccessfulProbe (an AnalysisError, a ValueError) when no probe ever
    succeeded: without a baseline there is nothing to measure an outage against.
    """
    probes = log.probes
    successes = sum(p.ok for p in probes)
    if successes == 0:
        reasons = collections.Counter(p.reason for p in probes).most_common(3)
        raise NoSuccessfulProbe(
            f"metadata never answered correctly in {len(probes)} probes "
            f"(most common failures: {', '.join(f'{r} x{n}' for r, n in reasons)})")

    probes = tuple(sorted(probes, key=lambda p: (sample_time(p), p.seq)))
    first_probe_at = sample_time(probes[0])
    first_answer = next(p for p in probes if p.ok)
    first_answer_after = sample_time(first_answer) - first_probe_at
    probes = probes[probes.index(first_answer):]     # the baseline and after
    outages = _outages(probes)
    since = float("-inf") if recovered_after is None else recovered_after
    recovery = None if log.clock_reset else _recovery(probes, since, settle)
    recovered = recovery is not None
    recovered_at, settled_for = recovery or (None, 0.0)
    last_probe_at = sample_time(probes[-1])
    unrecovered = outages[-1] if outages and outages[-1].unrecovered else None

    return DowntimeReport(
        probes=len(log.probes), successes=successes,
        failures=len(log.probes) - successes,
        outages=tuple(outages),
        total_downtime=sum(o.duration for o in outages),
        tempest_style_downtime=_tempest_style(probes),
        longest_outage=max((o.duration for o in outages), default=0.0),
        first_probe_at=first_probe_at, last_probe_at=last_probe_at,
        first_answer_after=first_answer_after,
        recovered=recovered, recovered_at=recovered_at,
        settled_for=settled_for,
        unrecovered_downtime=(last_probe_at - unrecovered.start) if unrecovered else 0.0,
        resolution=_resolution(probes, outages,
                               log.header.interval if log.header else None),
        interval=log.header.interval if log.header else None,
        garbage_lines=log.garbage_lines, truncated_last_line=log.truncated_last_line,
        stopped=log.stopped, clock_reset=log.clock_reset)

