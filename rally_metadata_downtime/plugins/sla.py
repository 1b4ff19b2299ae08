"""SLA metadata_downtime: a limit on metadata (and optionally network) downtime."""

from __future__ import annotations

import statistics

from rally import consts
from rally.task import sla

from rally_metadata_downtime.probe_config import FAMILIES
from rally_metadata_downtime.records import IterationRecord, RecordError


@sla.configure(name="metadata_downtime")
class MetadataDowntime(sla.SLA):
    """Metadata downtime of every iteration stays within a limit, and recovers.

    Fails the workload when an iteration's metadata downtime exceeds
    allowed_metadata_downtime (seconds) over any measured address family
    (metadata_families), or that family's own limit when given
    (allowed_metadata_downtime_ipv4, allowed_metadata_downtime_ipv6), when an
    iteration has no metadata measurement (no successful probe, or it failed
    before measuring), when metadata did not recover after the migration (or the
    watch of MetadataDowntime.boot_and_watch) over any family, or, if
    allowed_network_downtime is set, when the network downtime measured by ping
    exceeds it, or, if allowed_median_metadata_downtime is set, when the median
    over the measured iterations of their metadata downtime (the largest over the
    families) exceeds it: a limit on the typical migration that a single slow one
    (a TCP retransmission, a busy host) does not decide. The details name the
    worst iteration, the worst host pair of the migrations, the worst host of the
    watched VMs when they ran on several, and the family when the task measured
    more than IPv4.
    """

    CONFIG_SCHEMA = {
        "type": "object",
        "$schema": consts.JSON_SCHEMA7,
        "properties": {
            "allowed_metadata_downtime": {
                "type": "number", "minimum": 0.0,
                "description": "seconds of metadata downtime allowed per iteration"},
            **{f"allowed_metadata_downtime_{family}": {
                "type": "number", "minimum": 0.0,
                "description": f"seconds of {family} metadata downtime allowed per "
                               f"iteration; default: allowed_metadata_downtime"}
               for family in FAMILIES},
            "allowed_median_metadata_downtime": {
                "type": "number", "minimum": 0.0,
                "description": "seconds of metadata downtime allowed for the median "
                               "iteration; not checked when absent"},
            "allowed_network_downtime": {
                "type": "number", "minimum": 0.0,
                "description": "seconds of network (ping) downtime allowed per "
                               "iteration; not checked when absent"},
        },
        "required": ["allowed_metadata_downtime"],
        "additionalProperties": False,
    }

    def __init__(self, criterion_value):
        super().__init__(criterion_value)
        self.allowed = criterion_value["allowed_metadata_downtime"]
        self.allowed_by_family = {
            family: criterion_value.get(f"allowed_metadata_downtime_{family}",
                                        self.allowed) for family in FAMILIES}
        self.allowed_network = criterion_value.get("allowed_network_downtime")
        self.allowed_median = criterion_value.get("allowed_median_metadata_downtime")
        # Each measured iteration's metadata downtime (the largest over families).
        self.downtimes: list[float] = []
        # Start time of each iteration, in the order they arrive (as they finish):
        # an iteration's arrival number is its index + 1; details() maps it to
        # the report's number.
        self.started: list[float] = []
        # family -> (largest metadata downtime, iteration)
        self.worst: dict[str, tuple[float, int]] = {}
        self.families: set[str] = set()   # every family an iteration asked for
        self.worst_network: tuple[float, int] | None = None
        self.problems: list[tuple[int, str]] = []         # unmeasured / unrecovered
        # source -> destination: (largest metadata downtime, migrations)
        self.pairs: dict[str, tuple[float, int]] = {}
        # boot_and_watch: host -> (largest metadata downtime, VMs watched there)
        self.watched: dict[str, tuple[float, int]] = {}

    @property
    def iterations(self) -> int:
        return len(self.started)

    def add_iteration(self, iteration):
        self.started.append(float(iteration.get("timestamp") or 0.0))
        number = self.iterations
        try:
            record = IterationRecord.from_output(iteration.get("output", {}))
        except RecordError as e:
            record, unreadable = None, str(e)
        else:
            unreadable = None
        if record is None or not record.measured:
            if record is not None:
                reason = f"no: {record.error}"
            else:
                error = iteration.get("error") or []
                reason = unreadable or ("no figures in its output"
                                        + (f": {error[0]}" if error else ""))
            self.problems.append((number, f"metadata not measured ({reason})"))
        else:
            self.families.update(record.families)
            self.downtimes.append(max(f.downtime for f in
                                      record.metadata_by_family.values()))
            for family, figures in record.metadata_by_family.items():
                worst = self.worst.get(family)
                if worst is None or figures.downtime > worst[0]:
                    self.worst[family] = (figures.downtime, number)
                if not figures.recovered:
                    self.problems.append((number, f"{self._named(family)}metadata did "
                                                  f"not recover after {record.event}"))
        for migration in record.migrations if record else ():
            if migration.metadata_downtime is not None:
                self._add_pair(migration.host_pair, migration.metadata_downtime, 1)
        if record is not None and record.measured and record.watch is not None:
            self._add_watched(record.watch.host or "?", self.downtimes[-1], 1)
        if record is not None and record.network is not None:
            network = record.network.downtime
            if self.worst_network is None or network > self.worst_network[0]:
                self.worst_network = (network, number)
        self.success = self._judge()
        return self.success

    def _add_pair(self, pair: str, downtime: float, migrations: int) -> None:
        worst, count = self.pairs.get(pair, (0.0, 0))
        self.pairs[pair] = (max(worst, downtime), count + migrations)

    def _add_watched(self, host: str, downtime: float, vms: int) -> None:
        worst, count = self.watched.get(host, (0.0, 0))
        self.watched[host] = (max(worst, downtime), count + vms)

    def _judge(self) -> bool:
        if self.problems:
            return False
        if any(downtime > self.allowed_by_family[family]
               for family, (downtime, _) in self.worst.items()):
            return False
        if (self.allowed_network is not None and self.worst_network is not None
                and self.worst_network[0] > self.allowed_network):
            return False
        if (self.allowed_median is not None and self.downtimes
                and statistics.median(self.downtimes) > self.allowed_median):
            return False
        return True

    def merge(self, other):
        offset = self.iterations
        self.started += other.started
        self.problems += [(n + offset, text) for n, text in other.problems]
        for pair, (downtime, migrations) in other.pairs.items():
            self._add_pair(pair, downtime, migrations)
        for host, (downtime, vms) in other.watched.items():
            self._add_watched(host, downtime, vms)
        self.families |= other.families
        self.downtimes += other.downtimes
        for family, (downtime, n) in other.worst.items():
            if family not in self.worst or downtime > self.worst[family][0]:
                self.worst[family] = (downtime, n + offset)
        mine, theirs = self.worst_network, other.worst_network
        if theirs is not None:
            theirs = (theirs[0], theirs[1] + offset)
            if mine is None or theirs[0] > mine[0]:
                self.worst_network = theirs
        self.success = self._judge()
        return self.success

    def _named(self, family: str) -> str:
        """The family as the details name it: not at all in an IPv4-only task."""
        return "" if self.families <= {"ipv4"} else f"{family} "

    def _report_numbers(self) -> dict[int, int]:
        """Arrival number -> the iteration's number in Rally's report.

        Rally hands iterations to an SLA as they finish but reports them in the
        order they started (its JSON report, the HTML's Aggregated charts' x axis):
        with concurrency the orders differ, and the details name iterations the
        way the report shows them.
        """
        order = sorted(range(len(self.started)), key=self.started.__getitem__)
        return {arrival + 1: number for number, arrival in enumerate(order, start=1)}

    def details(self):
        number = self._report_numbers()
        parts = []
        for family in FAMILIES:
            if family in self.worst:
                downtime, n = self.worst[family]
                parts.append(f"worst {self._named(family)}metadata downtime "
                             f"{downtime:.2f} s (iteration {number[n]}), allowed "
                             f"{self.allowed_by_family[family]:g} s")
        if self.allowed_median is not None and self.downtimes:
            parts.append(f"median metadata downtime "
                         f"{statistics.median(self.downtimes):.2f} s over "
                         f"{len(self.downtimes)} iterations, allowed "
                         f"{self.allowed_median:g} s")
        if self.allowed_network is not None and self.worst_network is not None:
            parts.append(f"worst network downtime {self.worst_network[0]:.2f} s "
                         f"(iteration {number[self.worst_network[1]]}), allowed "
                         f"{self.allowed_network:g} s")
        if self.pairs:
            pair, (downtime, migrations) = max(self.pairs.items(),
                                               key=lambda item: item[1][0])
            parts.append(f"worst host pair {pair} ({downtime:.2f} s, "
                         f"{migrations} migration{'s' if migrations > 1 else ''})")
        if len(self.watched) > 1:  # one host: nothing to tell apart
            host, (downtime, vms) = max(self.watched.items(), key=lambda item: item[1][0])
            parts.append(f"worst watched host {host} ({downtime:.2f} s, "
                         f"{vms} VM{'s' if vms > 1 else ''})")
        problems = sorted((number[n], text) for n, text in self.problems)
        parts += [f"iteration {n}: {text}" for n, text in problems[:3]]
        if len(self.problems) > 3:
            parts.append(f"{len(self.problems) - 3} more iterations not measured or "
                         f"not recovered")
        if not parts:
            parts.append("no iteration measured yet")
        return f"{'; '.join(parts)} - {self.status()}"
