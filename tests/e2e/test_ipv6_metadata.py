"""IPv6 metadata beside IPv4 through the real `rally` against the lab (root): both
families measured in one iteration, each against the lab's ground truth for its
family within the resolution the plugin states; an IPv6-only outage shows on ipv6
and not on ipv4; the SLA fails on the family over its own limit and names it."""

from __future__ import annotations

import re

import pytest

from rally_metadata_downtime.records import IterationRecord
from tests.helpers import lab_workload, write_task
from tests.lab.demo import lab_with_rally
from tests.lab.faults import downtime_per_server

BOTH = {"settle": 1, "recovery_timeout": 15, "metadata_families": ["ipv4", "ipv6"]}
SLA = {"allowed_metadata_downtime": 6, "allowed_metadata_downtime_ipv6": 1}
# name -> (scenario args, server metadata: the lab's fault profile)
WORKLOADS = {
    # 3 s of HTTP 503 over IPv6 alone: over ipv6's 1 s limit, ipv4 untouched.
    "ipv6_outage": (BOTH, {"lab_metadata_outage": "3", "lab_metadata_shape": "http_503",
                           "lab_metadata_families": "ipv6", "lab_network_blackout": "0"}),
    # Both families refused for 2 s, and a blackout that cuts both.
    "both_refused": (BOTH, {"lab_metadata_outage": "2", "lab_metadata_shape": "refused",
                            "lab_network_blackout": "0.5"}),
    # IPv6 alone, blackholed.
    "ipv6_only": ({**BOTH, "metadata_families": ["ipv6"]},
                  {"lab_metadata_outage": "2", "lab_metadata_shape": "timeout",
                   "lab_metadata_families": "ipv6", "lab_network_blackout": "0"}),
}
LIMITS = {"ipv6_outage": SLA, "both_refused": {"allowed_metadata_downtime": 6},
          "ipv6_only": {"allowed_metadata_downtime": 6}}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ipv6")
    with lab_with_rally(root) as (lab, rally):
        task = write_task(root / "ipv6.json", "ipv6", {
            name: lab_workload(args, {"lab_migration_duration": "0.5", **meta},
                               sla={"metadata_downtime": LIMITS[name]})
            for name, (args, meta) in WORKLOADS.items()})
        _, uuid = rally.start_task(task, "lab")
        report = rally.json_report(uuid)
        windows = lab.injected_windows()
    workloads = {st["title"]: st["workloads"][0] for st in report["tasks"][0]["subtasks"]}
    return workloads, windows


def _record(workload: dict) -> IterationRecord:
    [iteration] = workload["data"]
    assert not iteration["error"], iteration["error"]
    return IterationRecord.from_output(iteration["output"])


def _sla_detail(workload: dict) -> str:
    [sla] = [s for s in workload["sla_results"]["sla"] if s["criterion"] == "metadata_downtime"]
    return sla["detail"]


def _truth(windows: list[dict], record: IterationRecord, family: str) -> float:
    return downtime_per_server(windows, family).get(record.server_id, 0.0)


def test_both_families_are_measured_in_one_iteration_against_their_ground_truth(runs):
    workloads, windows = runs
    record = _record(workloads["both_refused"])
    assert record.families == ("ipv4", "ipv6")
    for family, figures in record.metadata_by_family.items():
        truth = _truth(windows, record, family)
        assert 2.0 <= truth < 3.5
        assert abs(figures.downtime - truth) <= figures.resolution + 0.1, (family, figures)
        assert figures.recovered
    assert workloads["both_refused"]["pass_sla"] is True


def test_an_ipv6_only_outage_shows_on_ipv6_and_not_on_ipv4(runs):
    workloads, windows = runs
    record = _record(workloads["ipv6_outage"])
    ipv4, ipv6 = record.metadata_by_family["ipv4"], record.metadata_by_family["ipv6"]
    assert _truth(windows, record, "ipv4") == 0.0
    assert (ipv4.downtime, ipv4.outages) == (0.0, ())
    truth = _truth(windows, record, "ipv6")
    assert abs(ipv6.downtime - truth) <= ipv6.resolution + 0.1, (truth, ipv6)
    assert {reason for o in ipv6.outages for reason in o.reasons} == {"http=503"}


def test_the_sla_fails_on_the_family_over_its_limit_and_names_it(runs):
    workloads, _ = runs
    workload = workloads["ipv6_outage"]
    assert workload["pass_sla"] is False
    detail = _sla_detail(workload)
    assert "worst ipv4 metadata downtime 0.00 s (iteration 1), allowed 6 s" in detail
    worst = re.search(r"worst ipv6 metadata downtime ([0-9.]+) s \(iteration 1\), "
                      r"allowed 1 s", detail)
    assert worst and 2.7 <= float(worst.group(1)) <= 3.4, detail


def test_ipv6_alone_is_measured(runs):
    workloads, windows = runs
    record = _record(workloads["ipv6_only"])
    assert record.families == ("ipv6",)
    (family, figures), = record.metadata_by_family.items()
    assert family == "ipv6"
    truth = _truth(windows, record, "ipv6")
    assert abs(figures.downtime - truth) <= figures.resolution + 0.1, (truth, figures)
    assert "worst ipv6 metadata downtime" in _sla_detail(workloads["ipv6_only"])
