"""The lab's metadata agent restart: the command a hook runs, and the API endpoint
(with the fake driver: no namespaces, no root)."""

import asyncio
import json
import os
import subprocess

import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.lab import disrupt
from tests.lab.openstack import config as lab_config
from tests.lab.openstack.app import make_app
from tests.lab.openstack.common import STORE_KEY
from tests.lab.openstack.driver import FakeDriver


@pytest.mark.parametrize("url", ["http://203.0.113.5:80", "https://127.0.0.1:1",
                                 "http://lab.example:80", "file:///etc/passwd"])
def test_only_a_loopback_lab_is_disrupted(url):
    with pytest.raises(disrupt.DisruptError, match="loopback"):
        disrupt.lab_url("rmdlab", url)


def test_the_lab_is_found_by_its_prefix(monkeypatch, tmp_path):
    monkeypatch.setattr(lab_config, "REGISTRY_DIR", tmp_path)
    with pytest.raises(disrupt.DisruptError, match="no lab with prefix 'rmdlab'"):
        disrupt.lab_url("rmdlab")
    registry = lab_config.api_registry("rmdlab")
    registry.write_text(json.dumps({"url": "http://127.0.0.1:5/", "pid": os.getpid()}))
    assert disrupt.lab_url("rmdlab") == "http://127.0.0.1:5"
    gone = subprocess.Popen(["true"])
    gone.wait()
    registry.write_text(json.dumps({"url": "http://127.0.0.1:5/", "pid": gone.pid}))
    with pytest.raises(disrupt.DisruptError, match="a crashed lab"):
        disrupt.lab_url("rmdlab")


def test_the_answer_is_a_table_rally_shows_in_the_hooks_tab():
    output = disrupt.as_output({"host": "lab-compute-1", "shape": "refused",
                                "seconds": 3.0, "servers": ["s1"], "windows": [
                                    {"server_id": "s1", "shape": "refused",
                                     "start_boottime": 10.0, "end_boottime": 13.01}]})
    [table] = output["complete"]
    assert table["chart_plugin"] == "Table"
    assert table["data"]["rows"] == [["s1", "refused", 3.01]]


class RecordingDriver(FakeDriver):
    def __init__(self):
        super().__init__()
        self.restarts = []

    async def restart_metadata_agent(self, server_ids, shape, seconds, detail):
        self.restarts.append((server_ids, shape, seconds, detail))
        return []


def call_endpoint(body, servers):
    driver = RecordingDriver()
    app = make_app(driver)

    async def go():
        app[STORE_KEY].servers.update(servers)
        async with TestClient(TestServer(app)) as client:
            response = await client.post("/lab/metadata-agent/restart", json=body)
            answer = await response.json()
            app[STORE_KEY].servers.clear()
            return response.status, answer

    return (*asyncio.run(go()), driver.restarts)


SERVERS = {sid: {"id": sid, "OS-EXT-SRV-ATTR:host": host, "status": status}
           for sid, host, status in [("a", "lab-compute-1", "ACTIVE"),
                                     ("b", "lab-compute-1", "MIGRATING"),
                                     ("c", "lab-compute-2", "ACTIVE"),
                                     ("d", "lab-compute-1", "BUILD")]}


def test_every_running_server_on_the_host_loses_metadata():
    status, answer, restarts = call_endpoint(
        {"host": "lab-compute-1", "shape": "http_503", "seconds": 2}, SERVERS)
    assert status == 200
    assert answer["servers"] == ["a", "b"]
    assert restarts == [(["a", "b"], "http_503", 2.0,
                         "metadata agent restarted on lab-compute-1")]


@pytest.mark.parametrize("body, problem", [
    ({"host": "lab-compute-9", "seconds": 2}, "host"),
    ({"host": "lab-compute-1", "shape": "melted", "seconds": 2}, "metadata_shape"),
    ({"host": "lab-compute-1", "seconds": -1}, "metadata_outage"),
    ({"host": "lab-compute-1"}, "seconds"),
])
def test_a_bad_restart_is_refused_by_field(body, problem):
    status, answer, restarts = call_endpoint(body, SERVERS)
    assert status == 400 and problem in answer["error"]
    assert restarts == []
