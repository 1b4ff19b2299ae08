"""Where the cloud lab keeps things and which loopback ports it uses."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import socket
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
LAB_ROOT = Path(os.environ.get("RMD_LAB_ROOT", "/opt/rmd-lab"))
VENV = Path(os.environ.get("RMD_LAB_VENV", LAB_ROOT / "venv"))
CACHE = LAB_ROOT / "cache"
# The metadata agents the lab can run (metadata_path.py), by release: the pinned
# Neutron's, and that of neutron 23.3.0 (2023.2), the last release without the fix
# for Launchpad bug 2036118. tools/install-lab-cloud.sh installs both.
AGENT_VENVS = {"current": VENV, "2023.2": LAB_ROOT / "agent-2023.2"}
CONSTRAINTS = HERE / "constraints.txt"
DEFAULT_STATE_DIR = Path(os.environ.get("RMD_CLOUD_STATE_DIR", "/tmp/rmdc-cloud"))
HOST = "127.0.0.1"
REGION = "RegionOne"
ADMIN_PASSWORD = "rmdc-admin"  # a loopback-only lab; every service uses admin
RABBIT_USER, RABBIT_PASSWORD = "rmdc", "rmdc"
COMPUTE_HOSTS = ("lab-compute-1", "lab-compute-2")
# The one gateway chassis: routers' gateways and floating IPs are NATed there, and
# its br-ex is wired to the Rally host (hypervisor.py).
GATEWAY_HOST = COMPUTE_HOSTS[0]
# Where the Rally host's port on the tenant network is plugged. A port of the network
# on a host keeps its metadata namespace there: servers migrating into the other
# host find none and wait for its metadata agent to set one up (tests that measure
# that boot on this host, availability_zone "nova:<host>").
RALLY_PORT_HOST = COMPUTE_HOSTS[1]
# Netns and link names: "rmdc-" + short suffix (see the package docstring).
NETNS_PREFIX = "rmdc-"


def netns_name(state_dir: Path, index: int) -> str:
    """Compute host `index`'s namespace: rmdc-<4 hex of the state dir>-h<index>, so
    two labs with different state directories can run side by side."""
    tag = hashlib.sha256(str(Path(state_dir).resolve()).encode()).hexdigest()[:4]
    return f"{NETNS_PREFIX}{tag}-h{index}"
# OVN encapsulation addresses (198.51.100.240/28 inside the lab's namespaces only), on
# br-ul inside each host's namespace only (ovn.connect_underlay), a /30.
ENCAP_IPS = {"lab-compute-1": "198.51.100.241", "lab-compute-2": "198.51.100.242"}

PORT_NAMES = ("keystone", "placement", "nova", "glance", "neutron", "metadata",
              "mariadb", "rabbit", "epmd", "rabbit_dist", "cinder")


@dataclasses.dataclass(frozen=True)
class Ports:
    keystone: int
    placement: int
    nova: int
    glance: int
    neutron: int
    metadata: int
    mariadb: int
    rabbit: int
    epmd: int
    rabbit_dist: int
    cinder: int

    @classmethod
    def from_base(cls, base: int) -> Ports:
        return cls(**{name: base + i for i, name in enumerate(PORT_NAMES)})

    def busy(self) -> list[str]:
        """The ones something on 127.0.0.1 already listens on."""
        taken = []
        for name, port in dataclasses.asdict(self).items():
            with socket.socket() as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind((HOST, port))
                except OSError:
                    taken.append(f"{name}:{port}")
        return taken


PORT_BASE = int(os.environ.get("RMD_CLOUD_PORT_BASE", "29300"))


def venv_bin(name: str) -> str:
    return str(VENV / "bin" / name)


def node_uuid(host: str) -> str:
    """A stable UUID per compute host: its OVN system-id and its Nova node uuid."""
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{host}.rmdc.lab"))


def db_key(recipe: int) -> str:
    """Names a database snapshot: the pinned versions and the version of the recipe
    that builds it (openstack.DB_RECIPE). Paths and ports in its rows are rewritten
    at each start (OpenStack.fix_snapshot_rows)."""
    digest = hashlib.sha256()
    digest.update(CONSTRAINTS.read_bytes())
    digest.update(f"recipe {recipe}".encode())
    return digest.hexdigest()[:16]
