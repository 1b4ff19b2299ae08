"""Metadata outages injected where the real metadata path breaks (issue 15, item 4),
on the destination host of a live migration, each with its ground truth taken where
the fault acts (item 5), beside when it was asked for:

- refused: the network's haproxy on that host is killed by its PID. Its ovnmeta
  namespace keeps 169.254.169.254, so the kernel answers each SYN with a reset. At
  the end it starts again with its own command line in its own namespace. Truth: the
  namespace's TCP OutRsts (read through a sleeper process in it).
- timeout: OpenFlow rules on that host's br-int drop the guest's packets to
  169.254.169.254 and its TCP to fe80::a9fe:a9fe (metadata over IPv6, from its MAC)
  before OVN's pipeline sees them; they are removed at the end. Truth: the rules'
  packet counters.
- http_503: the host's path to Nova's metadata API is cut (the hypervisor's loopback
  forwarder closes each connection the agent opens), so the agent answers 503.
  Truth: the connections it closed.
- http_404: the guest's port gets an unknown server's device_id through Neutron's
  API, which Neutron writes into the port's Northbound record and ovn-northd into
  the Southbound's, where the agent maps a request to its instance: the agent asks
  Nova's metadata API for that server, and Nova answers 404. Truth: the requests the
  agents sent Nova for that id from the guest's address (the loopback forwarders
  read each one's X-Instance-ID and X-Forwarded-For).
- wrong_instance: the same, with the id of a decoy server in the guest's project
  (decoys.py), so Nova answers with the decoy's data and the probe finds another
  hostname. Truth: as for http_404, the requests for the decoy from the guest.

A fault acts on a whole host (its haproxy, its path to Nova), except the rule and the
port's identity, which are one guest's: two guests migrating to one host share the
host's fault, which mends when the last of them ends. The lab's agents run without
their process monitor (metadata_path.agent_config), which would otherwise respawn a
killed haproxy within its 60 s check, at a random point of a window.

The identity fault starts after Nova's last port update of the migration (the
destination's post-live-migration, virt.py): Neutron rewrites the port's Northbound
record while the binding moves, and a mapping broken in OVN alone would be mended
there at a moment nobody chose. Changed in Neutron itself, it stays broken through
those rewrites until the fault ends.

Nova finds a server's ports by their device_id when it migrates or deletes that
server, so a port given another live server's id would be bound or released with
that server: the decoy never migrates, and is deleted only after its guest, whose
port has its own id back by then.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from tests.lab.addressing import METADATA_IP, METADATA_IPV6
from tests.lab.cloud import metadata_path
from tests.lab.cloud.openstack import http
from tests.lab.cloud.procs import alive, read_pid, wait_for
from tests.lab.faults import MAX_SECONDS, boottime

# Applied from the switchover, on the destination host.
SWITCHOVER_SHAPES = ("refused", "timeout", "http_503")
# Applied from Nova's post-live-migration on the destination, on the guest's port.
IDENTITY_SHAPES = ("http_404", "wrong_instance")
# Those that give the port a decoy server's id (decoys.py), not a made-up one.
DECOY_SHAPES = ("wrong_instance",)
PATH_SHAPES = SWITCHOVER_SHAPES + IDENTITY_SHAPES
SAMPLE_INTERVAL = 0.02
# The agent may still be setting up the destination's namespace (bug 2036118's fix
# does it when the migration starts): the haproxy to stop is waited for this long.
HAPROXY_WAIT = 30.0


@dataclasses.dataclass
class Acted:
    """When a fault was seen acting: its first and last counted effect (CLOCK_BOOTTIME)
    and how many effects were counted."""

    first: float | None = None
    last: float | None = None
    count: int = 0


class CounterWatch:
    """Samples a counter every SAMPLE_INTERVAL s in a thread, from start() until
    stop(), and keeps when it first and last grew: the fault's effects as counted
    where it acts. Bounded by MAX_SECONDS."""

    def __init__(self, read: Callable[[], int]) -> None:
        self._read = read
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.acted = Acted()
        self._base = 0

    def start(self) -> None:
        self._base = self._last_value = self._read()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        try:
            value = self._read()
        except (OSError, ValueError, subprocess.SubprocessError):
            return
        if value > self._last_value:
            now = boottime()
            if self.acted.first is None:
                self.acted.first = now
            self.acted.last = now
            self.acted.count = value - self._base
        self._last_value = value

    def _run(self) -> None:
        deadline = time.monotonic() + MAX_SECONDS
        while not self._stop.wait(SAMPLE_INTERVAL) and time.monotonic() < deadline:
            self._sample()

    def stop(self) -> Acted:
        """The last sample, taken after the fault was mended (once)."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=5)
            self._thread = None
            self._sample()
        return self.acted


def tcp_out_resets(pid: int) -> int:
    """Tcp OutRsts of the network namespace `pid` is in."""
    with open(f"/proc/{pid}/net/snmp") as snmp:
        tcp = [line.split() for line in snmp if line.startswith("Tcp:")]
    return int(tcp[1][tcp[0].index("OutRsts")])


class PathFault:
    """One fault on one host; apply() then mend(), each once."""

    def __init__(self) -> None:
        self.watch: CounterWatch | None = None

    def apply(self) -> None:
        raise NotImplementedError

    def mend(self) -> Acted:
        raise NotImplementedError

    def abandon(self) -> None:
        """The lab is going away: let go of the fault without mending what the lab
        stops anyway."""
        self.mend()


class HaproxyStopped(PathFault):
    """refused: the network's haproxy on `chassis_dir`'s host killed, then restarted."""

    def __init__(self, chassis_dir: Path, network_id: str) -> None:
        super().__init__()
        self.pidfile = metadata_path.haproxy_pidfile(chassis_dir, network_id)
        self.argv: list[str] = []
        self.netns_fd: int | None = None
        self.sleeper: subprocess.Popen | None = None

    def _in_netns(self, argv: list[str], **kwargs):
        return ["nsenter", f"--net=/proc/self/fd/{self.netns_fd}", *argv], {
            "pass_fds": (self.netns_fd,), **kwargs}

    def apply(self) -> None:
        def running() -> int | None:
            pid = read_pid(self.pidfile)
            return pid if pid and alive(pid) else None
        pid = wait_for(f"haproxy of {self.pidfile.name}", running, HAPROXY_WAIT,
                       interval=0.05)
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            self.argv = [a.decode() for a in cmdline.read().split(b"\0") if a]
        namespace = os.readlink(f"/proc/{pid}/ns/net")
        self.netns_fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
        try:
            argv, kwargs = self._in_netns(["sleep", str(int(MAX_SECONDS))])
            self.sleeper = subprocess.Popen(argv, stdin=subprocess.DEVNULL, **kwargs)
            # Until nsenter has entered it, the sleeper's counters are the root
            # namespace's.
            wait_for("a sleeper in the ovnmeta namespace",
                     lambda: os.readlink(f"/proc/{self.sleeper.pid}/ns/net") == namespace,
                     10, interval=0.01)
            self.watch = CounterWatch(lambda: tcp_out_resets(self.sleeper.pid))
            self.watch.start()
            os.kill(pid, signal.SIGKILL)
            wait_for(f"haproxy {pid} gone", lambda: not alive(pid), 10, interval=0.01)
        except BaseException:
            self._release()
            raise

    def mend(self) -> Acted:
        try:
            config_file = Path(self.argv[self.argv.index("-f") + 1])
            # Gone when the agent tore the namespace down (no port of the network
            # left here): nothing to restart then.
            if config_file.exists():
                # argv[0] as the agent ran it, found where Debian keeps it.
                program = shutil.which(self.argv[0], path=f"{os.environ.get('PATH', '')}"
                                       ":/usr/sbin:/sbin") or self.argv[0]
                argv, kwargs = self._in_netns([program, *self.argv[1:]],
                                              capture_output=True, text=True,
                                              timeout=30, check=False)
                done = subprocess.run(argv, **kwargs)
                if done.returncode != 0:
                    raise RuntimeError(f"haproxy did not start again: {done.stderr}")
            return self.watch.stop()
        finally:
            self._release()

    def abandon(self) -> None:
        # No haproxy started while the lab stops the agents' by their PID files.
        self._release()

    def _release(self) -> None:
        if self.watch is not None:
            self.watch.stop()
        if self.sleeper is not None:
            with contextlib.suppress(ProcessLookupError):
                self.sleeper.kill()
            self.sleeper.wait(timeout=10)
            self.sleeper = None
        if self.netns_fd is not None:
            os.close(self.netns_fd)
            self.netns_fd = None


class MetadataFlowsDropped(PathFault):
    """timeout: one guest's packets to 169.254.169.254, and its TCP to fe80::a9fe:a9fe,
    dropped on a host's br-int."""

    def __init__(self, chassis_dir: Path, guest_ip: str, guest_mac: str,
                 cookie: int) -> None:
        super().__init__()
        self.env = {**os.environ, "OVS_RUNDIR": str(chassis_dir)}
        self.matches = [f"ip,nw_src={guest_ip},nw_dst={METADATA_IP}",
                        f"tcp6,dl_src={guest_mac},ipv6_dst={METADATA_IPV6}"]
        self.cookie = f"{cookie:#x}"

    def _ofctl(self, *args: str) -> str:
        done = subprocess.run(["ovs-ofctl", *args], env=self.env,
                              capture_output=True, text=True, timeout=30, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"ovs-ofctl {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def dropped(self) -> int:
        out = self._ofctl("dump-flows", "br-int", f"cookie={self.cookie}/-1")
        return sum(int(field.split("=")[1].rstrip(",")) for field in out.split()
                   if field.startswith("n_packets="))

    def apply(self) -> None:
        # Above every flow of OVN's table 0, which only tells ports apart.
        for match in self.matches:
            self._ofctl("add-flow", "br-int", f"table=0,priority=65535,"
                                              f"cookie={self.cookie},{match},actions=drop")
        self.watch = CounterWatch(self.dropped)
        self.watch.start()

    def mend(self) -> Acted:
        # The last count, then the rule goes: its counter goes with it.
        acted = self.watch.stop()
        self._ofctl("del-flows", "br-int", f"cookie={self.cookie}/-1")
        return acted


class NovaCut:
    """The hosts whose path to Nova's metadata API is cut; the hypervisor's loopback
    forwarders ask it for each connection the agents open."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cut: set[str] = set()
        self.refused: dict[str, int] = {}

    def admits(self, host: str) -> bool:
        with self._lock:
            if host not in self._cut:
                return True
            self.refused[host] = self.refused.get(host, 0) + 1
            return False

    def set(self, host: str, cut: bool) -> None:
        with self._lock:
            (self._cut.add if cut else self._cut.discard)(host)

    def count(self, host: str) -> int:
        with self._lock:
            return self.refused.get(host, 0)


class NovaUnreachable(PathFault):
    """http_503: `host`'s agent cannot reach Nova's metadata API."""

    def __init__(self, cut: NovaCut, host: str) -> None:
        super().__init__()
        self.cut, self.host = cut, host

    def apply(self) -> None:
        self.watch = CounterWatch(lambda: self.cut.count(self.host))
        self.watch.start()
        self.cut.set(self.host, True)

    def mend(self) -> Acted:
        self.cut.set(self.host, False)
        return self.watch.stop()


class NovaRequests:
    """How many requests the agents sent Nova's metadata API for each instance and
    guest address: the hypervisor's loopback forwarders read each request's
    X-Instance-ID and X-Forwarded-For (another server's own requests carry its id
    too, from its own address)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str], int] = {}

    def saw(self, head: bytes) -> None:
        """One request's head (its request line and headers)."""
        headers = {}
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip().decode("ascii", "replace")
        if b"x-instance-id" in headers:
            key = (headers[b"x-instance-id"], headers.get(b"x-forwarded-for", ""))
            with self._lock:
                self._seen[key] = self._seen.get(key, 0) + 1

    def count(self, instance: str, guest_ip: str) -> int:
        with self._lock:
            return self._seen.get((instance, guest_ip), 0)


class NeutronPorts:
    """The one Neutron call the identity faults make: a port's device_id, read and
    set with the lab's admin token (taken again when it expires)."""

    def __init__(self, neutron_url: str, token: Callable[[], str]) -> None:
        self.url, self._new_token = neutron_url.rstrip("/"), token
        self._token: str | None = None

    def _call(self, method: str, port_id: str, body: dict | None = None) -> dict:
        for _ in range(2):
            if self._token is None:
                self._token = self._new_token()
            status, _, answer = http(method, f"{self.url}/v2.0/ports/{port_id}", body,
                                     token=self._token, timeout=30)
            if status != 401:
                break
            self._token = None
        if status != 200:
            raise RuntimeError(f"Neutron {method} port {port_id}: HTTP {status} {answer}")
        return answer["port"]

    def device_id(self, port_id: str) -> str:
        return self._call("GET", port_id)["device_id"]

    def set_device_id(self, port_id: str, device_id: str) -> None:
        self._call("PUT", port_id, {"port": {"device_id": device_id}})


class PortIdentityChanged(PathFault):
    """The port's device_id set to `device_id` until mended, when the server's own
    comes back: a server nobody has (http_404) or a decoy (wrong_instance)."""

    def __init__(self, ports: NeutronPorts, requests: NovaRequests,
                 target: FaultTarget, device_id: str) -> None:
        super().__init__()
        self.ports, self.requests, self.device_id = ports, requests, device_id
        self.port_id, self.server_id = target.port_id, target.server_id
        self.guest_ip = target.guest_ip

    def apply(self) -> None:
        owner = self.ports.device_id(self.port_id)
        if owner != self.server_id:
            raise RuntimeError(f"port {self.port_id} belongs to {owner!r}, "
                               f"not to server {self.server_id}")
        self.watch = CounterWatch(lambda: self.requests.count(self.device_id,
                                                              self.guest_ip))
        self.watch.start()
        try:
            self.ports.set_device_id(self.port_id, self.device_id)
        except BaseException:
            self.watch.stop()
            raise

    def mend(self) -> Acted:
        try:
            self.ports.set_device_id(self.port_id, self.server_id)
        finally:
            acted = self.watch.stop()
        return acted


@dataclasses.dataclass(frozen=True)
class FaultTarget:
    """Whose metadata path a fault breaks: the migration's destination host, and the
    guest (its address, lab index, port and server)."""

    host: str
    guest_ip: str
    guest_index: int
    port_id: str = ""
    server_id: str = ""
    guest_mac: str = ""


class PathFaults:
    """The faults applied in the real path, shared per host and shape (per guest
    where the fault is the guest's own)."""

    def __init__(self, state: Path, network_id: str, cut: NovaCut,
                 ports: NeutronPorts | None = None,
                 requests: NovaRequests | None = None,
                 decoy_for: Callable[[str], str] | None = None) -> None:
        self.state, self.network_id, self.cut = state, network_id, cut
        self.ports, self.requests = ports, requests or NovaRequests()
        self.decoy_for = decoy_for  # server id -> its decoy's (decoys.Decoys.get)
        self._lock = threading.Lock()
        self._held: dict[tuple[str, str], tuple[PathFault, int]] = {}

    def _make(self, shape: str, target: FaultTarget) -> PathFault:
        chassis_dir = self.state / "chassis" / target.host
        if shape == "refused":
            return HaproxyStopped(chassis_dir, self.network_id)
        if shape == "timeout":
            return MetadataFlowsDropped(chassis_dir, target.guest_ip, target.guest_mac,
                                        0x7D000000 + target.guest_index)
        if shape == "http_503":
            return NovaUnreachable(self.cut, target.host)
        if shape in IDENTITY_SHAPES:
            if self.ports is None:
                raise ValueError(f"metadata_shape {shape!r}: this lab has no Neutron "
                                 "to change the port's device_id")
            if shape not in DECOY_SHAPES:
                device_id = str(uuid.uuid4())
            elif self.decoy_for is None:
                raise ValueError(f"metadata_shape {shape!r}: this lab boots no decoy "
                                 "servers")
            else:
                device_id = self.decoy_for(target.server_id)
            return PortIdentityChanged(self.ports, self.requests, target, device_id)
        raise ValueError(f"metadata_shape {shape!r} is not injected in the real path "
                         f"(only {', '.join(PATH_SHAPES)})")

    @staticmethod
    def _key(shape: str, target: FaultTarget) -> tuple[str, str]:
        if shape in IDENTITY_SHAPES:  # the port's, wherever the guest runs
            return (shape, target.port_id)
        if shape == "timeout":
            return (shape, f"{target.host}/{target.guest_ip}")
        return (shape, target.host)

    def apply(self, shape: str, target: FaultTarget) -> None:
        """Break the target's path (or join the fault already there)."""
        key = self._key(shape, target)
        with self._lock:
            held = self._held.get(key)
            if held is None:
                fault = self._make(shape, target)
                fault.apply()
                self._held[key] = (fault, 1)
            else:
                self._held[key] = (held[0], held[1] + 1)

    def mend(self, shape: str, target: FaultTarget) -> Acted:
        """Leave the fault; the last to leave mends it. What was counted so far."""
        key = self._key(shape, target)
        with self._lock:
            fault, users = self._held[key]
            if users > 1:
                self._held[key] = (fault, users - 1)
                return dataclasses.replace(fault.watch.acted)
            del self._held[key]
            return fault.mend()

    def abandon_all(self) -> None:
        """The lab is going away: every fault still held is let go."""
        with self._lock:
            held, self._held = list(self._held.values()), {}
        for fault, _ in held:
            with contextlib.suppress(Exception):
                fault.abandon()
