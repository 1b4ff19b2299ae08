"""Daemons started and stopped by PID, each in its own session (process group), with
its PID and log files in the lab's state directory."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path


class ProcError(RuntimeError):
    """A daemon did not start or did not answer in time."""


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None


def wait_for(what: str, check: Callable[[], object], timeout: float,
             interval: float = 0.1, proc: subprocess.Popen | None = None,
             log: Path | None = None):
    """Poll `check` until it returns a truthy value (returned); ProcError after
    `timeout` s or when `proc` exits first (the log's tail in the message)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if result := check():
                return result
        except ProcError:
            raise
        except Exception:  # noqa: BLE001 - not ready yet
            pass
        if proc is not None and proc.poll() is not None:
            raise ProcError(f"{what}: exited with status {proc.returncode}"
                            + _tail(log))
        if time.monotonic() > deadline:
            raise ProcError(f"{what}: not ready after {timeout:.0f} s" + _tail(log))
        time.sleep(interval)


def _tail(log: Path | None, lines: int = 15) -> str:
    if log is None or not log.exists():
        return ""
    text = log.read_text(errors="replace").splitlines()[-lines:]
    return f"\n--- {log} (last {len(text)} lines)\n" + "\n".join(text)


@dataclasses.dataclass
class Daemon:
    """One started process group: the PID we started (= its process group id) and,
    for daemons that fork themselves, the PID file they write."""

    name: str
    pid: int
    log: str
    pidfile: str | None = None
    started: float = 0.0   # time.time() at start
    ready_after: float = 0.0  # seconds from start to ready

    def pids(self) -> list[int]:
        """Every PID that belongs to it: the started one, the PID file's."""
        pids = [self.pid]
        if self.pidfile and (other := read_pid(Path(self.pidfile))) is not None:
            pids.append(other)
        return [pid for pid in dict.fromkeys(pids) if alive(pid)]


class Supervisor:
    """Starts daemons and records them in <state>/daemons.json, so `down` (even from
    another process after a crash) stops exactly what was started. Daemons may be
    started and marked ready from several threads at once."""

    def __init__(self, state_dir: Path):
        self._lock = threading.Lock()
        self.state_dir = state_dir
        self.log_dir = state_dir / "log"
        self.record = state_dir / "daemons.json"
        self.daemons: dict[str, Daemon] = {}
        if self.record.exists():
            for item in json.loads(self.record.read_text()):
                self.daemons[item["name"]] = Daemon(**item)

    def _save(self) -> None:
        with self._lock:
            tmp = self.record.with_suffix(".tmp")
            tmp.write_text(json.dumps([dataclasses.asdict(d)
                                       for d in list(self.daemons.values())], indent=1))
            tmp.replace(self.record)

    def start(self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None,
              pidfile: Path | None = None, cwd: Path | None = None) -> subprocess.Popen:
        if name in self.daemons and self.daemons[name].pids():
            raise ProcError(f"{name} already runs (PIDs {self.daemons[name].pids()})")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{name}.log"
        full_env = dict(os.environ)
        full_env.update(env or {})
        with open(log, "ab") as out:
            proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, env=full_env,
                                    cwd=cwd or self.state_dir, start_new_session=True)
        self.daemons[name] = Daemon(name, proc.pid, str(log),
                                    str(pidfile) if pidfile else None, time.time())
        self._save()
        return proc

    def ready(self, name: str) -> None:
        daemon = self.daemons[name]
        daemon.ready_after = round(time.time() - daemon.started, 2)
        self._save()

    def stop(self, name: str, timeout: float = 10.0) -> None:
        """SIGTERM to the daemon's process group and PIDs, SIGKILL after `timeout`."""
        self.stop_many([name], timeout)

    def stop_many(self, names: list[str], timeout: float = 10.0) -> None:
        """Stop these daemons together: SIGTERM to each one's process group and
        PIDs, SIGKILL to what is left after `timeout` s."""
        daemons = [self.daemons[n] for n in names if n in self.daemons]
        if not daemons:
            return
        pids = {d.name: d.pids() for d in daemons}

        def running() -> list[Daemon]:
            return [d for d in daemons
                    if any(alive(p) for p in pids[d.name]) or _group_alive(d.pid)]
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for daemon in running():
                for pid in pids[daemon.name]:
                    for kill in (os.killpg, os.kill):
                        with contextlib.suppress(ProcessLookupError, PermissionError):
                            kill(pid, sig)
            deadline = time.monotonic() + (timeout if sig == signal.SIGTERM else 5)
            while time.monotonic() < deadline and running():
                time.sleep(0.05)
            if not running():
                break
        for daemon in daemons:
            # Reap it when it is our child, so it leaves no zombie.
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(daemon.pid, os.WNOHANG)
            del self.daemons[daemon.name]
        self._save()

    def stop_all(self) -> None:
        for name in reversed(list(self.daemons)):
            self.stop(name)

    def running(self) -> dict[str, list[int]]:
        return {name: d.pids() for name, d in self.daemons.items()}


def _group_alive(pgid: int) -> bool:
    """True while any process of process group `pgid` lives (signal 0 to the group)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # killpg(0) succeeds on zombies too: look for a live member.
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z" and int(fields[2]) == pgid:
                return True
    return False


def run(argv: Sequence[str], env: Mapping[str, str] | None = None, timeout: float = 300,
        check: bool = True, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """A short command; its output in the error when it fails."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    result = subprocess.run(list(argv), env=full_env, capture_output=True, text=True,
                            timeout=timeout, cwd=cwd)
    if check and result.returncode != 0:
        raise ProcError(f"{' '.join(argv)}: exit {result.returncode}\n"
                        f"{result.stdout[-2000:]}{result.stderr[-3000:]}")
    return result
