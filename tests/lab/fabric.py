"""The guest side of the lab: a bridge, a metadata service and guests made of
namespaces running sshd, plus live migrations that inject faults.

Topology (root namespace = the Rally host)::

    <prefix>br0  fixed and floating gateways (bridge; the only root-ns addresses;
                 see tests.lab.addressing for the layout and what they must not cover)
      |-- <prefix>m0 == eth0 in <prefix>-meta: 169.254.169.254/32, metadata HTTP on :80
      |-- <prefix>v<N> == eth0 in <prefix>-g<N>: fixed IP/24 (+ floating IPs/24), sshd

Threading: the synchronous methods block (subprocesses, waits) and are thread-safe;
an aiohttp server calls them through `asyncio.to_thread`. `migrate` is a coroutine
for any event loop: it sleeps on the caller's loop and runs `ip` in the fabric's own
worker threads.
The metadata service runs on the fabric's own event loop in a daemon thread.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import dataclasses
import inspect
import ipaddress
import logging
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Self

from rally_metadata_downtime.meter import DIRECTORY_PREFIX
from tests.lab import addressing, netns
from tests.lab import ledger as ledger_mod
from tests.lab.faults import FaultProfile, GroundTruth, InjectedWindow
from tests.lab.guest_os import GuestFiles, GuestImage
from tests.lab.metadata_service import HTTP_FAULTS, InstanceInfo, MetadataService

LOG = logging.getLogger(__name__)

METADATA_IP = "169.254.169.254"
# The main process of every metadata probe the plugin started (it runs from
# <workdir>/rmd-probe.XXXXXX with its pid file there); its in-flight requests finish.
_KILL_PROBES = (f'for f in /tmp/{DIRECTORY_PREFIX}*/probe.pid; do [ -s "$f" ] && '
                f'p=$(cat "$f") && kill -KILL "$p" && echo "$p"; done; true')
# A MAC no lab interface has: frames sent to it are flooded and dropped.
_BLACKHOLE_MAC = "02:00:00:00:00:01"
_PREFIX_RE = re.compile(r"^[a-z][a-z0-9]{0,9}$")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME_RE = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")
_SERVER_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_MAX_GUESTS = 9999
_POLL = 0.02


class FabricError(RuntimeError):
    """The lab could not do what was asked."""


class GuestNotFound(FabricError, LookupError):
    """No guest with this server id (never created, or deleted)."""


class MigrationError(FabricError):
    """The migration failed (profile result `error`) or was refused."""


class MigrationInProgress(MigrationError):
    """The server is already being migrated."""


@dataclasses.dataclass
class Guest:
    """One lab server: names, addresses, and its init process (read-only to callers)."""

    server_id: str
    index: int
    name: str
    hostname: str
    fixed_ip: str
    netns: str
    host_veth: str
    files: GuestFiles
    path: str
    fault_profile: FaultProfile | None = None
    floating_ips: list[str] = dataclasses.field(default_factory=list)
    init: subprocess.Popen | None = dataclasses.field(default=None, repr=False)
    init_entry: dict | None = dataclasses.field(default=None, repr=False)
    sshd_entry: dict | None = dataclasses.field(default=None, repr=False)

    @property
    def sshd_pid(self) -> int | None:
        """PID (root PID namespace) of sshd, the guest's PID 1."""
        return self.sshd_entry["pid"] if self.sshd_entry else None


class Fabric:
    """Network namespaces, sshd guests and the metadata service of one lab.

    `state_dir` receives resources.json (what to remove after a crash), injected.jsonl
    (ground truth), keys, configs and guest console logs. Use as a context manager or
    call setup()/teardown(); teardown removes everything, also after partial failure.
    fixed_gateway/floating_gateway are the bridge's addresses: a narrower prefix
    (e.g. 198.51.100.193/26) lets a second lab share the root namespace with one
    that holds the /24s, as long as their guest addresses stay apart.
    """

    def __init__(self, state_dir: Path, prefix: str = "rmdlab", *,
                 fixed_gateway: str = addressing.MAIN_FIXED_GATEWAY,
                 floating_gateway: str = addressing.MAIN_FLOATING_GATEWAY,
                 default_profile: FaultProfile | None = None,
                 sshd_timeout: float = 20.0) -> None:
        if not _PREFIX_RE.match(prefix):
            raise ValueError(f"prefix {prefix!r}: 1-10 lowercase letters/digits, "
                             "starting with a letter (interface names max 15 chars)")
        self.state_dir = Path(state_dir).resolve()
        if re.search(r"[\s\"'\\]", str(self.state_dir)):
            raise ValueError(f"state_dir {self.state_dir}: no spaces or quotes (sshd_config)")
        self.prefix = prefix
        self.fixed_gateway = addressing.check_gateway("fixed_gateway", fixed_gateway)
        self.floating_gateway = addressing.check_gateway("floating_gateway", floating_gateway)
        self.default_profile = default_profile or FaultProfile()
        self.sshd_timeout = sshd_timeout
        self.bridge = f"{prefix}br0"
        self.metadata_netns = f"{prefix}-meta"
        self.metadata_veth = f"{prefix}m0"
        self.metadata = MetadataService()
        self.image = GuestImage(self.state_dir)
        self.ground_truth = GroundTruth(self.state_dir / "injected.jsonl")
        self._ledger = ledger_mod.ResourceLedger(self.state_dir / "resources.json", prefix)
        self._lock = threading.RLock()
        self._guests: dict[str, Guest] = {}
        self._next_index = 1
        self._migrating: set[str] = set()
        # A migration's metadata outage outlives it; a later migration of the same
        # guest extends the one still running (the guest sees one outage).
        self._metadata_outages: dict[str, _ActiveFault] = {}
        self._outage_lock = threading.Lock()
        self._fault_executor = self._new_fault_executor()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._up = False

    # --- lifecycle ------------------------------------------------------------------

    def __enter__(self) -> Self:
        self.setup()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.teardown()

    def setup(self) -> None:
        """Create the bridge, the metadata namespace and start the metadata service."""
        with self._lock:
            if self._up:
                return
            self.state_dir.mkdir(parents=True, exist_ok=True)
            self._release_previous_run()
            self._fault_executor = self._new_fault_executor()
            try:
                self.image.prepare()
                self._create_bridge()
                self._create_metadata_netns()
                self._start_metadata_service()
                self._up = True
            except BaseException:
                try:
                    self.teardown()
                except FabricError:
                    LOG.exception("cleaning up after a failed setup")
                raise

    def teardown(self) -> None:
        """Remove everything this fabric created; safe to call more than once.

        Windows still open (an outage outlasting the lab) are closed now. Running
        migrations end (GuestNotFound, or quietly after their switchover). Raises
        FabricError naming what could not be removed.
        """
        with self._lock:
            self._up = False
            guests = list(self._guests.values())
            self._guests.clear()
        self.ground_truth.close_all()
        self._fault_executor.shutdown(wait=False, cancel_futures=True)
        self._stop_metadata_service()
        for guest in guests:
            self._stop_init(guest)
        leftovers = self._ledger.release_all()
        if leftovers:
            raise FabricError(f"could not remove: {', '.join(leftovers)}")

    def _new_fault_executor(self) -> concurrent.futures.ThreadPoolExecutor:
        # Fault switches get threads of their own: the caller's default executor may
        # be busy booting guests, and a late switch would blur the windows' edges.
        return concurrent.futures.ThreadPoolExecutor(
            max_workers=16, thread_name_prefix=f"{self.prefix}-fault")

    def _release_previous_run(self) -> None:
        path = self.state_dir / "resources.json"
        if not path.exists():
            return
        previous = ledger_mod.ResourceLedger.load(path)
        if previous.entries():
            LOG.warning("removing leftovers of a previous run in %s", self.state_dir)
            leftovers = previous.release_all()
            if leftovers:
                raise FabricError(f"leftovers of a previous run remain: {leftovers}")

    def _create_link(self, *ip_args: str, name: str) -> None:
        """Run `ip link add` for `name`, recorded first; an existing link is not ours."""
        entry = self._ledger.add({"kind": "link", "name": name})
        try:
            netns.ip("link", "add", name, *ip_args)
        except netns.IpError:
            if netns.link_exists(name):  # someone else's: never remove it
                self._ledger.discard(entry)
            raise

    def _create_netns(self, name: str) -> None:
        entry = self._ledger.add({"kind": "netns", "name": name})
        try:
            netns.ip("netns", "add", name)
        except netns.IpError:
            if netns.netns_exists(name):
                self._ledger.discard(entry)
            raise

    def _create_bridge(self) -> None:
        self._create_link("type", "bridge", name=self.bridge)
        for gateway in (self.fixed_gateway, self.floating_gateway):
            self._ledger.add({"kind": "address", "dev": self.bridge, "cidr": str(gateway)})
            netns.ip("addr", "add", str(gateway), "dev", self.bridge)
        netns.ip("link", "set", self.bridge, "up")

    def _create_metadata_netns(self) -> None:
        self._create_netns(self.metadata_netns)
        self._create_link("type", "veth", "peer", "name", "eth0", "netns",
                          self.metadata_netns, name=self.metadata_veth)
        netns.ip("link", "set", self.metadata_veth, "master", self.bridge, "up")
        _ip_batch(self.metadata_netns, [
            f"addr add {METADATA_IP}/32 dev eth0",
            "link set eth0 up",
            "link set lo up",
            f"route add {self.fixed_gateway.network} dev eth0",
        ])

    def _start_metadata_service(self) -> None:
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name=f"{self.prefix}-metadata",
                                  daemon=True)
        thread.start()
        self._loop, self._loop_thread = loop, thread
        sock = netns.listening_socket_in_netns(self.metadata_netns, METADATA_IP, 80)
        try:
            asyncio.run_coroutine_threadsafe(self.metadata.start(sock), loop).result(10)
        except BaseException:
            sock.close()
            raise

    def _stop_metadata_service(self) -> None:
        loop, thread = self._loop, self._loop_thread
        self._loop = self._loop_thread = None
        if loop is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self.metadata.stop(), loop).result(10)
        except Exception:  # teardown goes on: the namespace removal ends the service
            LOG.exception("stopping the metadata service")
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(10)
        if not loop.is_running():
            loop.close()

    # --- guests ---------------------------------------------------------------------

    def create_guest(self, server_id: str, name: str, hostname: str, fixed_ip: str,
                     public_key: str | None, fault_profile: FaultProfile | None = None,
                     *, no_curl: bool = False, key_name: str | None = None,
                     meta: Mapping[str, str] | None = None,
                     availability_zone: str = "nova", launch_index: int = 0) -> Guest:
        """Boot a guest and return once its sshd accepts TCP on fixed_ip:22.

        `public_key` (OpenSSH format) is root's only authorized key. The guest is
        registered with the metadata service (uuid = server_id). `fault_profile`
        overrides the lab default for this guest's migrations. `no_curl` leaves curl
        out of the guest's PATH (busybox wget remains). ValueError for a hostname
        that is not RFC 1123 (the kernel refuses it) or a server_id unfit for a path.
        """
        fixed = ipaddress.ip_address(fixed_ip)
        if not _HOSTNAME_RE.match(hostname) or len(hostname) > 64:
            raise ValueError(f"hostname {hostname!r}: not a valid host name (max 64)")
        if not _SERVER_ID_RE.match(server_id):
            raise ValueError(f"server_id {server_id!r}: letters, digits, '_.-' only")
        with self._lock:
            if not self._up:
                raise FabricError("fabric is not set up")
            if server_id in self._guests:
                raise FabricError(f"guest {server_id} exists")
            if any(g.fixed_ip == str(fixed) for g in self._guests.values()):
                raise FabricError(f"fixed IP {fixed} is in use")
            index = self._next_index
            if index > _MAX_GUESTS:
                raise FabricError("too many guests for this fabric")
            self._next_index += 1
            files = self.image.write_guest(server_id, public_key, no_curl=no_curl)
            guest = Guest(server_id=server_id, index=index, name=name, hostname=hostname,
                          fixed_ip=str(fixed), netns=f"{self.prefix}-g{index}",
                          host_veth=f"{self.prefix}v{index}", files=files,
                          path=str(self.image.bin_dir(no_curl)),
                          fault_profile=fault_profile)
            self._guests[server_id] = guest
        try:
            self._plug(guest)
            self.metadata.register(InstanceInfo(
                uuid=server_id, name=name, hostname=hostname, fixed_ip=guest.fixed_ip,
                launch_index=launch_index, availability_zone=availability_zone,
                meta=dict(meta or {}), key_name=key_name, public_key=public_key))
            self._boot(guest)
        except BaseException:
            self._remove_guest(guest)
            raise
        return guest

    def guest(self, server_id: str) -> Guest:
        """The guest of a server; GuestNotFound if there is none."""
        with self._lock:
            try:
                return self._guests[server_id]
            except KeyError:
                raise GuestNotFound(server_id) from None

    def guests(self) -> list[Guest]:
        """All current guests."""
        with self._lock:
            return list(self._guests.values())

    def delete_guest(self, server_id: str) -> None:
        """Kill the guest's processes and remove its namespaces and veth."""
        self._remove_guest(self.guest(server_id))

    def reboot_guest(self, server_id: str) -> None:
        """Kill every guest process and start sshd again: /tmp and /run are emptied.

        Network configuration (addresses, floating IPs, injected faults) survives, as
        on a rebooted VM whose ports stay bound.
        """
        guest = self.guest(server_id)
        self._stop_init(guest)
        self._boot(guest)

    def add_floating_ip(self, server_id: str, address: str) -> None:
        """Make `address` (a /24 neighbour of the floating gateway) reach the guest."""
        guest = self.guest(server_id)
        netns.ip("addr", "add", f"{address}/24", "dev", "eth0", netns=guest.netns)
        # The root namespace may still know the MAC of a guest that had it before.
        netns.ip("neigh", "del", address, "dev", self.bridge, check=False)
        with self._lock:
            guest.floating_ips.append(address)
            self.metadata.update(server_id, floating_ips=tuple(guest.floating_ips))

    def remove_floating_ip(self, server_id: str, address: str) -> None:
        """Stop `address` from reaching the guest."""
        guest = self.guest(server_id)
        netns.ip("addr", "del", f"{address}/24", "dev", "eth0", netns=guest.netns,
                 check=False)
        netns.ip("neigh", "del", address, "dev", self.bridge, check=False)
        with self._lock:
            if address in guest.floating_ips:
                guest.floating_ips.remove(address)
            self.metadata.update(server_id, floating_ips=tuple(guest.floating_ips))

    def set_instance_meta(self, server_id: str, meta: Mapping[str, str]) -> None:
        """Replace the `meta` the metadata service shows the instance."""
        self.guest(server_id)
        self.metadata.update(server_id, meta=dict(meta))

    def guest_exec(self, server_id: str, argv: Sequence[str], *, timeout: float = 30,
                   input: str | None = None) -> subprocess.CompletedProcess:
        """Run argv inside every namespace of the guest, with the guest's PATH and HOME.

        Text mode, output captured; raises subprocess.TimeoutExpired after `timeout`.
        """
        guest = self.guest(server_id)
        pid = guest.sshd_pid
        if pid is None:
            raise FabricError(f"guest {server_id} is not running")
        command = ["nsenter", "-t", str(pid), "-a", "--",
                   "env", "-i", f"PATH={guest.path}", f"HOME={guest.files.home}", *argv]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              check=False, input=input, stdin=None if input is not None
                              else subprocess.DEVNULL)

    def _plug(self, guest: Guest) -> None:
        self._create_netns(guest.netns)
        self._create_link("type", "veth", "peer", "name", "eth0", "netns", guest.netns,
                          name=guest.host_veth)
        netns.ip("link", "set", guest.host_veth, "master", self.bridge, "up")
        # ARP answers only for the addresses of the link asked on: the `refused`
        # shape puts the metadata address on a guest's lo, and with Linux's default
        # every neighbour asking for it would be told this guest's MAC.
        subprocess.run(["ip", "netns", "exec", guest.netns, "sysctl", "-qw",
                        "net.ipv4.conf.all.arp_ignore=1"], check=True, timeout=30)
        _ip_batch(guest.netns, [
            f"addr add {guest.fixed_ip}/24 dev eth0",
            "link set eth0 up",
            "link set lo up",
            f"route add {METADATA_IP}/32 dev eth0 src {guest.fixed_ip}",
        ])
        netns.ip("neigh", "del", guest.fixed_ip, "dev", self.bridge, check=False)

    def _boot(self, guest: Guest) -> None:
        argv = self.image.init_argv(guest.netns, guest.hostname, guest.files)
        with open(guest.files.console_log, "ab") as console:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=console,
                                    stderr=subprocess.STDOUT, close_fds=True)
        guest.init = proc
        guest.init_entry = self._record_process(proc.pid, f"{guest.server_id} init")
        guest.sshd_entry = None
        child = _wait_for_child(proc, timeout=5)
        if child is None:
            raise FabricError(f"guest {guest.server_id}: init did not start: "
                              f"{_tail(guest.files.console_log)}")
        guest.sshd_entry = self._record_process(child, f"{guest.server_id} sshd")
        self._wait_for_sshd(guest)

    def _record_process(self, pid: int, label: str) -> dict:
        starttime = ledger_mod.process_starttime(pid)
        entry = {"kind": "process", "pid": pid, "starttime": starttime or 0, "label": label}
        return self._ledger.add(entry)

    def _wait_for_sshd(self, guest: Guest) -> None:
        deadline = time.monotonic() + self.sshd_timeout
        while time.monotonic() < deadline:
            if guest.init is None or guest.init.poll() is not None:
                raise FabricError(f"guest {guest.server_id}: sshd exited: "
                                  f"{_tail(guest.files.console_log)}")
            try:
                socket.create_connection((guest.fixed_ip, 22), timeout=0.5).close()
                return
            except OSError:
                time.sleep(_POLL)
        raise FabricError(f"guest {guest.server_id}: sshd not reachable on "
                          f"{guest.fixed_ip}:22 after {self.sshd_timeout} s")

    def _stop_init(self, guest: Guest) -> None:
        """Kill the guest's PID 1 (the kernel then kills the rest) and reap its parent."""
        for entry in (guest.sshd_entry, guest.init_entry):
            if entry and ledger_mod.kill_process(entry["pid"], entry["starttime"]):
                self._ledger.discard(entry)
        if guest.init is not None:
            try:
                guest.init.wait(timeout=5)
            except subprocess.TimeoutExpired:
                LOG.error("guest %s: init %d did not exit", guest.server_id, guest.init.pid)
        guest.init = None
        guest.sshd_entry = guest.init_entry = None

    def _remove_guest(self, guest: Guest) -> None:
        with self._lock:
            if self._guests.get(guest.server_id) is guest:
                del self._guests[guest.server_id]
        self.metadata.unregister(guest.server_id)
        self._stop_init(guest)
        for kind, name, delete in (("netns", guest.netns, netns.delete_netns),
                                   ("link", guest.host_veth, netns.delete_link)):
            entry = {"kind": kind, "name": name}
            if entry in self._ledger:  # never one we failed to create (not ours)
                delete(name)
                self._ledger.discard(entry)

    # --- live migration -------------------------------------------------------------

    def profile_for(self, server_id: str) -> FaultProfile:
        """The guest's own fault profile, else the lab default."""
        return self.guest(server_id).fault_profile or self.default_profile

    async def migrate(self, server_id: str, profile: FaultProfile | None = None,
                      on_switchover: Callable[[], Any] | None = None) -> None:
        """Live-migrate a guest, injecting the profile's faults (profile_for() if None).

        Timeline: wait `duration`; result `error` raises MigrationError here, `hang`
        waits until the guest is deleted (then GuestNotFound) or the task is cancelled.
        Otherwise the switchover: the metadata outage and the network blackout start
        together; after the blackout `on_switchover()` is called (sync or async: the
        API sets the new host and ACTIVE there) and the guest may be migrated again;
        the coroutine returns when the metadata outage is over. A metadata outage
        still running from an earlier migration is extended rather than applied
        twice. A guest deleted after the switchover ends it quietly.
        Every fault is removed on any exit, cancellation included.
        """
        guest = self.guest(server_id)
        profile = profile or self.profile_for(server_id)
        with self._lock:
            if server_id in self._migrating:
                raise MigrationInProgress(f"server {server_id} is already migrating")
            self._migrating.add(server_id)
        outage = blackout = None
        try:
            await self._sleep_while_present(guest, profile.duration)
            if profile.result == "error":
                raise MigrationError(f"lab: migration of {server_id} failed (profile)")
            if profile.result == "hang":
                await self._sleep_while_present(guest, float("inf"))
            if profile.guest_event != "none":
                await self._in_fault_thread(
                    lambda: self._apply_guest_event(guest, profile.guest_event))
            if profile.metadata_outage > 0:
                outage = await self._in_fault_thread(
                    lambda: self._hold_metadata_outage(guest, profile))
            if profile.network_blackout > 0:
                blackout = _ActiveFault(self, guest, "network", "blackout")
                await self._in_fault_thread(blackout.apply)
                await asyncio.sleep(profile.network_blackout)
                await self._in_fault_thread(blackout.remove)
            if on_switchover is not None:
                result = on_switchover()
                if inspect.isawaitable(result):
                    await result
            with self._lock:
                self._migrating.discard(server_id)
            if outage is not None:
                try:
                    # `until` moves when a later migration extends the outage.
                    while (remaining := outage.until - time.monotonic()) > 0:
                        await self._sleep_while_present(guest, remaining)
                except GuestNotFound:
                    pass
                await self._in_fault_thread(lambda: self._release_metadata_outage(outage))
                outage = None
        finally:
            # Also reached on cancellation: remove synchronously, no further await.
            if blackout is not None:
                blackout.remove()
            if outage is not None:
                self._release_metadata_outage(outage)
            with self._lock:
                self._migrating.discard(server_id)

    def _hold_metadata_outage(self, guest: Guest, profile: FaultProfile) -> _ActiveFault:
        """The guest's metadata outage, applied now or extended, lasting at least
        `profile.metadata_outage` s from now; each holder releases it once."""
        with self._outage_lock:
            outage = self._metadata_outages.get(guest.server_id)
            if outage is None:
                outage = _ActiveFault(self, guest, "metadata", profile.metadata_shape)
                outage.apply()
                outage.until = outage.started + profile.metadata_outage
                self._metadata_outages[guest.server_id] = outage
            else:
                outage.until = max(outage.until, time.monotonic() + profile.metadata_outage)
                outage.window.detail = (f"extended by {outage.holders} later "
                                        f"migration(s)")
            outage.holders += 1
            return outage

    def _release_metadata_outage(self, outage: _ActiveFault) -> None:
        with self._outage_lock:
            outage.holders -= 1
            if outage.holders > 0:
                return
            if self._metadata_outages.get(outage.guest.server_id) is outage:
                del self._metadata_outages[outage.guest.server_id]
        outage.remove()

    def _apply_guest_event(self, guest: Guest, event: str) -> None:
        """Do `event` (FaultProfile.guest_event) to the guest and record what it hit."""
        window = self.ground_truth.open("guest", event, guest.server_id)
        try:
            if event == "reboot":
                self.reboot_guest(guest.server_id)
                window.detail = "rebooted"
            elif event == "drop_ssh":
                killed_sessions = self.drop_ssh_sessions(guest.server_id)
                window.detail = f"killed sshd sessions {killed_sessions}"
            elif event == "kill_probe":
                killed = self.guest_exec(guest.server_id, ["sh", "-c", _KILL_PROBES]).stdout
                window.detail = f"killed probe PIDs {killed.split()}"
            else:
                raise ValueError(f"unknown guest event {event!r}")
        finally:
            self.ground_truth.close(window)

    def drop_ssh_sessions(self, server_id: str) -> list[int]:
        """SIGKILL the guest's per-connection sshd processes (children of its
        listening sshd): every open SSH connection drops. Returns their PIDs."""
        killed: list[int] = []
        listener = self.guest(server_id).sshd_pid
        try:
            children = Path(f"/proc/{listener}/task/{listener}/children").read_text().split()
        except OSError:
            return killed
        for pid in map(int, children):
            try:
                if not Path(f"/proc/{pid}/comm").read_text().startswith("sshd"):
                    continue  # the probe and other orphans are reparented to sshd too
            except OSError:
                continue
            starttime = ledger_mod.process_starttime(pid)
            if starttime is not None and ledger_mod.kill_process(pid, starttime):
                killed.append(pid)
        return killed

    async def _in_fault_thread(self, switch: Callable[[], Any]) -> Any:
        """switch() in the fault threads; its result."""
        try:
            pending = asyncio.get_running_loop().run_in_executor(self._fault_executor, switch)
        except RuntimeError:  # executor shut down: the lab is being torn down
            return switch()
        return await pending

    async def _sleep_while_present(self, guest: Guest, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while True:
            with self._lock:
                present = self._up and self._guests.get(guest.server_id) is guest
            if not present:
                raise GuestNotFound(guest.server_id)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            await asyncio.sleep(min(0.25, remaining))

    def injected_windows(self, server_id: str | None = None) -> list[InjectedWindow]:
        """Ground truth: every fault window so far (copies), optionally for one server."""
        return self.ground_truth.windows(server_id)


class _ActiveFault:
    """One fault on one guest; apply() and remove() block briefly and record the window.

    remove() is idempotent and tolerates a guest that is already gone.
    """

    def __init__(self, fabric: Fabric, guest: Guest, kind: str, shape: str) -> None:
        self.fabric, self.guest, self.kind, self.shape = fabric, guest, kind, shape
        self.window: InjectedWindow | None = None
        self.started = 0.0
        self.until = 0.0   # a held fault lasts until then (time.monotonic)
        self.holders = 0
        self._lock = threading.Lock()

    def apply(self) -> None:
        with self._lock:
            self._switch(on=True)
            self.window = self.fabric.ground_truth.open(self.kind, self.shape,
                                                        self.guest.server_id)
            # After the window opened, so that a fault held until started + length
            # is recorded as lasting at least that length.
            self.started = time.monotonic()

    def remove(self) -> None:
        with self._lock:
            if self.window is None or self.window.end_boottime is not None:
                return
            self._switch(on=False)
            self.fabric.ground_truth.close(self.window)

    def _switch(self, on: bool) -> None:
        guest, shape = self.guest, self.shape
        check = on  # removing from a deleted guest must not fail
        if self.kind == "network":
            netns.ip("link", "set", guest.host_veth, "down" if on else "up", check=check)
        elif shape in HTTP_FAULTS:
            self.fabric.metadata.set_fault(guest.server_id, shape if on else None)
        elif shape == "refused":
            netns.ip("addr", "add" if on else "del", f"{METADATA_IP}/32", "dev", "lo",
                     netns=guest.netns, check=check)
        elif shape == "timeout":
            if on:
                netns.ip("neigh", "replace", METADATA_IP, "lladdr", _BLACKHOLE_MAC,
                         "dev", "eth0", "nud", "permanent", netns=guest.netns)
            else:
                netns.ip("neigh", "del", METADATA_IP, "dev", "eth0", netns=guest.netns,
                         check=False)
        else:
            raise ValueError(f"unknown metadata fault shape {shape!r}")


def _ip_batch(netns_name: str, commands: list[str]) -> None:
    """Several `ip` commands in one process, inside a namespace."""
    argv = ["ip", "-n", netns_name, "-batch", "-"]
    proc = subprocess.run(argv, input="\n".join(commands) + "\n", capture_output=True,
                          text=True, timeout=30, check=False)
    if proc.returncode != 0:
        raise netns.IpError(argv + commands, proc.stderr)


def _wait_for_child(proc: subprocess.Popen, timeout: float) -> int | None:
    """The PID of proc's first child (unshare's forked PID 1), None if it never shows."""
    path = f"/proc/{proc.pid}/task/{proc.pid}/children"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with open(path, encoding="ascii") as children:
                pids = children.read().split()
        except FileNotFoundError:
            pids = []
        if pids:
            return int(pids[0])
        time.sleep(0.005)
    return None


def _tail(path: Path, limit: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:].strip() or "(no output)"
    except OSError:
        return "(no console log)"


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: `python -m tests.lab.fabric cleanup --state-dir D` removes a crashed lab."""
    parser = argparse.ArgumentParser(prog="python -m tests.lab.fabric")
    commands = parser.add_subparsers(dest="command", required=True)
    cleanup = commands.add_parser("cleanup", help="remove what resources.json records")
    cleanup.add_argument("--state-dir", required=True, type=Path)
    args = parser.parse_args(argv)
    path = args.state_dir / "resources.json"
    if not path.exists():
        print(f"nothing to clean: no {path}")
        return 0
    record = ledger_mod.ResourceLedger.load(path)
    count = len(record.entries())
    leftovers = record.release_all()
    for leftover in leftovers:
        print(f"left behind: {leftover}", file=sys.stderr)
    print(f"removed {count - len(leftovers)} of {count} recorded resources")
    return 1 if leftovers else 0


if __name__ == "__main__":
    sys.exit(main())
