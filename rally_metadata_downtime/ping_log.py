"""Network downtime from `ping -D -O -n -i INTERVAL -W TIMEOUT ADDRESS` output. Pure."""

from __future__ import annotations

import dataclasses
import re

_REPLY = re.compile(r"^\[(?P<ts>\d+(?:\.\d+)?)\] \d+ bytes from .*icmp_seq=(?P<seq>\d+)")
_SUMMARY = re.compile(r"(?P<sent>\d+) packets transmitted, (?P<received>\d+) received")


@dataclasses.dataclass(frozen=True)
class NetworkOutage:
    """A run of unanswered echo requests between two answered ones."""

    first_lost_seq: int
    lost: int
    last_reply_before: float | None   # host time (ping -D)
    first_reply_after: float | None

    def duration(self, interval: float) -> float:
        return self.lost * interval


@dataclasses.dataclass(frozen=True)
class NetworkDowntime:
    """What one ping run says about reachability from the Rally host."""

    interval: float
    sent: int
    received: int
    outages: tuple[NetworkOutage, ...]

    @property
    def lost(self) -> int:
        return self.sent - self.received

    @property
    def total_downtime(self) -> float:
        return sum(o.duration(self.interval) for o in self.outages)

    @property
    def longest_outage(self) -> float:
        return max((o.duration(self.interval) for o in self.outages), default=0.0)

    @property
    def tempest_style_downtime(self) -> float:
        """Tempest's NetDowntimeMeter formula: (sent - received) x interval."""
        return self.lost * self.interval

    def to_dict(self) -> dict:
        return {"interval": self.interval, "sent": self.sent, "received": self.received,
                "lost": self.lost, "total_downtime": self.total_downtime,
                "longest_outage": self.longest_outage,
                "tempest_style_downtime": self.tempest_style_downtime,
                "outages": [dict(dataclasses.asdict(o),
                                 duration=o.duration(self.interval))
                            for o in self.outages]}


def parse_ping_output(text: str, interval: float) -> NetworkDowntime:
    """Read ping's output; requests sent after the last reply count as lost."""
    replies: dict[int, float] = {}
    sent = received_summary = None
    for line in text.splitlines():
        reply = _REPLY.match(line)
        if reply:
            replies.setdefault(int(reply["seq"]), float(reply["ts"]))
            continue
        summary = _SUMMARY.search(line)
        if summary:
            sent, received_summary = int(summary["sent"]), int(summary["received"])
    if sent is None:
        # Output cut before the summary: only what was answered is known for sure.
        sent = max(replies, default=0)
    first_seq = 1
    outages = []
    run_start = None
    last_reply = None
    for seq in range(first_seq, sent + 1):
        if seq in replies:
            if run_start is not None:
                outages.append(NetworkOutage(run_start, seq - run_start, last_reply,
                                             replies[seq]))
                run_start = None
            last_reply = replies[seq]
        elif run_start is None:
            run_start = seq
    if run_start is not None:
        outages.append(NetworkOutage(run_start, sent + 1 - run_start, last_reply, None))
    received = len([s for s in replies if s <= sent])
    if received_summary is not None:
        received = min(received, received_summary)
    return NetworkDowntime(interval=interval, sent=sent, received=received,
                           outages=tuple(outages))
