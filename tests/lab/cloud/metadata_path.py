"""The real metadata path (issue 15): guest -> OVN localport -> haproxy in the
ovnmeta-<network> namespace -> neutron-ovn-metadata-agent -> Nova's metadata API.

Each compute host runs the agent of the pinned Neutron for its own chassis, inside
the host's network namespace (where its vswitchd is, so the veth the agent plugs
into br-int is vswitchd's to open) and in a mount namespace of its own with a
private /run/netns: two agents on one machine would otherwise make the same
ovnmeta-<network> namespaces. Nova's metadata API (its WSGI app) serves behind them
on loopback; the shared secret signs the instance headers the agent adds.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

from tests.lab.cloud import config
from tests.lab.cloud.procs import Supervisor, read_pid, wait_for

SHARED_SECRET = "rmdc-metadata-secret"  # a loopback-only lab
# The privsep contexts the agent's Neutron code may start (neutron/privileged).
PRIVSEP_SECTIONS = ("privsep", "privsep_dhcp_release", "privsep_ovs_vsctl",
                    "privsep_namespace", "privsep_conntrack", "privsep_link")
# Run inside the host's namespace: a private /run/netns, then the agent.
_PRIVATE_NETNS = 'mount -t tmpfs -o mode=0755 rmdc-netns /run/netns && exec "$@"'


def agent_dir(chassis_dir: Path) -> Path:
    return chassis_dir / "metadata-agent"


def agent_config(chassis, central, metadata_port: int) -> dict[str, dict[str, object]]:
    """The agent's configuration for one chassis (tests.lab.cloud.ovn.Chassis)."""
    state = agent_dir(chassis.dir)
    ini = state / "metadata_agent.ini"
    helper = f"{config.venv_bin('privsep-helper')} --config-file {ini}"
    return {
        "DEFAULT": {"state_path": state, "debug": True,
                    "metadata_proxy_socket": state / "metadata_proxy",
                    "nova_metadata_host": config.HOST,
                    "nova_metadata_port": metadata_port,
                    "metadata_proxy_shared_secret": SHARED_SECRET,
                    "metadata_workers": 1},
        # Root already: no sudo or rootwrap in front of its commands.
        "agent": {"root_helper": ""},
        "ovs": {"ovsdb_connection": chassis.db},
        "ovn": {"ovn_sb_connection": central.sb},
        **{section: {"helper_command": helper} for section in PRIVSEP_SECTIONS},
    }


def start_agent(sup: Supervisor, chassis, ini: Path, env: dict[str, str]) -> None:
    """neutron-ovn-metadata-agent for `chassis`, registered in the SB database."""
    name = f"metadata-agent-{chassis.host}"
    proc = sup.start(name, [
        "ip", "netns", "exec", chassis.netns,
        "unshare", "--mount", "--propagation", "private",
        "sh", "-c", _PRIVATE_NETNS, "metadata-agent",
        config.venv_bin("neutron-ovn-metadata-agent"), "--config-file", str(ini)],
        env=env)
    log = Path(sup.daemons[name].log)
    wait_for(f"metadata agent {chassis.host}", lambda: chassis.metadata_agent_registered(),
             60, interval=0.2, proc=proc, log=log)
    sup.ready(name)


def haproxy_pids(chassis_dir: Path) -> list[int]:
    """The haproxy processes the agent started (their PID files)."""
    pids = agent_dir(chassis_dir) / "external" / "pids"
    found = [read_pid(path) for path in sorted(pids.glob("*"))] if pids.exists() else []
    return [pid for pid in found if pid]


def stop_haproxies(chassis_dir: Path) -> None:
    """haproxy daemonizes out of the agent's process group: stopped by its PID."""
    for pid in haproxy_pids(chassis_dir):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
