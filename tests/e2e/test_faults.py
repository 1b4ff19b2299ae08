"""Faults and bad input against the lab (root): a clear verdict that names the cause,
and nothing left behind. One Rally task holds one workload per fault so the lab and
Rally start once."""

from __future__ import annotations

import subprocess

import pytest

from rally_metadata_downtime import probe_config
from rally_metadata_downtime.records import IterationRecord
from tests.helpers import lab_workload, write_task
from tests.lab.addressing import KEEP_OFF
from tests.lab.demo import lab_with_rally
from tests.lab.harness import REPO_ROOT

ARGS = {"settle": 1, "recovery_timeout": 10}
PROBE_TIMEOUT = probe_config.DEFAULT_TIMEOUT     # the workloads leave it unset

# name -> (extra scenario args, server metadata for the lab's fault profile). Metadata
# that never recovers, an unwritable probe workdir, SSH that never comes up, the
# guest events (a killed probe, a reboot, dropped SSH sessions) and a guest without
# curl run on real Nova instead: tests/lab/cloud/test_cloud.py
# (GUEST_AND_MIGRATION_FAULTS).
FAULTS = {
    # The imitation rolls a failed migration back as real Nova does (the cloud lab
    # showed the imitation wrong: it had set the server to ERROR).
    "migration_error": ({}, {"lab_migration_result": "error"}),
    "migration_hang": ({}, {"lab_migration_result": "hang", "lab_migration_duration": "0.5"}),
    "wrong_instance": ({}, {"lab_metadata_outage": "2", "lab_metadata_shape": "wrong_instance",
                            "lab_network_blackout": "0"}),
}


def _workload(name: str) -> dict:
    args, meta = FAULTS[name]
    return lab_workload({**ARGS, **args}, {"lab_migration_duration": "0.5", **meta},
                        times=2, concurrency=2,
                        sla={"metadata_downtime": {"allowed_metadata_downtime": 6}})


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    with lab_with_rally(root, live_migrate_timeout=8) as (lab, rally):
        yield lab, rally, root


@pytest.fixture(scope="module")
def faults_run(lab):
    lab_process, rally, root = lab
    task = write_task(root / "faults.json", "faults",
                      {name: _workload(name) for name in FAULTS})
    _, uuid = rally.start_task(task, "lab")
    report = rally.json_report(uuid)
    workloads = {st["title"]: st["workloads"][0]
                 for st in report["tasks"][0]["subtasks"]}
    return workloads, lab_process.injected_windows(), lab_process.leftovers()


def _errors(workload: dict) -> list[str]:
    """Each iteration's error as "Type: message" (its traceback apart)."""
    return [": ".join(map(str, it["error"][:2])) for it in workload["data"]]


def _outage_reasons(workload: dict) -> set[str]:
    """Every failed probe's reason in the workload, from the iterations' records."""
    return {reason for it in workload["data"] if _record(it).metadata
            for outage in _record(it).metadata.outages for reason in outage.reasons}


def _record(iteration: dict) -> IterationRecord:
    return IterationRecord.from_output(iteration["output"])


@pytest.mark.parametrize("name, cause", [
    ("migration_error", "Nova rolled the live migration back"),
    ("migration_hang", "did not finish its live migration"),
])
def test_fault_fails_every_iteration_naming_the_cause(faults_run, name, cause):
    workloads, _, _ = faults_run
    errors = _errors(workloads[name])
    assert len(errors) == 2
    assert all(cause in e for e in errors), errors
    assert workloads[name]["pass_sla"] is False


@pytest.mark.parametrize("name, reason", [("wrong_instance", "mismatch")])
def test_outage_shapes_are_counted_as_down(faults_run, name, reason):
    workloads, injected, _ = faults_run
    workload = workloads[name]
    assert _errors(workload) == ["", ""]
    assert reason in _outage_reasons(workload)
    truth = sorted(w["end_boottime"] - w["start_boottime"] for w in injected
                   if w["shape"] == FAULTS[name][1]["lab_metadata_shape"])
    figures = sorted((_record(it).metadata.downtime, _record(it).metadata.resolution)
                     for it in workload["data"])
    assert len(truth) == len(figures) == 2
    for expected, (measured, resolution) in zip(truth, figures):
        # Never much less than the fault lasted. More by up to one probe timeout at
        # each edge on a loaded machine: a request launched just before the fault,
        # or just after it, that load kept past its timeout, counts as a timeout
        # (seen with two CPU hogs: 2.32 s for 2.02 s). How close it comes on an
        # idle machine is the accuracy bench's figure.
        assert measured >= expected - (resolution + 0.1), (measured, expected)
        assert measured <= expected + resolution + 0.1 + 2 * PROBE_TIMEOUT, (
            measured, expected)


def test_nothing_left_in_the_lab_after_faults(faults_run):
    _, _, leftovers = faults_run
    assert leftovers == {}


@pytest.mark.parametrize("args, field", [
    ({"probe_interval": -1}, "probe_interval"),
    ({"probe_timeout": "soon"}, "probe_timeout"),
    ({"metadata_url": "http://169.254.169.254/$(touch /tmp/rmd-pwned)"}, "metadata_url"),
    ({"metadata_url": "ftp://169.254.169.254/"}, "metadata_url"),
    ({"probe_workdir": "relative/dir"}, "probe_workdir"),
    ({"migrations": 0}, "migrations"),
    ({"settle": 50, "recovery_timeout": 10}, "settle"),
    ({"no_such_argument": 1}, "no_such_argument"),
])
def test_task_validate_names_the_bad_field(lab, tmp_path, args, field):
    _, rally, _ = lab
    task = write_task(tmp_path / "bad.json", "bad", {"bad": lab_workload({**ARGS, **args})})
    proc = rally.run("task", "validate", str(task), "--env", "lab", check=False)
    assert proc.returncode != 0
    assert field in proc.stdout + proc.stderr
    assert not subprocess.run(["test", "-e", "/tmp/rmd-pwned"]).returncode == 0


def test_the_sample_task_validates_against_the_lab(lab):
    _, rally, _ = lab
    samples = REPO_ROOT / "samples"
    proc = rally.run("task", "validate", str(samples / "live_migrate_metadata.yaml"),
                     "--env", "lab", "--task-args-file", str(samples / "lab-args.yaml"),
                     check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_running_lab_leaves_the_package_registries_routed_outside(lab):
    # pip and apt reach this machine's registries at a lab-range address
    # (tests/lab/addressing.py); `ip route get` asks the kernel, sending nothing.
    for address in KEEP_OFF:
        route = subprocess.run(["ip", "route", "get", str(address)], capture_output=True,
                               text=True, check=True).stdout
        assert "rmdlab" not in route, route
    bridge = subprocess.run(["ip", "-o", "addr", "show", "dev", "rmdlabbr0"],
                            capture_output=True, text=True, check=True).stdout
    assert "203.0.113.129/25" in bridge, bridge
