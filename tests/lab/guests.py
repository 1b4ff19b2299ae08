"""The lab's guests: each a network namespace plus UTS/mount/PID namespaces whose
PID 1 is sshd, plugged into the bridge, registered with the metadata service.

Part of tests.lab.fabric.Fabric: create, boot, reboot, delete, floating IPs, and
running commands inside a guest.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import re
import socket
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.lab import guest_process, netns
from tests.lab import ledger as ledger_mod
from tests.lab.addressing import METADATA_IP
from tests.lab.errors import FabricError, GuestNotFound
from tests.lab.faults import FaultProfile
from tests.lab.guest_os import GuestFiles, GuestImage
from tests.lab.metadata_service import InstanceInfo, MetadataService
from tests.lab.topology import ip_batch

LOG = logging.getLogger(__name__)

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME_RE = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")
_SERVER_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_MAX_GUESTS = 9999
_POLL = 0.02


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

class GuestsMixin:
    """Fabric's guests: their life (boot, reboot, delete), addresses and commands."""

    prefix: str
    bridge: str
    sshd_timeout: float
    metadata: MetadataService
    image: GuestImage
    _ledger: ledger_mod.ResourceLedger
    _lock: threading.RLock
    _guests: dict[str, Guest]
    _next_index: int
    _up: bool

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
            link_local = self._plug(guest)
            self.metadata.register(InstanceInfo(
                uuid=server_id, name=name, hostname=hostname, fixed_ip=guest.fixed_ip,
                link_local=link_local,
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
        return guest_process.guest_exec(pid, guest.path, guest.files.home, argv,
                                        timeout=timeout, input=input)

    def _plug(self, guest: Guest) -> str:
        """Plug the guest into the bridge; returns its IPv6 link-local address."""
        self._create_netns(guest.netns)
        self._create_link("type", "veth", "peer", "name", "eth0", "netns", guest.netns,
                          name=guest.host_veth)
        netns.ip("link", "set", guest.host_veth, "master", self.bridge, "up")
        # ARP answers only for the addresses of the link asked on: the `refused`
        # shape puts the metadata address on a guest's lo, and with Linux's default
        # every neighbour asking for it would be told this guest's MAC.
        # No duplicate address detection for eth0's link-local address: it is unique
        # (from its MAC) and IPv6 metadata works as soon as the guest is up.
        subprocess.run(["ip", "netns", "exec", guest.netns, "sysctl", "-qw",
                        "net.ipv4.conf.all.arp_ignore=1", "net.ipv6.conf.all.accept_dad=0",
                        "net.ipv6.conf.eth0.accept_dad=0"], check=True, timeout=30)
        ip_batch(guest.netns, [
            f"addr add {guest.fixed_ip}/24 dev eth0",
            "link set eth0 up",
            "link set lo up",
            f"route add {METADATA_IP}/32 dev eth0 src {guest.fixed_ip}",
        ])
        netns.ip("neigh", "del", guest.fixed_ip, "dev", self.bridge, check=False)
        return _link_local(guest.netns)

    def _boot(self, guest: Guest) -> None:
        guest.init, guest.init_entry, child = guest_process.start_init(
            self.image.init_argv(guest.netns, guest.hostname, guest.files),
            guest.files.console_log, self._ledger, f"{guest.server_id} init", timeout=5)
        guest.sshd_entry = None
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
        if not guest_process.stop_init(guest.init, (guest.sshd_entry, guest.init_entry),
                                       self._ledger):
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



def _link_local(netns_name: str, timeout: float = 5.0) -> str:
    """eth0's IPv6 link-local address in a namespace, once the kernel made it (at
    link up: from the MAC, no duplicate address detection)."""
    deadline = time.monotonic() + timeout
    while True:
        shown = subprocess.run(["ip", "-n", netns_name, "-6", "-o", "addr", "show", "dev",
                                "eth0", "scope", "link"], capture_output=True, text=True,
                               timeout=30, check=False).stdout.split()
        if "inet6" in shown:
            return shown[shown.index("inet6") + 1].partition("/")[0]
        if time.monotonic() >= deadline:
            raise FabricError(f"{netns_name}: eth0 has no IPv6 link-local address")
        time.sleep(0.05)


def _tail(path: Path, limit: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:].strip() or "(no output)"
    except OSError:
        return "(no console log)"
