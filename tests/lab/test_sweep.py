"""The sweep removes what a killed lab left, and leaves a running lab alone (root)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.lab import ledger, netns, sweep
from tests.lab.prefix_lock import PrefixLock

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the sweep needs root")

STALE = f"rmdsw{os.getpid() % 1000}"
BUSY = f"rmdsb{os.getpid() % 1000}"


@pytest.fixture
def remains():
    """A stale lab (bridge with an address, metadata namespace and veth, no process)
    and a busy one (a guest namespace with a process in it); removed whatever happens."""
    created_netns = [f"{STALE}-meta", f"{STALE}-g1", f"{BUSY}-g1"]
    sleeper = None
    try:
        for name in created_netns:
            netns.ip("netns", "add", name)
        netns.ip("link", "add", f"{STALE}br0", "type", "bridge")
        netns.ip("addr", "add", "198.51.100.253/32", "dev", f"{STALE}br0")
        netns.ip("link", "add", f"{STALE}m0", "type", "veth", "peer", "name", "eth0",
                 "netns", f"{STALE}-meta")
        netns.ip("link", "add", f"{STALE}v1", "type", "veth", "peer", "name", "eth0",
                 "netns", f"{STALE}-g1")
        sleeper = subprocess.Popen(["ip", "netns", "exec", f"{BUSY}-g1", "sleep", "60"])
        starttime = ledger.process_starttime(sleeper.pid)
        yield sleeper
    finally:
        if sleeper is not None:
            ledger.kill_process(sleeper.pid, starttime)
            sleeper.wait(5)
        for name in created_netns:
            netns.delete_netns(name)
        for name in (f"{STALE}br0", f"{STALE}m0", f"{STALE}v1"):
            netns.delete_link(name)


def _wait_until_in_netns(pid: int, name: str) -> None:
    for _ in range(100):
        if str(pid) in netns.ip("netns", "pids", name, check=False).split():
            return
        subprocess.run(["sleep", "0.05"], check=True)
    raise AssertionError(f"{pid} never entered {name}")


def test_sweep_removes_a_dead_lab_and_leaves_a_running_one(remains, capsys):
    _wait_until_in_netns(remains.pid, f"{BUSY}-g1")
    found = sweep.find_remains()
    assert found[STALE].namespaces == [f"{STALE}-g1", f"{STALE}-meta"]
    assert found[STALE].links == [f"{STALE}br0", f"{STALE}m0", f"{STALE}v1"]
    assert found[BUSY].namespaces == [f"{BUSY}-g1"]

    assert sweep.sweep([STALE, BUSY]) == 0

    out = capsys.readouterr().out
    assert f"{BUSY} is running (PIDs {remains.pid})" in out
    assert f"removed what lab {STALE} left" in out
    assert STALE not in sweep.find_remains()
    assert not netns.link_exists(f"{STALE}br0")
    assert "198.51.100.253" not in netns.ip("-o", "addr")
    assert netns.netns_exists(f"{BUSY}-g1")
    assert remains.poll() is None


def test_sweep_removes_lock_files_no_lab_holds(monkeypatch, tmp_path, capsys):
    dead = tmp_path / f"rmd-lab-{STALE}.lock"
    dead.touch()
    live = PrefixLock(tmp_path / f"rmd-lab-{BUSY}.lock")
    live.acquire()
    monkeypatch.setattr(sweep, "PREFIX_LOCK_DIR", tmp_path)
    try:
        sweep.sweep(prefixes=[STALE, BUSY])
        assert not dead.exists() and live.path.exists()
        assert f"removed {dead}" in capsys.readouterr().out
    finally:
        live.release()


def test_sweep_runs_with_the_standard_library_alone():
    # .ci/run sweeps before anything is installed: -S leaves site-packages out.
    proc = subprocess.run([sys.executable, "-S", "-m", "tests.lab.sweep",
                           "--prefix", STALE], capture_output=True, text=True,
                          cwd=os.path.dirname(os.path.dirname(os.path.dirname(
                              os.path.abspath(__file__)))))
    assert proc.returncode == 0, proc.stderr
    assert "nothing left by earlier labs" in proc.stdout
