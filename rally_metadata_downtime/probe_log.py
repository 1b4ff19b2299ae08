"""Parse the in-guest probe's log (format: docs/design.md). Pure: no I/O."""

from __future__ import annotations

import dataclasses
import re


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
    # Seconds the probe chose to wait after this launch before the next one: its
    # interval, or its retry interval while the last request to end had failed fast.
    # None in logs of probes older than the field.
    pause: float | None = None
    # The address family it went over; lines of IPv4-only probes carry none.
    family: str = "ipv4"


@dataclasses.dataclass(frozen=True)
class ProbeHeader:
    """The settings the probe ran with, from its first line."""

    interval: float
    timeout: float
    mode: str
    expect: str
    started: float
    client: str = ""   # curl or wget; "" in logs of probes older than the field
    retry: float | None = None   # seconds between launches while failing fast
    families: tuple[str, ...] = ("ipv4",)
    interface: str = ""          # the IPv6 link-local zone ("" without IPv6)


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

    @property
    def families(self) -> tuple[str, ...]:
        """The families the probe polled (from its header, else its lines)."""
        if self.header is not None:
            return self.header.families
        return tuple(f for f in ("ipv4", "ipv6") if any(p.family == f for p in self.probes))

    def family(self, name: str) -> ProbeLog:
        """This log with only the probes of one family: what analyse() reads."""
        return dataclasses.replace(self, probes=tuple(p for p in self.probes
                                                      if p.family == name))


# A reboot restarts /proc/uptime near zero; each request reads its own start after
# the fork, so a heavily loaded guest can reorder neighbours by a fraction of a second.
_CLOCK_RESET_SECONDS = 2.0


# Times are /proc/uptime figures: plain decimals, never nan/inf/exponents.
_TIME = r"([0-9]+(?:\.[0-9]+)?)"
_PROBE_LINE = re.compile(
    rf"P ([1-9][0-9]*) {_TIME} {_TIME} (OK|FAIL) ([a-z]+(?:=[0-9a-z]+)?)(?: {_TIME})?"
    rf"(?: (ipv4|ipv6))?")
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?")


def _parse_probe(line: str) -> Probe | None:
    match = _PROBE_LINE.fullmatch(line)
    if match is None:
        return None
    seq, start, end, verdict, reason, pause, family = match.groups()
    if float(end) < float(start) or (family is not None and pause is None):
        return None
    return Probe(seq=int(seq), start=float(start), end=float(end), ok=verdict == "OK",
                 reason=reason, pause=None if pause is None else float(pause),
                 family=family or "ipv4")


def _number(text: str | None) -> float | None:
    return float(text) if text is not None and _NUMBER.fullmatch(text) else None


def _parse_header(line: str) -> ProbeHeader | None:
    fields = line.split(" ")
    if fields[:3] != ["#", "rmd-probe", "v1"]:
        return None
    values = dict(f.split("=", 1) for f in fields[3:] if "=" in f)
    interval, timeout = _number(values.get("interval")), _number(values.get("timeout"))
    started = _number(values.get("started"))
    if interval is None or timeout is None or started is None or "mode" not in values:
        return None
    return ProbeHeader(interval=interval, timeout=timeout, mode=values["mode"],
                       expect=values.get("expect", ""), started=started,
                       client=values.get("client", ""),
                       retry=_number(values.get("retry")),
                       families=tuple(values.get("families", "ipv4").split(",")),
                       interface=values.get("iface", ""))


def _parse_stopped(line: str) -> float | None:
    fields = line.split(" ")
    if len(fields) != 3 or fields[:2] != ["#", "stopped"]:
        return None
    return _number(fields[2])


def parse_probe_log(text: str) -> ProbeLog:
    """Read a probe log written by guest/metadata_probe.sh (format: docs/design.md).

    Unreadable lines are counted, not fatal. The probe ends every record with a
    newline, so a log whose text does not end with one was cut inside its last
    line (read while a line was being written, or a full disk): that line is kept
    if it still reads as a whole record, and `truncated_last_line` is set.
    Raises ProbeLogError when the log is empty or holds no probe record.
    """
    if not text.strip():
        raise ProbeLogError("the probe log is empty: the probe never ran or its "
                            "log was lost (guest rebooted, /tmp cleared)")
    truncated = not text.endswith("\n")
    lines = text.split("\n")
    if not truncated:
        lines.pop()  # the empty string after the final newline

    header = None
    probes: list[Probe] = []
    garbage = 0
    stopped_at = None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        probe = _parse_probe(line)
        if probe is not None:
            probes.append(probe)
            continue
        if header is None and (parsed := _parse_header(line)) is not None:
            header = parsed
            continue
        if (stop := _parse_stopped(line)) is not None:
            stopped_at = stop
            continue
        if not (truncated and number == len(lines)):
            garbage += 1

    if not probes:
        raise ProbeLogError(f"the probe log has no readable probe record "
                            f"({len(lines)} lines, {garbage} unreadable)")

    return ProbeLog(header=header,
                    probes=tuple(sorted(probes, key=lambda p: (p.start, p.seq))),
                    garbage_lines=garbage, truncated_last_line=truncated,
                    stopped=stopped_at is not None, stopped_at=stopped_at,
                    clock_reset=any(_clock_reset([p for p in probes if p.family == f])
                                    for f in ("ipv4", "ipv6")))


def _clock_reset(probes: list[Probe]) -> bool:
    """True when the log spans two boots (or two probe runs) of the guest.

    Launches are made one after the other by a single loop, so in launch (seq)
    order their uptimes decrease only by scheduling noise; a drop of more than
    _CLOCK_RESET_SECONDS means
    /proc/uptime restarted, and a repeated seq means a second probe run wrote to
    the same log (within one family: each launch sends one request per family).
    Either way the two timelines cannot be merged.
    """
    by_seq = sorted(probes, key=lambda p: (p.seq, p.start))
    return any(later.seq == earlier.seq
               or later.start < earlier.start - _CLOCK_RESET_SECONDS
               for earlier, later in zip(by_seq, by_seq[1:]))
