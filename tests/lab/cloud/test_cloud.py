"""The cloud lab end to end (root, and tools/install-lab-cloud.sh --with-rally run
once): the real services up, rally-openstack's own
NovaServers.boot_and_live_migrate_server through the real `rally` command, and a
teardown that leaves no process, namespace, link, mount or file behind."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.lab.cloud import config, rally_task
from tests.lab.cloud.__main__ import bench_line
from tests.lab.cloud.lab import Cloud
from tests.lab.cloud.openstack import http
from tests.lab.cloud.procs import alive, wait_for

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="the cloud lab needs root"),
    pytest.mark.skipif(not (config.VENV / "bin" / "nova-manage").exists(),
                       reason=f"no services venv at {config.VENV}: "
                              "run tools/install-lab-cloud.sh --with-rally"),
]


def _free_port_base() -> int:
    for base in range(config.PORT_BASE, config.PORT_BASE + 1000, 100):
        if not config.Ports.from_base(base).busy():
            return base
    pytest.fail("no free block of 10 ports on 127.0.0.1")


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    # A short path: unix socket paths (OVS, OVN, MariaDB) are limited to 107 bytes.
    state = Path(tempfile.mkdtemp(prefix="rmdc-test-", dir="/tmp"))
    lab = Cloud(state, port_base=_free_port_base())
    logs = tmp_path_factory.mktemp("cloud-logs")
    lab.keep_logs = logs
    try:
        facts = lab.up()
        print("\n" + bench_line(lab, facts) + f"\nservice logs kept in {logs}")
        yield lab, facts
    finally:
        lab.down()
        shutil.rmtree(state, ignore_errors=True)


def _admin_get(facts: dict, url: str) -> dict:
    status, headers, body = http("POST", facts["auth_url"] + "/auth/tokens", {
        "auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"name": "Default"},
            "password": facts["admin"]["password"]}}},
            "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}})
    assert status == 201
    catalog = {s["type"]: s for s in body["token"]["catalog"]}
    compute = next(e["url"] for e in catalog["compute"]["endpoints"]
                   if e["interface"] == "public")
    status, _, answer = http("GET", compute + url, token=headers["X-Subject-Token"])
    assert status == 200, answer
    return answer


def test_every_service_runs_and_both_computes_are_hypervisors(cloud):
    lab, facts = cloud
    running = lab.status()
    assert running and all(running.values()), running
    for host in config.COMPUTE_HOSTS:
        assert f"nova-compute-{host}" in running
    hypervisors = _admin_get(facts, "/os-hypervisors/detail")["hypervisors"]
    assert sorted(h["hypervisor_hostname"] for h in hypervisors) == sorted(
        config.COMPUTE_HOSTS)
    assert all(h["state"] == "up" and h["status"] == "enabled" for h in hypervisors)


def test_rally_openstack_scenarios_pass(cloud, tmp_path):
    """NovaServers.boot_and_live_migrate_server and boot_and_delete_server."""
    lab, facts = cloud
    report = rally_task.run(facts, tmp_path / "rally", times=2)
    results = rally_task.summary(report)
    print(results)
    assert set(results) == set(rally_task.SCENARIOS)
    for name, result in results.items():
        assert result["iterations"] == 2, name
        assert result["failed"] == 0, (name, result["errors"])
        assert result["pass_sla"], name
    assert {"nova.boot_server", "nova.live_migrate", "nova.delete_server"} <= set(
        results["NovaServers.boot_and_live_migrate_server"]["atomic_mean_s"])
    # Rally's cleanup left no server behind.
    assert _admin_get(facts, "/servers/detail?all_tenants=1")["servers"] == []


def test_ports_on_two_hosts_talk_through_ovn_and_geneve(cloud):
    """Two Neutron ports, one bound to each host, as OVS internal ports on the hosts'
    br-int (what the driver plugs): OVN binds them, Neutron marks them ACTIVE, and
    they ping each other across the Geneve underlay (3 pings, 1 s timeout each)."""
    lab, facts = cloud
    _, _, _, chassis, openstack = lab._parts(None)
    token, _ = openstack.token()
    neutron = openstack.url("neutron") + "/v2.0"
    ports = []
    try:
        for host in chassis:
            status, _, body = http("POST", neutron + "/ports", {"port": {
                "network_id": facts["network"], "binding:host_id": host.host,
                "device_owner": "compute:rmdc-test", "device_id": f"rmdc-{host.host}",
                "port_security_enabled": False}}, token=token)
            assert status == 201, body
            port = body["port"]
            ports.append((host, port))
            name = ("tap" + port["id"])[:14]
            host.vsctl("add-port", "br-int", name, "--", "set", "Interface", name,
                       "type=internal", f"external_ids:iface-id={port['id']}",
                       f"external_ids:attached-mac={port['mac_address']}",
                       "external_ids:iface-status=active", wait=True)
            address = port["fixed_ips"][0]["ip_address"]
            for argv in (["link", "set", name, "address", port["mac_address"]],
                         ["addr", "add", f"{address}/28", "dev", name],
                         ["link", "set", name, "up"]):
                subprocess.run(["ip", "-n", host.netns, *argv], check=True)
            subprocess.run(["ip", "netns", "exec", host.netns, "ethtool", "-K", name,
                            "tx", "off"], check=True, capture_output=True)

        def active() -> bool:
            return all(http("GET", neutron + f"/ports/{p['id']}", token=token)[2]
                       ["port"]["status"] == "ACTIVE" for _, p in ports)
        wait_for("ports ACTIVE", active, 30, interval=0.5)
        target = ports[1][1]["fixed_ips"][0]["ip_address"]
        # ACTIVE says the port's own chassis claimed it; the other chassis' flows
        # may follow a moment later: up to 10 single pings, one answer is enough.
        answers = []
        for _ in range(10):
            ping = subprocess.run(["ip", "netns", "exec", ports[0][0].netns, "ping",
                                   "-c", "1", "-W", "1", target],
                                  capture_output=True, text=True, timeout=10)
            answers.append(ping.returncode)
            if ping.returncode == 0:
                break
            time.sleep(0.5)
        assert answers[-1] == 0, f"no answer in {len(answers)} pings: {ping.stdout}"
    finally:
        for host, port in ports:
            host.vsctl("--if-exists", "del-port", "br-int", ("tap" + port["id"])[:14])
            http("DELETE", neutron + f"/ports/{port['id']}", token=token)


def test_down_leaves_nothing(cloud):
    lab, _ = cloud
    processes = [pid for pids in lab._processes().values() for pid in pids]
    assert processes
    left = lab.down()
    assert left == []
    assert [pid for pid in processes if alive(pid)] == []
    for index in range(1, len(config.COMPUTE_HOSTS) + 1):
        assert not os.path.exists(f"/run/netns/{config.netns_name(lab.state, index)}")
    # The lab makes links only inside its namespaces (vswitchd's br-int, ovs-netdev
    # and one tap per port): none may show in the root namespace. (Other labs'
    # links here may start with "rmdc" too: rmdcost... is the imitation lab's.)
    root_links = set(os.listdir("/sys/class/net"))
    assert not root_links & {"br-int", "ovs-netdev", "ovs-system", "genev_sys_6081"}
    assert not [n for n in root_links if n.startswith("tap")]
    with open("/proc/mounts") as mounts:
        assert str(lab.state) not in mounts.read()
    assert not lab.state.exists()
