"""The cloud lab's real-path faults, their bookkeeping alone (the faults themselves act
on real haproxy, OVS and the agent's path to Nova: tests/lab/cloud/test_cloud.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import threading
import time

import pytest

from tests.lab.cloud import path_faults
from tests.lab.cloud.hypervisor import (
    FAULT_SITE_KEY,
    fault_site,
    request_head,
    wants_decoy,
)
from tests.lab.cloud.path_faults import (
    Acted,
    CounterWatch,
    FaultTarget,
    NovaCut,
    NovaRequests,
    PathFault,
    PathFaults,
    PortIdentityChanged,
    tcp_out_resets,
)

GUEST_1 = FaultTarget("h1", "203.0.113.115", 1, "port-1", "server-1")
GUEST_2 = FaultTarget("h1", "203.0.113.116", 2, "port-2", "server-2")


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
    monkeypatch.setattr(faults, "_make", lambda shape, target: _Fault(
        log, (shape, target.host, target.guest_ip)))
    faults.apply("refused", GUEST_1)
    faults.apply("refused", GUEST_2)
    faults.apply("timeout", GUEST_1)
    faults.apply("timeout", GUEST_2)
    # refused is the host's (one haproxy), timeout the guest's (its own rule).
    assert log == [("apply", ("refused", "h1", "203.0.113.115")),
                   ("apply", ("timeout", "h1", "203.0.113.115")),
                   ("apply", ("timeout", "h1", "203.0.113.116"))]
    assert faults.mend("refused", GUEST_1) == Acted()
    assert faults.mend("refused", GUEST_2) == Acted(1.0, 2.0, 3)
    faults.mend("timeout", GUEST_2)
    faults.abandon_all()
    assert log[3:] == [("mend", ("refused", "h1", "203.0.113.115")),
                       ("mend", ("timeout", "h1", "203.0.113.116")),
                       ("mend", ("timeout", "h1", "203.0.113.115"))]


def test_an_identity_fault_is_the_ports_wherever_the_guest_runs(monkeypatch, tmp_path):
    log = []
    faults = PathFaults(tmp_path, "net", NovaCut())
    monkeypatch.setattr(faults, "_make", lambda shape, target: _Fault(
        log, (shape, target.port_id)))
    faults.apply("http_404", GUEST_1)
    # The same guest's outage extended by a migration to another host: one fault.
    faults.apply("http_404", dataclasses.replace(GUEST_1, host="h2"))
    faults.apply("http_404", GUEST_2)
    assert log == [("apply", ("http_404", "port-1")), ("apply", ("http_404", "port-2"))]
    faults.mend("http_404", GUEST_1)
    assert log[2:] == []
    faults.mend("http_404", dataclasses.replace(GUEST_1, host="h2"))
    assert log[2:] == [("mend", ("http_404", "port-1"))]


def test_an_unknown_shape_is_refused_naming_the_path_shapes(tmp_path):
    faults = PathFaults(tmp_path, "net", NovaCut())
    with pytest.raises(ValueError, match="empty.*refused, timeout, http_503, "
                                         "http_404, wrong_instance\\)"):
        faults.apply("empty", GUEST_1)


def test_the_identity_shape_needs_neutron(tmp_path):
    with pytest.raises(ValueError, match="'http_404': this lab has no Neutron"):
        PathFaults(tmp_path, "net", NovaCut()).apply("http_404", GUEST_1)


class _Ports:
    """Neutron's ports as NeutronPorts sees them: device_id by port."""

    def __init__(self, **owners):
        self.owners, self.calls = dict(owners), []

    def device_id(self, port_id):
        return self.owners[port_id]

    def set_device_id(self, port_id, device_id):
        self.calls.append((port_id, device_id))
        self.owners[port_id] = device_id


def test_a_404_names_a_server_nobody_has_and_counts_the_guests_requests_for_it(
        monkeypatch, tmp_path):
    monkeypatch.setattr(path_faults, "SAMPLE_INTERVAL", 60)
    ports, requests = _Ports(**{"port-1": "server-1"}), NovaRequests()
    faults = PathFaults(tmp_path, "net", NovaCut(), ports, requests)
    faults.apply("http_404", GUEST_1)
    [(port, bogus)] = ports.calls
    assert port == "port-1" and bogus not in ("server-1", "server-2", "")
    for _ in range(3):
        requests.saw(b"GET /latest/meta-data/hostname HTTP/1.1\r\nHost: x\r\n"
                     b"x-instance-id: " + bogus.encode() + b"\r\n"
                     b"X-Forwarded-For: 203.0.113.115\r\n\r\n")
    # Another guest's requests, and this guest's for itself, are not the fault's.
    requests.saw(b"GET / HTTP/1.1\r\nX-Instance-ID: " + bogus.encode() + b"\r\n"
                 b"X-Forwarded-For: 203.0.113.116\r\n\r\n")
    requests.saw(b"GET / HTTP/1.1\r\nX-Instance-ID: server-1\r\n"
                 b"X-Forwarded-For: 203.0.113.115\r\n\r\n")
    acted = faults.mend("http_404", GUEST_1)
    assert ports.owners["port-1"] == "server-1"
    assert acted.count == 3


def test_another_servers_data_names_the_guests_decoy(monkeypatch, tmp_path):
    monkeypatch.setattr(path_faults, "SAMPLE_INTERVAL", 60)
    ports = _Ports(**{"port-1": "server-1"})
    asked = []

    def decoy_for(server_id):
        asked.append(server_id)
        return "decoy-of-server-1"
    faults = PathFaults(tmp_path, "net", NovaCut(), ports, NovaRequests(), decoy_for)
    faults.apply("wrong_instance", GUEST_1)
    assert asked == ["server-1"]
    assert ports.calls == [("port-1", "decoy-of-server-1")]
    faults.mend("wrong_instance", GUEST_1)
    assert ports.owners["port-1"] == "server-1"


def test_another_servers_data_needs_decoys(tmp_path):
    ports = _Ports(**{"port-1": "server-1"})
    with pytest.raises(ValueError, match="'wrong_instance': this lab boots no decoy"):
        PathFaults(tmp_path, "net", NovaCut(), ports).apply("wrong_instance", GUEST_1)
    assert ports.calls == []


def test_a_guest_wants_a_decoy_only_for_another_servers_data_in_the_path():
    def meta(shape, site="path"):
        return {"lab_metadata_outage": "3", "lab_metadata_shape": shape,
                FAULT_SITE_KEY: site}
    assert wants_decoy(meta("wrong_instance"))
    assert not wants_decoy(meta("http_404"))
    assert not wants_decoy(meta("refused", site="guest"))
    assert not wants_decoy({})
    assert not wants_decoy({**meta("wrong_instance"), "lab_nonsense": "1"})
    cycled = {**meta("http_404"), "lab_profile_cycle": "healthy,wrong_instance"}
    assert wants_decoy(cycled, "wrong_instance")
    assert not wants_decoy(cycled, "healthy")


def test_the_lab_going_away_gives_the_port_back_and_a_foreign_port_is_left_alone(
        tmp_path):
    ports = _Ports(**{"port-1": "server-1", "port-2": "someone-else"})
    faults = PathFaults(tmp_path, "net", NovaCut(), ports)
    faults.apply("http_404", GUEST_1)
    faults.abandon_all()
    assert ports.owners["port-1"] == "server-1"
    # A port that is not the guest's (any more) is not touched.
    with pytest.raises(RuntimeError, match="port port-2 belongs to 'someone-else'"):
        PortIdentityChanged(ports, NovaRequests(), GUEST_2, "server-1").apply()
    assert ports.owners["port-2"] == "someone-else"


def test_nova_requests_are_counted_by_instance_header():
    requests = NovaRequests()
    requests.saw(b"GET / HTTP/1.1\r\nX-Instance-ID:  abc \r\nX-Tenant-ID: t\r\n"
                 b"x-forwarded-for: 203.0.113.115\r\n\r\n")
    requests.saw(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")  # no instance: not counted
    requests.saw(b"")
    assert requests.count("abc", "203.0.113.115") == 1
    assert (requests.count("abc", "203.0.113.116"), requests.count("t", "")) == (0, 0)


def test_the_fault_site_defaults_to_the_guest_and_is_checked():
    assert fault_site({"lab_metadata_outage": "3"}) == (
        "guest", {"lab_metadata_outage": "3"})
    assert fault_site({FAULT_SITE_KEY: " path "})[0] == "path"
    with pytest.raises(ValueError, match=f"{FAULT_SITE_KEY}: 'host' is not one of"):
        fault_site({FAULT_SITE_KEY: "host"})


@pytest.mark.parametrize("sent, head, rest", [
    (b"GET / HTTP/1.1\r\nX-Instance-ID: a\r\n\r\nbody", b"GET / HTTP/1.1\r\n"
     b"X-Instance-ID: a\r\n\r\n", b"body"),
    (b"GET / HTT", b"GET / HTT", b""),       # the peer closed before a whole head
    (b"x" * 70000, b"x" * 65536, b"x" * 4464),  # no head at all: forwarded as it came
])
def test_the_forwarder_reads_a_request_head_and_leaves_the_rest(sent, head, rest):
    async def read():
        reader = asyncio.StreamReader(limit=65536)
        reader.feed_data(sent)
        reader.feed_eof()
        first = await request_head(reader)
        return first, await reader.read()
    assert asyncio.run(read()) == (head, rest)
