"""MetadataMeter through Rally's SSH client into a lab guest running real OpenSSH
(root): the probe's whole life, and a connection dropped while the probe runs.

Own lab prefix and gateways (198.51.100.161/27, 203.0.113.97/28; see
tests/lab/addressing.py), so it runs beside the other labs.
"""

from __future__ import annotations

import io
import os
import time

import pytest
from rally.utils import sshutils

from rally_metadata_downtime.meter import MetadataMeter, MeterError
from rally_metadata_downtime.probe_config import ProbeConfig
from rally_metadata_downtime.probe_log import parse_probe_log
from tests.helpers import logged_probes, public_key, wait_until
from tests.lab.fabric import Fabric

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")

PREFIX = f"rmdm{os.getpid() % 1000}"
FIXED_GW, FLOATING_GW = "198.51.100.161/27", "203.0.113.97/28"
GUEST_IP = "198.51.100.162"


@pytest.fixture(scope="module")
def lab(tmp_path_factory, key):
    fabric = Fabric(tmp_path_factory.mktemp("meter-lab"), PREFIX, fixed_gateway=FIXED_GW,
                    floating_gateway=FLOATING_GW)
    with fabric:
        fabric.create_guest("srv-m", "vm-meter", "vm-meter", GUEST_IP,
                            public_key(key, "meter-test"))
        yield fabric


def connector(key):
    private = io.StringIO()
    key.write_private_key(private)
    connections = []

    def connect():
        connections.append(sshutils.SSH("root", GUEST_IP, pkey=private.getvalue()))
        return connections[-1]
    return connect, connections


def wait_for_more_probes(meter, than: int, timeout: float = 10) -> int:
    def more() -> int:
        count = logged_probes(meter)
        return count if count > than else 0
    return wait_until(more, meter.fetch_log, timeout, interval=0.2)


def guest_files(lab) -> str:
    return lab.guest_exec("srv-m", ["sh", "-c", "ls -A /tmp"]).stdout


def test_the_probe_survives_a_dropped_connection_and_the_meter_reconnects(lab, key):
    connect, connections = connector(key)
    meter = MetadataMeter(connect, ProbeConfig(interval=0.2, timeout=1))
    try:
        clock = meter.start()
        # The guest shares this machine's boot clock: its uptime maps to our time.
        guest_uptime = float(lab.guest_exec("srv-m", ["cat", "/proc/uptime"]).stdout.split()[0])
        assert abs(clock.to_host_time(guest_uptime) - time.time()) < 1 + clock.error
        assert meter.wait_until_answering(timeout=10) >= 0
        assert meter.clock.error <= clock.error   # polls keep the closest reading
        pid_before = lab.guest_exec("srv-m", ["sh", "-c", "cat /tmp/rmd-probe.*/probe.pid"]
                                    ).stdout.strip()
        before = logged_probes(meter)

        killed = lab.drop_ssh_sessions("srv-m")

        assert killed, "the meter's SSH connection was not open"
        after = wait_for_more_probes(meter, before)   # reconnects to read
        assert len(connections) == 2
        assert lab.guest_exec("srv-m", ["sh", "-c", "cat /tmp/rmd-probe.*/probe.pid"]
                              ).stdout.strip() == pid_before
        log = parse_probe_log(meter.stop())
    finally:
        meter.cleanup()
    assert log.stopped and len(log.probes) >= after
    assert all(p.ok for p in log.probes), [p.reason for p in log.probes if not p.ok]
    assert "rmd-probe." not in guest_files(lab)


def test_a_second_meter_on_the_same_guest_is_refused(lab, key):
    first = MetadataMeter(connector(key)[0], ProbeConfig())
    second = MetadataMeter(connector(key)[0], ProbeConfig())
    first.start()
    try:
        with pytest.raises(MeterError, match="refused to start a second probe"):
            second.start()
    finally:
        first.cleanup()
        second.cleanup()
    assert "rmd-probe." not in guest_files(lab)


def test_cleanup_after_the_probe_was_killed_leaves_nothing(lab, key):
    meter = MetadataMeter(connector(key)[0], ProbeConfig())
    meter.start()
    lab.guest_exec("srv-m", ["sh", "-c", 'kill -KILL "$(cat /tmp/rmd-probe.*/probe.pid)"'])
    wait_until(lambda: not meter.is_running(), "the killed probe to stop running",
               timeout=5, interval=0.1)
    log = parse_probe_log(meter.fetch_log())
    assert not log.stopped     # the log itself says it ended early
    meter.cleanup()
    assert "rmd-probe." not in guest_files(lab)
