"""The imitation's own Nova microversion rules, checked against Nova's (root).

Every microversion path of the plugin runs against real Nova in the cloud lab
(tests/lab/cloud/test_cloud.py: 2.1, 2.25, 2.79 from the environment's api_info,
2.latest, a named destination_host at 2.30 and 2.68, several migrations in one
outage; "2.latest" in the environment), where Nova itself refuses a body its version
does not accept. What stays here keeps the imitation, which the main lab's other
end-to-end tests still run on, as strict as Nova.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from tests.lab.harness import LabProcess
from tests.lab.openstack.config import LabConfig


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with LabProcess(tmp_path_factory.mktemp("microversions") / "lab") as lab:
        yield lab


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
    request = urllib.request.Request(f"{lab.url}/identity/v3/auth/tokens",
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
    code, headers, answer = _nova_request(lab.url, admin_token, MISSING_SERVER,
                                          {"os-migrateLive": body}, version)
    assert code == status, answer
    assert problem in json.dumps(answer)
    assert headers["OpenStack-API-Version"] == f"compute {version}"


@pytest.mark.parametrize("asked, status, served", [
    (None, 200, "2.1"), ("2.latest", 200, "2.96"), ("2.97", 406, None),
    ("2.0", 406, None), ("two", 400, None)])
def test_the_lab_negotiates_microversions_as_nova_does(lab, admin_token, asked, status,
                                                        served):
    code, headers, _ = _nova_request(lab.url, admin_token, "/flavors", None, asked)
    assert code == status
    if served:
        assert headers["OpenStack-API-Version"] == f"compute {served}"
        assert headers["X-OpenStack-Nova-API-Version"] == served


def test_the_lab_generates_no_key_pair_from_2_92(lab, admin_token):
    body = {"keypair": {"name": "generated"}}
    code, _, answer = _nova_request(lab.url, admin_token, "/os-keypairs", body, "2.92")
    assert code == 400 and "'public_key' is a required property" in json.dumps(answer)
