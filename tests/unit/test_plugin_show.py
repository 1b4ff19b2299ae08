"""`rally plugin show` finds and documents the plugins from the installed package."""

import subprocess

import pytest

from tests.lab.rally_cli import rally_executable


@pytest.mark.parametrize("name, expected", [
    ("MetadataDowntime.boot_and_live_migrate", ["probe_interval", "recovery_timeout",
                                                "metadata_url", "settle"]),
    ("metadata_downtime", ["allowed_metadata_downtime", "allowed_network_downtime"]),
    ("MetadataDowntime.boot_and_watch", [
        "image", "flavor", "username", "password", "port", "use_floating_ip",
        "floating_network", "wait_for_ssh_timeout", "duration", "metadata_url",
        "probe_interval", "probe_timeout", "probe_workdir", "settle",
        "recovery_timeout", "answer_timeout", "measure_network", "ping_interval",
        "boot_server_kwargs"]),
    ("marked_sys_call", ["marks when it ran"]),
])
def test_rally_plugin_show(tmp_path, name, expected):
    proc = subprocess.run([rally_executable(), "plugin", "show", name],
                          capture_output=True, text=True, timeout=120,
                          env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin",
                               "COLUMNS": "200"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"NAME\n\t{name}" in proc.stdout
    for word in expected:
        assert word in proc.stdout
