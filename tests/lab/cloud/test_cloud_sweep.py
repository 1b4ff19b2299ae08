"""A killed cloud lab whose state directory went too is swept: its daemons stopped
by PID, its namespaces removed; a lab whose directory exists is left alone (root;
Open vSwitch and OVN from tools/install-lab-cloud.sh)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.lab.cloud import config, ovn, sweep
from tests.lab.cloud.procs import Supervisor, alive

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(shutil.which("ovn-controller") is None,
                       reason="no OVN: run tools/install-lab-cloud.sh"),
]


def _start_chassis(state: Path) -> tuple[Supervisor, list[int], str]:
    sup = Supervisor(state)
    central = ovn.Central(state)
    central.start(sup)
    host = ovn.Chassis(state, config.COMPUTE_HOSTS[0], 1, central)
    host.start(sup)
    return sup, [p for pids in sup.running().values() for p in pids], host.netns


def test_sweep_stops_a_lab_whose_state_directory_is_gone():
    state = Path(tempfile.mkdtemp(prefix="rmdc-test-", dir="/tmp"))
    live = Path(tempfile.mkdtemp(prefix="rmdc-test-", dir="/tmp"))
    sup_live = None
    netns = config.netns_name(state, 1)
    try:
        _, pids, netns = _start_chassis(state)
        assert pids and all(alive(p) for p in pids)
        shutil.rmtree(state)  # the killed session's temporary files went too
        sup_live = Supervisor(live)
        ovn.Central(live).start(sup_live)
        live_pids = [p for pids in sup_live.running().values() for p in pids]

        assert str(state) in sweep.orphans()
        assert sweep.sweep() == 0

        assert [p for p in pids if alive(p)] == []
        assert not os.path.exists(f"/run/netns/{netns}")
        assert all(alive(p) for p in live_pids)  # a lab with its directory: untouched
    finally:
        if sup_live is not None:
            sup_live.stop_all()
        for directory in (state, live):
            shutil.rmtree(directory, ignore_errors=True)
        subprocess.run(["ip", "netns", "delete", netns], capture_output=True,
                       check=False)
