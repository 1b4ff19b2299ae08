"""Tempest's metadata meter, as the Tempest change ships it: one copy for every bench
that runs it beside ours (accuracy: its figures; cost: what it costs a guest)."""

from __future__ import annotations

import statistics

# Tempest's loop sleeps this long after each request (its period is about 0.21 s here).
TEMPEST_PERIOD = 0.2
PIDFILE = "/tmp/metadata_meter.pid"   # where the script writes its own PID

# Tempest's METADATA_SCRIPT from ../shared/reference, run as it is: only the URL its
# text lost is restored, and the loop's closing `done` the diff context cut off.
TEMPEST_SCRIPT = """#!/bin/sh
echo $$ > /tmp/metadata_meter.pid
old_time=$(cut -d" " -f1 /proc/uptime)
while true; do
    curl http://169.254.169.254/latest/meta-data/hostname 2>/dev/null | \\
grep -q `hostname`
    result=$?
    new_time=$(cut -d" " -f1 /proc/uptime)
    runtime=$(awk -v new=$new_time -v old=$old_time "BEGIN {print new-old}")
    old_time=$new_time
    if [ $result -eq 0 ]; then
        echo "PASSED $runtime"
    else
        echo "FAILED $runtime"
    fi
    sleep 0.2
done
"""


def tempest_lines(log: str) -> list[tuple[str, float]]:
    """Tempest's log as (PASSED|FAILED, seconds since the previous line)."""
    lines = []
    for line in log.splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[0] in ("PASSED", "FAILED"):
            lines.append((fields[0], float(fields[1])))
    return lines


def tempest_downtime(log: str) -> float:
    """What Tempest's get_results() reports: the sum of the FAILED lines' seconds."""
    return sum(seconds for verdict, seconds in tempest_lines(log) if verdict == "FAILED")


def tempest_resolution(log: str) -> float:
    """What Tempest's figure can claim: every line books one loop period, so an
    outage edge is known to one period (the median line)."""
    return statistics.median(seconds for _, seconds in tempest_lines(log)[1:])
