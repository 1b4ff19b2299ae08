"""The real sample task, through the real rally command, against the lab (root).

Ground truth is what the lab injected (tests/lab/faults.py): the plugin's figures
must match it within the resolution the plugin itself states. The sample's SLA
failing on an outage beyond its limit is shown on real services
(tests/lab/cloud/test_cloud.py) and, with its verdict read in the HTML report, by
tests/e2e/test_report_browser.py.
"""

from __future__ import annotations

import subprocess

import pytest

from tests.lab.demo import iteration_records, run_sample
from tests.lab.faults import downtime_per_server

INJECTED_OUTAGE = 3.0      # s of metadata outage after the switchover
INJECTED_BLACKOUT = 1.0    # s of dropped packets at the switchover


def _lab_meta(outage: float, shape: str) -> dict:
    return {"boot_server_kwargs": {"meta": {
        "lab_metadata_outage": str(outage), "lab_metadata_shape": shape,
        "lab_network_blackout": str(INJECTED_BLACKOUT),
        "lab_migration_duration": "1"}}}


@pytest.fixture(scope="module")
def healthy(tmp_path_factory):
    return run_sample(tmp_path_factory.mktemp("healthy"),
                      task_args={"times": 4, "concurrency": 2,
                                 **_lab_meta(INJECTED_OUTAGE, "timeout")})


def _workload(result: dict) -> dict:
    [task] = result["report"]["tasks"]
    [subtask] = task["subtasks"]
    [workload] = subtask["workloads"]
    return workload


def _records(result: dict) -> list:
    return iteration_records(_workload(result))


def test_injected_3s_outage_passes_the_sla_with_concurrency(healthy):
    workload = _workload(healthy)
    assert healthy["exit_code"] == 0, workload["sla_results"]
    assert workload["pass_sla"] is True
    assert len(workload["data"]) == 4
    assert [it["error"] for it in workload["data"]] == [[]] * 4
    assert healthy["sla_check_exit_code"] == 0


def test_measured_metadata_downtime_matches_injected_within_stated_resolution(healthy):
    injected = sorted(downtime_per_server(healthy["injected"]).values())
    measured = sorted((r.metadata for r in _records(healthy)), key=lambda m: m.downtime)
    assert len(injected) == len(measured) == 4
    for truth, figures in zip(injected, measured):
        assert abs(figures.downtime - truth) <= figures.resolution + 0.1, (
            injected, [m.downtime for m in measured])


def test_measured_network_downtime_matches_injected_blackout(healthy):
    blackouts = sorted(w["end_boottime"] - w["start_boottime"]
                       for w in healthy["injected"] if w["kind"] == "network")
    measured = sorted(r.network.downtime for r in _records(healthy))
    assert len(blackouts) == len(measured) == 4
    for truth, figure in zip(blackouts, measured):
        # ping counts whole lost intervals (0.2 s) at both edges of the blackout.
        assert abs(figure - truth) <= 2 * 0.2 + 0.1, (blackouts, measured)


def test_nothing_left_behind(healthy):
    assert healthy["leftovers"] == {}
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert "rmdlab" not in netns
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert "rmdlab" not in links


def test_rally_logs_no_error_for_a_healthy_run(healthy):
    # Every API call Rally and its cleanup make exists in the lab, and nothing of
    # ours fails quietly (a plugin module that does not import is only logged).
    assert healthy["rally_errors"] == []
