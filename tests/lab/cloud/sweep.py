"""Remove what killed cloud labs left: python -m tests.lab.cloud.sweep

A lab whose state directory still exists is stopped with
`python -m tests.lab.cloud down --state-dir DIR` (its daemons.json names every PID).
This sweep handles the rest: daemons whose state directory is gone (a session
killed with its temporary files) are found by their working directory, which the
lab sets to the state directory for every daemon it starts, and stopped by PID with
their process groups; rmdc-<tag>-h<N>, -g<N> and -m namespaces (hosts, guests,
metadata) that no process runs in are deleted.
Labs whose state directory exists are reported, never touched.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time

from tests.lab.cloud import config
from tests.lab.cloud.procs import alive

# The state directories this lab makes: the default, the tests' (see
# test_cloud.py) and the main job's (tests/lab/demo.py); nothing else, so another
# lab's files are never matched.
STATE_RE = re.compile(
    rf"^({re.escape(str(config.DEFAULT_STATE_DIR))}|/tmp/rmdc-(?:test|demo)-[A-Za-z0-9_]+)"
    r"(?:/.*)?$")
NETNS_RE = re.compile(rf"^{re.escape(config.NETNS_PREFIX)}[0-9a-f]{{4}}-(?:h[0-9]+|g[0-9]+|m)$")


def orphans() -> dict[str, list[int]]:
    """PIDs running from a lab state directory that no longer exists, per dir."""
    found: dict[str, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except OSError:
            continue
        deleted = cwd.endswith(" (deleted)")
        cwd = cwd.removesuffix(" (deleted)")
        match = STATE_RE.match(cwd)
        if match and (deleted or not os.path.isdir(match[1])):
            found.setdefault(match[1], []).append(int(entry))
    return found


def live_labs() -> list[str]:
    labs = {m[1] for entry in os.listdir("/proc") if entry.isdigit()
            for m in [_cwd_match(entry)] if m and os.path.isdir(m[1])}
    return sorted(labs)


def _cwd_match(pid: str):
    with contextlib.suppress(OSError):
        cwd = os.readlink(f"/proc/{pid}/cwd")
        if not cwd.endswith(" (deleted)"):
            return STATE_RE.match(cwd)
    return None


def sweep() -> int:
    status = 0
    for state, pids in orphans().items():
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in pids:
                for kill in (os.killpg, os.kill):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        kill(pid, sig)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and any(alive(pid) for pid in pids):
                time.sleep(0.1)
            if not any(alive(pid) for pid in pids):
                break
        print(f"cloud sweep: stopped {len(pids)} processes of the lab in {state}")
    namespaces = [n for n in os.listdir("/run/netns")] if os.path.isdir(
        "/run/netns") else []
    for name in namespaces:
        if not NETNS_RE.match(name):
            continue
        pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True,
                              text=True).stdout.split()
        if pids:
            print(f"cloud sweep: {name} is in use (PIDs {' '.join(pids)}), left alone")
            continue
        subprocess.run(["ip", "netns", "delete", name], check=False)
        if os.path.exists(f"/run/netns/{name}"):
            print(f"cloud sweep: could not remove {name}", file=sys.stderr)
            status = 1
        else:
            print(f"cloud sweep: removed namespace {name}")
    for state in live_labs():
        print(f"cloud sweep: a lab runs from {state}; stop it with "
              f"python -m tests.lab.cloud down --state-dir {state}")
    return status


if __name__ == "__main__":
    sys.exit(sweep())
