"""A running lab guest's processes, for both labs (tests.lab.guests and the cloud
lab's hypervisor): its sshd (the PID 1 of its namespaces), commands run inside it,
and the guest events a migration's fault profile asks for (FaultProfile.guest_event).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from rally_metadata_downtime.meter import DIRECTORY_PREFIX
from tests.lab import ledger as ledger_mod

# The main process of every metadata probe the plugin started (it runs from
# <workdir>/rmd-probe.XXXXXX with its pid file there); its in-flight requests finish.
KILL_PROBES = (f'for f in /tmp/{DIRECTORY_PREFIX}*/probe.pid; do [ -s "$f" ] && '
               f'p=$(cat "$f") && kill -KILL "$p" && echo "$p"; done; true')


def wait_for_child(proc: subprocess.Popen, timeout: float) -> int | None:
    """The PID of proc's first child (unshare's forked PID 1), None if it never shows."""
    path = f"/proc/{proc.pid}/task/{proc.pid}/children"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with open(path, encoding="ascii") as children:
                pids = children.read().split()
        except FileNotFoundError:
            pids = []
        if pids:
            return int(pids[0])
        time.sleep(0.005)
    return None


def start_init(argv: Sequence[str], console_log: Path, ledger, label: str,
               timeout: float) -> tuple[subprocess.Popen, dict, int | None]:
    """Start a guest's init (`argv`: unshare ... sshd, GuestImage.init_argv) writing
    to its console log, recorded in `ledger` (a crashed lab's cleanup kills it by PID
    and start time); its entry, and the PID of its PID 1 once forked (None if that
    never showed within `timeout`)."""
    with open(console_log, "ab") as console:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=console,
                                stderr=subprocess.STDOUT, close_fds=True)
    entry = ledger.add({"kind": "process", "pid": proc.pid,
                        "starttime": ledger_mod.process_starttime(proc.pid) or 0,
                        "label": label})
    return proc, entry, wait_for_child(proc, timeout)


def stop_init(proc: subprocess.Popen | None, entries: Sequence[dict | None],
              ledger) -> bool:
    """Kill a guest's recorded processes (`entries`, PID 1 last: the kernel then kills
    the rest of its PID namespace), forget them in `ledger`, and reap its init;
    False if the init did not exit within 5 s."""
    for entry in entries:
        if entry and ledger_mod.kill_process(entry["pid"], entry["starttime"]):
            ledger.discard(entry)
    if proc is None:
        return True
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        return False
    return True


def guest_exec(sshd_pid: int, path: str, home: Path, argv: Sequence[str], *,
               timeout: float = 30, input: str | None = None
               ) -> subprocess.CompletedProcess:
    """Run argv inside every namespace of the guest whose PID 1 is `sshd_pid`, with
    the guest's PATH and HOME. Text mode, output captured; raises
    subprocess.TimeoutExpired after `timeout`."""
    command = ["nsenter", "-t", str(sshd_pid), "-a", "--",
               "env", "-i", f"PATH={path}", f"HOME={home}", *argv]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                          check=False, input=input,
                          stdin=None if input is not None else subprocess.DEVNULL)


def drop_ssh_sessions(sshd_pid: int) -> list[int]:
    """SIGKILL the guest's per-connection sshd processes (children of its listening
    sshd): every open SSH connection drops. Returns their PIDs."""
    killed: list[int] = []
    try:
        children = Path(f"/proc/{sshd_pid}/task/{sshd_pid}/children").read_text().split()
    except OSError:
        return killed
    for pid in map(int, children):
        try:
            if not Path(f"/proc/{pid}/comm").read_text().startswith("sshd"):
                continue  # the probe and other orphans are reparented to sshd too
        except OSError:
            continue
        starttime = ledger_mod.process_starttime(pid)
        if starttime is not None and ledger_mod.kill_process(pid, starttime):
            killed.append(pid)
    return killed


def kill_probes(sshd_pid: int, path: str, home: Path) -> list[str]:
    """SIGKILL the main process of every metadata probe running in the guest; the
    PIDs killed (as the guest numbers them)."""
    return guest_exec(sshd_pid, path, home, ["sh", "-c", KILL_PROBES]).stdout.split()
