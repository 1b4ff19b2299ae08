"""The cost bench's pure parts: /proc/<pid>/stat, the in-flight bound, the spans of
a probe log and the table's arithmetic (tests/unit/test_bench_cost.py)."""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Iterable, Sequence


@dataclasses.dataclass(frozen=True)
class ProcStat:
    """The fields of /proc/<pid>/stat this bench reads (times in clock ticks)."""

    pid: int
    comm: str
    state: str
    ppid: int
    session: int
    utime: int
    stime: int
    cutime: int
    cstime: int

    @property
    def own_ticks(self) -> int:
        return self.utime + self.stime

    @property
    def total_ticks(self) -> int:
        """Its own CPU and that of every child it reaped (and they reaped)."""
        return self.utime + self.stime + self.cutime + self.cstime


def parse_proc_stat(text: str) -> ProcStat:
    """One /proc/<pid>/stat line. comm may hold spaces and parentheses: it ends at
    the last ')'. ValueError for anything else."""
    head, paren, rest = text.rpartition(")")
    pid, open_paren, comm = head.partition(" (")
    if not paren or not open_paren:
        raise ValueError(f"not a /proc stat line: {text[:80]!r}")
    fields = rest.split()
    if len(fields) < 15:
        raise ValueError(f"short /proc stat line: {text[:80]!r}")
    # fields[0] is field 3 (state) of proc(5); utime is field 14.
    return ProcStat(pid=int(pid), comm=comm, state=fields[0], ppid=int(fields[1]),
                    session=int(fields[3]), utime=int(fields[11]), stime=int(fields[12]),
                    cutime=int(fields[13]), cstime=int(fields[14]))


def tree_ticks(stats: Iterable[ProcStat]) -> int:
    """CPU of a set of processes and of all they reaped: what a window's delta reads.
    Zombies count once: their times reach the parent's cutime only when reaped."""
    return sum(s.total_ticks for s in stats)


def in_flight_bound(timeout: float, interval: float) -> int:
    """The most requests a probe launching every `interval`, each bounded by
    `timeout`, can have in flight: ceil(timeout/interval) + 1 (float noise rounded
    off first, so 1.1/0.1 gives 12, not 13)."""
    if interval <= 0 or timeout <= 0:
        raise ValueError("interval and timeout must be > 0")
    return math.ceil(round(timeout / interval, 9)) + 1


def max_overlap(spans: Iterable[tuple[float, float]],
                within: tuple[float, float] | None = None) -> int:
    """The most (start, end) spans open at one instant; with `within`, only instants
    inside it count. A span ending when another starts does not overlap it (the
    probe's clock has two decimals)."""
    events = []
    for start, end in spans:
        if within is not None:
            start, end = max(start, within[0]), min(end, within[1])
        if end < start:
            continue
        events += [(start, 1), (end, -1)]
    most = open_now = 0
    for _, step in sorted(events):   # -1 sorts before +1 at one instant
        open_now += step
        most = max(most, open_now)
    return most


def probe_spans(log: str) -> list[tuple[float, float]]:
    """(start, end) of every request line of our probe's log (docs/design.md)."""
    spans = []
    for line in log.splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[0] == "P":
            spans.append((float(fields[2]), float(fields[3])))
    return spans


def count_requests(variant: str, log: str) -> int:
    """Requests a log records: ours writes one P line each, Tempest's one
    PASSED/FAILED line."""
    if variant == "tempest":
        return sum(line.split(" ", 1)[0] in ("PASSED", "FAILED")
                   for line in log.splitlines())
    return sum(line.startswith("P ") for line in log.splitlines())


def flatness(values: Sequence[float]) -> float:
    """How far the largest value is above the smallest, as a fraction of it."""
    low = min(values)
    return max(values) / low - 1 if low > 0 else float("inf")


def slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of ys over xs."""
    mean_x, mean_y = statistics.mean(xs), statistics.mean(ys)
    var = sum((x - mean_x) ** 2 for x in xs)
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / var if var else 0.0


def spread(values: Sequence[float]) -> str:
    """median (min-max), for a table cell."""
    if not values:
        return "-"
    return (f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"
            if len(values) > 1 else f"{values[0]:.2f}")

