"""`rally plugin show` finds and documents both plugins from the installed package."""

import subprocess

import pytest

from tests.lab.rally_cli import rally_executable


@pytest.mark.parametrize("name, expected", [
    ("MetadataDowntime.boot_and_live_migrate", ["probe_interval", "recovery_timeout",
                                                "metadata_url", "settle"]),
    ("metadata_downtime", ["allowed_metadata_downtime", "allowed_network_downtime"]),
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
