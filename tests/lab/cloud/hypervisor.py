"""The cloud lab's hypervisor: namespace guests for the Nova virt driver.

    python -m tests.lab.cloud.hypervisor --state-dir DIR --ports FILE

One process per lab (started and stopped by PID with the other daemons), serving an
HTTP API on <state>/hypervisor.sock to the two nova-computes' virt driver (virt.py).
A guest is what the main lab's guests are (tests/lab/guest_os.py: its own network,
UTS, mount and PID namespaces, a real sshd with the instance's key), but its eth0 is
a veth whose other end is plugged into its compute host's OVS bridge with
external_ids:iface-id = the Neutron port, as os-vif plugs a VM's tap: OVN carries
its traffic. A live migration moves that end to the destination host's bridge and
announces the guest with a RARP, as QEMU does on resume.

One more port joins the tenant network, on config.RALLY_PORT_HOST's bridge: the Rally
host's, a Neutron port of its own (made by the lab, port security off) whose veth
end stays in the root namespace: Rally reaches the guests' fixed addresses through
OVN. Guests reach metadata the way Neutron's DHCP tells a cloud's guests: a route to
169.254.169.254 through the network's metadata port (OVN's localport, served by
neutron-ovn-metadata-agent on each host: metadata_path.py). The fault profile's
metadata outages are injected where the server's `lab_metadata_fault_site` says:
`guest` (the default: `refused` is the address on its lo, `timeout` its route into a
blackhole; an outage there follows the guest through any number of migrations) or
`path`, the real metadata path of the migration's destination (path_faults.py:
`refused`, `timeout`, `http_503` from the switchover; `http_404` from Nova's
post-live-migration there), with the ground truth counted where it acts;
`lab_faults_into: HOST` keeps the profile to migrations into HOST.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import http.client
import json
import logging
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.lab import guest_process, metadata_switch, netns
from tests.lab.addressing import METADATA_IP
from tests.lab.cloud import config
from tests.lab.cloud.path_faults import (
    DECOY_SHAPES,
    IDENTITY_SHAPES,
    PATH_SHAPES,
    FaultTarget,
    NeutronPorts,
    NovaCut,
    NovaRequests,
    PathFaults,
)
from tests.lab.faults import (
    ALL_FAMILIES,
    FAULTS_INTO_KEY,
    SERVER_KEYS,
    BootCounts,
    FaultProfile,
    GroundTruth,
    InjectedWindow,
    boottime,
    cycle_variant,
    wants_no_curl,
    with_variant,
)
from tests.lab.guest_os import GuestFiles, GuestImage
from tests.lab.ledger import ResourceLedger

LOG = logging.getLogger("rmdc.hypervisor")
_RARP = 0x8035
SSHD_TIMEOUT = 30.0
_NEXT_NIC = "eth0next"  # the destination's NIC in the guest until the switchover
# A guest whose port carries another device_id is not deleted before it has its own
# back (Nova would not find the port): how long its deletion waits at most.
IDENTITY_WAIT = 60.0
# A migration asked to hang (lab_migration_result: hang) lasts until its server is
# deleted, Rally's cleanup once the plugin gave up waiting; at most this long.
HANG_LIMIT = 300.0
GUEST_SIDE_SHAPES = ("refused", "timeout")
# Server metadata: where a metadata outage is injected, and what each place can do.
FAULT_SITE_KEY = "lab_metadata_fault_site"
FAULT_SITES = {"guest": GUEST_SIDE_SHAPES, "path": PATH_SHAPES}
# A server without lab_* metadata migrates as real code makes it: no wait, no extra
# blackout, no outage beyond what moving its NIC and OVN's reaction cause.
NO_FAULTS = FaultProfile(duration=0.0, network_blackout=0.0)


@dataclasses.dataclass(frozen=True)
class LabPort:
    """A Neutron port the lab plugs in itself (the Rally host's)."""

    port_id: str
    mac: str
    ip: str


@dataclasses.dataclass
class CloudGuest:
    uuid: str
    index: int
    host: str
    port: LabPort
    netns: str
    hostname: str = ""
    no_curl: bool = False
    # Booted after the first lab_faulty_servers with its metadata: migrates healthily.
    without_faults: bool = False
    variant: str | None = None  # its turn in the metadata's lab_profile_cycle
    files: GuestFiles | None = None
    init: subprocess.Popen | None = None
    init_entry: dict | None = None
    sshd_pid: int | None = None  # the guest's PID 1, a child of `init`
    prepared: str | None = None  # the host a migration plugged a second NIC on

    @property
    def tap(self) -> str:
        return tap_name(self.port.port_id)


@dataclasses.dataclass
class MetadataOutage:
    """A guest's running metadata outage: until when (time.monotonic()), its
    ground-truth window, its shape and site, and the hosts whose real path it broke."""

    until: float
    window: InjectedWindow
    shape: str
    site: str
    hosts: list[str] = dataclasses.field(default_factory=list)
    ended_by_deletion: bool = False
    families: str = ALL_FAMILIES


def fault_site(meta: dict[str, str]) -> tuple[str, dict[str, str]]:
    """The server metadata's fault site, and the rest of its metadata (FaultProfile's
    keys: what shapes the guest at boot is read by create()); ValueError naming the
    key for an unknown site."""
    rest = {key: value for key, value in meta.items() if key not in SERVER_KEYS}
    site = str(rest.pop(FAULT_SITE_KEY, "guest")).strip()
    if site not in FAULT_SITES:
        raise ValueError(f"{FAULT_SITE_KEY}: {site!r} is not one of "
                         f"{', '.join(FAULT_SITES)}")
    return site, rest


def site_and_profile(meta: dict[str, str], variant: str | None
                     ) -> tuple[str, FaultProfile]:
    """The fault site and profile a server's metadata asks for, as its `variant` of
    the profile cycle; ValueError naming the key that is wrong."""
    site, rest = fault_site(meta)
    return site, with_variant(FaultProfile.from_metadata(NO_FAULTS, rest), variant)


def wants_decoy(meta: dict[str, str], variant: str | None = None) -> bool:
    """Whether a server's metadata (as its `variant` of the profile) asks for a fault
    that needs a decoy server (decoys.py); bad metadata is reported by the
    migration that reads it."""
    try:
        site, profile = site_and_profile(meta, variant)
    except ValueError:
        return False
    return site == "path" and profile.metadata_shape in DECOY_SHAPES


def tap_name(port_id: str) -> str:
    """The name Nova's libvirt driver gives a port's tap."""
    return ("tap" + port_id)[:14]


def host_netns(state: Path, host: str) -> str:
    return config.netns_name(state, config.COMPUTE_HOSTS.index(host) + 1)


def rarp_frame(mac: str) -> bytes:
    """A RARP request from `mac` to broadcast: what QEMU sends for each NIC on resume
    (OVN's activation-strategy=rarp waits for it on the destination chassis)."""
    hw = bytes.fromhex(mac.replace(":", ""))
    header = b"\xff" * 6 + hw + struct.pack("!H", _RARP)
    body = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 3) + hw + b"\0" * 4 + hw + b"\0" * 4
    return header + body.ljust(46, b"\0")


class Hypervisor:
    """Guests of both compute hosts and the Rally host's port."""

    def __init__(self, state: Path, network: dict[str, Any]) -> None:
        self.state = state
        self.tag = config.netns_name(state, 0).removesuffix("-h0").removeprefix(
            config.NETNS_PREFIX)
        self.prefix_len = network["prefix_len"]
        # The tenant network's MTU (Geneve's header off the underlay's), which a
        # cloud's DHCP gives its guests: bigger packets would be dropped between
        # the hosts.
        self.mtu = network["mtu"]
        self.rally_port = LabPort(**network["rally_port"])
        self.metadata_gateway = network["metadata_gateway"]
        self.nova_cut = NovaCut()
        self.nova_requests = NovaRequests()
        ports = None
        if network.get("neutron_url"):
            from tests.lab.cloud.openstack import admin_token
            auth_url = network["auth_url"]
            ports = NeutronPorts(network["neutron_url"], lambda: admin_token(auth_url)[0])
        self.decoys = None
        if network.get("nova_url"):
            from tests.lab.cloud.decoys import Decoys
            self.decoys = Decoys(network["auth_url"], network["nova_url"],
                                 network["decoy"]["image"], network["decoy"]["flavor"],
                                 network["network_id"])
        self.path_faults = PathFaults(state, network["network_id"], self.nova_cut,
                                      ports, self.nova_requests,
                                      self.decoys.get if self.decoys else None)
        self.gateway = network["gateway"]
        self.public = network["public"]
        self.work = state / "hypervisor"
        self.image = GuestImage(self.work)
        self.ground_truth = GroundTruth(self.work / "injected.jsonl")
        self.boot_counts = BootCounts()
        self.ledger = ResourceLedger(self.work / "resources.json", f"rmdc{self.tag}")
        self.rally_link = f"rmdc{self.tag}r0"
        self.external_link = f"rmdc{self.tag}x0"
        self._lock = threading.Lock()
        self._guests: dict[str, CloudGuest] = {}
        self._next_index = 1
        self._outages: dict[str, MetadataOutage] = {}
        # Identity faults asked for at the switchover, applied at post-live-migration.
        self._after_migration: dict[str, FaultProfile] = {}
        # Guests whose port has another device_id until its fault is mended.
        self._identity_changed: set[str] = set()

    # --- the lab ports ----------------------------------------------------------------
    def setup(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        self.image.prepare()
        # The Rally host's port: a veth from the root namespace.
        self._plug_veth(self.rally_link, self.rally_port, config.RALLY_PORT_HOST,
                        inner_netns=None)
        netns.ip("addr", "add", f"{self.rally_port.ip}/{self.prefix_len}",
                 "dev", self.rally_link)
        self._wire_external_network()

    def _wire_external_network(self) -> None:
        """The Rally host on the external network: a veth from the root namespace
        into the gateway chassis' br-ex (the provider bridge of physnet "public"),
        holding the subnet's gateway address, so floating IPs are reached through
        OVN's gateway router as on a cloud. The veth goes with the chassis'
        namespace."""
        peer = f"rmdc{self.tag}x1"
        self.ledger.add({"kind": "link", "name": self.external_link})
        netns.ip("link", "add", self.external_link, "type", "veth", "peer", "name", peer)
        target = host_netns(self.state, config.GATEWAY_HOST)
        netns.ip("link", "set", peer, "netns", target)
        for link, where in ((self.external_link, None), (peer, target)):
            _no_tx_checksum(link, where)
            netns.ip("link", "set", link, "up", netns=where)
        _vsctl(self.state, config.GATEWAY_HOST, "--may-exist", "add-port", "br-ex", peer)
        netns.ip("addr", "add", f"{self.public['address']}/{self.public['prefix_len']}",
                 "dev", self.external_link)

    def _make_netns(self, name: str) -> None:
        self.ledger.add({"kind": "netns", "name": name})
        netns.ip("netns", "add", name)

    def _plug_veth(self, outer_name: str, port: LabPort, host: str, *,
                   inner_netns: str | None, inner_name: str | None = None) -> None:
        """A veth pair: `outer_name`'s peer goes into `host`'s namespace and onto its
        br-int as `port`; `outer_name` stays in the root namespace, or is renamed
        `inner_name` inside `inner_netns`."""
        peer = tap_name(port.port_id)
        self.ledger.add({"kind": "link", "name": outer_name})
        netns.ip("link", "add", outer_name, "address", port.mac, "mtu", str(self.mtu),
                 "type", "veth", "peer", "name", peer)
        if inner_netns is not None:
            netns.ip("link", "set", outer_name, "netns", inner_netns, "name",
                     inner_name or outer_name)
            self.ledger.discard({"kind": "link", "name": outer_name})
        inner = inner_name or outer_name
        _no_tx_checksum(inner, inner_netns)
        netns.ip("link", "set", inner, "up", netns=inner_netns)
        self._attach(peer, port, host, vm_uuid=None)

    def _attach(self, peer: str, port: LabPort, host: str, vm_uuid: str | None) -> None:
        """Move `peer` from the root namespace into `host`'s and onto its br-int,
        bound to `port`."""
        target = host_netns(self.state, host)
        netns.ip("link", "set", peer, "netns", target)
        # The userspace datapath does not fill in checksums a veth left to offload.
        _no_tx_checksum(peer, target)
        netns.ip("link", "set", peer, "up", netns=target)
        ids = [f"external_ids:iface-id={port.port_id}",
               f"external_ids:attached-mac={port.mac}", "external_ids:iface-status=active"]
        if vm_uuid:
            ids.append(f"external_ids:vm-uuid={vm_uuid}")
        _vsctl(self.state, host, "--may-exist", "add-port", "br-int", peer, "--",
               "set", "Interface", peer, *ids)

    # --- guests -------------------------------------------------------------------------
    def create(self, request: dict[str, Any]) -> CloudGuest:
        uuid, host = request["uuid"], request["host"]
        port = LabPort(**request["port"])
        meta = request.get("meta") or {}
        try:
            without_faults = self.boot_counts.beyond_faulty_servers(meta)
            variant = cycle_variant(meta, self.boot_counts)
        except ValueError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        with self._lock:
            if uuid in self._guests:
                raise web.HTTPConflict(text=f"guest {uuid} exists")
            index = self._next_index
            self._next_index += 1
            guest = CloudGuest(uuid=uuid, index=index, host=host, port=port,
                               netns=f"{config.NETNS_PREFIX}{self.tag}-g{index}",
                               hostname=request["hostname"], no_curl=wants_no_curl(meta),
                               without_faults=without_faults, variant=variant)
            self._guests[uuid] = guest
        if self.decoys is not None and not without_faults and wants_decoy(meta, variant):
            self.decoys.prepare(uuid)  # ACTIVE by the time the migration needs it
        guest.files = self.image.write_guest(uuid, request.get("public_key"),
                                             no_curl=guest.no_curl)
        self._make_netns(guest.netns)
        # A VM keeps its NIC through a live migration; the lab swaps eth0 for a new
        # veth, whose link-local address would stay tentative (DAD) for a second or
        # two: the guest's IPv6 requests then fail with "Cannot assign requested
        # address", an outage no cloud has. Without DAD, the new eth0's address
        # (the same, from the same MAC) is usable at once, as the VM's old one was.
        subprocess.run(["ip", "netns", "exec", guest.netns, "sysctl", "-qw",
                        "net.ipv6.conf.all.accept_dad=0",
                        "net.ipv6.conf.default.accept_dad=0"], check=True, timeout=30)
        self._plug_guest_link(guest, host, "eth0")
        self._configure_eth0(guest)
        # Neutron hands a deleted server's address out again: the Rally host may
        # still know it by that server's MAC, and would wait out its neighbour
        # entry (SSH took 24-28 s to answer then, instead of 0.2 s).
        netns.ip("neigh", "del", guest.port.ip, "dev", self.rally_link, check=False)
        self._boot(guest)
        return guest

    def _boot(self, guest: CloudGuest) -> None:
        """Start the guest's init (its sshd, PID 1 of its own namespaces: /tmp and /run
        fresh) and wait for sshd to listen."""
        guest.init, guest.init_entry, guest.sshd_pid = guest_process.start_init(
            self.image.init_argv(guest.netns, guest.hostname, guest.files),
            guest.files.console_log, self.ledger, guest.uuid, timeout=SSHD_TIMEOUT)
        if guest.sshd_pid is None:
            raise web.HTTPInternalServerError(text=f"guest {guest.uuid}: init exited")
        self._wait_for_sshd(guest)

    def _stop_init(self, guest: CloudGuest) -> None:
        """Kill the guest's init: unshare's --kill-child takes its PID 1 along, and the
        kernel every other process of the guest's PID namespace."""
        if not guest_process.stop_init(guest.init, (guest.init_entry,), self.ledger):
            raise subprocess.TimeoutExpired(f"guest {guest.uuid} init", 5)
        guest.init = guest.init_entry = guest.sshd_pid = None

    def _guest_event(self, guest: CloudGuest, event: str) -> None:
        """What the fault profile does to the guest at the switchover, as the main lab
        does (tests.lab.migration), recorded as a ground-truth window."""
        window = self.ground_truth.open("guest", event, guest.uuid)
        try:
            if event == "reboot":
                self._stop_init(guest)
                self._boot(guest)
                window.detail = "rebooted"
            elif event == "drop_ssh":
                killed = guest_process.drop_ssh_sessions(guest.sshd_pid)
                window.detail = f"killed sshd sessions {killed}"
            elif event == "kill_probe":
                killed = guest_process.kill_probes(
                    guest.sshd_pid, str(self.image.bin_dir(guest.no_curl)),
                    guest.files.home)
                window.detail = f"killed probe PIDs {killed}"
            else:
                raise web.HTTPBadRequest(text=f"unknown guest event {event!r}")
        finally:
            self.ground_truth.close(window)

    def _plug_guest_link(self, guest: CloudGuest, host: str, inner: str) -> None:
        """A veth pair: `inner` in the guest (the port's MAC), its peer the port's tap
        on `host`'s br-int: a VM's NIC as QEMU and os-vif give it."""
        netns.ip("link", "add", guest.tap, "mtu", str(self.mtu), "type", "veth", "peer",
                 "name", inner, "address", guest.port.mac, "netns", guest.netns)
        _no_tx_checksum(inner, guest.netns)
        self._attach(guest.tap, guest.port, host, vm_uuid=guest.uuid)

    def _configure_eth0(self, guest: CloudGuest) -> None:
        _ip_batch(guest.netns, [
            f"addr add {guest.port.ip}/{self.prefix_len} dev eth0", "link set eth0 up",
            "link set lo up",
            f"route add {METADATA_IP}/32 via {self.metadata_gateway} src {guest.port.ip}",
            # What a cloud's DHCP gives: the router, the way back to floating IPs' peers.
            f"route add default via {self.gateway}"])

    def _wait_for_sshd(self, guest: CloudGuest) -> None:
        """Until sshd listens on port 22 inside the guest: its own TCP table, so that
        no security group of the user's stands in the way."""
        deadline = time.monotonic() + SSHD_TIMEOUT
        while time.monotonic() < deadline:
            if guest.init is None or guest.init.poll() is not None:
                raise web.HTTPInternalServerError(text=f"guest {guest.uuid}: sshd exited")
            out = subprocess.run(["ip", "netns", "exec", guest.netns, "cat",
                                  "/proc/net/tcp"], capture_output=True, text=True,
                                 check=False).stdout
            if any(f.split()[1].endswith(":0016") and f.split()[3] == "0A"
                   for f in out.splitlines()[1:] if len(f.split()) > 3):
                return
            time.sleep(0.05)
        raise web.HTTPGatewayTimeout(text=f"guest {guest.uuid}: no sshd after "
                                          f"{SSHD_TIMEOUT} s")

    def delete(self, uuid: str, host: str | None) -> bool:
        with self._lock:
            guest = self._guests.get(uuid)
            if guest is None or (host is not None and guest.host != host):
                return False
            outage = self._outages.get(uuid)
            if outage is not None:  # a fault ends with its server: its timer mends it
                outage.until, outage.ended_by_deletion = 0.0, True
        self._wait_for_own_identity(uuid)
        with self._lock:
            if self._guests.get(uuid) is not guest:
                return False
            del self._guests[uuid]
            self._after_migration.pop(uuid, None)
        if self.decoys is not None:
            self.decoys.release(uuid)  # the guest's port has its own id back
        self._stop_init(guest)
        for host in {guest.host, guest.prepared} - {None}:
            _vsctl(self.state, host, "--if-exists", "del-port", "br-int", guest.tap)
        netns.delete_netns(guest.netns)
        self.ledger.discard({"kind": "netns", "name": guest.netns})
        return True

    def guest(self, uuid: str) -> CloudGuest:
        with self._lock:
            guest = self._guests.get(uuid)
        if guest is None:
            raise web.HTTPNotFound(text=f"no guest {uuid}")
        return guest

    def listing(self) -> list[dict[str, str]]:
        with self._lock:
            return [{"uuid": g.uuid, "host": g.host, "netns": g.netns, "ip": g.port.ip}
                    for g in self._guests.values()]

    # --- live migration -------------------------------------------------------------------
    async def migrate(self, uuid: str, dest: str, meta: dict[str, str]) -> None:
        """Nova's switchover for one guest, with the fault profile in its metadata:
        wait `duration`; the metadata outage starts; the guest's link is down for
        `network_blackout`, moves to `dest`'s bridge and sends its RARP."""
        guest = self.guest(uuid)
        meta_into = meta.get(FAULTS_INTO_KEY)
        try:
            site, profile = site_and_profile(meta, guest.variant)
        except ValueError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        if guest.without_faults or meta_into not in (None, dest):
            profile = NO_FAULTS
        if profile.metadata_outage > 0 and profile.metadata_shape not in FAULT_SITES[site]:
            raise web.HTTPNotImplemented(
                text=f"metadata_shape {profile.metadata_shape}: the cloud lab injects "
                     f"only {', '.join(FAULT_SITES[site])} at {FAULT_SITE_KEY} {site}")
        if site == "path" and profile.metadata_families != ALL_FAMILIES:
            raise web.HTTPNotImplemented(
                text=f"metadata_families {profile.metadata_families}: a fault in the "
                     f"real path hits both families (one haproxy, agent and Nova serve "
                     f"both)")
        await asyncio.sleep(profile.duration)
        if profile.result == "hang":
            await self._hang(guest)
        if profile.result == "error":
            raise web.HTTPConflict(text=f"lab: migration of {uuid} failed (profile)")
        loop = asyncio.get_running_loop()
        if profile.guest_event != "none":
            await loop.run_in_executor(None, self._guest_event, guest,
                                       profile.guest_event)
        if profile.metadata_outage > 0 and profile.metadata_shape in IDENTITY_SHAPES:
            with self._lock:
                self._after_migration[uuid] = profile
        elif profile.metadata_outage > 0:
            await loop.run_in_executor(None, self._hold_outage, guest, profile, site,
                                       dest)
        source = host_netns(self.state, guest.host)
        since = boottime()
        netns.ip("link", "set", guest.tap, "down", netns=source)
        # Opened once the link is down: the cut certainly lasts the whole window
        # (on a loaded machine `ip` alone may take a tenth of a second).
        window = self.ground_truth.open("network", "blackout", uuid,
                                        applying_since=since)
        await asyncio.sleep(profile.network_blackout)
        await loop.run_in_executor(None, self._switch_over, guest, dest, window)
        self.ground_truth.close(window)  # if the switchover failed before its RARP

    async def _hang(self, guest: CloudGuest) -> None:
        """A migration that does not finish: until its server is deleted (410: Nova's
        live-migration thread ends with an error), HANG_LIMIT s at most (409: it
        failed, Nova rolls it back)."""
        deadline = time.monotonic() + HANG_LIMIT
        while time.monotonic() < deadline:
            with self._lock:
                if self._guests.get(guest.uuid) is not guest:
                    raise web.HTTPGone(text=f"guest {guest.uuid} was deleted while "
                                            "its migration hung")
            await asyncio.sleep(0.25)
        raise web.HTTPConflict(text=f"lab: migration of {guest.uuid} hung for "
                                    f"{HANG_LIMIT:g} s (profile)")

    def migrated(self, uuid: str, dest: str) -> bool:
        """Nova's post-live-migration on `dest`, after its last port update: the
        identity fault the migration asked for starts (True), if any."""
        guest = self.guest(uuid)
        with self._lock:
            profile = self._after_migration.pop(uuid, None)
        if profile is None:
            return False
        if profile.metadata_shape in DECOY_SHAPES:
            if self.decoys is None:
                raise web.HTTPInternalServerError(
                    text=f"{profile.metadata_shape} for {uuid}: this hypervisor "
                         "has no decoys (no Nova URL in its network)")
            try:  # before the window's clock starts: it was booted with the guest
                self.decoys.get(uuid)
            except RuntimeError as exc:
                raise web.HTTPInternalServerError(
                    text=f"{profile.metadata_shape} for {uuid}: {exc}") from None
        self._hold_outage(guest, profile, "path", dest)
        return True

    def prepare(self, uuid: str, dest: str) -> None:
        """The destination's NIC, plugged before the switchover as Nova's
        pre_live_migration and the destination's QEMU do: OVN then binds the port to
        both hosts, the destination's side blocked until the guest's RARP."""
        guest = self.guest(uuid)
        with self._lock:
            if guest.prepared is not None:
                raise web.HTTPConflict(text=f"guest {uuid} is already migrating")
            guest.prepared = dest
        try:
            self._plug_guest_link(guest, dest, _NEXT_NIC)
        except BaseException:
            guest.prepared = None
            raise

    def unprepare(self, uuid: str, dest: str) -> bool:
        """A rolled-back migration: the destination's NIC goes."""
        guest = self.guest(uuid)
        if guest.prepared != dest:
            return False
        netns.ip("link", "del", _NEXT_NIC, netns=guest.netns, check=False)
        _vsctl(self.state, dest, "--if-exists", "del-port", "br-int", guest.tap)
        guest.prepared = None
        return True

    def _switch_over(self, guest: CloudGuest, dest: str,
                     cut: InjectedWindow | None = None) -> None:
        """The source's NIC goes, the destination's becomes eth0 and the guest
        announces itself from there (a RARP, as QEMU does on resume), which ends the
        `cut` (its window)."""
        if guest.prepared != dest:
            self.prepare(guest.uuid, dest)
        netns.ip("link", "del", "eth0", netns=guest.netns)
        _vsctl(self.state, guest.host, "--if-exists", "del-port", "br-int", guest.tap)
        netns.ip("link", "set", _NEXT_NIC, "name", "eth0", netns=guest.netns)
        self._configure_eth0(guest)
        with self._lock:
            guest.host, guest.prepared = dest, None
            outage = self._outages.get(guest.uuid)
        if outage is not None and outage.site == "guest" and outage.shape == "timeout":
            # That fault lives on eth0's route and neighbour: the new eth0 gets it.
            self._switch_metadata(guest, "timeout", on=True, families=outage.families)
        frame = rarp_frame(guest.port.mac)

        def announce() -> None:
            with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as raw:
                raw.bind(("eth0", 0))
                raw.send(frame)
        since = boottime()
        netns.run_in_netns(guest.netns, announce)
        if cut is not None:
            # The RARP ends the cut: closed here, not once the event loop has taken
            # this thread's result back (under load that came 1 s later, run 31).
            self.ground_truth.close(cut, removing_since=since)

    def _hold_outage(self, guest: CloudGuest, profile: FaultProfile, site: str,
                     dest: str) -> None:
        """Start the metadata outage, or extend the one still running (the guest sees
        one outage; in the real path, `dest`'s is broken too); a timer ends it."""
        shape = profile.metadata_shape
        with self._lock:
            running = self._outages.get(guest.uuid)
            if running is not None:
                if running.site != site or running.shape != shape:
                    raise web.HTTPConflict(
                        text=f"guest {guest.uuid}: a {running.site} {running.shape} "
                             f"outage still runs; this migration asks {site} {shape}")
                running.until = max(running.until,
                                    time.monotonic() + profile.metadata_outage)
                running.window.detail += "; extended by a later migration"
                if site != "path" or dest in running.hosts:
                    return
        # Breaking a real path may wait for the agent: not under the lock.
        if running is not None:
            self._break_path(guest, shape, dest)
            with self._lock:
                if self._outages.get(guest.uuid) is running:
                    running.hosts.append(dest)
                    return
            # It ended meanwhile: so does this host's share.
            self.path_faults.mend(shape, self._target(guest, dest))
            return
        since = boottime()
        families = profile.metadata_families   # both, at the path (migrate checks)
        if site == "path":
            self._break_path(guest, shape, dest)
        else:
            self._switch_metadata(guest, shape, on=True, families=families)
        window = self.ground_truth.open("metadata", shape, guest.uuid, families,
                                        applying_since=since)
        window.detail = f"{site}: {dest}" if site == "path" else site
        with self._lock:
            # From the window's opening: a fault held until then lasts, as recorded,
            # at least as long as asked.
            self._outages[guest.uuid] = MetadataOutage(
                time.monotonic() + profile.metadata_outage, window, shape, site,
                [dest] if site == "path" else [], families=families)
        threading.Thread(target=self._end_outage, args=(guest,), daemon=True).start()

    @staticmethod
    def _target(guest: CloudGuest, host: str) -> FaultTarget:
        return FaultTarget(host, guest.port.ip, guest.index, guest.port.port_id,
                           guest.uuid, guest.port.mac)

    def _break_path(self, guest: CloudGuest, shape: str, host: str) -> None:
        if shape in IDENTITY_SHAPES:
            with self._lock:
                self._identity_changed.add(guest.uuid)
        try:
            self.path_faults.apply(shape, self._target(guest, host))
        except Exception as exc:  # noqa: BLE001 - the driver's error names it
            with self._lock:
                self._identity_changed.discard(guest.uuid)
            raise web.HTTPInternalServerError(
                text=f"{shape} in {host}'s metadata path: {exc}") from None

    def _wait_for_own_identity(self, uuid: str) -> None:
        """Until the guest's port has its device_id back (up to IDENTITY_WAIT s):
        Nova releases a deleted server's ports by that id."""
        deadline = time.monotonic() + IDENTITY_WAIT
        while time.monotonic() < deadline:
            with self._lock:
                if uuid not in self._identity_changed:
                    return
            time.sleep(0.1)

    def _end_outage(self, guest: CloudGuest) -> None:
        while True:
            with self._lock:
                outage = self._outages[guest.uuid]
                remaining = outage.until - time.monotonic()
                if remaining <= 0:
                    del self._outages[guest.uuid]
                    break
            time.sleep(min(remaining, 0.25))
        window, since = outage.window, boottime()
        if outage.ended_by_deletion:
            window.detail += "; ended with its server's deletion"
        if outage.site == "guest":
            try:
                self._switch_metadata(guest, outage.shape, on=False,
                                      families=outage.families)
            except netns.IpError:
                if not outage.ended_by_deletion:
                    raise  # the guest's namespace may be gone already otherwise
        for host in outage.hosts:
            try:
                acted = self.path_faults.mend(outage.shape, self._target(guest, host))
            except Exception as exc:  # noqa: BLE001 - recorded with the window
                LOG.exception("mending %s in %s's metadata path", outage.shape, host)
                window.detail += f"; not mended in {host}: {exc}"
                continue
            window.acted_count += acted.count
            if acted.first is not None:
                window.acted_start_boottime = min(
                    acted.first, window.acted_start_boottime or acted.first)
                window.acted_end_boottime = max(acted.last,
                                                window.acted_end_boottime or acted.last)
        with self._lock:
            self._identity_changed.discard(guest.uuid)  # mended, or as far as it goes
        self.ground_truth.close(window, removing_since=since)

    def _switch_metadata(self, guest: CloudGuest, shape: str, on: bool,
                         families: str = ALL_FAMILIES) -> None:
        """Break or mend the guest's metadata in `shape` over `families`, where the
        main lab does."""
        for family in metadata_switch.in_switch_order(families.split(",")):
            if family == "ipv6":
                metadata_switch.switch_ipv6(guest.netns, shape, on, check=on)
            else:
                self._switch_ipv4_metadata(guest, shape, on)

    def _switch_ipv4_metadata(self, guest: CloudGuest, shape: str, on: bool) -> None:
        if shape == "refused":  # the guest's own lo answers with a reset
            netns.ip("addr", "add" if on else "del", f"{METADATA_IP}/32", "dev", "lo",
                     netns=guest.netns, check=on)
        elif shape == "timeout" and on:  # sent to a MAC nobody has: no answer
            _ip_batch(guest.netns, [
                f"route replace {METADATA_IP}/32 dev eth0 src {guest.port.ip}",
                f"neigh replace {METADATA_IP} lladdr {metadata_switch.BLACKHOLE_MAC} "
                "dev eth0 "
                "nud permanent"])
        elif shape == "timeout":
            _ip_batch(guest.netns, [
                f"route replace {METADATA_IP}/32 via {self.metadata_gateway} "
                f"src {guest.port.ip}", f"neigh flush {METADATA_IP} dev eth0"])
        else:
            raise ValueError(f"unknown metadata fault shape {shape!r}")

    # --- teardown ----------------------------------------------------------------------------
    def teardown(self) -> list[str]:
        if self.decoys is not None:
            self.decoys.close()
        self.path_faults.abandon_all()
        for uuid in list(self._guests):
            self.delete(uuid, None)
        return self.ledger.release_all()


def _no_tx_checksum(link: str, in_netns: str | None) -> None:
    argv = ["ethtool", "-K", link, "tx", "off"]
    if in_netns:
        argv = ["ip", "netns", "exec", in_netns, *argv]
    subprocess.run(argv, capture_output=True, check=True, timeout=30)


def _vsctl(state: Path, host: str, *args: str) -> None:
    db = state / "chassis" / host / "db.sock"
    proc = subprocess.run(["ovs-vsctl", f"--db=unix:{db}", "--timeout=20", *args],
                          capture_output=True, text=True, timeout=60, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"ovs-vsctl {' '.join(args)}: {proc.stderr.strip()}")


def _ip_batch(netns_name: str, commands: list[str]) -> None:
    proc = subprocess.run(["ip", "-n", netns_name, "-batch", "-"],
                          input="\n".join(commands) + "\n", capture_output=True,
                          text=True, timeout=30, check=False)
    if proc.returncode != 0:
        raise netns.IpError(["ip", "-n", netns_name, *commands], proc.stderr)


def ask(state: Path, path: str) -> Any:
    """GET one of the hypervisor's answers (the lab's tests and tools ask it what
    the virt driver asks it to do: /guests, /injected)."""
    conn = http.client.HTTPConnection("localhost", timeout=30)
    conn.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.sock.settimeout(30)
    conn.sock.connect(str(state / "hypervisor.sock"))
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    if response.status != 200:
        raise RuntimeError(f"hypervisor GET {path}: HTTP {response.status} {body[:200]!r}")
    return json.loads(body)


# --- the HTTP API (virt.py is its client) ---------------------------------------------------
def make_app(hv: Hypervisor) -> web.Application:
    async def in_thread(work, *args):
        return await asyncio.get_running_loop().run_in_executor(None, work, *args)

    async def create(request: web.Request) -> web.Response:
        guest = await in_thread(hv.create, await request.json())
        return web.json_response({"uuid": guest.uuid, "netns": guest.netns,
                                  "host": guest.host})

    async def delete(request: web.Request) -> web.Response:
        removed = await in_thread(hv.delete, request.match_info["uuid"],
                                  request.query.get("host"))
        return web.json_response({"removed": removed})

    async def prepare(request: web.Request) -> web.Response:
        body = await request.json()
        await in_thread(hv.prepare, request.match_info["uuid"], body["dest"])
        return web.json_response({"prepared": body["dest"]})

    async def unprepare(request: web.Request) -> web.Response:
        body = await request.json()
        done = await in_thread(hv.unprepare, request.match_info["uuid"], body["dest"])
        return web.json_response({"removed": done})

    async def migrate(request: web.Request) -> web.Response:
        body = await request.json()
        await hv.migrate(request.match_info["uuid"], body["dest"], body.get("meta") or {})
        return web.json_response({"host": body["dest"]})

    async def migrated(request: web.Request) -> web.Response:
        body = await request.json()
        started = await in_thread(hv.migrated, request.match_info["uuid"], body["dest"])
        return web.json_response({"fault_started": started})

    async def console(request: web.Request) -> web.Response:
        guest = hv.guest(request.match_info["uuid"])
        text = (guest.files.console_log.read_text(errors="replace") if guest.files
                else "")
        return web.Response(text=text[-65536:])

    async def guests(request: web.Request) -> web.Response:
        return web.json_response(hv.listing())

    async def injected(request: web.Request) -> web.Response:
        return web.json_response([dataclasses.asdict(w) for w in
                                  hv.ground_truth.windows(request.query.get("server"))])

    app = web.Application()
    app.router.add_post("/guests", create)
    app.router.add_get("/guests", guests)
    app.router.add_delete("/guests/{uuid}", delete)
    app.router.add_post("/guests/{uuid}/prepare", prepare)
    app.router.add_post("/guests/{uuid}/unprepare", unprepare)
    app.router.add_post("/guests/{uuid}/migrate", migrate)
    app.router.add_post("/guests/{uuid}/migrated", migrated)
    app.router.add_get("/guests/{uuid}/console", console)
    app.router.add_get("/injected", injected)
    return app


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def request_head(reader: asyncio.StreamReader) -> bytes:
    """What comes first on a connection: an HTTP request's line and headers (or all
    that came, if the peer sent less or more than a head)."""
    try:
        return await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as short:
        return short.partial
    except asyncio.LimitOverrunError:
        return await reader.read(65536)


async def forward_loopback(state: Path, port: int, cut: NovaCut, requests: NovaRequests
                           ) -> list[asyncio.AbstractServer]:
    """127.0.0.1:`port` inside each compute host's namespace, forwarded to the
    root namespace's: the metadata agents run in the hosts' namespaces (beside their
    vswitchd) and reach Nova's metadata API on loopback as on a one-node cloud. A
    host `cut` has its connections closed unanswered: its agent cannot reach Nova.
    Each connection's first request is counted by its X-Instance-ID (the agents
    open one connection per request)."""
    def forwarder(host: str):
        async def forward(reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
            if not cut.admits(host):
                writer.close()
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(config.HOST, port)
            except OSError:
                writer.close()
                return
            try:
                head = await request_head(reader)
            except ConnectionError:
                head = b""
            requests.saw(head)
            up_writer.write(head)
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        return forward

    servers = []
    for host in config.COMPUTE_HOSTS:
        name = host_netns(state, host)
        netns.ip("link", "set", "lo", "up", netns=name)
        sock = netns.listening_socket_in_netns(name, config.HOST, port)
        servers.append(await asyncio.start_server(forwarder(host), sock=sock))
    return servers


async def serve(hv: Hypervisor, sock_path: Path, ready: Path,
                metadata_api_port: int) -> None:
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, hv.setup)
    forwarders = await forward_loopback(hv.state, metadata_api_port, hv.nova_cut,
                                         hv.nova_requests)
    runner = web.AppRunner(make_app(hv))
    await runner.setup()
    sock_path.unlink(missing_ok=True)
    await web.UnixSite(runner, str(sock_path)).start()
    ready.write_text("ready\n")
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        for server in forwarders:
            server.close()
        left = await loop.run_in_executor(None, hv.teardown)
        if left:
            LOG.error("could not remove: %s", ", ".join(left))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.lab.cloud.hypervisor")
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--metadata-api-port", type=int, required=True,
                        help="Nova's metadata API on 127.0.0.1, forwarded into the "
                             "compute hosts' namespaces")
    parser.add_argument("--network", type=Path, required=True,
                        help="JSON: prefix_len, mtu, metadata_gateway, rally_port "
                             "({port_id, mac, ip})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    hv = Hypervisor(args.state_dir.resolve(), json.loads(args.network.read_text()))
    ready = args.state_dir / "hypervisor" / "ready"
    ready.unlink(missing_ok=True)
    try:
        asyncio.run(serve(hv, args.state_dir / "hypervisor.sock", ready,
                          args.metadata_api_port))
    except BaseException:
        left = hv.teardown()
        if left:
            LOG.error("could not remove: %s", ", ".join(left))
        raise
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
