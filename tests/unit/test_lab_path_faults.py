"""The cloud lab's real-path faults, their bookkeeping alone (the faults themselves act
on real haproxy, OVS and the agent's path to Nova: tests/lab/cloud/test_cloud.py)."""

from __future__ import annotations

import os
import threading
import time

import pytest

from tests.lab.cloud import path_faults
from tests.lab.cloud.hypervisor import FAULT_SITE_KEY, fault_site
from tests.lab.cloud.path_faults import (
    Acted,
    CounterWatch,
    NovaCut,
    PathFault,
    PathFaults,
    tcp_out_resets,
)


def test_a_counter_watch_keeps_the_first_and_last_growth(monkeypatch):
    monkeypatch.setattr(path_faults, "SAMPLE_INTERVAL", 0.001)
    value = {"n": 5}
    grown = threading.Event()

    def read():
        if value["n"] == 7:
            grown.set()
        return value["n"]
    watch = CounterWatch(read)
    watch.start()
    time.sleep(0.01)
    assert watch.acted == Acted()
    value["n"] = 6
    time.sleep(0.02)
    value["n"] = 7
    assert grown.wait(2)
    acted = watch.stop()
    assert acted.count == 2
    assert acted.first is not None and acted.first < acted.last
    # A counter that never grew: nothing acted.
    still = CounterWatch(lambda: 3)
    still.start()
    assert still.stop() == Acted()


def test_a_counter_watch_takes_a_last_sample_when_stopped(monkeypatch):
    monkeypatch.setattr(path_faults, "SAMPLE_INTERVAL", 60)
    value = {"n": 0}
    watch = CounterWatch(lambda: value["n"])
    watch.start()
    value["n"] = 4
    assert watch.stop().count == 4
    assert watch.stop().count == 4  # once


def test_tcp_out_resets_reads_this_namespace():
    assert tcp_out_resets(os.getpid()) >= 0


def test_a_cut_host_refuses_and_counts_only_while_cut():
    cut = NovaCut()
    assert cut.admits("a")
    cut.set("a", True)
    assert not cut.admits("a") and not cut.admits("a")
    assert cut.admits("b")
    cut.set("a", False)
    assert cut.admits("a")
    assert (cut.count("a"), cut.count("b")) == (2, 0)


class _Fault(PathFault):
    def __init__(self, log, key):
        super().__init__()
        self.log, self.key = log, key
        self.watch = CounterWatch(lambda: 0)

    def apply(self):
        self.log.append(("apply", self.key))

    def mend(self):
        self.log.append(("mend", self.key))
        return Acted(1.0, 2.0, 3)


def test_a_host_fault_is_applied_once_and_mended_by_its_last_user(monkeypatch, tmp_path):
    log = []
    faults = PathFaults(tmp_path, "net", NovaCut())
    monkeypatch.setattr(faults, "_make",
                        lambda shape, host, ip, index: _Fault(log, (shape, host, ip)))
    faults.apply("refused", "h1", "203.0.113.115", 1)
    faults.apply("refused", "h1", "203.0.113.116", 2)
    faults.apply("timeout", "h1", "203.0.113.115", 1)
    faults.apply("timeout", "h1", "203.0.113.116", 2)
    # refused is the host's (one haproxy), timeout the guest's (its own rule).
    assert log == [("apply", ("refused", "h1", "203.0.113.115")),
                   ("apply", ("timeout", "h1", "203.0.113.115")),
                   ("apply", ("timeout", "h1", "203.0.113.116"))]
    assert faults.mend("refused", "h1", "203.0.113.115") == Acted()
    assert faults.mend("refused", "h1", "203.0.113.116") == Acted(1.0, 2.0, 3)
    faults.mend("timeout", "h1", "203.0.113.116")
    faults.abandon_all()
    assert log[3:] == [("mend", ("refused", "h1", "203.0.113.115")),
                       ("mend", ("timeout", "h1", "203.0.113.116")),
                       ("mend", ("timeout", "h1", "203.0.113.115"))]


def test_an_unknown_shape_is_refused_naming_the_path_shapes(tmp_path):
    faults = PathFaults(tmp_path, "net", NovaCut())
    with pytest.raises(ValueError, match="http_404.*refused, timeout, http_503"):
        faults.apply("http_404", "h1", "203.0.113.115", 1)


def test_the_fault_site_defaults_to_the_guest_and_is_checked():
    assert fault_site({"lab_metadata_outage": "3"}) == (
        "guest", {"lab_metadata_outage": "3"})
    assert fault_site({FAULT_SITE_KEY: " path "})[0] == "path"
    with pytest.raises(ValueError, match=f"{FAULT_SITE_KEY}: 'host' is not one of"):
        fault_site({FAULT_SITE_KEY: "host"})
