"""Live migration at every Nova microversion, through the real `rally` command (root).

One lab serves every test, and two Rally tasks hold every workload so that Rally
starts twice, not once per version. The environment `v2_79` asks for 2.79 in its
`api_info`, as the user who reported the defect did; in the default environment each
workload asks for its version with rally-openstack's `api_versions` context, which
sets the same `api_info` on the credentials. Each version migrates twice: to the
scheduler's choice of host and to a named destination_host. The lab refuses every
body its negotiated version does not accept, as Nova does, and records what it
accepted.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from tests.helpers import lab_workload, write_task
from tests.lab.demo import iteration_records, lab_with_rally
from tests.lab.faults import downtime_per_server
from tests.lab.openstack.config import LabConfig, env_spec
from tests.lab.rally_cli import RallyHome

ARGS = {"settle": 0.5, "recovery_timeout": 15, "measure_network": False}
FAST_MIGRATION = {"lab_migration_duration": "0.3", "lab_network_blackout": "0"}
SOURCE, DESTINATION = LabConfig().hypervisors
# Version -> block_migration tried there ("auto" exists from 2.25).
CONTEXT_VERSIONS = {"2.1": True, "2.25": "auto", "2.30": False, "2.56": "auto",
                    "2.68": True}
ENV_VERSION, ENV_BLOCK_MIGRATION = "2.79", "auto"
THREE_MIGRATIONS = {"lab_migration_duration": "1", "lab_network_blackout": "0.3",
                    "lab_metadata_outage": "3", "lab_metadata_shape": "refused"}


def _workload(title: str, meta: dict, version: str | None = None,
              **args) -> tuple[str, dict]:
    """(title, workload): one iteration, at the Nova `version` when one is given."""
    contexts = {"api_versions": {"nova": {"version": version}}} if version else None
    return title, lab_workload(
        {**ARGS, **args}, {**FAST_MIGRATION, **meta}, contexts=contexts,
        sla={"failure_rate": {"max": 0},
             "metadata_downtime": {"allowed_metadata_downtime": 20}})


def _both_ways(label: str, version: str | None, block_migration,
               **args) -> list[tuple[str, dict]]:
    """Two workloads: the scheduler picks the host; destination_host names it."""
    return [_workload(f"{label} scheduler", {}, version, block_migration=block_migration,
                      **args),
            _workload(f"{label} named", {"lab_boot_host": SOURCE}, version,
                      destination_host=DESTINATION, block_migration=block_migration,
                      **args)]


def _run(rally: RallyHome, root, env: str, subtasks: list[tuple[str, dict]]) -> dict:
    task = write_task(root / f"task-{env}.json", env, dict(subtasks))
    _, uuid = rally.start_task(task, env)
    report = rally.json_report(uuid)
    return {st["title"]: st["workloads"][0] for st in report["tasks"][0]["subtasks"]}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("microversions")
    with lab_with_rally(root, live_migrate_timeout=20) as (lab, rally):
        spec = env_spec(lab.url)
        spec["openstack"]["api_info"] = {"nova": {"version": ENV_VERSION}}
        rally.create_env("v2_79", spec)
        yield lab, rally, root


@pytest.fixture(scope="module")
def runs(lab):
    """Both tasks' workloads by title, and what the lab saw while they ran."""
    lab_process, rally, root = lab
    subtasks = [w for version, block in CONTEXT_VERSIONS.items()
                for w in _both_ways(version, version, block)]
    subtasks += _both_ways("latest", "2.1", "auto", nova_microversion="2.latest")
    subtasks.append(_workload("auto at 2.1", {}, "2.1", block_migration="auto"))
    workloads = _run(rally, root, "lab", subtasks)
    workloads.update(_run(rally, root, "v2_79", [
        *_both_ways(ENV_VERSION, None, ENV_BLOCK_MIGRATION),
        _workload("three migrations", THREE_MIGRATIONS, migrations=3, settle=1)]))
    migrations = {}
    for request in lab_process.migration_requests():
        migrations.setdefault(request["server_id"], []).append(request)
    return workloads, migrations, lab_process.injected_windows()


def _errors(workload: dict) -> list:
    return [it["error"] for it in workload["data"]]


def _accepted(runs, label: str) -> list[dict]:
    """The lab's record of the two migrations of `label` (scheduler, then named)."""
    workloads, migrations, _ = runs
    found = []
    for suffix in ("scheduler", "named"):
        workload = workloads[f"{label} {suffix}"]
        [iteration] = workload["data"]
        started = iteration["timestamp"]
        # Workloads run one after another: the migration accepted during this one.
        ended = started + iteration["duration"]
        [request] = [r for rs in migrations.values() for r in rs
                     if started <= r["accepted_at"] <= ended]
        found.append(request)
    return found


@pytest.mark.parametrize("label, block_migration", [
    *CONTEXT_VERSIONS.items(), (ENV_VERSION, ENV_BLOCK_MIGRATION)])
def test_live_migration_at_the_asked_microversion(runs, label, block_migration):
    workloads = runs[0]
    for suffix in ("scheduler", "named"):
        workload = workloads[f"{label} {suffix}"]
        assert _errors(workload) == [[]], (suffix, _errors(workload))
        assert workload["pass_sla"] is True, suffix
    accepted = _accepted(runs, label)
    assert [m["microversion"] for m in accepted] == [label, label]
    assert [m["body"]["host"] for m in accepted] == [None, DESTINATION]
    assert all(m["body"]["block_migration"] == block_migration for m in accepted)
    assert all(("disk_over_commit" in m["body"]) == (label == "2.1") for m in accepted)


def test_latest_through_the_scenario_argument(runs):
    workloads = runs[0]
    assert [_errors(workloads[f"latest {s}"]) for s in ("scheduler", "named")] == [
        [[]], [[]]]
    assert [m["microversion"] for m in _accepted(runs, "latest")] == ["2.96", "2.96"]


def test_latest_in_the_environment_is_refused_by_novaclient_not_the_cloud(lab):
    # novaclient's Client() takes only an explicit version; rally-openstack hands it
    # "2.latest" as is, so no cloud can make such an environment work.
    lab_process, rally, _ = lab
    spec = env_spec(lab_process.url)
    spec["openstack"]["api_info"] = {"nova": {"version": "2.latest"}}
    rally.create_env("v2_latest", spec)
    check = rally.run("env", "check", "v2_latest", check=False)
    assert check.returncode != 0
    assert "Can not create 'nova' with 2.latest version" in check.stdout + check.stderr


def test_auto_before_2_25_is_refused_before_anything_boots(runs):
    workload = runs[0]["auto at 2.1"]
    [error] = _errors(workload)
    assert error[0] == "ArgumentError", error
    assert "block_migration: 'auto' needs Nova microversion 2.25 or later, this client " \
           "speaks 2.1" in error[1]
    assert "nova.boot_server" not in [a["name"] for a in
                                      workload["data"][0]["atomic_actions"]]


def test_several_migrations_during_one_outage(runs):
    """Nova takes a new migration once the server is ACTIVE on its new host, while
    the previous migration's metadata outage still runs; the figures must match the
    outage the guest really had (the injected windows' union)."""
    workloads, migrations, windows = runs
    workload = workloads["three migrations"]
    assert _errors(workload) == [[]]
    assert [a["name"] for a in workload["data"][0]["atomic_actions"]].count(
        "nova.live_migrate") == 3
    [server] = [s for s, requests in migrations.items() if len(requests) == 3]
    mine = [w for w in windows if w["server_id"] == server]
    # Each migration started within the previous one's outage: one longer outage.
    [metadata_window] = [w for w in mine if w["kind"] == "metadata"]
    assert metadata_window["detail"] == "extended by 2 later migration(s)"
    truth = downtime_per_server(mine)[server]
    assert truth > 5
    [record] = iteration_records(workload)
    figures = record.metadata
    assert abs(figures.downtime - truth) <= figures.resolution + 0.1, (figures, truth)
    # The record keeps each migration's hosts: two hosts, there and back.
    hosts = [(m.source_host, m.destination_host) for m in record.migrations]
    assert all(source != destination for source, destination in hosts), hosts
    assert all(hosts[i][1] == hosts[i + 1][0] for i in range(2)), hosts
    assert {h for pair in hosts for h in pair} == {SOURCE, DESTINATION}


def _nova_request(url: str, token: str, path: str, body: dict | None,
                  version: str | None) -> tuple[int, dict, dict]:
    headers = {"X-Auth-Token": token, "Content-Type": "application/json"}
    if version:
        headers["OpenStack-API-Version"] = f"compute {version}"
    request = urllib.request.Request(f"{url}/compute/v2.1{path}", headers=headers,
                                     data=json.dumps(body).encode() if body else None,
                                     method="POST" if body else "GET")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), json.loads(response.read()
                                                                         or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), json.loads(e.read() or b"{}")


@pytest.fixture(scope="module")
def admin_token(lab):
    config = LabConfig()
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": config.admin_user, "password": config.admin_password,
        "domain": {"name": "Default"}}}}, "scope": {"project": {
            "name": config.admin_project, "domain": {"name": "Default"}}}}}
    request = urllib.request.Request(f"{lab[0].url}/identity/v3/auth/tokens",
                                     data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.headers["X-Subject-Token"]


MISSING_SERVER = "/servers/00000000-0000-0000-0000-000000000000/action"


@pytest.mark.parametrize("version, body, status, problem", [
    ("2.1", {"host": None, "block_migration": False, "disk_over_commit": False}, 404, ""),
    ("2.1", {"host": None, "block_migration": "auto", "disk_over_commit": False}, 400,
     "'auto' is not valid"),
    ("2.1", {"host": None, "block_migration": False}, 400,
     "'disk_over_commit' is a required property"),
    ("2.25", {"host": None, "block_migration": False, "disk_over_commit": False}, 400,
     "('disk_over_commit' was unexpected)"),
    ("2.25", {"host": None, "block_migration": "auto"}, 404, ""),
    ("2.30", {"host": "h", "block_migration": "auto", "force": False}, 404, ""),
    ("2.68", {"host": "h", "block_migration": "auto", "force": False}, 400,
     "('force' was unexpected)"),
    ("2.96", {"host": None, "block_migration": True}, 404, ""),
])
def test_the_lab_checks_live_migration_bodies_as_nova_does(lab, admin_token, version,
                                                            body, status, problem):
    code, headers, answer = _nova_request(lab[0].url, admin_token, MISSING_SERVER,
                                          {"os-migrateLive": body}, version)
    assert code == status, answer
    assert problem in json.dumps(answer)
    assert headers["OpenStack-API-Version"] == f"compute {version}"


@pytest.mark.parametrize("asked, status, served", [
    (None, 200, "2.1"), ("2.latest", 200, "2.96"), ("2.97", 406, None),
    ("2.0", 406, None), ("two", 400, None)])
def test_the_lab_negotiates_microversions_as_nova_does(lab, admin_token, asked, status,
                                                        served):
    code, headers, _ = _nova_request(lab[0].url, admin_token, "/flavors", None, asked)
    assert code == status
    if served:
        assert headers["OpenStack-API-Version"] == f"compute {served}"
        assert headers["X-OpenStack-Nova-API-Version"] == served


def test_the_lab_generates_no_key_pair_from_2_92(lab, admin_token):
    body = {"keypair": {"name": "generated"}}
    code, _, answer = _nova_request(lab[0].url, admin_token, "/os-keypairs", body, "2.92")
    assert code == 400 and "'public_key' is a required property" in json.dumps(answer)
