"""Bad task arguments are refused by `rally task validate` before any cloud call.

The environment's cloud is not even reachable (a closed port on loopback): the
real `rally` must name the bad field from our plugin's validation alone, and
nothing it names reaches a shell. That the sample itself validates against a real
cloud is tests/lab/cloud/test_cloud.py's."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import lab_workload, write_task
from tests.lab.rally_cli import RallyHome

# The discard port on loopback: nothing listens there, so a client that tried to
# reach the cloud would fail, and Rally would log its health check.
UNREACHABLE = "http://127.0.0.1:9/v3"
PWNED = Path("/tmp/rmd-pwned")
ARGS = {"settle": 1, "recovery_timeout": 10}


@pytest.fixture(scope="module")
def rally(tmp_path_factory) -> RallyHome:
    home = RallyHome(tmp_path_factory.mktemp("validate") / "rally")
    home.create_env("nocloud", {"openstack": {
        "auth_url": UNREACHABLE, "region_name": "RegionOne",
        "admin": {"username": "admin", "password": "unused", "project_name": "admin",
                  "user_domain_name": "Default", "project_domain_name": "Default"}}})
    return home


@pytest.mark.parametrize("args, field", [
    ({"probe_interval": -1}, "probe_interval"),
    ({"probe_timeout": "soon"}, "probe_timeout"),
    ({"metadata_url": f"http://169.254.169.254/$(touch {PWNED})"}, "metadata_url"),
    ({"metadata_url": "ftp://169.254.169.254/"}, "metadata_url"),
    ({"probe_workdir": "relative/dir"}, "probe_workdir"),
    ({"migrations": 0}, "migrations"),
    ({"settle": 50, "recovery_timeout": 10}, "settle"),
    ({"no_such_argument": 1}, "no_such_argument"),
])
def test_task_validate_names_the_bad_field_without_calling_the_cloud(
        rally, tmp_path, args, field):
    task = write_task(tmp_path / "bad.json", "bad", {"bad": lab_workload({**ARGS, **args})})
    proc = rally.run("task", "validate", str(task), "--env", "nocloud", check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert field in output, output[-2000:]
    assert "Check health" not in output and "Unable to establish connection" not in output
    assert not PWNED.exists()


def test_a_good_task_goes_on_to_ask_the_cloud(rally, tmp_path):
    """The counterpart: with nothing wrong in its arguments, validation reaches
    the cloud's health check, which fails here; so the refusals above came first."""
    task = write_task(tmp_path / "good.json", "good", {"good": lab_workload(ARGS)})
    proc = rally.run("task", "validate", str(task), "--env", "nocloud", check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "Unable to establish connection to " + UNREACHABLE in output, output[-2000:]
