"""Live migration to a named host through the real `rally` command, and the
imitation's own Nova microversion rules (root).

Every other microversion path runs against real Nova in the cloud lab
(tests/lab/cloud/test_cloud.py: 2.1, 2.25, 2.79 from the environment's api_info,
2.latest, several migrations in one outage), where Nova itself refuses a body its
version does not accept. What stays here is what the cloud lab cannot choose: the
host a server boots on, so a migration to a named destination_host runs only
here, at 2.30 (where `force` may be sent) and at 2.68 (where it must not be). The imitation
records the bodies it accepted; the last tests check its rules against Nova's.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from tests.helpers import lab_workload, write_task
from tests.lab.demo import lab_with_rally
from tests.lab.openstack.config import LabConfig, env_spec

ARGS = {"settle": 0.5, "recovery_timeout": 15, "measure_network": False}
FAST_MIGRATION = {"lab_migration_duration": "0.3", "lab_network_blackout": "0"}
SOURCE, DESTINATION = LabConfig().hypervisors
NAMED_VERSIONS = ("2.30", "2.68")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("microversions")
    with lab_with_rally(root, live_migrate_timeout=20) as (lab, rally):
        yield lab, rally, root


@pytest.fixture(scope="module")
def runs(lab):
    """The workloads by title, and the migrations the lab accepted, in order."""
    lab_process, rally, root = lab
    subtasks = {version: lab_workload(
        {**ARGS, "destination_host": DESTINATION, "block_migration": "auto"},
        {**FAST_MIGRATION, "lab_boot_host": SOURCE},
        contexts={"api_versions": {"nova": {"version": version}}},
        sla={"failure_rate": {"max": 0}}) for version in NAMED_VERSIONS}
    task = write_task(root / "task.json", "named destination", subtasks)
    _, uuid = rally.start_task(task, "lab")
    report = rally.json_report(uuid)
    workloads = {st["title"]: st["workloads"][0] for st in report["tasks"][0]["subtasks"]}
    return workloads, sorted(lab_process.migration_requests(),
                             key=lambda r: r["accepted_at"])


@pytest.mark.parametrize("version", NAMED_VERSIONS)
def test_live_migration_to_a_named_host(runs, version):
    workloads, accepted = runs
    workload = workloads[version]
    assert [it["error"] for it in workload["data"]] == [[]]
    # Workloads run one after another: the migration accepted during this one.
    [iteration] = workload["data"]
    [request] = [r for r in accepted if iteration["timestamp"] <= r["accepted_at"]
                 <= iteration["timestamp"] + iteration["duration"]]
    assert request["microversion"] == version
    assert request["body"]["host"] == DESTINATION
    assert request["body"]["block_migration"] == "auto"
    # Never forced: Nova's scheduler still checks the named host (and from 2.68
    # refuses the field).
    assert "force" not in request["body"]
    assert "disk_over_commit" not in request["body"]


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
