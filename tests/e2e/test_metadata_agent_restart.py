"""samples/metadata_agent_restart.yaml through the real `rally` command against the
lab (root): MetadataDowntime.boot_and_watch watches one VM on each compute host
while a marked_sys_call hook restarts the metadata agent on lab-compute-1 (3 s of
refused metadata, `python3 -m tests.lab.disrupt`).

The same lab runs the task twice, with a small and a large
allowed_metadata_downtime. Ground truth is what the lab injected: the VM on
lab-compute-1 must measure it within the resolution it states, the VM on
lab-compute-2 nothing refused (on a loaded machine, a lone timeout at most), and
each timeline must mark the hook where Rally says it ran.
"""

from __future__ import annotations

import subprocess

import pytest
import yaml

from tests.helpers import RESET_REASONS, TIMEOUT_REASONS, injected_bounds, outage_of_window
from tests.lab.demo import iteration_records, lab_with_rally
from tests.lab.faults import downtime_per_server
from tests.lab.harness import REPO_ROOT

SAMPLES = REPO_ROOT / "samples"
TASK = SAMPLES / "metadata_agent_restart.yaml"
LAB_ARGS = SAMPLES / "lab-args-agent-restart.yaml"
RESTARTED, OTHER = "lab-compute-1", "lab-compute-2"
INJECTED = 3.0
STRICT, LENIENT = 1.0, 10.0


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """{"strict": ..., "lenient": ...}: each task's workload, exit code and HTML."""
    assert f"--seconds {INJECTED:g}" in yaml.safe_load(LAB_ARGS.read_text())[
        "disruption_command"]
    root = tmp_path_factory.mktemp("agent-restart")
    results = {}
    with lab_with_rally(root) as (lab, rally):
        for name, allowed in (("strict", STRICT), ("lenient", LENIENT)):
            exit_code, uuid = rally.start_task(
                TASK, "lab", args={"allowed_metadata_downtime": allowed},
                args_file=LAB_ARGS)
            [task] = rally.json_report(uuid)["tasks"]
            [subtask] = task["subtasks"]
            [workload] = subtask["workloads"]
            results[name] = {"exit_code": exit_code, "workload": workload,
                             "html": rally.html_report(uuid, root / f"{name}.html")}
        results["injected"] = lab.injected_windows()
        results["leftovers"] = lab.leftovers()
    return results


def _by_host(result: dict) -> dict:
    records = iteration_records(result["workload"])
    assert all(r is not None and r.watch is not None for r in records), records
    return {r.watch.host: r for r in records}


def _hook_result(result: dict) -> dict:
    [hook] = result["workload"]["hooks"]
    assert list(hook["config"]["action"]) == ["marked_sys_call"]
    [run] = hook["results"]
    return run


@pytest.mark.parametrize("name", ["strict", "lenient"])
def test_one_vm_per_host_is_watched_and_the_hook_fires_during_the_watch(runs, name):
    result = runs[name]
    assert [it["error"] for it in result["workload"]["data"]] == [[], []]
    hook = _hook_result(result)
    assert hook["status"] == "success", hook
    assert hook["triggered_by"] == {"event_type": "time", "value": 10}
    records = _by_host(result)
    assert set(records) == {RESTARTED, OTHER}
    for record in records.values():
        watch_start = record.watch.start + record.clock_offset
        watch_end = record.watch.end + record.clock_offset
        assert watch_start < hook["started_at"] < hook["finished_at"] < watch_end, (
            watch_start, hook, watch_end)
        assert record.migrations == ()


@pytest.mark.parametrize("name", ["strict", "lenient"])
def test_measured_downtime_matches_the_injected_restart(runs, name):
    records = _by_host(runs[name])
    restarted, other = records[RESTARTED], records[OTHER]
    truth = downtime_per_server(runs["injected"])
    [window] = [w for w in runs["injected"] if w["server_id"] == restarted.server_id]
    assert (window["kind"], window["shape"]) == ("metadata", "refused")
    assert window["detail"] == f"metadata agent restarted on {RESTARTED}"
    assert truth[restarted.server_id] == pytest.approx(
        window["end_boottime"] - window["start_boottime"])
    figures = restarted.metadata
    # One measured outage is the restart's; a loaded machine may add a lone timeout.
    outage = outage_of_window(restarted, window["start_boottime"], window["end_boottime"])
    # The restart lasted at least the window minus the time the lab took to end it
    # and at most the window plus the time it took to apply it (one `ip` call each;
    # tenths of a second under load).
    shortest, longest = injected_bounds(window)
    assert shortest - figures.resolution <= outage.duration \
        <= longest + figures.resolution, (outage, window, figures.resolution)
    # Refused, and perhaps the request in flight when the restart began reset.
    assert "wget=refused" in outage.reasons, outage
    assert set(outage.reasons) <= {"wget=refused"} | RESET_REASONS, outage
    assert figures.recovered
    # The other host's VM: no window and the restart not its own (nothing refused);
    # at most a request that outlasted the probe's timeout on a loaded machine.
    assert other.server_id not in truth
    assert all(set(o.reasons) <= TIMEOUT_REASONS for o in other.metadata.outages), (
        other.metadata)
    assert other.metadata.recovered


def test_the_sla_fails_with_a_small_limit_and_passes_with_a_large_one(runs):
    strict, lenient = runs["strict"], runs["lenient"]
    assert strict["exit_code"] == 2 and strict["workload"]["pass_sla"] is False
    [criterion] = [s for s in strict["workload"]["sla_results"]["sla"]
                   if s["criterion"] == "metadata_downtime"]
    assert criterion["success"] is False
    assert f"allowed {STRICT:g} s" in criterion["detail"]
    assert lenient["exit_code"] == 0 and lenient["workload"]["pass_sla"] is True


@pytest.mark.parametrize("name", ["strict", "lenient"])
def test_each_timeline_marks_the_hook_where_rally_says_it_ran(runs, name):
    hook = _hook_result(runs[name])
    data = {r.server_id: it for it, r in zip(runs[name]["workload"]["data"],
                                             iteration_records(runs[name]["workload"]))}
    for record in _by_host(runs[name]).values():
        [run] = record.disruptions
        # Our mark is written inside Rally's timer of the hook's run.
        assert hook["started_at"] - 0.01 <= run.started_at <= hook["started_at"] + 0.5
        assert hook["finished_at"] - 0.5 <= run.finished_at <= hook["finished_at"] + 0.01
        assert run.status == "success" and run.triggered_by == "time: 10"
        [timeline] = [c for c in data[record.server_id]["output"]["complete"]
                      if c["title"] == "Metadata probe timeline"]
        series = dict(timeline["data"])
        box = [x for x, y in series["hook run"] if y > 1]
        origin = record.watch.start + record.clock_offset
        assert box == pytest.approx([run.started_at - origin, run.finished_at - origin],
                                    abs=0.01)
        assert "tests.lab.disrupt metadata-agent" in timeline["description"]


def test_nothing_left_behind(runs):
    assert runs["leftovers"] == {}
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert "rmdlab" not in netns
