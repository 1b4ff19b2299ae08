"""Where the real metadata outage comes from: each measured outage placed against
what the OVN metadata agents logged around its migration (pure: parsing, placing).

neutron-ovn-metadata-agent logs at INFO level, with its host's wall clock:
- "Provisioning metadata for network <net>": it starts building the network's
  ovnmeta namespace and haproxy on its host (the destination, for a VM arriving
  where no port of that network was);
- "Cleaning up ovnmeta-<net> namespace which is not needed anymore": it removes
  them (the source, once the last port of that network left).
An outage is placed on the migration's switchover (the hypervisor's cut: the
guest's NIC leaves the source): where it starts and ends, and whether the
destination had to provision the namespace meanwhile.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
import statistics
from collections.abc import Iterable

_LINE = re.compile(r"^(?P<stamp>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+) \d+ INFO \S+ "
                   r"(?:\[[^\]]*\] )?(?P<message>.*)$")
_KINDS = (("provisioning", re.compile(r"Provisioning metadata for network (\S+)")),
          ("cleanup", re.compile(r"Cleaning up (\S+) namespace which is not needed")))


@dataclasses.dataclass(frozen=True)
class AgentEvent:
    wall: float       # the host's wall clock (s since the epoch)
    host: str
    kind: str         # provisioning | cleanup
    network: str


def parse_agent_log(text: str, host: str) -> list[AgentEvent]:
    """The provisioning and cleanup lines of one agent's log, in order."""
    events = []
    for line in text.splitlines():
        match = _LINE.match(line)
        if not match:
            continue
        for kind, pattern in _KINDS:
            found = pattern.search(match["message"])
            if found:
                stamp = datetime.datetime.strptime(match["stamp"], "%Y-%m-%d %H:%M:%S.%f")
                events.append(AgentEvent(stamp.timestamp(), host, kind, found[1]))
    return events


@dataclasses.dataclass(frozen=True)
class Placed:
    """One migration's metadata outage against its switchover (s after the cut)."""

    downtime: float
    outage_start: float | None     # None: no outage
    outage_end: float | None
    provisioned: float | None      # the destination's provisioning line nearest
    cleaned: float | None          # the source's cleanup line nearest


def place(downtime: float, outage: tuple[float, float] | None, cut_wall: float,
          source: str, destination: str, events: Iterable[AgentEvent],
          reach: float = 30.0) -> Placed:
    """An outage (wall-clock start, end) and the agents' lines within `reach` s of
    the cut, all relative to the cut."""
    def nearest(host: str, kind: str) -> float | None:
        times = [e.wall - cut_wall for e in events if e.host == host and e.kind == kind
                 and abs(e.wall - cut_wall) <= reach]
        return min(times, key=abs) if times else None
    events = list(events)
    return Placed(downtime,
                  outage[0] - cut_wall if outage else None,
                  outage[1] - cut_wall if outage else None,
                  nearest(destination, "provisioning"), nearest(source, "cleanup"))


def summary(placed: list[Placed], long_outage: float = 2.0) -> list[str]:
    """Lines that compare the long outages with the others."""
    lines = []
    for label, group in (("outages over", [p for p in placed if p.downtime > long_outage]),
                         ("outages up to", [p for p in placed
                                            if p.downtime <= long_outage])):
        if not group:
            lines.append(f"{label} {long_outage:g} s: none")
            continue
        provisioned = [p for p in group if p.provisioned is not None]
        line = (f"{label} {long_outage:g} s: {len(group)}; the destination provisioned "
                f"its namespace around the cut in {len(provisioned)}")
        ends = [p.outage_end - p.provisioned for p in provisioned
                if p.outage_end is not None]
        if ends:
            line += (f"; outage end after that provisioning line: median "
                     f"{statistics.median(ends):.2f} s, range {min(ends):.2f}-"
                     f"{max(ends):.2f} s")
        lines.append(line)
    return lines
