"""The real metadata path (issue 15): guest -> OVN localport -> haproxy in the
ovnmeta-<network> namespace -> neutron-ovn-metadata-agent -> Nova's metadata API.

Each compute host runs the agent of the pinned Neutron for its own chassis, inside
the host's network namespace (where its vswitchd is, so the veth the agent plugs
into br-int is vswitchd's to open) and in a mount namespace with a private
/run/netns: two agents on one machine would otherwise make the same
ovnmeta-<network> namespaces. A holder process keeps that mount namespace, so the
agent restarts as on a host (its namespaces and haproxies stay; a restart takes
only the agent away, which is what an operator's restart does). Nova's metadata
API (its WSGI app) serves behind them on loopback; the shared secret signs the
instance headers the agent adds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

from tests.lab.cloud import config
from tests.lab.cloud.procs import Supervisor, alive, read_pid, wait_for
from tests.lab.faults import boottime

SHARED_SECRET = "rmdc-metadata-secret"  # a loopback-only lab
# The privsep contexts the agent's Neutron code may start (neutron/privileged).
PRIVSEP_SECTIONS = ("privsep", "privsep_dhcp_release", "privsep_ovs_vsctl",
                    "privsep_namespace", "privsep_conntrack", "privsep_link")
# Run inside the host's namespace: a private /run/netns, then the holder's sleep
# (a PID that stays until the lab stops it).
_PRIVATE_NETNS = 'mount -t tmpfs -o mode=0755 rmdc-netns /run/netns && exec sleep infinity'
# How often the agent is asked while it restarts (restart_agent), how long each ask
# waits for its answer, and how long a restarted agent may take to serve again.
SOCKET_POLL = 0.02
ANSWER_TIMEOUT = 0.25
AGENT_MAIN = Path(__file__).with_name("metadata_agent_main.py")
RESTART_TIMEOUT = 90.0
# What restart_agent asks: a request as haproxy sends it, from an address no port has.
_AGENT_PROBE = (b"GET /latest/meta-data/hostname HTTP/1.0\r\n"
                b"X-Forwarded-For: 203.0.113.127\r\n\r\n")


def agent_dir(chassis_dir: Path) -> Path:
    return chassis_dir / "metadata-agent"


def agent_ini(chassis_dir: Path) -> Path:
    return agent_dir(chassis_dir) / "metadata_agent.ini"


def agent_config(chassis, central, metadata_port: int, venv: Path = config.VENV
                 ) -> dict[str, dict[str, object]]:
    """The configuration of the agent from `venv` for one chassis
    (tests.lab.cloud.ovn.Chassis)."""
    state = agent_dir(chassis.dir)
    helper = f"{venv / 'bin' / 'privsep-helper'} --config-file {agent_ini(chassis.dir)}"
    return {
        "DEFAULT": {"state_path": state, "debug": True,
                    "metadata_proxy_socket": state / "metadata_proxy",
                    "nova_metadata_host": config.HOST,
                    "nova_metadata_port": metadata_port,
                    "metadata_proxy_shared_secret": SHARED_SECRET,
                    "metadata_workers": 1},
        # Root already: no sudo or rootwrap in front of its commands. No process
        # monitor: it would respawn a haproxy the lab stopped (path_faults.py)
        # at its next 60 s check, at a random point of the fault's window.
        "agent": {"root_helper": "", "check_child_processes_interval": 0},
        "ovs": {"ovsdb_connection": chassis.db},
        "ovn": {"ovn_sb_connection": central.sb},
        **{section: {"helper_command": helper} for section in PRIVSEP_SECTIONS},
    }


def agent_name(chassis) -> str:
    return f"metadata-agent-{chassis.host}"


def holder_name(chassis) -> str:
    return f"metadata-netns-{chassis.host}"


def agent_socket(chassis_dir: Path) -> Path:
    """Where the agent listens for its haproxies (metadata_proxy_socket)."""
    return agent_dir(chassis_dir) / "metadata_proxy"


def start_holder(sup: Supervisor, chassis) -> None:
    """The process that keeps the host's agent mount namespace (a private
    /run/netns in the host's network namespace) while agents come and go."""
    name = holder_name(chassis)
    proc = sup.start(name, ["ip", "netns", "exec", chassis.netns,
                            "unshare", "--mount", "--propagation", "private",
                            "sh", "-c", _PRIVATE_NETNS])

    def holding() -> bool:  # the sleep runs once /run/netns is mounted
        with contextlib.suppress(OSError):
            return Path(f"/proc/{proc.pid}/comm").read_text().strip() == "sleep"
        return False
    wait_for(f"metadata namespace holder {chassis.host}", holding, 10, interval=0.02,
             proc=proc)
    sup.ready(name)


def start_agent(sup: Supervisor, chassis, env: dict[str, str],
                venv: Path = config.VENV) -> subprocess.Popen:
    """neutron-ovn-metadata-agent from `venv` for `chassis` (through AGENT_MAIN, which
    fills IPv6 checksums as the agent does IPv4's), started in its holder's
    namespaces; wait_for_agent waits until it registered in the SB database."""
    name = agent_name(chassis)
    holder = sup.daemons[holder_name(chassis)].pid
    env = {**env, "PATH": f"{venv / 'bin'}:{env.get('PATH', os.environ['PATH'])}"}
    return sup.start(name, [
        "nsenter", f"--target={holder}", "--mount", "--net",
        str(venv / "bin" / "python"), str(AGENT_MAIN), "--config-file",
        str(agent_ini(chassis.dir))], env=env)


def serving(chassis_dir: Path) -> bool:
    """Whether the agent answers a request on its socket now: any HTTP answer (one
    that names no network gets a 404 without reaching Nova). Connecting is not
    enough: a starting agent listens seconds before it serves (its first sync
    comes first), and until then its listen backlog accepts the connections."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(ANSWER_TIMEOUT)
        try:
            probe.connect(str(agent_socket(chassis_dir)))
            probe.sendall(_AGENT_PROBE)
            return probe.recv(16).startswith(b"HTTP/")
        except OSError:
            return False


def wait_for_agent(sup: Supervisor, chassis, proc: subprocess.Popen) -> None:
    name = agent_name(chassis)
    wait_for(f"metadata agent {chassis.host}", chassis.metadata_agent_registered, 60,
             interval=0.2, proc=proc, log=Path(sup.daemons[name].log))
    sup.ready(name)


def localport_link(network_id: str) -> str:
    """The host end of the veth the agent plugs into br-int for a network's
    metadata port (neutron/agent/ovn/metadata/agent.py names it so)."""
    return f"tap{network_id[:10]}0"


def haproxy_config(chassis_dir: Path, network_id: str) -> Path:
    """The configuration the agent wrote for a network's haproxy (its bind lines)."""
    return agent_dir(chassis_dir) / "ovn-metadata-proxy" / f"{network_id}.conf"


def haproxy_pidfile(chassis_dir: Path, network_id: str) -> Path:
    """Where the agent keeps the PID of a network's haproxy (neutron's
    ProcessManager: <external_pids>/<uuid>.pid.<service>)."""
    return agent_dir(chassis_dir) / "external" / "pids" / f"{network_id}.pid.haproxy"


def haproxy_pids(chassis_dir: Path) -> list[int]:
    """The haproxy processes the agent started (their PID files)."""
    pids = agent_dir(chassis_dir) / "external" / "pids"
    found = [read_pid(path) for path in sorted(pids.glob("*"))] if pids.exists() else []
    return [pid for pid in found if pid]


def running_haproxies(chassis_dir: Path) -> list[int]:
    """The agent's haproxies that still run: the host serves a network's metadata."""
    return [pid for pid in haproxy_pids(chassis_dir) if alive(pid)]


def stop_haproxies(chassis_dir: Path) -> None:
    """haproxy daemonizes out of the agent's process group: stopped by its PID."""
    for pid in haproxy_pids(chassis_dir):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@dataclasses.dataclass
class _Edges:
    """A restart's ground truth: the first ask the agent left unanswered, and the
    first it answered after that (CLOCK_BOOTTIME)."""

    unanswered: float | None = None
    answered: float | None = None


def restart_agent(sup: Supervisor, chassis, env: dict[str, str], venv: Path) -> dict:
    """Restart one host's agent as an operator's `systemctl restart` does: SIGTERM,
    then the same agent again (its namespaces and haproxies stay). The ground truth
    of its outage where it acts: from the first request the agent left unanswered
    until the first it answered again (CLOCK_BOOTTIME at each ask, asked every
    SOCKET_POLL s, ANSWER_TIMEOUT s each), beside when the restart was asked and
    done."""
    edges = _Edges()
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            now = boottime()
            if not serving(chassis.dir):
                if edges.unanswered is None:
                    edges.unanswered = now
            elif edges.unanswered is not None:
                edges.answered = now
                return
            time.sleep(SOCKET_POLL)
    watcher = threading.Thread(target=watch, daemon=True)
    asked = boottime()
    watcher.start()
    name = agent_name(chassis)
    try:
        sup.stop(name)
        proc = start_agent(sup, chassis, env, venv)
        wait_for(f"metadata agent {chassis.host} serving again",
                 lambda: edges.answered is not None, RESTART_TIMEOUT, interval=0.1, proc=proc,
                 log=Path(sup.daemons[name].log))
    finally:
        done.set()
        watcher.join(5)
    sup.ready(name)
    return {"host": chassis.host, "asked_boottime": asked, "done_boottime": boottime(),
            "start_boottime": edges.unanswered, "end_boottime": edges.answered}
