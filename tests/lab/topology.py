"""The lab's network skeleton: the bridge, the metadata namespace and its service.

Part of tests.lab.fabric.Fabric (see there for the topology). Every link and
namespace is recorded in the fabric's ledger before it is made, so a crashed lab
can be removed from its resources.json.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import subprocess
import threading

from tests.lab import ledger as ledger_mod
from tests.lab import netns
from tests.lab.addressing import METADATA_IP, METADATA_IPV6
from tests.lab.metadata_service import MetadataService

LOG = logging.getLogger(__name__)



class TopologyMixin:
    """Fabric's bridge, metadata namespace and metadata service (its event loop)."""

    prefix: str
    bridge: str
    metadata_netns: str
    metadata_veth: str
    fixed_gateway: ipaddress.IPv4Interface
    floating_gateway: ipaddress.IPv4Interface
    metadata: MetadataService
    _ledger: ledger_mod.ResourceLedger
    _loop: asyncio.AbstractEventLoop | None
    _loop_thread: threading.Thread | None

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
        # No duplicate address detection: the address serves at once, as the
        # metadata port's does on a cloud.
        ip_batch(self.metadata_netns, [
            f"addr add {METADATA_IP}/32 dev eth0",
            f"addr add {METADATA_IPV6}/64 dev eth0 nodad",
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
            sock6 = netns.listening_socket_in_netns(self.metadata_netns,
                                                    f"{METADATA_IPV6}%eth0", 80)
        except BaseException:
            sock.close()
            raise
        try:
            asyncio.run_coroutine_threadsafe(self.metadata.start(sock, sock6),
                                             loop).result(10)
        except BaseException:
            sock.close()
            sock6.close()
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



def ip_batch(netns_name: str, commands: list[str]) -> None:
    """Several `ip` commands in one process, inside a namespace."""
    argv = ["ip", "-n", netns_name, "-batch", "-"]
    proc = subprocess.run(argv, input="\n".join(commands) + "\n", capture_output=True,
                          text=True, timeout=30, check=False)
    if proc.returncode != 0:
        raise netns.IpError(argv + commands, proc.stderr)
