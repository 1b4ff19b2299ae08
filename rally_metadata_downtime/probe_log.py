"""Parse the in-guest probe's log (format: docs/design.md). Pure: no I/O."""

from __future__ import annotations

import dataclasses


class ProbeLogError(ValueError):
    """The log holds no probe at all: nothing can be measured from it."""


@dataclasses.dataclass(frozen=True)
class Probe:
    """One request: launched at `start`, answered or given up at `end` (guest uptime)."""

    seq: int
    start: float
    end: float
    ok: bool
    reason: str


@dataclasses.dataclass(frozen=True)
class ProbeHeader:
    """The settings the probe ran with, from its first line."""

    interval: float
    timeout: float
    mode: str
    expect: str
    started: float


@dataclasses.dataclass(frozen=True)
class ProbeLog:
    """Everything a log says, including how much of it could not be read."""

    header: ProbeHeader | None
    probes: tuple[Probe, ...]          # sorted by start, then seq
    garbage_lines: int                 # complete lines that are not probe records
    truncated_last_line: bool          # the log ended inside an unreadable line
    stopped: bool                      # the probe wrote its "# stopped" line
    stopped_at: float | None
    clock_reset: bool                  # uptime went backwards: the guest rebooted


# A reboot restarts /proc/uptime; ordinary reordering of overlapping requests never
# moves a later launch back by more than a few milliseconds.
_CLOCK_RESET_SECONDS = 1.0


def _parse_probe(fields: list[str]) -> Probe | None:
    if len(fields) != 6 or fields[0] != "P" or fields[4] not in ("OK", "FAIL"):
        return None
    try:
        seq, start, end = int(fields[1]), float(fields[2]), float(fields[3])
    except ValueError:
        return None
    if seq < 1 or end < start:
        return None
    return Probe(seq=seq, start=start, end=end, ok=fields[4] == "OK", reason=fields[5])


def _parse_header(line: str) -> ProbeHeader | None:
    fields = line.split()
    if fields[:3] != ["#", "rmd-probe", "v1"]:
        return None
    values = dict(f.split("=", 1) for f in fields[3:] if "=" in f)
    try:
        return ProbeHeader(interval=float(values["interval"]),
                           timeout=float(values["timeout"]), mode=values["mode"],
                           expect=values.get("expect", ""),
                           started=float(values["started"]))
    except (KeyError, ValueError):
        return None


def parse_probe_log(text: str) -> ProbeLog:
    """Read a probe log; raise ProbeLogError when it holds no probe record."""
    if not text.strip():
        raise ProbeLogError("the probe log is empty: the probe never ran or its "
                            "log was lost (guest rebooted, /tmp cleared)")
    lines = text.split("\n")
    last_is_partial = not text.endswith("\n")
    if not last_is_partial:
        lines.pop()  # the empty string after the final newline

    header = None
    probes: list[Probe] = []
    garbage = 0
    truncated = False
    stopped_at = None
    for number, line in enumerate(lines, start=1):
        is_last = number == len(lines)
        if line.startswith("# rmd-probe ") and header is None:
            header = _parse_header(line)
            if header is not None:
                continue
        elif line.startswith("# stopped "):
            try:
                stopped_at = float(line.split()[2])
                continue
            except (IndexError, ValueError):
                pass
        elif line.strip() == "":
            continue
        else:
            probe = _parse_probe(line.split(" "))
            if probe is not None:
                probes.append(probe)
                continue
        if is_last and last_is_partial:
            truncated = True
        else:
            garbage += 1

    if not probes:
        raise ProbeLogError(f"the probe log has no readable probe record "
                            f"({len(lines)} lines, {garbage} unreadable)")

    by_seq = sorted(probes, key=lambda p: p.seq)
    clock_reset = any(later.start < earlier.start - _CLOCK_RESET_SECONDS
                      or later.seq == earlier.seq
                      for earlier, later in zip(by_seq, by_seq[1:]))
    return ProbeLog(header=header,
                    probes=tuple(sorted(probes, key=lambda p: (p.start, p.seq))),
                    garbage_lines=garbage, truncated_last_line=truncated,
                    stopped=stopped_at is not None, stopped_at=stopped_at,
                    clock_reset=clock_reset)
