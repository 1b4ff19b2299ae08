"""The cloud lab end to end (root, and tools/install-lab-cloud.sh --with-rally run
once): the real services up, rally-openstack's own
NovaServers.boot_and_live_migrate_server through the real `rally` command, and a
teardown that leaves no process, namespace, link, mount or file behind."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from rally_metadata_downtime import probe_config
from tests.e2e import report_checks
from tests.e2e.browser import ReportBrowser
from tests.helpers import (
    RESET_REASONS,
    TIMEOUT_REASONS,
    explained_by_load,
    injected_bounds,
    lead_of_real_code,
    outage_of_window,
    outages_meeting,
)
from tests.lab import rally_report
from tests.lab.addressing import KEEP_OFF
from tests.lab.cloud import config, metadata_path, rally_task
from tests.lab.cloud.__main__ import bench_line
from tests.lab.cloud.lab import Cloud
from tests.lab.cloud.openstack import SUBNET_CIDR, admin_token, http, public_endpoints
from tests.lab.cloud.procs import alive, wait_for
from tests.lab.faults import FAULTS_INTO_KEY

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
    pytest.fail(f"no free block of {len(config.PORT_NAMES)} ports on 127.0.0.1")


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
    token, body = admin_token(facts["auth_url"])
    status, _, answer = http("GET", public_endpoints(body)["compute"] + url, token=token)
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
    """NovaServers.boot_and_live_migrate_server and boot_and_delete_server, and
    VMTasks.boot_runcommand_delete (it wants Cinder in the catalog, and Rally's
    cleanup asks Cinder's API for volumes): a command in each guest over SSH
    through its floating IP."""
    lab, facts = cloud
    report = rally_task.run(facts, tmp_path / "rally", times=2, concurrency=2)
    results = rally_task.summary(report)
    print(results)
    assert set(results) == set(rally_task.SCENARIOS)
    for name, result in results.items():
        assert result["iterations"] == 2, name
        assert result["failed"] == 0, (name, result["errors"])
        assert result["pass_sla"], name
    assert {"nova.boot_server", "nova.live_migrate", "nova.delete_server"} <= set(
        results["NovaServers.boot_and_live_migrate_server"]["atomic_mean_s"])
    assert {"vm.wait_for_ping", "vm.run_command_over_ssh"} <= set(
        results["VMTasks.boot_runcommand_delete"]["atomic_mean_s"])
    outputs = rally_task.script_outputs(report, "VMTasks.boot_runcommand_delete")
    assert len(outputs) == 2, outputs
    tenant = ipaddress.ip_network(SUBNET_CIDR)
    for text in outputs:  # the guest's own fixed address, as `ip` there shows it
        assert any(ipaddress.ip_address(a) in tenant
                   for a in re.findall(r"inet (\S+)/", text)), text
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


# --- our plugin against the real services -------------------------------------------

def _migration_spans(record) -> tuple[tuple[float, float], ...]:
    """Each migration's span on the guest's clock: where real code may cause
    outages of its own (python -m tests.bench real-outage measures them)."""
    return tuple((m.start, m.end) for m in record.migrations)


def _workloads_by_title(run: dict) -> dict[str, dict]:
    """Each subtask's workload of a run of sample_variants, by the variant's title."""
    return dict(rally_report.report_workloads(run["report"]))


def _records(run: dict) -> list:
    [(_, workload)] = rally_report.report_workloads(run["report"])
    return workload, rally_report.iteration_records(workload)


# The sample run: samples/live_migrate_metadata.yaml twice in one `rally` run, as
# it is (no fault profile: real code's own outage) and with metadata blackholed in
# each guest after the switchover, both against one limit. Its HTML reports are
# what the browser checks open.
HEALTHY = "healthy: the sample as it is"
BROKEN = "broken: 10 s of metadata blackholed after the switchover"
BROKEN_OUTAGE = 10.0
ALLOWED_DOWNTIME = 6.0
# And one whose migrations go there and back, metadata broken only on arrival at
# one host: the host-pair table and the SLA must name that pair.
PAIRS = "host pairs: metadata refused for 4 s on arrival at one host"
PAIR_SOURCE = config.COMPUTE_HOSTS[0]
PAIR_BROKEN = config.COMPUTE_HOSTS[1]
PAIR_OUTAGE = 4.0


@pytest.fixture(scope="module")
def sample_run(cloud, tmp_path_factory) -> dict:
    lab, facts = cloud
    root = tmp_path_factory.mktemp("sample")
    task = root / "sample.json"
    variants = rally_task.sample_variants({
        HEALTHY: {"allowed_metadata_downtime": ALLOWED_DOWNTIME},
        BROKEN: {"times": 2, "allowed_metadata_downtime": ALLOWED_DOWNTIME,
                 "boot_server_kwargs": {"meta": {
                     "lab_metadata_outage": str(BROKEN_OUTAGE),
                     "lab_metadata_shape": "timeout"}}},
        # Its verdict is Rally's per-atomic limit; ours only names the pair (under
        # load real code's own outage on the way back added 2.6 s to 4.1).
        PAIRS: {"times": 2, "migrations": 2, "allowed_metadata_downtime": 30,
                "boot_server_kwargs": {
                    "availability_zone": f"nova:{PAIR_SOURCE}",
                    "meta": {FAULTS_INTO_KEY: PAIR_BROKEN,
                             "lab_metadata_outage": str(PAIR_OUTAGE),
                             "lab_metadata_shape": "refused"}}}})
    # Rally's own per-atomic SLA on our atomic action, as the README shows it.
    [pairs] = [st["workloads"][0] for st in variants["subtasks"] if st["title"] == PAIRS]
    pairs["sla"]["max_avg_duration_per_atomic"] = {"metadata.downtime": 1}
    task.write_text(json.dumps(variants))
    run = rally_task.run_sample(facts, lab.state, root / "run", task_file=task, html=True)
    return report_checks.add_report_files(run)


def _sample_workload(run: dict, title: str) -> tuple[dict, list]:
    workload = _workloads_by_title(run)[title]
    return workload, rally_report.iteration_records(workload)


def test_sample_task_measures_real_live_migrations(sample_run):
    """The sample as it is, through the real `rally`, no fault profile: real Nova
    boots and live-migrates namespace guests over OVN, metadata comes through the
    real OVN metadata agents; every iteration measures the migration's network cut
    and the metadata outage real code causes."""
    run = sample_run
    workload, records = _sample_workload(run, HEALTHY)
    assert workload["pass_sla"], [it["error"] for it in workload["data"]]
    assert len(records) == 4 and all(r and not r.error for r in records)
    blackouts = {w["server_id"]: w for w in run["injected"] if w["kind"] == "network"}
    for record in records:
        [migration] = record.migrations
        # Where Nova says the server was and went: both lab hosts.
        assert {migration.source_host, migration.destination_host} == set(
            config.COMPUTE_HOSTS)
        # Nova's own instance-action events of it, as Nova's API gave them.
        assert {"conductor_migrate_server", "compute_live_migration"} <= {
            e.name for e in migration.nova_events}, migration
        # The cut the hypervisor made (link down, then the NIC moved and the RARP
        # sent), and what the Rally host's pings saw: OVN's activation of the
        # destination's binding comes on top, never less than the cut itself
        # minus one ping interval.
        window = blackouts[record.server_id]
        shortest, longest = injected_bounds(window)
        assert shortest - 0.2 <= record.network.downtime <= longest + 2.0, (
            window, record.network)
        # Metadata runs the real path (OVN's localport, the destination's
        # metadata agent and haproxy, Nova's metadata API): it recovers, and what
        # it cost is the real code's figure (python -m tests.bench real-outage).
        assert record.metadata.recovered, record.metadata
        assert record.metadata.downtime < 30, record.metadata


def test_metadata_outage_beyond_the_limit_fails_the_sla(sample_run):
    """10 s of metadata blackholed (the server's lab_* metadata: the guest's route
    to 169.254.169.254 into a MAC nobody has) against a 6 s limit: the SLA fails,
    and each outage the probe measured is the window the hypervisor held."""
    run = sample_run
    workload, records = _sample_workload(run, BROKEN)
    assert not workload["pass_sla"]
    assert [it["error"] for it in workload["data"]] == [[], []]
    outages = {w["server_id"]: w for w in run["injected"] if w["kind"] == "metadata"}
    for record in records:
        window = outages[record.server_id]
        assert window["end_boottime"] - window["start_boottime"] >= BROKEN_OUTAGE
        outage = outage_of_window(record, window["start_boottime"],
                                  window["end_boottime"], _migration_spans(record))
        shortest, longest = injected_bounds(window)
        slack = record.metadata.resolution + 0.1
        assert shortest - slack <= outage.duration <= longest + slack, (
            window, record.metadata)
        assert TIMEOUT_REASONS & set(outage.reasons)


def test_the_broken_host_pair_is_named(sample_run):
    """Each VM migrates from one host to the other and back; metadata breaks only
    on arrival at the broken host. Each migration's own figure, the host-pair
    table and the SLA's detail put the downtime on that pair, and Nova's own
    events show it was done before metadata came back."""
    workload, records = _sample_workload(sample_run, PAIRS)
    there, back = f"{PAIR_SOURCE} -> {PAIR_BROKEN}", f"{PAIR_BROKEN} -> {PAIR_SOURCE}"
    for record in records:
        by_pair = {m.host_pair: m for m in record.migrations}
        assert set(by_pair) == {there, back}, record.migrations
        into_broken = by_pair[there]
        print(f"{there} {into_broken.metadata_downtime:.2f} s, "
              f"{back} {by_pair[back].metadata_downtime:.2f} s")
        assert into_broken.metadata_downtime > PAIR_OUTAGE - 0.5, record
        # The way back has only real code's own outage: 0.00 s in a quiet run,
        # up to 2.62 s with two CPU hogs beside the lab.
        assert by_pair[back].metadata_downtime < into_broken.metadata_downtime, record
        assert "compute_live_migration" in {e.name for e in into_broken.nova_events}
        [outage] = [o for o in record.metadata.outages if o.duration > PAIR_OUTAGE - 0.5]
        assert outage.end > into_broken.nova_finished - record.clock_offset, (
            outage, into_broken)
    [sla] = [s for s in workload["sla_results"]["sla"]
             if s["criterion"] == "metadata_downtime"]
    assert f"worst host pair {there}" in sla["detail"], sla
    [per_atomic] = [s for s in workload["sla_results"]["sla"]
                    if s["criterion"] == "max_avg_duration_per_atomic"]
    assert per_atomic["success"] is False and "metadata.downtime" in per_atomic["detail"]
    [table] = [c for c in workload["data"][0]["output"]["additive"]
               if c["title"] == "Downtime by host pair"]
    assert {row[0] for row in table["data"]} == {
        f"{pair}: {kind}" for pair in (there, back) for kind in ("metadata", "network")}


def test_the_sample_run_leaves_nothing_and_logs_no_error(sample_run):
    run = sample_run
    assert run["exit_code"] == 2        # the broken workloads' SLA
    assert run["guests_left"] == []
    assert run["leftovers"] == {}       # Rally's cleanup removed what it made
    assert run["rally_errors"] == []


@pytest.fixture(scope="module")
def browser():
    with ReportBrowser() as b:
        yield b


@pytest.fixture(scope="module")
def shots() -> Path:
    shutil.rmtree(report_checks.SHOTS_DIR, ignore_errors=True)
    report_checks.SHOTS_DIR.mkdir(parents=True)
    return report_checks.SHOTS_DIR


@pytest.mark.parametrize("variant", report_checks.VARIANTS)
def test_report_opens_offline(sample_run, browser, variant):
    report_checks.check_loads_offline(sample_run, browser, variant)


@pytest.mark.parametrize("variant", report_checks.VARIANTS)
def test_report_shows_healthy_passing_and_broken_failing_as_json_and_sla_check_do(
        sample_run, browser, shots, variant):
    verdicts = report_checks.check_verdicts(sample_run, browser, variant,
                                            shots=shots if variant == "html" else None)
    assert verdicts == [True, False, False]
    # The broken one's metadata_downtime, the host pairs' per-atomic limit.
    assert sample_run["sla_check_exit_code"] == 2


@pytest.mark.parametrize("variant", report_checks.VARIANTS)
def test_report_draws_the_aggregated_trends(sample_run, browser, shots, variant):
    report_checks.check_aggregated(sample_run, browser, variant,
                                   shots=shots if variant == "html" else None)


@pytest.mark.parametrize("variant", report_checks.VARIANTS)
def test_report_draws_each_iteration_and_its_outages(sample_run, browser, shots, variant):
    outages = report_checks.check_per_iteration(
        sample_run, browser, variant, shots=shots if variant == "html" else None)
    assert outages == [[len(record.metadata.outages)
                        for record in rally_report.iteration_records(w)]
                       for w in report_checks.workloads(sample_run)]


@pytest.mark.parametrize("variant", report_checks.VARIANTS)
def test_report_sla_detail_names_the_worst_iteration(sample_run, browser, variant):
    report_checks.check_sla_names_the_worst_iteration(sample_run, browser, variant)


def test_sample_task_reaches_its_vms_on_floating_ips(cloud, tmp_path):
    """As on a cloud: each VM gets a floating IP of the external network (its
    router's gateway on lab-compute-1, the gateway chassis, whose br-ex the Rally
    host is wired to); Rally SSHes it there, our probe runs over that SSH and the
    network downtime is pinged there, through OVN's NAT and, for a VM on the other
    host, Geneve, before and after the migration."""
    lab, facts = cloud
    run = rally_task.run_sample(facts, lab.state, tmp_path / "fip", task_args={
        "times": 2, "concurrency": 2, "use_floating_ip": True,
        "floating_network": "rmdc-public"})
    workload, records = _records(run)
    assert run["exit_code"] == 0, [it["error"] for it in workload["data"]]
    for iteration, record in zip(workload["data"], records):
        names = [a["name"] for a in iteration["atomic_actions"]]
        assert names.index("nova.associate_floating_ip") < names.index(
            "vm.wait_for_ssh"), names
        assert "neutron.delete_floating_ip" in names, names
        assert record and not record.error and record.metadata.recovered, record
        assert len(record.migrations) == 1
        assert record.network is not None and record.network.downtime < 10, record
    assert run["guests_left"] == []
    # Through the floating IP, the session opened before the migration carries
    # nothing after it here: the meter opens a new one rather than waiting for a
    # command to time out (60 s each iteration before it did).
    log = (tmp_path / "fip" / "rally" / "rally.log").read_text()
    assert "Timeout executing command" not in log
    # Rally's cleanup released them.
    _, _, _, _, openstack = lab._parts(None)
    token, _ = openstack.token()
    _, _, body = http("GET", openstack.url("neutron") + "/v2.0/floatingips", token=token)
    assert body["floatingips"] == []


ENV_MICROVERSION = "2.79"     # the version of the defect's report, in the environment
NAMED_SOURCE = config.RALLY_PORT_HOST
NAMED_DESTINATION = next(h for h in config.COMPUTE_HOSTS if h != NAMED_SOURCE)


def _to_a_named_host(version: str) -> dict:
    return {"nova_microversion": version, "destination_host": NAMED_DESTINATION,
            "block_migration": "auto",
            "boot_server_kwargs": {"availability_zone": f"nova:{NAMED_SOURCE}"}}


MICROVERSION_VARIANTS = {
    # title: (task arguments, the version Nova must have served the migration at)
    "environment 2.79": ({}, ENV_MICROVERSION),
    "2.1 with disk_over_commit": ({"nova_microversion": "2.1",
                                   "block_migration": False}, "2.1"),
    "2.25 auto": ({"nova_microversion": "2.25", "block_migration": "auto"}, "2.25"),
    "2.latest": ({"nova_microversion": "2.latest"}, None),
    # destination_host: at 2.30 Nova takes `force` (never sent: the scheduler still
    # checks the host), from 2.68 it refuses it.
    "2.30 to a named host": (_to_a_named_host("2.30"), "2.30"),
    "2.68 to a named host": (_to_a_named_host("2.68"), "2.68"),
}
# Beside them, in a `rally` run of its own at the same time (its 25 s outage and
# three migrations take as long as three of the six above one after another, which
# run in two `rally` runs of three).
THREE_MIGRATIONS = ({"migrations": 3, "recovery_timeout": 90, "boot_server_kwargs": {
    "meta": {"lab_metadata_outage": "25", "lab_metadata_shape": "refused",
             "lab_migration_duration": "0.5"}}}, ENV_MICROVERSION)


def _migration_microversions(nova_api_log: Path) -> dict[str, list[str]]:
    """The microversions at which real nova-api served each server's actions, from
    its request log, in order."""
    served: dict[str, list[str]] = {}
    for server, version in re.findall(
            r'"POST \S*/v2\.1/servers/([0-9a-f-]+)/action" status: 202 '
            r'len: \d+ microversion: (\S+)', nova_api_log.read_text()):
        served.setdefault(server, []).append(version)
    return served


def test_every_microversion_path_and_migrations_during_an_outage(cloud, tmp_path):
    """Real Nova's own version negotiation, in one `rally` run: 2.79 from the
    environment's api_info (the defect's report), 2.1 (disk_over_commit), 2.25
    (block_migration auto), 2.latest, a named destination_host at 2.30 and 2.68
    (force allowed, then refused); and, in a second run at the same time, three
    migrations during one outage (each live migration takes real Nova 6-11 s here,
    so the outage lasts 25 s after each), which Nova accepts once the server is
    ACTIVE on its new host. Nova refuses a body its version does not accept, so a
    pass is the proof; its request log says which version it served."""
    lab, facts = cloud
    log = lab.state / "log" / "nova-api.log"
    titles = list(MICROVERSION_VARIANTS)
    tasks = {"versions-1": {t: MICROVERSION_VARIANTS[t] for t in titles[:3]},
             "versions-2": {t: MICROVERSION_VARIANTS[t] for t in titles[3:]},
             "outage": {"three migrations in one outage": THREE_MIGRATIONS}}
    for name, variants in tasks.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(rally_task.sample_variants({
            title: {"times": 1, "concurrency": 1, "allowed_metadata_downtime": 90,
                    **args} for title, (args, _) in variants.items()})))
    runs = rally_task.run_samples_at_once(
        facts, lab.state, tmp_path, {name: tmp_path / f"{name}.json" for name in tasks},
        api_info={"nova": {"version": ENV_MICROVERSION}})
    served = _migration_microversions(log)
    for name, variants in tasks.items():
        workloads = _workloads_by_title(runs[name])
        assert list(workloads) == list(variants)
        assert runs[name]["exit_code"] == 0, name
        for title, (args, version) in variants.items():
            workload = workloads[title]
            [record] = rally_report.iteration_records(workload)
            assert workload["data"][0]["error"] == [], (title, workload["data"][0]["error"])
            assert len(record.migrations) == args.get("migrations", 1), title
            hosts = [m.destination_host for m in record.migrations]
            assert all(a != b for a, b in zip(hosts, hosts[1:])), hosts
            if "destination_host" in args:
                [migration] = record.migrations
                assert (migration.source_host, migration.destination_host) == (
                    NAMED_SOURCE, NAMED_DESTINATION), title
            # The server's own actions as nova-api served them (rally-openstack's
            # own server actions, none here, would show as extra).
            mine = served[record.server_id]
            if version is None:
                # The newest both real Nova and novaclient know: beyond the
                # environment's.
                [latest] = mine
                assert tuple(map(int, latest.split("."))) > (2, 79), served
            else:
                assert mine == [version] * len(record.migrations), (title, mine)
    run = runs["outage"]
    [record] = rally_report.iteration_records(
        _workloads_by_title(run)["three migrations in one outage"])
    [window] = [w for w in run["injected"]
                if w["kind"] == "metadata" and w["server_id"] == record.server_id]
    assert "extended" in window["detail"]
    outage = outage_of_window(record, window["start_boottime"], window["end_boottime"],
                              _migration_spans(record))
    shortest, longest = injected_bounds(window)
    slack = record.metadata.resolution + 0.1
    assert shortest - slack <= outage.duration <= longest + slack, (
        window, record.metadata)


def test_latest_in_the_environment_is_refused_by_novaclient(cloud, tmp_path):
    """novaclient's Client() takes only an explicit version and rally-openstack
    hands it "2.latest" as is: no cloud can make such an environment work, and the
    plugin's nova_microversion argument is the way to ask for the newest."""
    _, facts = cloud
    rally = rally_task.CloudRally(tmp_path / "rally")
    spec = rally_task.env_spec(facts)
    spec["openstack"]["api_info"] = {"nova": {"version": "2.latest"}}
    rally.create_env("v2_latest", spec)
    check = rally.run("env", "check", "v2_latest", check=False)
    assert check.returncode != 0
    assert "Can not create 'nova' with 2.latest version" in check.stdout + check.stderr


def test_the_sample_task_validates_against_the_cloud(cloud, tmp_path):
    """Every validator of the sample, semantic ones included (its image, flavor
    and the cloud's health), passes against real services with the cloud's
    arguments. Bad arguments are refused before any cloud call:
    tests/e2e/test_task_validation.py."""
    _, facts = cloud
    rally = rally_task.CloudRally(tmp_path / "rally")
    rally.create_env("cloud", rally_task.env_spec(facts))
    proc = rally.run("task", "validate", str(rally_task.SAMPLE_TASK), "--env", "cloud",
                     "--task-args-file", str(rally_task.CLOUD_ARGS), check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_the_running_lab_leaves_the_package_registries_routed_outside(cloud):
    """pip and apt reach this machine's registries at an address inside the lab's
    ranges (tests/lab/addressing.py): no link of the running lab may route it.
    `ip route get` asks the kernel and sends nothing."""
    for address in KEEP_OFF:
        route = subprocess.run(["ip", "route", "get", str(address)], capture_output=True,
                               text=True, check=True).stdout
        assert "rmdc" not in route, route


# Between the two agents' medians on a quiet machine, nearer the fixed one's: python
# -m tests.bench real-outage --agents current,2023.2 --concurrency 1 --boot-host
# lab-compute-2 measured 0.35 and 0.40 s with the current agent, 0.93 and 0.89 s with
# 2023.2's (the README's bug-2036118 table); two quiet CI-like runs 0.31 and 0.24 s
# against 0.69 and 0.62 s (2023.2's single outages 0.62-1.09 s: the 0.7 s this limit
# was first let one run pass). Single migrations overlap: a request lost at the
# switchover is retransmitted by TCP after 1 s, with either agent.
BUG_2036118_MEDIAN_LIMIT = 0.5


def test_an_agent_without_the_2036118_fix_fails_the_sla_and_outlasts_the_current(
        cloud, tmp_path, browser):
    """The same sample task, one VM at a time, each booted on the host that keeps a
    port of the network (config.RALLY_PORT_HOST) and migrated to the other one,
    where no port of it is, so that host's metadata agent has to set up the
    network's metadata namespace for the VM: first with neutron 23.3.0's agent,
    which does so only once the port is bound there (after the switchover), then
    with the pinned one, which does so as soon as the destination appears as the
    port's additional chassis (the fix for Launchpad bug 2036118). The older
    agent's typical outage outlasts the SLA's median limit, and the current one's
    is shorter. (On a quiet machine the current one's stays within the limit too;
    under load every outage of real code grows, so that is not asserted: run 24
    with two CPU hogs measured a median of 1.19 s for it, 2.08 s for 2023.2's.)"""
    lab, facts = cloud
    runs, uuids = {}, []
    # One Rally home for both: Rally compares tasks of one database.
    rally = rally_task.CloudRally(tmp_path / "rally")
    rally.create_env("cloud", rally_task.env_spec(facts))
    try:
        for release in ("2023.2", "current"):
            version = lab.use_metadata_agents(release)
            run = rally_task.run_sample(facts, lab.state, tmp_path / release, task_args={
                "times": 3, "concurrency": 1, "allowed_metadata_downtime": 10,
                "allowed_median_metadata_downtime": BUG_2036118_MEDIAN_LIMIT,
                "boot_server_kwargs": {
                    "availability_zone": f"nova:{config.RALLY_PORT_HOST}"}}, rally=rally)
            workload, records = _records(run)
            runs[release] = (version, workload, records)
            uuids.append(run["task_uuid"])
            print(release, version, [r.metadata.downtime for r in records if r.metadata],
                  "pass" if workload["pass_sla"] else "FAIL")
    finally:
        lab.use_metadata_agents("current")
    old_version, old, old_records = runs["2023.2"]
    new_version, new, new_records = runs["current"]
    assert old_version == "23.3.0" and new_version == facts["versions"]["neutron"]
    for records in (old_records, new_records):
        assert all(r and r.metadata and r.metadata.recovered for r in records), records
        assert {(m.source_host, m.destination_host) for r in records
                for m in r.migrations} == {(config.RALLY_PORT_HOST, next(
                    h for h in config.COMPUTE_HOSTS if h != config.RALLY_PORT_HOST))}
    old_median, new_median = (statistics.median(r.metadata.downtime for r in records)
                              for records in (old_records, new_records))
    assert not old["pass_sla"] and old_median > BUG_2036118_MEDIAN_LIMIT, old_records
    assert new_median < old_median, (new_median, old_median)
    # The verdict is the median's: what the SLA reports agrees with the records.
    assert new["pass_sla"] == (new_median <= BUG_2036118_MEDIAN_LIMIT), (
        new_median, new["sla_results"])
    # The upgrade as an operator compares it (README, "Comparing runs").
    _check_comparison_tools(rally, browser, tmp_path, uuids, [old_records, new_records])


def _check_comparison_tools(rally, browser: ReportBrowser, tmp_path: Path,
                            uuids: list[str], records: list[list]) -> None:
    """`rally task trends` of the two tasks plots each one's metadata downtime, its
    page draws it offline, and `rally task export --type elastic` carries each
    iteration's downtime and outages."""
    trends = tmp_path / "trends.html"
    rally.run("task", "trends", "--html-static", "--out", str(trends), *uuids)
    [workload] = report_checks.trends_data(trends)
    assert workload["length"] == 2          # the same workload, two runs
    actions = {a["name"]: dict(a["durations"]) for a in workload["actions"]}
    maxima = [value for _, value in actions["metadata.downtime"]["max"]]
    assert maxima == pytest.approx([max(r.metadata.downtime for r in run)
                                    for run in records], abs=0.01)
    assert "network.downtime" in actions
    report_checks.check_trends_draw_metadata_downtime(trends, browser)
    export = tmp_path / "elastic.ndjson"
    rally.run("task", "export", uuids[-1], "--type", "elastic", "--to", str(export))
    documents = [json.loads(line) for line in export.read_text().splitlines()
                 if line.strip()]
    downtimes = sorted(d["duration"] for d in documents
                       if d.get("action_name") == "metadata.downtime")
    assert downtimes == pytest.approx(sorted(r.metadata.downtime for r in records[-1]),
                                      abs=0.01)
    outages = [d for d in documents if d.get("action_name") == "metadata.outage"]
    assert outages and all(d["parent"] for d in outages)


# The fault matrix on real Nova: name -> (scenario arguments, server metadata,
# iterations). The guest events run in the load mix, beside healthy neighbours.
# How long the plugin waits for a migration in that run (rally.conf): the lab's take
# a few seconds, the hanging one is given up on after this.
FAULTS_MIGRATION_TIMEOUT = 20
GUEST_AND_MIGRATION_FAULTS = {
    "migration_error": ({}, {"lab_migration_result": "error"}, 1),
    "migration_hang": ({}, {"lab_migration_result": "hang"}, 1),
    "never_recovers": ({"recovery_timeout": 5},
                       {"lab_metadata_outage": "40", "lab_metadata_shape": "timeout"}, 1),
    "probe_dir_not_writable": ({"probe_workdir": "/proc"}, {}, 1),
    "ssh_never_up": ({"scenario_args": {"port": 2222, "wait_for_ssh_timeout": 4}}, {}, 1),
    # busybox wget's own reason for a blackholed request, from a guest without curl
    "no_curl": ({}, {"lab_no_curl": "true", "lab_metadata_outage": "2",
                     "lab_metadata_shape": "timeout"}, 1),
}
# Two `rally` runs at once, each booting its servers on a host of its own: the
# hanging migration holds its source host's one live-migration slot
# (max_concurrent_live_migrations' default) until its server is deleted, which
# would keep the other run's migrations from that host waiting past the timeout.
FAULT_RUNS = {
    config.COMPUTE_HOSTS[0]: ("migration_hang", "probe_dir_not_writable", "ssh_never_up"),
    config.COMPUTE_HOSTS[1]: ("migration_error", "never_recovers", "no_curl")}
FAULT_ERRORS = {
    # Real Nova rolls a failed live migration back: the server is ACTIVE on its
    # source again (the imitation API had set it to ERROR).
    "migration_error": "LiveMigrationError: ",
    # Deleting it makes Nova fail the migration, and show the server in ERROR on its
    # way out: the cleanup waits that out, and this stays the iteration's error.
    "migration_hang": "LiveMigrationError: ",
    "never_recovers": "did not answer this VM again",
    "probe_dir_not_writable": "workdir '/proc'",
    "ssh_never_up": "SSHTimeout: ",
}


# The load mix: one workload whose servers take these variants in turn
# (lab_profile_cycle), LOAD_CONCURRENCY at once: a healthy migration, metadata
# refused or blackholed in the guest for LOAD_OUTAGE s, or at the switchover
# every SSH session dropped (with refused metadata), the probe killed, or the guest
# rebooted (its /tmp emptied). The shared network's /28 holds 11 guests: six at once
# leave room for a deleted server's port still being released.
LOAD_CYCLE = ("healthy", "refused", "timeout", "drop_ssh", "kill_probe", "reboot")
LOAD_OUTAGE = 2.0
LOAD_TIMES, LOAD_CONCURRENCY = 2 * len(LOAD_CYCLE), 6
LOAD_MIX = {"times": LOAD_TIMES, "concurrency": LOAD_CONCURRENCY,
            "allowed_metadata_downtime": 6, "boot_server_kwargs": {"meta": {
                "lab_profile_cycle": ",".join(LOAD_CYCLE),
                "lab_metadata_outage": str(LOAD_OUTAGE),
                "lab_metadata_shape": "refused"}}}
# The iterations whose guest event the plugin cannot measure through, by their cause.
LOAD_ERRORS = {
    "kill_probe": "MetadataProbeStopped: the metadata probe stopped running in the "
                  "guest before metadata recovered",
    "reboot": "is gone (guest rebooted or /tmp cleared?)",
}
# What each variant the plugin measures must fail with; besides, real code's own
# failures at the switchover, and a request in flight when a refusal began reset.
LOAD_REASONS = {"refused": {"wget=refused"}, "timeout": {"wget=timeout"},
                "drop_ssh": {"wget=refused"}}


def test_guest_and_migration_faults_on_real_nova_are_named(cloud, tmp_path):
    """The fault matrix's migration faults on the real services (FAULT_RUNS): a
    live migration the virt driver fails (Nova rolls it back), one that does not
    finish (its server deleted by Rally's cleanup all the same), metadata that stays
    broken past recovery_timeout, a probe workdir the guest cannot write, SSH asked
    of a port nobody listens on, and a guest without curl. Each failing iteration
    names its cause; busybox wget's figure meets the outage the lab held; every
    fault ends with its server."""
    lab, facts = cloud
    assert sorted(n for names in FAULT_RUNS.values() for n in names) == sorted(
        GUEST_AND_MIGRATION_FAULTS)
    tasks = {}
    for host, names in FAULT_RUNS.items():
        tasks[host] = tmp_path / f"faults-{host}.json"
        tasks[host].write_text(json.dumps(rally_task.sample_variants({
            name: {"times": times, "concurrency": times, "allowed_metadata_downtime": 6,
                   **args, "boot_server_kwargs": {
                       "meta": meta, "availability_zone": f"nova:{host}"}}
            for name, (args, meta, times) in (
                (n, GUEST_AND_MIGRATION_FAULTS[n]) for n in names)})))
    runs = rally_task.run_samples_at_once(facts, lab.state, tmp_path, tasks,
                                          live_migrate_timeout=FAULTS_MIGRATION_TIMEOUT)
    workloads = {title: workload for run in runs.values()
                 for title, workload in _workloads_by_title(run).items()}
    run = runs[config.COMPUTE_HOSTS[0]]   # injected and guests_left: the batch's
    # Each iteration's error as "Type: message", its traceback apart: the error a
    # cleanup raised after it must not take its place.
    errors = {name: [": ".join(map(str, it["error"][:2])) for it in workloads[name]["data"]]
              for name in GUEST_AND_MIGRATION_FAULTS}
    print({name: [e[:160] for e in errs] for name, errs in errors.items()})
    records = {name: rally_report.iteration_records(workloads[name]) for name in workloads}
    for name, cause in FAULT_ERRORS.items():
        failed = [e for e in errors[name] if e]
        assert len(failed) == 1 and cause in failed[0], (name, errors[name])
        assert workloads[name]["pass_sla"] is False, name
    assert "Nova rolled the live migration back" in errors["migration_error"][0], errors
    assert "did not finish its live migration" in errors["migration_hang"][0], errors
    assert f"within {FAULTS_MIGRATION_TIMEOUT} s" in errors["migration_hang"][0], errors
    # Reported as unrecovered, not as a small number.
    [never] = records["never_recovers"]
    assert never.metadata is not None and never.metadata.recovered is False, never
    [sla] = [s for s in workloads["never_recovers"]["sla_results"]["sla"]
             if s["criterion"] == "metadata_downtime"]
    assert "did not recover" in sla["detail"], sla
    assert "not recovered" in json.dumps(
        workloads["never_recovers"]["data"][0]["output"]["complete"])
    metadata_windows = {w["server_id"]: w for w in run["injected"]
                        if w["kind"] == "metadata"}
    held = metadata_windows[never.server_id]
    assert "ended with its server's deletion" in held["detail"], held
    assert held["end_boottime"] - held["start_boottime"] < 40, held
    assert errors["no_curl"] == [""], errors["no_curl"]
    [faulty] = records["no_curl"]
    outage = _outage_meets_window(faulty, metadata_windows[faulty.server_id],
                                  faulty.metadata.resolution + 0.1)
    assert "wget=timeout" in outage.reasons, outage
    assert run["guests_left"] == []


def _outage_meets_window(record, window: dict, slack: float,
                         injected: frozenset[str] | None = None):
    """The record's one outage that meets the window, its length, less what came
    before the window while real code ran, within `slack` of how long the fault
    can have lasted; with the `injected` fault's reasons given, longer by at most a
    probe interval for each failure of another reason (real code's own, which the
    probe saw joined to the fault's)."""
    spans = _migration_spans(record)
    outage = outage_of_window(record, window["start_boottime"], window["end_boottime"],
                              spans)
    # The switchover's own failures may run into the window with no answer between
    # them (seen under two CPU hogs: two requests reset and 0.34 s more).
    lead = lead_of_real_code(outage, window["start_boottime"], spans)
    shortest, longest = injected_bounds(window)
    if injected is not None:
        longest += probe_config.DEFAULT_INTERVAL * sum(
            n for reason, n in outage.reasons.items() if reason not in injected)
    assert shortest - slack <= outage.duration - lead <= longest + slack, (
        window, outage, lead)
    return outage


def _load_variant(windows: list[dict], server_id: str) -> str:
    """What the lab did to this server's migration, from its own windows."""
    mine = [w for w in windows if w["server_id"] == server_id]
    events = [w["shape"] for w in mine if w["kind"] == "guest"]
    shapes = [w["shape"] for w in mine if w["kind"] == "metadata"]
    assert len(events) <= 1 and len(shapes) <= 1, mine
    return (events or shapes or ["healthy"])[0]


def test_the_load_mix_measures_each_iterations_own_fault_and_nothing_else(cloud, tmp_path):
    """Under LOAD_CONCURRENCY migrations at once, each iteration's verdict and
    figure are its own server's: a guest event fails only its own iteration, with
    its cause; a measured fault meets its own window, failing the way it was
    injected; a healthy neighbour sees nothing refused. (Nova runs one live
    migration at a time per source host, max_concurrent_live_migrations' default:
    the last of six waits for the others, longer than the matrix's timeout.)"""
    lab, facts = cloud
    task = tmp_path / "load.json"
    task.write_text(json.dumps(rally_task.sample_variants({"load_mix": LOAD_MIX})))
    run = rally_task.run_sample(facts, lab.state, tmp_path / "run", task_file=task)
    workload = _workloads_by_title(run)["load_mix"]
    windows = run["injected"]
    errors = [": ".join(map(str, it["error"][:2])) for it in workload["data"]]
    print([e[:120] for e in errors])
    # A guest window per event, with what the lab did there:
    # the meter's SSH connection was open at the switchover, so sshd sessions died.
    events = sorted((w["shape"], re.sub(r"\d+(, \d+)*", "N", w["detail"]))
                    for w in windows if w["kind"] == "guest")
    assert events == sorted([("drop_ssh", "killed sshd sessions [N]"),
                             ("kill_probe", "killed probe PIDs ['N']"),
                             ("reboot", "rebooted")] * 2), events
    failed = sorted(e for e in errors if e)
    assert len(failed) == 2 * len(LOAD_ERRORS), errors
    for cause in LOAD_ERRORS.values():
        assert sum(cause in e for e in failed) == 2, (cause, failed)
    measured = []
    for error, record in zip(errors, rally_report.iteration_records(workload)):
        if error:
            continue
        variant = _load_variant(windows, record.server_id)
        measured.append(variant)
        figures = record.metadata
        reasons = {r for o in figures.outages for r in o.reasons}
        assert figures.recovered, (variant, figures)
        if variant == "healthy":
            # Nothing refused: a neighbour's refused metadata leaking would be. Real
            # code's own outages, of any length, are not this test's to bound: the
            # agent's 404s until it maps a moved port (1.4 s with six at once), and
            # the lab's datapath restarting after a crash (Debian's OVS 3.1: 1.5 s
            # of timeouts for every guest on that host; Cloud.vswitchd_crashes).
            assert "wget=refused" not in reasons, (record.server_id, figures)
            continue
        [window] = [w for w in windows if w["server_id"] == record.server_id
                    and w["kind"] == "metadata"]
        # Real code's own failures may join the fault's: once a refusal in the
        # guest ends, its requests reach the new host's agent, which answered
        # 503 for a second with six migrations at once.
        # Six guests' probes and migrations on two cores: one more probe interval
        # of slack than a lone guest's.
        outage = _outage_meets_window(record, window, figures.resolution + 0.3,
                                      frozenset(LOAD_REASONS[variant] | RESET_REASONS))
        assert LOAD_REASONS[variant] <= set(outage.reasons), (variant, outage)
        resets = sum(n for r, n in outage.reasons.items() if r in RESET_REASONS)
        assert resets <= SWITCHOVER_FAILURES, (variant, outage)
    assert sorted(measured) == sorted(
        [v for v in LOAD_CYCLE if v not in LOAD_ERRORS] * 2), measured
    assert run["guests_left"] == []


# samples/metadata_agent_restart.yaml with samples/cloud-args-agent-restart.yaml: the
# real agent on RESTARTED restarted (as `systemctl restart` does) during each
# workload's watch, one VM watching on each host in turn, against a 1 s limit.
AGENT_RESTART_TASK = config.REPO / "samples" / "metadata_agent_restart.yaml"
AGENT_RESTART_ARGS = config.REPO / "samples" / "cloud-args-agent-restart.yaml"
RESTARTED, NOT_RESTARTED = config.COMPUTE_HOSTS
RESTART_LIMIT = 1.0


def test_a_real_metadata_agent_restart_is_measured_on_its_host_only(cloud, tmp_path):
    """The hook restarts the real neutron-ovn-metadata-agent of RESTARTED while a VM
    there watches (then, in a second workload, while a VM on the other host does).
    Ground truth is where the restart acts: the agent answering no request on its
    socket. The VM behind it measures that outage and fails the SLA; the other
    host's VM sees nothing of it and passes; both timelines mark the hook. (Two
    workloads, each VM placed by its availability zone: one workload of two VMs
    with a flavor of more than half a host's disk had both put on one host once.
    One after the other, not in two `rally` runs at once: at once, in one CI-like
    run, both VMs met timeouts 10-19 s after the agent served again, the load of
    two runs on two cores, and the other VM's 1.57 s of them failed its limit.)"""
    lab, facts = cloud
    args = yaml.safe_load(AGENT_RESTART_ARGS.read_text())
    # The plugin waits for recovery as long as the lab lets a restart take.
    assert args["recovery_timeout"] >= metadata_path.RESTART_TIMEOUT, args
    command = f"{args['disruption_command']} --state-dir {lab.state}"
    task = tmp_path / "restart.json"
    task.write_text(json.dumps(rally_task.sample_variants({
        host: {**args, "disruption_command": command,
               "allowed_metadata_downtime": RESTART_LIMIT,
               "boot_server_kwargs": {"availability_zone": f"nova:{host}"}}
        for host in (RESTARTED, NOT_RESTARTED)}, template_file=AGENT_RESTART_TASK)))
    seen = len(lab.agent_restarts())
    run = rally_task.run_sample(facts, lab.state, tmp_path / "run", task_file=task)
    restarts = lab.agent_restarts()[seen:]
    workloads = _workloads_by_title(run)
    print([(w["host"], round(w["end_boottime"] - w["start_boottime"], 2),
            round(w["start_boottime"] - w["asked_boottime"], 2)) for w in restarts])
    assert [w["host"] for w in restarts] == [RESTARTED, RESTARTED], restarts
    verdicts = {}
    for host, window in zip((RESTARTED, NOT_RESTARTED), restarts):
        workload = workloads[host]
        assert [it["error"] for it in workload["data"]] == [[]], workload["data"]
        [record] = rally_report.iteration_records(workload)
        assert record.watch is not None and record.watch.host == host, record
        [hook] = workload["hooks"]
        [hook_run] = hook["results"]
        assert hook_run["status"] == "success", hook_run
        # The hook began inside the watch. It may end after it: with two CPU hogs
        # a restart took 27 s, past the 30 s watch (the recovery wait covers it).
        offset = record.clock_offset
        assert record.watch.start + offset < hook_run["started_at"] \
            < record.watch.end + offset, (record.watch, hook_run)
        assert hook_run["started_at"] < hook_run["finished_at"], hook_run
        start, end = window["start_boottime"], window["end_boottime"]
        figures = record.metadata
        print(host, f"agent refused for {end - start:.2f} s", figures.downtime,
              [(round(o.start - start, 2), round(o.end - end, 2), o.reasons)
               for o in figures.outages])
        if host == RESTARTED:
            outage = outage_of_window(record, start, end)
            # Each edge of the truth is an ask of the agent, which waits up to
            # ANSWER_TIMEOUT for its answer.
            slack = figures.resolution + metadata_path.ANSWER_TIMEOUT + 0.3
            assert end - start - slack <= outage.duration <= end - start + slack, (
                outage, window)
        else:
            # Nothing the restart did: no 503 (its host's failure), at most
            # requests answered later than the probe's timeout while the new
            # agent's start took the two cores (1.2 s of them, once).
            assert all(explained_by_load(o, start, end) for o in figures.outages), (
                figures.outages)
        verdicts[host] = workload["pass_sla"]
    # A restart outlasts a second: the restarted host's VM fails the limit.
    assert restarts[0]["end_boottime"] - restarts[0]["start_boottime"] > RESTART_LIMIT
    assert verdicts == {RESTARTED: False, NOT_RESTARTED: True}
    assert run["exit_code"] == 2
    assert run["guests_left"] == []


# What the probe calls each real-path fault (path_faults.py), as a guest's busybox
# wget or curl says it.
PATH_FAULT_REASONS = {"refused": {"wget=refused", "curl=7"}, "timeout": TIMEOUT_REASONS,
                      "http_503": {"http=503"}, "http_404": {"http=404"},
                      "wrong_instance": {"mismatch"}}
PATH_OUTAGE = 3.0
# A second of the probe's default rate: the failures the switchover itself may add
# to a window's outage (python -m tests.bench real-outage: 0.3-0.4 s of them here).
SWITCHOVER_FAILURES = round(1.0 / probe_config.DEFAULT_INTERVAL)


# Metadata over IPv6 beside IPv4 (Cloud.metadata_over_ipv6) in the same run: one
# guest's IPv6 metadata alone blackholed in the guest, against IPv6's own limit.
BOTH_FAMILIES = ["ipv4", "ipv6"]
IPV6_ALONE = "ipv6 alone: the guest's IPv6 metadata blackholed"
IPV6_LIMIT = 1.0


# Last before the teardown: the IPv6 subnet's haproxy bind outlives it
# (Cloud.metadata_over_ipv6).
def test_faults_in_the_real_path_are_measured_where_they_act(cloud, tmp_path):
    """Each real-path fault, one migration each, in one `rally` run: the
    destination's haproxy killed, the guest's metadata packets dropped on the
    destination's br-int, the destination's agent cut off from Nova's metadata API
    (from the switchover); the port's device_id changed in Neutron to an unknown
    server's, and to a decoy server's in the guest's project (from Nova's
    post-live-migration). The
    outage the probe measured meets the window the hypervisor held, fails the way
    the broken component fails, and ends when the counters where the fault acts
    (resets sent from the ovnmeta namespace, the drop rule's packets, the
    connections refused to the agent, the agent's requests to Nova for the unknown
    server or the decoy) last moved. Each guest measures over IPv4 and IPv6 (the
    real agent serving fe80::a9fe:a9fe): a fault in the real path breaks both
    families alike; one guest's IPv6 alone, broken in the guest, shows on IPv6
    only and fails IPv6's own limit, named in the SLA detail."""
    lab, facts = cloud
    variants = {
        shape: {"times": 1, "concurrency": 1, "allowed_metadata_downtime": 60,
                "scenario_args": {"metadata_families": BOTH_FAMILIES},
                "boot_server_kwargs": {"meta": {
                    "lab_metadata_outage": str(PATH_OUTAGE), "lab_metadata_shape": shape,
                    "lab_metadata_fault_site": "path"}}}
        for shape in PATH_FAULT_REASONS}
    variants[IPV6_ALONE] = {
        "times": 1, "concurrency": 1, "allowed_metadata_downtime": 60,
        "scenario_args": {"metadata_families": BOTH_FAMILIES},
        "boot_server_kwargs": {"meta": {
            "lab_metadata_outage": str(PATH_OUTAGE), "lab_metadata_shape": "timeout",
            "lab_metadata_families": "ipv6"}}}
    body = rally_task.sample_variants(variants)
    [ipv6_alone] = [st for st in body["subtasks"] if st["title"] == IPV6_ALONE]
    ipv6_alone["workloads"][0]["sla"]["metadata_downtime"][
        "allowed_metadata_downtime_ipv6"] = IPV6_LIMIT
    task = tmp_path / "path-faults.json"
    task.write_text(json.dumps(body))
    with lab.metadata_over_ipv6():
        run = rally_task.run_sample(facts, lab.state, tmp_path / "run", task_file=task)
    workloads = _workloads_by_title(run)
    assert {t: w["data"][0]["error"] for t, w in workloads.items()} == {
        t: [] for t in workloads}
    windows = {w["server_id"]: w for w in run["injected"] if w["kind"] == "metadata"}
    for shape, reasons in PATH_FAULT_REASONS.items():
        [record] = rally_report.iteration_records(workloads[shape])
        assert record.families == tuple(BOTH_FAMILIES), record.families
        window = windows[record.server_id]
        assert window["families"] == "ipv4,ipv6", window
        for family, figures in record.metadata_by_family.items():
            print(family, end=" ")
            _check_path_fault(shape, reasons, dataclasses.replace(record, metadata=figures),
                              window)
        assert workloads[shape]["pass_sla"] is True
    _check_ipv6_alone(workloads[IPV6_ALONE], windows)
    assert run["exit_code"] != 0   # the IPv6 limit failed, as it should
    assert run["guests_left"] == []


def _check_ipv6_alone(workload: dict, windows: dict) -> None:
    [record] = rally_report.iteration_records(workload)
    window = windows[record.server_id]
    assert (window["shape"], window["families"]) == ("timeout", "ipv6"), window
    start, end = window["start_boottime"], window["end_boottime"]
    spans = _migration_spans(record)
    ipv4, ipv6 = record.metadata_by_family["ipv4"], record.metadata_by_family["ipv6"]
    # IPv4 saw nothing of it: at most the switchover's own failures, in the migration.
    meeting, _ = outages_meeting(dataclasses.replace(record, metadata=ipv4), start, end)
    assert all(any(a <= o.start <= b for a, b in spans) and o.end < start + 1.0
               for o in meeting), (meeting, window)
    outage = outage_of_window(dataclasses.replace(record, metadata=ipv6), start, end, spans)
    lead = lead_of_real_code(outage, start, spans)
    slack = ipv6.resolution + 0.1
    shortest, longest = injected_bounds(window)
    print(f"ipv6 alone: held {end - start:.2f} s, measured {outage.duration:.2f} s, "
          f"ipv4 {ipv4.downtime:.2f} s", outage.reasons)
    assert shortest - slack <= outage.duration - lead <= longest + slack, (window, outage)
    # Blackholed: timeouts, besides at most the switchover's own failures (one
    # request under load found no eth0 while the lab swapped it: wget=noipv6).
    blackholed = sum(n for reason, n in outage.reasons.items()
                     if reason in TIMEOUT_REASONS | RESET_REASONS)
    assert blackholed > 0 and sum(outage.reasons.values()) - blackholed \
        <= SWITCHOVER_FAILURES, outage.reasons
    assert workload["pass_sla"] is False
    [sla] = [s for s in workload["sla_results"]["sla"] if s["criterion"] == "metadata_downtime"]
    assert f"worst ipv6 metadata downtime {ipv6.downtime:.2f} s" in sla["detail"], sla
    assert f"allowed {IPV6_LIMIT:g} s" in sla["detail"], sla


def _check_path_fault(shape: str, reasons: set[str], record, window: dict) -> None:
    [migration] = record.migrations
    assert (window["shape"], window["detail"]) == (
        shape, f"path: {migration.destination_host}")
    start, end = window["start_boottime"], window["end_boottime"]
    assert end - start >= PATH_OUTAGE
    outage = outage_of_window(record, start, end, _migration_spans(record))
    lead = lead_of_real_code(outage, start, _migration_spans(record))
    print(shape, f"held {end - start:.2f} s, measured {outage.duration:.2f} s "
          f"({lead:.2f} s of it the switchover's own, before the window), "
          f"acted {window['acted_count']}x over "
          f"{window['acted_start_boottime'] - start:+.2f}..."
          f"{window['acted_end_boottime'] - end:+.2f} s of the window, "
          f"outage {outage.start - start:+.2f}...{outage.end - end:+.2f} s",
          outage.reasons)
    # Failing the way the broken component fails. Besides: a second of the
    # switchover's own failures (a request in flight reset by the destination, the
    # agent's 404s until it maps the moved port), and under load answers later than
    # the probe's timeout, which it rightly calls timeouts (two CPU hogs: 20 of 49
    # failures in a 503 window, 23 were 503s, 6 the switchover's).
    failed_so = sum(n for reason, n in outage.reasons.items() if reason in reasons)
    slow = sum(n for reason, n in outage.reasons.items()
               if reason in TIMEOUT_REASONS and reason not in reasons)
    other = sum(outage.reasons.values()) - failed_so - slow
    assert failed_so > 0, (shape, outage.reasons)
    assert other <= max(SWITCHOVER_FAILURES, 0.2 * (failed_so + other)), (
        shape, outage.reasons)
    # Counted where it acts: after the fault was applied (the window opens once the
    # call applying it returned: a Neutron API call for the 404, slow under load),
    # before it was gone.
    assert window["acted_count"] > 0, window
    assert start - window["applied_within"] <= window["acted_start_boottime"] \
        <= window["acted_end_boottime"], window
    assert window["acted_end_boottime"] <= end + 0.1, window
    # The guest's outage: from the migration's cut (the fault was already in
    # place) until the fault was mended, one probe interval either way. An http_404
    # or wrong_instance window opens at Nova's post-live-migration: the switchover's
    # own outage may run into it (seen once, 1.05 s of timeouts and 404s before it).
    slack = record.metadata.resolution + 0.1
    shortest, longest = injected_bounds(window)
    assert shortest - slack <= outage.duration - lead <= longest + slack, (
        window, outage, lead)
    # The last failing answer where the fault acts is the guest's last, where
    # the fault answers each request. A blackholed probe stops sending once
    # ceil(timeout/interval)+1 requests wait: the rule's last dropped packet
    # may come up to a few tenths of a second before the end (the
    # real-accuracy bench saw 0.37 s).
    if shape != "timeout":
        assert abs(outage.end - window["acted_end_boottime"]) <= slack, (
            window, outage)


def test_down_leaves_nothing(cloud):
    lab, _ = cloud
    print(f"vswitchd crashes (restarted by its monitor): {lab.vswitchd_crashes()}")
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
