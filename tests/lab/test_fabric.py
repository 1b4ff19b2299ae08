"""The lab fabric against the real kernel: namespaces, sshd guests, metadata, faults.

Needs root. Every lab here uses its own prefix and narrower gateway prefixes than the
default /24s, so it coexists with another lab running in the same root namespace.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import aiohttp.test_utils
import paramiko
import pytest

from tests.helpers import public_key, wait_until
from tests.lab import ledger
from tests.lab.fabric import Fabric, GuestNotFound, MigrationError, MigrationInProgress
from tests.lab.faults import FaultProfile
from tests.lab.metadata_service import InstanceInfo, MetadataService

PREFIX = f"rmdt{os.getpid() % 1000}"
# Session lab: gateways .193/26 and 203.0.113.33/27, guests .194-.223. The smaller
# prefixes belong to the short-lived labs of the teardown and crash tests. The layout
# and what no prefix may cover: tests/lab/addressing.py.
FIXED_GW, FLOATING_GW = "198.51.100.193/26", "203.0.113.33/27"
TEARDOWN_FIXED_GW, TEARDOWN_FLOATING_GW = "198.51.100.225/28", "203.0.113.17/29"
CRASH_FIXED_GW, CRASH_FLOATING_GW = "198.51.100.241/28", "203.0.113.25/29"
REPO = Path(__file__).resolve().parents[2]
MD_URL = "http://169.254.169.254"


# --- fixtures and helpers ----------------------------------------------------------------

@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    fabric = Fabric(tmp_path_factory.mktemp("lab"), PREFIX, fixed_gateway=FIXED_GW,
                    floating_gateway=FLOATING_GW)
    with fabric:
        yield fabric


@pytest.fixture(scope="module")
def vm_a(lab, key):
    guest = lab.create_guest("srv-a", "vm-a", "vm-a", "198.51.100.200", public_key(key),
                             key_name="lab-key", meta={"role": "a"})
    lab.add_floating_ip("srv-a", "203.0.113.40")
    return guest


@pytest.fixture(scope="module")
def vm_b(lab, key):
    return lab.create_guest("srv-b", "vm-b", "vm-b", "198.51.100.201", public_key(key),
                            availability_zone="az-2", launch_index=1)


def ssh(address: str, k: paramiko.PKey) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect(address, username="root", pkey=k, timeout=10, banner_timeout=10,
                   auth_timeout=10, look_for_keys=False, allow_agent=False)
    return client


def run(client: paramiko.SSHClient, command: str) -> tuple[int, str]:
    _, stdout, _ = client.exec_command(command, timeout=20)
    out = stdout.read().decode()
    return stdout.channel.recv_exit_status(), out


def curl(lab: Fabric, server_id: str, path: str) -> subprocess.CompletedProcess:
    return lab.guest_exec(server_id, ["curl", "-s", "-m", "5", "-w", "\n%{http_code}",
                                      MD_URL + path])


def lab_names(prefix: str) -> list[str]:
    """Namespaces and root-namespace links whose name starts with the prefix."""
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                           check=False).stdout
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True,
                           check=False).stdout
    names = [line.split()[0] for line in netns.splitlines() if line.strip()]
    names += [line.split(":")[1].strip().split("@")[0] for line in links.splitlines()]
    return [name for name in names if name.startswith(prefix)]


def root_addresses() -> str:
    return subprocess.run(["ip", "-o", "addr", "show"], capture_output=True, text=True,
                          check=False).stdout


def pids_of(guest) -> list[tuple[int, int]]:
    return [(e["pid"], e["starttime"]) for e in (guest.init_entry, guest.sshd_entry)]


# --- guests: identity, SSH, metadata ------------------------------------------------------

def test_guest_has_own_hostname_tmp_and_pid_namespace(lab, vm_a, vm_b):
    assert lab.guest_exec("srv-a", ["hostname"]).stdout.strip() == "vm-a"
    ps = lab.guest_exec("srv-a", ["ps"]).stdout
    assert re.search(r"^\s*1 .*sshd", ps, re.MULTILINE), ps
    marker = f"rmd-marker-{os.getpid()}"
    assert lab.guest_exec("srv-a", ["touch", f"/tmp/{marker}"]).returncode == 0
    assert lab.guest_exec("srv-a", ["ls", f"/tmp/{marker}"]).returncode == 0
    assert not Path("/tmp", marker).exists()
    assert lab.guest_exec("srv-b", ["ls", f"/tmp/{marker}"]).returncode != 0


def test_ssh_login_with_boot_key_via_fixed_and_floating_ip(vm_a, key):
    for address in (vm_a.fixed_ip, "203.0.113.40"):
        client = ssh(address, key)
        try:
            status, out = run(client, 'hostname; echo "$PATH"; command -v curl; echo "$0"')
        finally:
            client.close()
        hostname, path, curl_path, shell = out.split()
        assert status == 0
        assert hostname == "vm-a"
        assert path == vm_a.path and Path(path, "wget").exists()
        assert curl_path == f"{path}/curl"
        assert shell == "sh" and Path(path, "sh").resolve() == Path("/usr/bin/busybox")


def test_ssh_refuses_another_key(vm_a):
    with pytest.raises(paramiko.AuthenticationException):
        ssh(vm_a.fixed_ip, paramiko.RSAKey.generate(2048)).close()


def test_no_curl_guest_has_wget_only(lab, key):
    lab.create_guest("srv-nocurl", "vm-nc", "vm-nc", "198.51.100.202", public_key(key),
                     no_curl=True)
    client = ssh("198.51.100.202", key)
    try:
        assert run(client, "command -v curl")[0] != 0
        assert run(client, f"wget -q -O- {MD_URL}/latest/meta-data/hostname") == (0, "vm-nc")
    finally:
        client.close()


def test_metadata_identifies_each_guest_by_source_address(lab, vm_a, vm_b):
    for guest in (vm_a, vm_b):
        body, status = curl(lab, guest.server_id, "/latest/meta-data/hostname").stdout.split("\n")
        assert (status, body) == ("200", guest.hostname)
    a_doc, _ = curl(lab, "srv-a", "/openstack/latest/meta_data.json").stdout.rsplit("\n", 1)
    b_doc, _ = curl(lab, "srv-b", "/openstack/latest/meta_data.json").stdout.rsplit("\n", 1)
    a_doc, b_doc = json.loads(a_doc), json.loads(b_doc)
    assert {k: a_doc[k] for k in ("uuid", "name", "hostname", "launch_index",
                                  "availability_zone", "meta")} == {
        "uuid": "srv-a", "name": "vm-a", "hostname": "vm-a", "launch_index": 0,
        "availability_zone": "nova", "meta": {"role": "a"}}
    assert a_doc["public_keys"]["lab-key"].startswith("ssh-rsa ")
    assert (b_doc["uuid"], b_doc["availability_zone"], b_doc["launch_index"]) == \
        ("srv-b", "az-2", 1)
    ids = {curl(lab, s, "/latest/meta-data/instance-id").stdout for s in ("srv-a", "srv-b")}
    assert len(ids) == 2
    assert curl(lab, "srv-a", "/latest/meta-data/nonsense").stdout.endswith("\n404")
    assert curl(lab, "srv-a", "/latest/meta-data/public-ipv4").stdout == "203.0.113.40\n200"
    lab.set_instance_meta("srv-b", {"lab_metadata_outage": "3"})
    b_doc = json.loads(curl(lab, "srv-b", "/openstack/latest/meta_data.json")
                       .stdout.rsplit("\n", 1)[0])
    assert b_doc["meta"] == {"lab_metadata_outage": "3"}


def test_metadata_unknown_source_gets_404_like_the_proxy():
    service = MetadataService()
    service.register(InstanceInfo(uuid="u1", name="n", hostname="h", fixed_ip="192.0.2.9"))

    async def hostname() -> tuple[int, str]:
        server = aiohttp.test_utils.TestServer(service.app(), host="127.0.0.1")
        async with aiohttp.test_utils.TestClient(server) as client:
            response = await client.get("/latest/meta-data/hostname")
            return response.status, await response.text()

    # The request comes from 127.0.0.1, which no instance has.
    status, text = asyncio.run(hostname())
    assert status == 404 and "404 Not Found" in text
    service.register(InstanceInfo(uuid="u2", name="n2", hostname="h2", fixed_ip="127.0.0.1"))
    assert asyncio.run(hostname()) == (200, "h2")


# --- faults -------------------------------------------------------------------------------

SAMPLER = r"""
cs() { read -r up _ < /proc/uptime; echo "${up%.*}${up#*.}"; }
end=$(( $(cs) + $1 )); n=0
while [ "$(cs)" -lt "$end" ] && [ "$n" -lt 200 ]; do
    read -r t0 _ < /proc/uptime
    code=$(curl -s -m 0.5 -o /tmp/body -w '%{http_code}' $2/latest/meta-data/hostname)
    rc=$?
    echo "$t0 $rc $code $(tr -s "\n" " " < /tmp/body 2>/dev/null)"
    rm -f /tmp/body; n=$((n + 1)); sleep 0.1
done
"""
SHAPES = ("refused", "timeout", "http_404", "http_503", "wrong_instance")
OUTAGE = 1.5
CURL_MAX = 0.5


@pytest.fixture(scope="module")
def shape_runs(lab, vm_a, key):
    """Every metadata fault shape at once, each on its own guest, sampled from inside."""
    for i, shape in enumerate(SHAPES):
        lab.create_guest(f"srv-{shape}", f"vm-{shape}", hostname(shape),
                         f"198.51.100.{203 + i}", public_key(key))

    async def migrate_all():
        await asyncio.sleep(0.8)
        await asyncio.gather(*(lab.migrate(f"srv-{shape}", FaultProfile(
            duration=0.2, network_blackout=0, metadata_outage=OUTAGE, metadata_shape=shape))
            for shape in SHAPES))

    with concurrent.futures.ThreadPoolExecutor(len(SHAPES)) as pool:
        samplers = {shape: pool.submit(lab.guest_exec, f"srv-{shape}",
                                       ["sh", "-c", SAMPLER, "sampler", "450", MD_URL])
                    for shape in SHAPES}
        asyncio.run(migrate_all())
        outputs = {shape: future.result(timeout=60) for shape, future in samplers.items()}
    runs = {}
    for shape, proc in outputs.items():
        samples = []
        for line in proc.stdout.splitlines():
            t0, rc, code, *body = line.split()
            samples.append((float(t0), int(rc), code, " ".join(body)))
        runs[shape] = samples
    return runs


def hostname(shape: str) -> str:
    return "vm-" + shape.replace("_", "-")


def expected_failure(shape: str, sample, own: str, others: set[str]) -> bool:
    _, rc, code, body = sample
    return {"refused": rc == 7, "timeout": rc == 28,
            "http_404": rc == 0 and code == "404", "http_503": rc == 0 and code == "503",
            "wrong_instance": rc == 0 and code == "200" and body in others}[shape]


@pytest.mark.parametrize("shape", SHAPES)
def test_metadata_fault_shape_fails_for_the_injected_window_then_recovers(
        lab, shape, shape_runs):
    own = hostname(shape)
    others = {g.hostname for g in lab.guests()} - {own}
    windows = lab.injected_windows(f"srv-{shape}")
    assert [(w.kind, w.shape) for w in windows] == [("metadata", shape)]
    window = windows[0]
    assert OUTAGE <= window.duration < OUTAGE + 0.3
    samples = shape_runs[shape]
    ok = [s for s in samples if s[1:] == (0, "200", own)]
    failed = [s for s in samples if s not in ok]
    # /proc/uptime shows 10 ms steps, and the sampler reads it before starting curl.
    slack, launch = 0.02, 0.15
    assert failed, samples
    outside = [s for s in failed if not window.start_boottime - slack - launch
               <= s[0] <= window.end_boottime + slack]
    assert not outside, (window.start_boottime, window.end_boottime, outside, samples)
    inside = [s for s in samples
              if window.start_boottime + slack <= s[0] <= window.end_boottime - CURL_MAX - 0.1]
    assert inside and all(expected_failure(shape, s, own, others) for s in inside), \
        (window, samples)
    assert failed[-1][0] - failed[0][0] >= OUTAGE - CURL_MAX - 0.25, (window, samples)
    assert any(s[0] < window.start_boottime - launch for s in ok), "no success before"
    after = [s for s in samples if s[0] > window.end_boottime + slack]
    assert after and all(s in ok for s in after), (window, samples)


def test_network_blackout_drops_ping_and_an_ssh_session_survives(lab, vm_a, key):
    floating = "203.0.113.40"
    client = ssh(floating, key)
    switched: list[float] = []
    try:
        _, stream, _ = client.exec_command(
            "i=0; while [ $i -lt 30 ]; do echo $i; i=$((i+1)); sleep 0.1; done", timeout=30)
        ping = subprocess.Popen(["ping", "-n", "-D", "-O", "-c", "20", "-i", "0.2", "-W", "1",
                                 floating], stdout=subprocess.PIPE, text=True)

        async def migrate():
            await asyncio.sleep(0.6)
            await lab.migrate("srv-a", FaultProfile(duration=0.2, network_blackout=1.5),
                              on_switchover=lambda: switched.append(time.time()))

        asyncio.run(migrate())
        out, _ = ping.communicate(timeout=15)
        lines = stream.read().decode().split()
        assert stream.channel.recv_exit_status() == 0
        assert lines == [str(i) for i in range(30)]
        assert run(client, "hostname") == (0, "vm-a\n")
    finally:
        client.close()
    [window] = [w for w in lab.injected_windows("srv-a") if w.kind == "network"]
    assert (window.shape, window.server_id) == ("blackout", "srv-a")
    assert 1.5 <= window.duration < 1.8
    replies = [float(m) for m in re.findall(r"^\[(\d+\.\d+)\] \d+ bytes from", out, re.MULTILINE)]
    lost = re.findall(r"no answer yet for icmp_seq=(\d+)", out)
    assert 20 - len(replies) >= 5 and len(lost) >= 5, out
    assert not [t for t in replies
                if window.start_wall + 0.02 < t < window.end_wall - 0.02], (window, out)
    assert len(switched) == 1 and switched[0] >= window.end_wall
    # How long the `ip` calls took that cut and mended the link: measured, bounded.
    assert 0 < window.applied_within < 5 and 0 < window.removed_within < 5, window
    logged = [json.loads(line) for line in
              (lab.state_dir / "injected.jsonl").read_text().splitlines()]
    assert {"kind": "network", "shape": "blackout", "server_id": "srv-a", "detail": "",
            "start_boottime": window.start_boottime, "end_boottime": window.end_boottime,
            "start_wall": window.start_wall, "end_wall": window.end_wall,
            "families": "ipv4,ipv6", "acted_start_boottime": None,
            "acted_end_boottime": None, "acted_count": 0,
            "applied_within": window.applied_within,
            "removed_within": window.removed_within} in logged


def test_migration_error_hang_and_concurrent_requests(lab, vm_b):
    switched = []
    before = len(lab.injected_windows())

    async def scenario():
        started = time.monotonic()
        with pytest.raises(MigrationError, match="failed"):
            await lab.migrate("srv-b", FaultProfile(duration=0.3, metadata_outage=1,
                                                    result="error"),
                              on_switchover=lambda: switched.append(1))
        assert time.monotonic() - started >= 0.3
        hang = asyncio.ensure_future(lab.migrate("srv-b", FaultProfile(
            duration=0.1, result="hang"), on_switchover=lambda: switched.append(1)))
        await asyncio.sleep(0.2)
        with pytest.raises(MigrationInProgress):
            await lab.migrate("srv-b", FaultProfile(duration=0))
        await asyncio.sleep(0.8)
        assert not hang.done()
        hang.cancel()
        with pytest.raises(asyncio.CancelledError):
            await hang
        # Cancelled means finished: the server can migrate again.
        await lab.migrate("srv-b", FaultProfile(duration=0, network_blackout=0))

    asyncio.run(scenario())
    assert switched == []
    assert len(lab.injected_windows()) == before


def test_a_migration_during_the_previous_ones_metadata_outage_extends_it(lab, vm_b):
    """The guest is on its new host while metadata is still broken: a new migration
    is accepted, and the guest sees one outage until the later one's end."""
    before = len(lab.injected_windows("srv-b"))

    async def scenario():
        switched = asyncio.Event()
        first = asyncio.ensure_future(lab.migrate(
            "srv-b", FaultProfile(duration=0.1, network_blackout=0, metadata_outage=1.5,
                                  metadata_shape="refused"),
            on_switchover=switched.set))
        await switched.wait()
        await lab.migrate("srv-b", FaultProfile(duration=0.5, network_blackout=0,
                                                metadata_outage=1.5,
                                                metadata_shape="refused"))
        await first

    started = time.monotonic()
    asyncio.run(scenario())
    [window] = lab.injected_windows("srv-b")[before:]
    assert (window.kind, window.shape) == ("metadata", "refused")
    assert window.detail == "extended by 1 later migration(s)"
    assert 2.0 <= window.duration < 2.5, window
    assert time.monotonic() - started < 3
    assert curl(lab, "srv-b", "/latest/meta-data/hostname").stdout == "vm-b\n200"


def test_a_metadata_agent_restart_breaks_one_guest_for_its_seconds(lab, vm_a, vm_b):
    """break_metadata alone (no migration): refused for vm-b for the seconds asked,
    recorded with its detail, vm-a answered throughout, and back afterwards."""
    before = len(lab.injected_windows("srv-b"))
    answers_of_a = []

    async def scenario():
        restart = asyncio.ensure_future(lab.break_metadata(
            "srv-b", "refused", 1.0, detail="metadata agent restarted on host-1"))
        await asyncio.sleep(0.3)
        answers_of_a.append(await asyncio.to_thread(
            curl, lab, "srv-a", "/latest/meta-data/hostname"))
        during_b = await asyncio.to_thread(curl, lab, "srv-b", "/latest/meta-data/hostname")
        return during_b, await restart

    during_b, window = asyncio.run(scenario())
    assert during_b.stdout.endswith("000"), during_b.stdout   # connection refused
    assert answers_of_a[0].stdout == "vm-a\n200"
    assert [window] == [w for w in lab.injected_windows("srv-b")[before:]]
    assert (window.kind, window.shape, window.detail) == (
        "metadata", "refused", "metadata agent restarted on host-1")
    assert 1.0 <= window.duration < 1.4, window
    assert curl(lab, "srv-b", "/latest/meta-data/hostname").stdout == "vm-b\n200"


def test_a_guest_holding_the_metadata_address_does_not_answer_its_neighbours_arp(
        lab, vm_a, vm_b):
    """The refused shape puts 169.254.169.254 on the guest's lo; its neighbours must
    still resolve that address to the metadata service, not to this guest."""

    async def refuse_b():
        await lab.migrate("srv-b", FaultProfile(duration=0, network_blackout=0,
                                                metadata_outage=1.5,
                                                metadata_shape="refused"))

    def mac_of_metadata_seen_by_a() -> str:
        lab.guest_exec("srv-a", ["ip", "neigh", "flush", "dev", "eth0"])
        curl(lab, "srv-a", "/latest/meta-data/hostname")
        shown = lab.guest_exec("srv-a", ["ip", "neigh", "show", "169.254.169.254"]).stdout
        return shown.split("lladdr")[1].split()[0]

    metadata_mac = mac_of_metadata_seen_by_a()
    b_mac = lab.guest_exec("srv-b", ["cat", "/sys/class/net/eth0/address"]).stdout.strip()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        refusing = pool.submit(asyncio.run, refuse_b())
        time.sleep(0.5)
        during = mac_of_metadata_seen_by_a()
        refusing.result(timeout=30)
    assert during == metadata_mac != b_mac
    assert curl(lab, "srv-a", "/latest/meta-data/hostname").stdout == "vm-a\n200"


def test_hanging_migration_ends_when_the_guest_is_deleted(lab, key):
    lab.create_guest("srv-hang", "vm-hang", "vm-hang", "198.51.100.210", public_key(key))

    async def scenario():
        hang = asyncio.ensure_future(lab.migrate("srv-hang", FaultProfile(
            duration=0, result="hang")))
        await asyncio.sleep(0.3)
        await asyncio.to_thread(lab.delete_guest, "srv-hang")
        with pytest.raises(GuestNotFound):
            await asyncio.wait_for(hang, 2)

    asyncio.run(scenario())


def test_outage_outlasting_the_guest_is_closed_when_it_is_deleted(lab, key):
    lab.create_guest("srv-gone", "vm-gone", "vm-gone", "198.51.100.209", public_key(key))

    async def scenario():
        migration = asyncio.ensure_future(lab.migrate("srv-gone", FaultProfile(
            duration=0, network_blackout=0, metadata_outage=30, metadata_shape="timeout")))
        await asyncio.sleep(0.5)
        assert lab.injected_windows("srv-gone")[0].end_boottime is None
        await asyncio.to_thread(lab.delete_guest, "srv-gone")
        await asyncio.wait_for(migration, 2)

    asyncio.run(scenario())
    [window] = lab.injected_windows("srv-gone")
    assert 0.4 < window.duration < 2


# --- profiles -----------------------------------------------------------------------------

def test_fault_profile_from_metadata_overrides_and_validates():
    base = FaultProfile(duration=1)
    profile = FaultProfile.from_metadata(base, {
        "lab_metadata_outage": "10", "lab_metadata_shape": "timeout",
        "lab_network_blackout": "1", "lab_migration_duration": "3",
        "lab_migration_result": "error", "owner": "someone"})
    assert profile == FaultProfile(duration=3, network_blackout=1, metadata_outage=10,
                                   metadata_shape="timeout", result="error")
    assert FaultProfile.from_metadata(base, {}) == base
    assert FaultProfile.from_metadata(base, profile.to_metadata()) == profile
    for bad in ({"lab_metadata_outage": "ten"}, {"lab_metadata_outage": "-1"},
                {"lab_metadata_outage": "nan"}, {"lab_metadata_shape": "flaky"},
                {"lab_migration_result": "maybe"}, {"lab_metadata_outgae": "1"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            FaultProfile.from_metadata(base, bad)
    with pytest.raises(ValueError, match="metadata_shape"):
        FaultProfile(metadata_shape="slow")


def test_guest_profile_overrides_lab_default(lab, vm_a, key):
    own = FaultProfile(duration=0.1, network_blackout=0)
    lab.create_guest("srv-prof", "vm-prof", "vm-prof", "198.51.100.211", public_key(key),
                     fault_profile=own)
    assert lab.profile_for("srv-prof") == own
    assert lab.profile_for("srv-a") == lab.default_profile == FaultProfile()


# --- lifecycle ----------------------------------------------------------------------------

def test_reboot_kills_every_guest_process_and_empties_tmp(lab, key):
    guest = lab.create_guest("srv-reboot", "vm-r", "vm-r", "198.51.100.208", public_key(key))
    lab.guest_exec("srv-reboot", ["sh", "-c", "touch /tmp/before; sleep 300 >/dev/null 2>&1 &"])
    assert lab.guest_exec("srv-reboot", ["pidof", "sleep"]).returncode == 0
    old_pids = pids_of(guest)
    lab.reboot_guest("srv-reboot")
    assert not any(ledger.process_alive(*p) for p in old_pids)
    assert guest.sshd_pid != old_pids[1][0]
    assert lab.guest_exec("srv-reboot", ["pidof", "sleep"]).returncode != 0
    assert lab.guest_exec("srv-reboot", ["ls", "/tmp/before"]).returncode != 0
    client = ssh(guest.fixed_ip, key)
    try:
        assert run(client, "hostname") == (0, "vm-r\n")
    finally:
        client.close()


def test_delete_guest_removes_its_namespace_link_and_processes(lab, key):
    guest = lab.create_guest("srv-del", "vm-d", "vm-d", "198.51.100.212", public_key(key))
    pids = pids_of(guest)
    assert all(ledger.process_alive(*p) for p in pids)
    lab.delete_guest("srv-del")
    assert not any(ledger.process_alive(*p) for p in pids)
    names = lab_names(PREFIX)
    assert guest.netns not in names and guest.host_veth not in names
    assert lab.metadata.instance("srv-del") is None
    with pytest.raises(GuestNotFound):
        lab.guest_exec("srv-del", ["true"])
    recorded = json.loads((lab.state_dir / "resources.json").read_text())["resources"]
    assert not [e for e in recorded if guest.netns in e.values() or
                guest.host_veth in e.values() or (e.get("pid"), e.get("starttime")) in pids]


def test_guests_boot_and_go_concurrently(lab, key):
    addresses = [f"198.51.100.{i}" for i in range(213, 224)]
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(len(addresses)) as pool:
        guests = list(pool.map(lambda ip: lab.create_guest(
            f"srv-c{ip.rsplit('.', 1)[1]}", "vm-c", f"vm-c{ip.rsplit('.', 1)[1]}", ip,
            public_key(key)), addresses))
        boot_time = time.monotonic() - started
        hostnames = list(pool.map(lambda g: lab.guest_exec(
            g.server_id, ["curl", "-s", MD_URL + "/latest/meta-data/hostname"]).stdout, guests))
        assert hostnames == [g.hostname for g in guests]
        list(pool.map(lambda g: lab.delete_guest(g.server_id), guests))
    print(f"{len(guests)} guests booted concurrently in {boot_time:.2f} s")
    assert not {g.netns for g in guests} & set(lab_names(PREFIX))


def test_a_lab_with_a_taken_prefix_fails_without_harming_the_other(lab, vm_a, tmp_path):
    intruder = Fabric(tmp_path, PREFIX, fixed_gateway=TEARDOWN_FIXED_GW,
                      floating_gateway=TEARDOWN_FLOATING_GW)
    with pytest.raises(RuntimeError, match="exists"):
        intruder.setup()
    intruder.teardown()
    assert lab.bridge in lab_names(PREFIX)
    assert curl(lab, "srv-a", "/latest/meta-data/hostname").stdout == "vm-a\n200"


def test_bad_guest_requests_are_refused_and_leave_nothing(lab, vm_a):
    before = set(lab_names(PREFIX))
    with pytest.raises(ValueError, match="hostname"):
        lab.create_guest("srv-bad", "bad", "bad_name", "198.51.100.223", None)
    with pytest.raises(RuntimeError, match="in use"):
        lab.create_guest("srv-dup", "dup", "dup", vm_a.fixed_ip, None)
    with pytest.raises(RuntimeError, match="exists"):
        lab.create_guest("srv-a", "again", "again", "198.51.100.223", None)
    assert set(lab_names(PREFIX)) == before
    with pytest.raises(GuestNotFound):
        lab.guest("srv-bad")


def test_teardown_after_a_failure_midway_leaves_nothing(tmp_path, key):
    prefix = f"{PREFIX}x"
    fabric = Fabric(tmp_path, prefix, fixed_gateway=TEARDOWN_FIXED_GW,
                    floating_gateway=TEARDOWN_FLOATING_GW)
    pids = []
    migration_done = threading.Event()

    def migrate_forever():
        try:
            asyncio.run(fabric.migrate("t1", FaultProfile(
                duration=0, network_blackout=0, metadata_outage=60)))
        except GuestNotFound:
            pass
        finally:
            migration_done.set()

    with pytest.raises(RuntimeError, match="midway"), fabric:
        for i, sid in enumerate(("t1", "t2")):
            guest = fabric.create_guest(sid, sid, sid, f"198.51.100.{230 + i}",
                                        public_key(key))
            pids += pids_of(guest)
        fabric.add_floating_ip("t1", "203.0.113.20")
        assert str(TEARDOWN_FIXED_GW) in root_addresses()
        threading.Thread(target=migrate_forever, daemon=True).start()
        wait_until(lambda: fabric.injected_windows("t1"), "a fault window on t1", timeout=5)
        raise RuntimeError("test fails midway")
    assert migration_done.wait(5)
    assert lab_names(prefix) == []
    addresses = root_addresses()
    for gateway in (TEARDOWN_FIXED_GW, TEARDOWN_FLOATING_GW, "203.0.113.20"):
        assert gateway.split("/")[0] + "/" not in addresses
    assert "169.254.169.254" not in addresses
    assert not any(ledger.process_alive(*p) for p in pids)
    assert json.loads((tmp_path / "resources.json").read_text())["resources"] == []
    [logged] = [json.loads(line) for line in (tmp_path / "injected.jsonl").read_text()
                .splitlines()]
    assert logged["end_boottime"] > logged["start_boottime"]
    fabric.teardown()  # idempotent


CRASHING_LAB = textwrap.dedent("""
    import sys, time
    from tests.lab.fabric import Fabric
    fabric = Fabric(sys.argv[1], sys.argv[2], fixed_gateway=sys.argv[3],
                    floating_gateway=sys.argv[4])
    fabric.setup()
    fabric.create_guest("c1", "c1", "c1", "198.51.100.242", None)
    print("ready", flush=True)
    time.sleep(60)
""")


def test_cleanup_cli_removes_what_a_killed_lab_left(tmp_path):
    prefix = f"{PREFIX}y"
    child = subprocess.Popen([sys.executable, "-c", CRASHING_LAB, str(tmp_path), prefix,
                              CRASH_FIXED_GW, CRASH_FLOATING_GW], cwd=REPO,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    recorded = json.loads((tmp_path / "resources.json").read_text())["resources"]
    processes = [(e["pid"], e["starttime"]) for e in recorded if e["kind"] == "process"]
    assert len(processes) == 2 and all(ledger.process_alive(*p) for p in processes)
    assert len(lab_names(prefix)) == 5  # bridge, 2 veths, 2 namespaces
    cli = subprocess.run([sys.executable, "-m", "tests.lab.fabric", "cleanup",
                          "--state-dir", str(tmp_path)], cwd=REPO, capture_output=True,
                         text=True, timeout=60, check=False)
    assert cli.returncode == 0, cli.stderr
    assert lab_names(prefix) == []
    assert CRASH_FIXED_GW not in root_addresses()
    assert not any(ledger.process_alive(*p) for p in processes)


# --- IPv6 metadata (fe80::a9fe:a9fe on the guests' link) ---------------------------------

def curl_family(lab, server_id: str, family: str, path: str = "/latest/meta-data/hostname"):
    """(curl's exit status, "<body>|<http code>") for one request over a family."""
    url = (MD_URL if family == "ipv4" else "http://[fe80::a9fe:a9fe%eth0]") + path
    done = lab.guest_exec(server_id, ["curl", "-gsS", "--max-time", "0.5", "-w", "|%{http_code}",
                                      url], timeout=10)
    return done.returncode, done.stdout.strip()


def test_ipv6_metadata_identifies_each_guest_by_its_link_local_address(lab, vm_a, vm_b):
    assert curl_family(lab, "srv-a", "ipv6") == (0, "vm-a|200")
    assert curl_family(lab, "srv-b", "ipv6") == (0, "vm-b|200")
    uuid = curl_family(lab, "srv-b", "ipv6", "/openstack/latest/meta_data.json")[1]
    assert json.loads(uuid.rpartition("|")[0])["uuid"] == "srv-b"


# What a failed request over either family looks like, per shape.
FAILED_AS = {"refused": (7, "|000"), "timeout": (28, "|000"), "http_404": (0, "|404"),
             "http_503": (0, "|503"), "wrong_instance": (0, "|200")}


@pytest.fixture(scope="module")
def family_guests(lab, key):
    for i, shape in enumerate(SHAPES):
        lab.create_guest(f"srv-6{shape}", f"vm-6{shape}", "vm-6" + shape.replace("_", "-"),
                         f"198.51.100.{194 + i}", public_key(key))
    return {shape: f"srv-6{shape}" for shape in SHAPES}


@pytest.mark.parametrize("broken", ["ipv6", "ipv4"])
def test_each_metadata_fault_shape_can_break_one_family_alone(lab, family_guests, broken):
    """Every shape on its own guest, one family broken: that family fails in its
    shape, the other answers throughout, the windows carry the family."""
    kept = "ipv4" if broken == "ipv6" else "ipv6"
    before = {s: len(lab.injected_windows(server)) for s, server in family_guests.items()}

    def sample(shape: str) -> tuple:
        server = family_guests[shape]
        return curl_family(lab, server, broken), curl_family(lab, server, kept)

    async def scenario():
        outages = [asyncio.ensure_future(lab.break_metadata(server, shape, 2.0,
                                                            families=broken))
                   for shape, server in family_guests.items()]
        await asyncio.sleep(0.3)
        during = await asyncio.gather(*(asyncio.to_thread(sample, shape)
                                        for shape in family_guests))
        return dict(zip(family_guests, during)), await asyncio.gather(*outages)

    during, windows = asyncio.run(scenario())
    for shape, server in family_guests.items():
        (code, answer), kept_answer = during[shape]
        own = "vm-6" + shape.replace("_", "-")
        assert kept_answer == (0, f"{own}|200"), (shape, kept_answer)
        expected_code, ending = FAILED_AS[shape]
        assert code == expected_code and answer.endswith(ending), (shape, code, answer)
        if shape == "wrong_instance":
            assert not answer.startswith(own)
        assert curl_family(lab, server, broken) == (0, f"{own}|200")
    for (shape, server), window in zip(family_guests.items(), windows):
        assert [window] == lab.injected_windows(server)[before[shape]:]
        assert (window.kind, window.shape, window.families) == ("metadata", shape, broken)
        assert window.hits(broken) and not window.hits(kept)
        assert 2.0 <= window.duration < 2.5, window


def test_fault_profile_takes_the_families_an_outage_hits():
    assert FaultProfile().metadata_families == "ipv4,ipv6"
    profile = FaultProfile.from_metadata(FaultProfile(), {"lab_metadata_families": "ipv6, ipv4"})
    assert profile.metadata_families == "ipv4,ipv6"
    assert FaultProfile.from_metadata(FaultProfile(), {
        "lab_metadata_families": "ipv6"}).to_metadata()["lab_metadata_families"] == "ipv6"
    with pytest.raises(ValueError, match="^lab_metadata_families: 'ipv5' is not"):
        FaultProfile.from_metadata(FaultProfile(), {"lab_metadata_families": "ipv5"})
