"""Start and stop the whole lab (API + namespace guests) as a child process.

The lab runs in its own process so that whatever happens to the caller (a failing
test, Ctrl-C in the demo), stopping it is one signal to one PID, and a lab that did
not stop cleanly is swept by the fabric's cleanup command from its state directory.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.lab.fabric import WAITING_FOR_LAB

REPO_ROOT = Path(__file__).resolve().parents[2]


class LabError(RuntimeError):
    """The lab did not start, or did not stop cleanly."""


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


class LabProcess:
    """`python -m tests.lab.openstack --state-dir D` with a clean start and stop."""

    def __init__(self, state_dir: Path, *extra_args: str) -> None:
        self.state_dir = Path(state_dir)
        self.extra_args = extra_args
        self.url: str | None = None
        self._proc: subprocess.Popen | None = None
        self._log = None

    def start(self, timeout: float = 60, queue_timeout: float = 1800) -> str:
        """Start the lab; return the API's base URL once it listens.

        `timeout` bounds the start itself; while the lab waits for another lab of
        its prefix to end (another test run, a bench), up to `queue_timeout`."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        api_file = self.state_dir / "api.json"
        api_file.unlink(missing_ok=True)
        self._log = open(self.state_dir / "lab.log", "ab")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "tests.lab.openstack", "--state-dir", str(self.state_dir),
             *self.extra_args],
            cwd=REPO_ROOT, stdout=self._log, stderr=subprocess.STDOUT)
        started = time.monotonic()
        deadline = started + timeout
        queued = False
        while time.monotonic() < deadline:
            if not queued and WAITING_FOR_LAB in _read(self.state_dir / "lab.log"):
                queued = True
                deadline = max(deadline, started + queue_timeout)
            if self._proc.poll() is not None:
                raise LabError(f"the lab exited with {self._proc.returncode} while "
                               f"starting; see {self.state_dir / 'lab.log'}")
            if api_file.exists():
                try:
                    self.url = json.loads(api_file.read_text())["url"]
                    return self.url
                except (ValueError, KeyError):
                    pass  # written but not yet complete
            time.sleep(0.1)
        self.stop()
        raise LabError(f"the lab did not start within {timeout} s")

    def get(self, path: str) -> dict:
        """GET a lab-only JSON endpoint such as /lab/state or /lab/injected."""
        with urllib.request.urlopen(self.url + path, timeout=10) as resp:
            return json.loads(resp.read())

    def injected_windows(self) -> list[dict]:
        return self.get("/lab/injected")["windows"]

    def migration_requests(self) -> list[dict]:
        """Every live migration the lab accepted: server, microversion and body."""
        return self.get("/lab/migrations")["migrations"]

    def leftovers(self) -> dict:
        """Counts of tenant resources still in the lab (all zero after a clean task)."""
        return {k: v for k, v in self.get("/lab/state").items() if v}

    def resource_usage(self) -> dict:
        """CPU seconds and peak memory (MiB) of the lab process so far (Linux /proc)."""
        pid = self._proc.pid
        ticks = os.sysconf("SC_CLK_TCK")
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
        peak_kib = next(int(line.split()[1]) for line in
                        Path(f"/proc/{pid}/status").read_text().splitlines()
                        if line.startswith("VmHWM:"))
        return {"cpu_s": cpu, "peak_mib": peak_kib / 1024}

    def stop(self, timeout: float = 60) -> None:
        """SIGTERM the lab (it tears its guests down), then sweep anything left."""
        proc, self._proc = self._proc, None
        try:
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
        finally:
            if self._log:
                self._log.close()
                self._log = None
            sweep = subprocess.run(
                [sys.executable, "-m", "tests.lab.fabric", "cleanup",
                 "--state-dir", str(self.state_dir / "fabric")],
                cwd=REPO_ROOT, capture_output=True, text=True,
                env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)))
        if sweep.returncode != 0:
            raise LabError(f"lab cleanup left resources behind:\n{sweep.stdout}{sweep.stderr}")

    def __enter__(self) -> LabProcess:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
