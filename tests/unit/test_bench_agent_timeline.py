"""Placing real metadata outages against the OVN metadata agents' log lines
(tests/bench/agent_timeline.py)."""

from __future__ import annotations

import datetime

import pytest

from tests.bench.agent_timeline import AgentEvent, parse_agent_log, place, summary

AGENT = "2711 INFO neutron.agent.ovn.metadata.agent"
LOG = "\n".join([
    f"2026-12-02 07:37:05.100 {AGENT} [-] Port 9b1 in datapath neutron-n1 bound to "
    "our chassis",
    f"2026-12-02 07:37:05.250 {AGENT} [-] Provisioning metadata for network neutron-n1",
    "2026-12-02 07:37:06.000 2711 DEBUG neutron.agent.ovn.metadata.agent [-] "
    "Provisioning metadata for network neutron-n9",
    f"2026-12-02 07:37:09.500 {AGENT} [None req-1 - - - - - -] Cleaning up "
    "ovnmeta-neutron-n1 namespace which is not needed anymore", ""])


def _wall(stamp: str) -> float:
    return datetime.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").timestamp()


def test_the_info_lines_that_matter_are_read_with_their_times():
    assert parse_agent_log(LOG, "c1") == [
        AgentEvent(_wall("2026-12-02 07:37:05.250"), "c1", "provisioning", "neutron-n1"),
        AgentEvent(_wall("2026-12-02 07:37:09.500"), "c1", "cleanup",
                   "ovnmeta-neutron-n1")]


def test_an_outage_is_placed_against_the_cut_and_each_hosts_own_lines():
    events = [AgentEvent(98.0, "dst", "provisioning", "n"),      # the destination's
              AgentEvent(101.0, "src", "provisioning", "n"),     # not the destination
              AgentEvent(100.5, "src", "cleanup", "n"),
              AgentEvent(160.0, "dst", "provisioning", "n")]     # out of reach
    where = place(4.2, (100.1, 104.3), 100.0, "src", "dst", events)
    assert (where.outage_start, where.outage_end) == (
        pytest.approx(0.1, abs=1e-9), pytest.approx(4.3, abs=1e-9))
    assert where.provisioned == -2.0 and where.cleaned == 0.5
    assert place(0.0, None, 100.0, "src", "dst", []).outage_start is None


def test_the_summary_tells_long_outages_from_short_ones():
    long_ = place(6.0, (100.0, 106.0), 100.0, "s", "d", [AgentEvent(101.0, "d",
                                                                     "provisioning", "n")])
    short = place(0.5, (100.0, 100.5), 100.0, "s", "d", [])
    lines = summary([long_, short])
    assert lines[0] == ("outages over 2 s: 1; the destination provisioned its namespace "
                        "around the cut in 1; outage end after that provisioning line: "
                        "median 5.00 s, range 5.00-5.00 s")
    assert lines[1] == ("outages up to 2 s: 1; the destination provisioned its "
                        "namespace around the cut in 0")
