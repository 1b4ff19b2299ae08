"""Keystone, Placement, Glance, Nova and Neutron (ML2/OVN): their config files, the
databases (built once per pinned versions and restored), and the processes.

Every API is a WSGI app under gunicorn (wsgi_serve.py) on 127.0.0.1; the daemons are
the packages' own commands, run from the services' venv with their config files."""

from __future__ import annotations

import base64
import concurrent.futures
import configparser
import ipaddress
import json
import os
import shutil
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tests.lab.cloud import config, metadata_path
from tests.lab.cloud.infra import MariaDB, RabbitMQ
from tests.lab.cloud.metadata_path import SHARED_SECRET
from tests.lab.cloud.ovn import Central
from tests.lab.cloud.procs import Supervisor, run, wait_for

# Bump when build_databases() changes: it names the database snapshot.
DB_RECIPE = 3
FLAVOR = {"name": "rmdc.tiny", "ram": 64, "vcpus": 1, "disk": 1}
IMAGE_NAME = "rmdc-image"
NETWORK_NAME = "rmdc-net"
# The tenant network's addresses: this lab's range only (no address is configured
# anywhere until guests are plugged in).
SUBNET_CIDR = "203.0.113.112/28"
# Metadata over IPv6 (Cloud.metadata_over_ipv6): the guests' link-local addresses.
LINK_LOCAL_CIDR = "fe80::/64"
# The Rally host's port on it (hypervisor.py), outside Neutron's pool (.114-.125:
# guests and the network's metadata port; .113 is the gateway).
RALLY_HOST_IP = "203.0.113.126"
GUEST_POOL = ("203.0.113.114", "203.0.113.125")
# The external network (flat, physnet "public" = br-ex on each chassis): routers'
# gateways and floating IPs. .67, the subnet's gateway, is the Rally host's address
# on it (hypervisor.py wires it to the gateway chassis' br-ex): floating IPs are
# reached as on a cloud. Outside every other lab's range (tests/lab/addressing.py),
# so the cloud lab runs beside them.
PUBLIC_NAME = "rmdc-public"
ROUTER_NAME = "rmdc-router"
PUBLIC_CIDR = "203.0.113.64/28"
PUBLIC_GATEWAY = "203.0.113.67"
PUBLIC_POOL = ("203.0.113.68", "203.0.113.78")
SERVICE_TYPES = {  # catalog type -> (name, port attribute, path)
    "compute": ("nova", "nova", "/v2.1"),
    "placement": ("placement", "placement", ""),
    "image": ("glance", "glance", ""),
    "network": ("neutron", "neutron", ""),
    # Cinder's API alone, for the scenarios that need it in the catalog
    # (VMTasks.boot_runcommand_delete) and Rally's cleanup of volumes: no volume
    # service, so no volume is ever created. Keystone fills in the project.
    "block-storage": ("cinder", "cinder", "/v3/%(project_id)s"),
}


def _write_ini(path: Path, sections: dict[str, dict[str, object]]) -> None:
    parser = configparser.RawConfigParser()
    parser.optionxform = str
    for section, options in sections.items():
        if section != "DEFAULT":
            parser.add_section(section)
        for key, value in options.items():
            if isinstance(value, bool):
                value = "true" if value else "false"
            parser.set(section, key, str(value))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as out:
        parser.write(out)


def _fernet_repo(path: Path) -> None:
    """A key repository as `keystone-manage fernet_setup` makes it (keys 0 and 1)."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    for index in ("0", "1"):
        key = path / index
        if not key.exists():
            key.write_bytes(base64.urlsafe_b64encode(os.urandom(32)))
            key.chmod(0o600)


def http(method: str, url: str, body: object = None, token: str | None = None,
         headers: dict[str, str] | None = None, data: bytes | None = None,
         timeout: float = 60) -> tuple[int, dict, object]:
    """One request; (status, headers, parsed JSON body or None)."""
    hdrs = {"Accept": "application/json"}
    if body is not None:
        data = json.dumps(body).encode()
        hdrs["Content-Type"] = "application/json"
    if token:
        hdrs["X-Auth-Token"] = token
    hdrs.update(headers or {})
    request = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
            status, rhdrs = response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        raw, status, rhdrs = error.read(), error.code, dict(error.headers)
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = None
    return status, rhdrs, parsed


def admin_token(auth_url: str) -> tuple[str, dict]:
    """A token of the lab's admin, scoped to its project; (token, its body)."""
    status, headers, body = http("POST", auth_url + "/auth/tokens", {
        "auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"name": "Default"},
            "password": config.ADMIN_PASSWORD}}},
            "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}})
    if status != 201:
        raise RuntimeError(f"keystone token: HTTP {status} {body}")
    return headers["X-Subject-Token"], body["token"]


def public_endpoints(token_body: dict) -> dict[str, str]:
    """Service type -> public URL, from a token's catalog."""
    return {s["type"]: next(e["url"] for e in s["endpoints"] if e["interface"] == "public")
            for s in token_body["catalog"]}


def leftovers(auth_url: str) -> dict[str, list[str]]:
    """What a task's users left in the cloud, by kind (empty when Rally's cleanup
    removed everything): servers in any project, floating IPs, VM ports, and
    Rally's own projects and users. The endpoints come from the catalog."""
    token, body = admin_token(auth_url)
    catalog = public_endpoints(body)

    def listed(url: str, key: str) -> list[dict]:
        status, _, answer = http("GET", url, token=token)
        if status != 200:
            raise RuntimeError(f"GET {url}: HTTP {status} {answer}")
        return answer[key]
    nova, neutron = catalog["compute"], catalog["network"].rstrip("/") + "/v2.0"
    found = {
        "servers": [s["id"] for s in listed(nova + "/servers?all_tenants=1", "servers")],
        "floating_ips": [f["floating_ip_address"] for f in listed(
            neutron + "/floatingips", "floatingips")],
        "vm_ports": [p["id"] for p in listed(neutron + "/ports", "ports")
                     if p["device_owner"].startswith("compute:")],
        # Rally's users context names what it creates after the task (c_rally_...,
        # s_rally_...); the lab's own are admin and service.
        "projects": [p["name"] for p in listed(auth_url + "/projects", "projects")
                     if "rally" in p["name"]],
        "users": [u["name"] for u in listed(auth_url + "/users", "users")
                  if "rally" in u["name"]],
    }
    return {kind: names for kind, names in found.items() if names}


def _answers(url: str) -> bool:
    try:
        http("GET", url, timeout=2)
        return True
    except OSError:
        return False


class OpenStack:
    def __init__(self, state_dir: Path, ports: config.Ports, db: MariaDB,
                 rabbit: RabbitMQ, ovn: Central):
        self.state = state_dir
        self.ports = ports
        self.db = db
        self.rabbit = rabbit
        self.ovn = ovn
        self.etc = state_dir / "etc"
        self.tmp = state_dir / "tmp"

    # --- URLs and shared config ------------------------------------------------
    def url(self, service: str) -> str:
        return f"http://{config.HOST}:{getattr(self.ports, service)}"

    @property
    def auth_url(self) -> str:
        return self.url("keystone") + "/v3"

    def _auth(self, **extra) -> dict[str, object]:
        return {"auth_type": "password", "auth_url": self.auth_url,
                "username": "admin", "password": config.ADMIN_PASSWORD,
                "project_name": "admin", "user_domain_name": "Default",
                "project_domain_name": "Default", "region_name": config.REGION,
                **extra}

    def _authtoken(self) -> dict[str, object]:
        return {"www_authenticate_uri": self.auth_url, **self._auth()}

    def _common(self, service: str) -> dict[str, object]:
        return {"debug": False, "use_stderr": True,
                "state_path": self.state / service,
                "transport_url": self.rabbit.transport_url}

    # --- config files ------------------------------------------------------------
    def write_configs(self) -> None:
        venv_etc = config.VENV / "etc"
        self.tmp.mkdir(parents=True, exist_ok=True)
        # Keystone
        ks = self.state / "keystone"
        _fernet_repo(ks / "fernet-keys")
        _fernet_repo(ks / "credential-keys")
        _write_ini(self.etc / "keystone" / "keystone.conf", {
            "DEFAULT": {"debug": False, "use_stderr": True},
            "database": {"connection": self.db.url("keystone")},
            "token": {"provider": "fernet"},
            "fernet_tokens": {"key_repository": ks / "fernet-keys"},
            "fernet_receipts": {"key_repository": ks / "fernet-keys"},
            "credential": {"key_repository": ks / "credential-keys"},
            "cache": {"enabled": True, "backend": "dogpile.cache.memory"},
            # Rally issues a token per client object: keep bcrypt cheap (4 rounds,
            # its minimum, instead of 12: about 0.4 s less per token here).
            "identity": {"password_hash_rounds": 4},
        })
        # Placement
        _write_ini(self.etc / "placement" / "placement.conf", {
            "DEFAULT": {"debug": False, "use_stderr": True},
            "placement_database": {"connection": self.db.url("placement")},
            "api": {"auth_strategy": "keystone"},
            "keystone_authtoken": self._authtoken(),
        })
        # Glance
        gl = self.state / "glance"
        (self.etc / "glance").mkdir(parents=True, exist_ok=True)
        _write_ini(self.etc / "glance" / "glance-api.conf", {
            "DEFAULT": {"debug": False, "use_stderr": True,
                        "enabled_backends": "fs:file",
                        "worker_self_reference_url": self.url("glance")},
            "database": {"connection": self.db.url("glance")},
            "keystone_authtoken": self._authtoken(),
            "paste_deploy": {"flavor": "keystone",
                             "config_file": venv_etc / "glance" / "glance-api-paste.ini"},
            "glance_store": {"default_backend": "fs"},
            "fs": {"filesystem_store_datadir": gl / "images"},
            "os_glance_staging_store": {"filesystem_store_datadir": gl / "staging"},
            "os_glance_tasks_store": {"filesystem_store_datadir": gl / "tasks"},
            "oslo_concurrency": {"lock_path": gl / "lock"},
        })
        # Cinder: its API (lists volumes, snapshots, backups) and nothing else.
        _write_ini(self.etc / "cinder" / "cinder.conf", {
            "DEFAULT": {**self._common("cinder"), "auth_strategy": "keystone",
                        "api_paste_config": venv_etc / "cinder" / "api-paste.ini"},
            "database": {"connection": self.db.url("cinder")},
            "keystone_authtoken": self._authtoken(),
            "oslo_concurrency": {"lock_path": self.state / "cinder" / "lock"},
        })
        # Nova: one file for all, one more per compute host
        nova_etc = self.etc / "nova"
        nova_etc.mkdir(parents=True, exist_ok=True)
        shutil.copy(venv_etc / "nova" / "api-paste.ini", nova_etc / "api-paste.ini")
        nova = {
            "DEFAULT": {**self._common("nova"), "my_ip": config.HOST,
                        # periodic tasks (the scheduler's host discovery) start at
                        # once, not after a random delay of up to 60 s
                        "periodic_fuzzy_delay": 0,
                        "compute_driver": "rmdc_lab.LabDriver",
                        # spawn waits for Neutron's network-vif-plugged (OVN's
                        # claim of the port), as with the libvirt driver
                        "vif_plugging_is_fatal": True, "vif_plugging_timeout": 60},
            "api": {"auth_strategy": "keystone"},
            "wsgi": {"api_paste_config": nova_etc / "api-paste.ini"},
            "oslo_policy": {"policy_file": nova_etc / "policy.yaml"},
            "api_database": {"connection": self.db.url("nova_api")},
            "database": {"connection": self.db.url("nova")},
            "keystone_authtoken": self._authtoken(),
            "placement": self._auth(valid_interfaces="public"),
            # Nova's metadata API trusts the instance headers the metadata agent
            # signs with the shared secret.
            "neutron": self._auth(valid_interfaces="public", service_metadata_proxy=True,
                                  metadata_proxy_shared_secret=SHARED_SECRET),
            # Nova passes a service token beside the user's (as devstack sets it up):
            # Neutron lets only a token with the service role delete a compute port.
            "service_user": self._auth(send_service_user_token=True),
            "glance": {"valid_interfaces": "public", "region_name": config.REGION},
            "scheduler": {"workers": 1, "discover_hosts_in_cells_interval": 1},
            "conductor": {"workers": 1},
            "compute": {"live_migration_wait_for_vif_plug": True},
            "oslo_concurrency": {"lock_path": self.state / "nova" / "lock"},
            "os_vif_ovs": {"ovsdb_connection": ""},
            "vnc": {"enabled": False},
            "cinder": {"os_region_name": config.REGION},
        }
        _write_ini(nova_etc / "nova.conf", nova)
        # A task may place its servers on a host (availability_zone "nova:HOST"),
        # as an operator's policy may let its test projects: tests that need a
        # migration's direction ask for it.
        (nova_etc / "policy.yaml").write_text(
            '"os_compute_api:servers:create:forced_host": ""\n')
        # Computes get no database (nova-compute refuses DB access and says so).
        _write_ini(nova_etc / "nova-cpu.conf",
                   {k: v for k, v in nova.items() if k not in ("database", "api_database")})
        for host in config.COMPUTE_HOSTS:
            state = self.state / "nova" / host
            (state / "instances").mkdir(parents=True, exist_ok=True)
            # A stable node identity: Nova reads <state_path>/compute_id.
            (state / "compute_id").write_text(config.node_uuid(host) + "\n")
            _write_ini(nova_etc / f"{host}.conf", {
                "DEFAULT": {"host": host, "state_path": state, "debug": True,
                            "instances_path": state / "instances"},
                "oslo_concurrency": {"lock_path": state / "lock"},
                "rmdc_lab": {"hypervisor": self.state / "hypervisor.sock"},
            })
        # Neutron: ML2 with the OVN mechanism driver, no agents
        nt = self.state / "neutron"
        _write_ini(self.etc / "neutron" / "neutron.conf", {
            "DEFAULT": {**self._common("neutron"), "core_plugin": "ml2",
                        "service_plugins": "ovn-router", "auth_strategy": "keystone",
                        "api_paste_config": venv_etc / "neutron" / "api-paste.ini",
                        "rpc_workers": 0, "rpc_state_report_workers": 0,
                        "api_workers": 1, "allow_overlapping_ips": True,
                        "notify_nova_on_port_status_changes": True,
                        "notify_nova_on_port_data_changes": True},
            "database": {"connection": self.db.url("neutron")},
            "keystone_authtoken": self._authtoken(),
            "nova": self._auth(),
            "oslo_concurrency": {"lock_path": nt / "lock"},
        })
        _write_ini(self.etc / "neutron" / "ml2_conf.ini", {
            "ml2": {"type_drivers": "local,flat,geneve",
                    "tenant_network_types": "geneve", "mechanism_drivers": "ovn",
                    "extension_drivers": "port_security", "overlay_ip_version": 4},
            "ml2_type_geneve": {"vni_ranges": "1:65536", "max_header_size": 38},
            "ml2_type_flat": {"flat_networks": "public"},
            "ovn": {"ovn_nb_connection": self.ovn.nb, "ovn_sb_connection": self.ovn.sb,
                    "ovn_l3_scheduler": "leastloaded",
                    "ovn_metadata_enabled": True},
            "securitygroup": {"enable_security_group": True},
        })

    # --- environment of each kind of process -----------------------------------
    def env(self) -> dict[str, str]:
        e = self.etc
        return {
            "PATH": f"{config.VENV / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "TMPDIR": str(self.tmp),  # neutron keeps per-server files there
            "PYTHONDONTWRITEBYTECODE": "1",
            "OS_KEYSTONE_CONFIG_DIR": str(e / "keystone"),
            "OS_PLACEMENT_CONFIG_DIR": str(e / "placement"),
            "OS_NOVA_CONFIG_DIR": str(e / "nova"),
            "OS_GLANCE_CONFIG_DIR": str(e / "glance"),
            "OS_NEUTRON_CONFIG_DIR": str(e / "neutron"),
            "OS_NEUTRON_CONFIG_FILES": "neutron.conf;ml2_conf.ini",
            # Neutron's hash ring sizes itself by the API worker count.
            "ASGI_WORKERS": "1",
        }

    def _conf_args(self, service: str) -> list[str]:
        e = self.etc
        files = {"keystone": [e / "keystone" / "keystone.conf"],
                 "placement": [e / "placement" / "placement.conf"],
                 "nova": [e / "nova" / "nova.conf"],
                 "glance": [e / "glance" / "glance-api.conf"],
                 "cinder": [e / "cinder" / "cinder.conf"],
                 "neutron": [e / "neutron" / "neutron.conf",
                             e / "neutron" / "ml2_conf.ini"]}[service]
        return [arg for f in files for arg in ("--config-file", str(f))]

    def manage(self, argv: list[str], service: str, timeout: float = 600) -> None:
        run([config.venv_bin(argv[0]), *self._conf_args(service), *argv[1:]],
            env=self.env(), timeout=timeout, cwd=self.state)

    # --- databases ---------------------------------------------------------------
    def build_databases(self, sup: Supervisor) -> None:
        """Schemas, Keystone's admin with the service role and the whole catalog,
        Nova's cells: what the snapshot keeps (MariaDB must run). The catalog must
        be complete before any service starts: a Nova service that looks for
        Placement in the catalog and does not find it disables its client for
        good ("Service 'placement' is disabled")."""
        self.db.create_databases()
        # Each service's schema is its own database: the five chains run side by
        # side (one after the other they took two minutes here).
        chains = {
            "keystone": [["keystone-manage", "db_sync"],
                         ["keystone-manage", "bootstrap",
                          "--bootstrap-password", config.ADMIN_PASSWORD,
                          "--bootstrap-admin-url", self.auth_url,
                          "--bootstrap-internal-url", self.auth_url,
                          "--bootstrap-public-url", self.auth_url,
                          "--bootstrap-region-id", config.REGION]],
            "placement": [["placement-manage", "db", "sync"]],
            "nova": [["nova-manage", "api_db", "sync"],
                     ["nova-manage", "cell_v2", "map_cell0", "--database_connection",
                      self.db.url("nova_cell0")],
                     ["nova-manage", "cell_v2", "create_cell", "--name", "cell1"],
                     ["nova-manage", "db", "sync"]],
            "glance": [["glance-manage", "db_sync"]],
            "cinder": [["cinder-manage", "db", "sync"]],
            "neutron": [["neutron-db-manage", "upgrade", "heads"]],
        }

        def run_chain(service: str) -> None:
            for argv in chains[service]:
                self.manage(argv, service)
        with concurrent.futures.ThreadPoolExecutor(len(chains)) as pool:
            for done in [pool.submit(run_chain, service) for service in chains]:
                done.result()
        self._wsgi(sup, "keystone", "keystone", self.ports.keystone)
        try:
            self._wait_http(sup, "keystone", self.url("keystone") + "/", 120)
            token, body = self.token()
            self.ensure_catalog(token, body)
        finally:
            sup.stop("keystone")

    def fix_snapshot_rows(self) -> None:
        """A restored snapshot names the database, broker and Keystone port of the
        run that built it: point Nova's cell mappings and the identity endpoints
        (the only ones in the snapshot) at this run's."""
        def q(value: str) -> str:
            return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
        self.db.sql(
            f"UPDATE nova_api.cell_mappings SET database_connection="
            f"{q(self.db.url('nova_cell0'))} WHERE name='cell0'; "
            f"UPDATE nova_api.cell_mappings SET database_connection="
            f"{q(self.db.url('nova'))}, transport_url={q(self.rabbit.transport_url)} "
            f"WHERE name='cell1'; "
            "UPDATE keystone.endpoint e JOIN keystone.service s "
            "ON e.service_id = s.id SET e.url = CASE s.type "
            + "".join(f"WHEN {q(stype)} THEN {q(self.url(port) + path)} "
                      for stype, (_, port, path) in SERVICE_TYPES.items())
            + f"ELSE {q(self.auth_url)} END")

    # --- processes -----------------------------------------------------------------
    def _wsgi(self, sup: Supervisor, name: str, app: str, port: int,
              threads: int = 8, args: tuple[str, ...] = ()) -> None:
        sup.start(name, [config.venv_bin("python"), str(config.HERE / "wsgi_serve.py"),
                         app, str(port), str(self.state / f"{name}.pid"),
                         str(threads), *args],
                  env=self.env(), pidfile=self.state / f"{name}.pid")

    def start_apis(self, sup: Supervisor) -> None:
        self._wsgi(sup, "keystone", "keystone", self.ports.keystone, threads=16)
        self._wsgi(sup, "placement", "placement", self.ports.placement)
        self._wsgi(sup, "glance", "glance", self.ports.glance)
        self._wsgi(sup, "neutron-api", "neutron", self.ports.neutron)
        self._wsgi(sup, "nova-api", "nova-api", self.ports.nova)
        self._wsgi(sup, "nova-metadata", "nova-metadata", self.ports.metadata)
        self._wsgi(sup, "cinder-api", "cinder-api", self.ports.cinder, threads=4,
                   args=tuple(self._conf_args("cinder")))

    def wait_apis(self, sup: Supervisor, timeout: float = 120) -> None:
        for name, port in (("keystone", "keystone"), ("placement", "placement"),
                           ("glance", "glance"), ("neutron-api", "neutron"),
                           ("nova-api", "nova"), ("cinder-api", "cinder")):
            self._wait_http(sup, name, self.url(port) + "/", timeout)

    def _wait_http(self, sup: Supervisor, name: str, url: str, timeout: float) -> None:
        log = Path(sup.daemons[name].log)
        pid = sup.daemons[name].pid
        wait_for(name, lambda: _answers(url) or _dead(pid, name, log), timeout,
                 interval=0.2, log=log)
        sup.ready(name)

    def start_workers(self, sup: Supervisor) -> None:
        """Nova's RPC side (needs RabbitMQ)."""
        env = self.env()
        nova_conf = self._conf_args("nova")
        for name in ("nova-conductor", "nova-scheduler"):
            sup.start(name, [config.venv_bin(name), *nova_conf], env=env)

    def start_neutron_workers(self, sup: Supervisor) -> None:
        """Neutron's periodic and OVN maintenance workers. Nothing on the way to a
        booted server needs them (neutron-api keeps its own OVN hash ring node
        alive), so they start last, off the start-up's critical path: the two
        cores are the limit there."""
        neutron_conf = self._conf_args("neutron")
        for name in ("neutron-periodic-workers", "neutron-ovn-maintenance-worker"):
            sup.start(name, [config.venv_bin(name), *neutron_conf], env=self.env())

    def start_computes(self, sup: Supervisor) -> None:
        """After the conductor: a compute that pings a conductor whose queue does
        not exist yet waits 10 s for the reply that never comes."""
        cpu_conf = ["--config-file", str(self.etc / "nova" / "nova-cpu.conf")]

        def conductor_up() -> bool:
            _dead(sup.daemons["nova-conductor"].pid, "nova-conductor",
                  Path(sup.daemons["nova-conductor"].log))
            return "nova-conductor" in self.db.sql(
                "SELECT `binary` FROM nova.services WHERE `binary`='nova-conductor'")
        wait_for("nova-conductor", conductor_up, 120, interval=0.2)
        sup.ready("nova-conductor")
        for host in config.COMPUTE_HOSTS:
            sup.start(f"nova-compute-{host}", [
                config.venv_bin("python"), str(config.HERE / "compute_main.py"),
                *cpu_conf, "--config-file", str(self.etc / "nova" / f"{host}.conf")],
                env=self.env())

    def wait_computes(self, sup: Supervisor, timeout: float = 120) -> None:
        """Both computes reported their node and are mapped to cell1 (the
        scheduler's periodic discovery)."""
        hosts = set(config.COMPUTE_HOSTS)

        def mapped() -> bool:
            for host in hosts:
                name = f"nova-compute-{host}"
                _dead(sup.daemons[name].pid, name, Path(sup.daemons[name].log))
            out = self.db.sql("SELECT host FROM nova_api.host_mappings")
            return hosts <= set(out.split())
        wait_for("nova-compute host mappings", mapped, timeout, interval=0.3)
        for host in hosts:
            sup.ready(f"nova-compute-{host}")
        for name in ("nova-conductor", "nova-scheduler"):
            _dead(sup.daemons[name].pid, name, Path(sup.daemons[name].log))

    # --- API objects --------------------------------------------------------------
    def token(self) -> tuple[str, dict]:
        return admin_token(self.auth_url)

    def ensure_catalog(self, token: str, body: dict) -> None:
        """The service role for admin (every service's user here), the catalog."""
        ks = self.auth_url
        # keystonemiddleware requires a service token (nova sends one with each
        # call to Neutron) to carry a role of service_token_roles, i.e. "service":
        # the role real deployments give their service users.
        _, _, roles = http("GET", ks + "/roles?name=service", token=token)
        role = roles["roles"][0]["id"]
        status, _, _ = http("PUT", ks + f"/projects/{body['project']['id']}/users/"
                            f"{body['user']['id']}/roles/{role}", token=token)
        if status not in (200, 204):
            raise RuntimeError(f"service role: HTTP {status}")
        _, _, services = http("GET", ks + "/services", token=token)
        have = {s["type"]: s["id"] for s in services["services"]}
        _, _, endpoints = http("GET", ks + "/endpoints", token=token)
        for stype, (name, port, path) in SERVICE_TYPES.items():
            if stype not in have:
                _, _, body = http("POST", ks + "/services", {"service": {
                    "type": stype, "name": name, "enabled": True}}, token=token)
                have[stype] = body["service"]["id"]
            url = self.url(port) + path
            present = {e["interface"] for e in endpoints["endpoints"]
                       if e["service_id"] == have[stype]}
            for interface in ("public", "internal", "admin"):
                if interface not in present:
                    http("POST", ks + "/endpoints", {"endpoint": {
                        "service_id": have[stype], "interface": interface, "url": url,
                        "region_id": config.REGION, "enabled": True}}, token=token)

    def ensure_resources(self, token: str, project_id: str) -> dict[str, str]:
        """The flavor, image and shared network a task boots with; their ids."""
        nova, glance, neutron = (self.url("nova") + "/v2.1", self.url("glance"),
                                 self.url("neutron"))
        ids = {}
        _, _, flavors = http("GET", nova + "/flavors", token=token)
        found = [f for f in flavors["flavors"] if f["name"] == FLAVOR["name"]]
        if found:
            ids["flavor"] = found[0]["id"]
        else:
            status, _, body = http("POST", nova + "/flavors", {"flavor": FLAVOR},
                                   token=token)
            if status != 200:
                raise RuntimeError(f"flavor: HTTP {status} {body}")
            ids["flavor"] = body["flavor"]["id"]
        _, _, images = http("GET", glance + f"/v2/images?name={IMAGE_NAME}", token=token)
        if images["images"]:
            ids["image"] = images["images"][0]["id"]
        else:
            status, _, body = http("POST", glance + "/v2/images", {
                "name": IMAGE_NAME, "disk_format": "raw", "container_format": "bare",
                "visibility": "public"}, token=token)
            if status != 201:
                raise RuntimeError(f"image: HTTP {status} {body}")
            ids["image"] = body["id"]
            status, _, body = http(
                "PUT", glance + f"/v2/images/{ids['image']}/file",
                data=b"\0" * 65536, token=token,
                headers={"Content-Type": "application/octet-stream"})
            if status != 204:
                raise RuntimeError(f"image upload: HTTP {status} {body}")
        _, _, nets = http("GET", neutron + f"/v2.0/networks?name={NETWORK_NAME}",
                          token=token)
        if nets["networks"]:
            ids["network"] = nets["networks"][0]["id"]
        else:
            status, _, body = http("POST", neutron + "/v2.0/networks", {"network": {
                "name": NETWORK_NAME, "shared": True}}, token=token)
            if status != 201:
                raise RuntimeError(f"network: HTTP {status} {body}")
            ids["network"] = body["network"]["id"]
            status, _, body = http("POST", neutron + "/v2.0/subnets", {"subnet": {
                "name": NETWORK_NAME, "network_id": ids["network"], "ip_version": 4,
                # DHCP on: Neutron then gives the network's metadata port (OVN's
                # localport) an address, the guests' way to 169.254.169.254.
                "cidr": SUBNET_CIDR, "enable_dhcp": True,
                "allocation_pools": [{"start": GUEST_POOL[0], "end": GUEST_POOL[1]}]}},
                token=token)
            if status != 201:
                raise RuntimeError(f"subnet: HTTP {status} {body}")
        _, _, nets = http("GET", neutron + f"/v2.0/networks?name={PUBLIC_NAME}",
                          token=token)
        if nets["networks"]:
            ids["public"] = nets["networks"][0]["id"]
        else:
            status, _, body = http("POST", neutron + "/v2.0/networks", {"network": {
                "name": PUBLIC_NAME, "router:external": True,
                "provider:network_type": "flat",
                "provider:physical_network": "public"}}, token=token)
            if status != 201:
                raise RuntimeError(f"external network: HTTP {status} {body}")
            ids["public"] = body["network"]["id"]
            status, _, body = http("POST", neutron + "/v2.0/subnets", {"subnet": {
                "name": PUBLIC_NAME, "network_id": ids["public"], "ip_version": 4,
                "cidr": PUBLIC_CIDR, "gateway_ip": PUBLIC_GATEWAY,
                "allocation_pools": [{"start": PUBLIC_POOL[0], "end": PUBLIC_POOL[1]}],
                "enable_dhcp": False}}, token=token)
            if status != 201:
                raise RuntimeError(f"external subnet: HTTP {status} {body}")
        ids["router"] = self._ensure_router(token, ids)
        return ids

    def _ensure_router(self, token: str, ids: dict[str, str]) -> str:
        """The tenant network's router, its gateway on the external network: what
        floating IPs are NATed by (on the gateway chassis, config.GATEWAY_HOST)."""
        neutron = self.url("neutron") + "/v2.0"
        _, _, routers = http("GET", neutron + f"/routers?name={ROUTER_NAME}", token=token)
        if routers["routers"]:
            return routers["routers"][0]["id"]
        status, _, body = http("POST", neutron + "/routers", {"router": {
            "name": ROUTER_NAME,
            "external_gateway_info": {"network_id": ids["public"]}}}, token=token)
        if status != 201:
            raise RuntimeError(f"router: HTTP {status} {body}")
        router = body["router"]["id"]
        _, _, subnets = http("GET", neutron + f"/subnets?network_id={ids['network']}",
                             token=token)
        status, _, body = http("PUT", neutron + f"/routers/{router}/add_router_interface",
                               {"subnet_id": subnets["subnets"][0]["id"]}, token=token)
        if status != 200:
            raise RuntimeError(f"router interface: HTTP {status} {body}")
        return router

    def add_link_local_subnet(self, token: str, network_id: str) -> str:
        """An IPv6 subnet fe80::/64 with SLAAC on the network, its id: every port gets
        the link-local address its MAC gives (the one a guest's kernel already has),
        the network's metadata port included, so each host's metadata agent serves
        fe80::a9fe:a9fe too. Link-local only: this workplace gives the lab no other
        IPv6 prefix; nothing routes it, and no router sends advertisements."""
        status, _, body = http("POST", self.url("neutron") + "/v2.0/subnets", {"subnet": {
            "name": "lab-link-local", "network_id": network_id, "ip_version": 6,
            "cidr": LINK_LOCAL_CIDR, "ipv6_address_mode": "slaac", "gateway_ip": None}},
            token=token)
        if status != 201:
            raise RuntimeError(f"link-local subnet: HTTP {status} {body}")
        return body["subnet"]["id"]

    def delete_subnet(self, token: str, subnet_id: str) -> None:
        status, _, body = http("DELETE", self.url("neutron") + f"/v2.0/subnets/{subnet_id}",
                               token=token)
        if status not in (204, 404):
            raise RuntimeError(f"subnet {subnet_id}: HTTP {status} {body}")

    def lab_ports(self, token: str, network_id: str) -> dict[str, dict[str, str]]:
        """The Rally host's Neutron port on the tenant network (port security off),
        bound to config.RALLY_PORT_HOST, where the hypervisor plugs it in."""
        made = {}
        for role, address in (("rally_port", RALLY_HOST_IP),):
            status, _, body = http("POST", self.url("neutron") + "/v2.0/ports", {"port": {
                "name": f"rmdc-{role.replace('_', '-')}", "network_id": network_id,
                "fixed_ips": [{"ip_address": address}], "port_security_enabled": False,
                "device_owner": "rmdc:lab", "binding:host_id": config.RALLY_PORT_HOST}},
                token=token)
            if status != 201:
                raise RuntimeError(f"{role}: HTTP {status} {body}")
            made[role] = {"port_id": body["port"]["id"], "mac": body["port"]["mac_address"],
                          "ip": address}
        return made

    def metadata_port_ip(self, token: str, network_id: str) -> str:
        """The address of the network's metadata port (device_owner
        network:distributed), which Neutron makes with the subnet."""
        def found() -> str | None:
            _, _, body = http("GET", self.url("neutron") + "/v2.0/ports?network_id="
                              f"{network_id}&device_owner=network:distributed", token=token)
            ips = [ip["ip_address"] for port in body["ports"] for ip in port["fixed_ips"]]
            return ips[0] if ips else None
        return wait_for("the network's metadata port", found, 30, interval=0.5)

    def write_metadata_agent_configs(self, chassis: list,
                                     venv: Path = config.VENV) -> None:
        for host in chassis:
            _write_ini(metadata_path.agent_ini(host.dir), metadata_path.agent_config(
                host, self.ovn, self.ports.metadata, venv))

    def start_metadata_agents(self, sup: Supervisor, chassis: list,
                              venv: Path = config.VENV) -> None:
        """One neutron-ovn-metadata-agent per compute host (metadata_path.py), all
        started before waiting for each to register."""
        for host in chassis:
            metadata_path.start_holder(sup, host)
        procs = [metadata_path.start_agent(sup, host, self.env(), venv)
                 for host in chassis]
        for host, proc in zip(chassis, procs):
            metadata_path.wait_for_agent(sup, host, proc)

    def replace_metadata_agents(self, sup: Supervisor, chassis: list, venv: Path,
                                networks: list[str]) -> None:
        """Stop each host's agent and its namespace holder (its haproxies with them:
        their ovnmeta- namespaces live in the holder's private /run/netns and go
        with it) and start the one from `venv` in its place, from an empty metadata
        state, as on a host whose Neutron was just upgraded or downgraded."""
        for host in chassis:
            sup.stop(metadata_path.agent_name(host))
            sup.stop(metadata_path.holder_name(host))
            metadata_path.stop_haproxies(host.dir)
            shutil.rmtree(metadata_path.agent_dir(host.dir) / "external",
                          ignore_errors=True)
            # The agent's veths went with their namespaces, their br-int ports
            # stayed: the next agent would re-create each veth under the same name,
            # keep the port (--may-exist), and the userspace datapath would not
            # reopen it: no metadata for that network on this host for about 30 s.
            for network in networks:
                host.vsctl("--if-exists", "del-port", "br-int",
                           metadata_path.localport_link(network))
            # The new agent's registration is what says it is up.
            host.forget_metadata_agent()
        self.write_metadata_agent_configs(chassis, venv)
        self.start_metadata_agents(sup, chassis, venv)

    def warm_metadata_agents(self, token: str, network_id: str, chassis: list,
                             serving: Callable[[Path], bool] | None = None) -> None:
        """Have each host's agent serve the network once, then clean up where no lab
        port keeps it: an agent sets up its first namespace slowly (it starts its
        privsep daemons then: 8-11 s here, on top of a migration's outage), which a
        cloud's hosts paid long ago. The port is a throwaway one, an OVS internal
        port on the host's br-int. `serving(chassis_dir)`: what counts as the host
        serving the network (default: a haproxy of its agent runs); a port bound
        to the host is what makes its agent provision the network again."""
        neutron = self.url("neutron") + "/v2.0"
        serving = serving or (lambda chassis_dir: bool(
            metadata_path.running_haproxies(chassis_dir)))

        def warm(host) -> None:
            status, _, body = http("POST", neutron + "/ports", {"port": {
                "name": f"rmdc-warm-up-{host.host}", "network_id": network_id,
                "device_owner": "rmdc:warm-up", "binding:host_id": host.host,
                "port_security_enabled": False}}, token=token)
            if status != 201:
                raise RuntimeError(f"warm-up port: HTTP {status} {body}")
            port = body["port"]
            link = "warm" + port["id"][:10]
            try:
                host.vsctl("add-port", "br-int", link, "--", "set", "Interface", link,
                           "type=internal", f"external_ids:iface-id={port['id']}",
                           f"external_ids:attached-mac={port['mac_address']}",
                           "external_ids:iface-status=active")
                wait_for(f"the metadata agent of {host.host} serving the network",
                         lambda: serving(host.dir), 90, interval=0.2)
            finally:
                host.vsctl("--if-exists", "del-port", "br-int", link)
                http("DELETE", neutron + f"/ports/{port['id']}", token=token)
            if host.host != config.RALLY_PORT_HOST:
                wait_for(f"the metadata agent of {host.host} cleaning up",
                         lambda: not metadata_path.running_haproxies(host.dir), 60,
                         interval=0.2)

        with concurrent.futures.ThreadPoolExecutor(len(chassis)) as pool:
            for done in [pool.submit(warm, host) for host in chassis]:
                done.result()

    def start_hypervisor(self, sup: Supervisor, token: str, ids: dict[str, str]) -> None:
        """The lab's hypervisor (hypervisor.py): the guests behind the virt driver."""
        network_id = ids["network"]
        _, _, body = http("GET", self.url("neutron") + f"/v2.0/networks/{network_id}",
                          token=token)
        network = self.state / "hypervisor-network.json"
        network.write_text(json.dumps({
            "network_id": network_id,
            "prefix_len": int(SUBNET_CIDR.split("/")[1]), "mtu": body["network"]["mtu"],
            "metadata_gateway": self.metadata_port_ip(token, network_id),
            "gateway": str(ipaddress.ip_network(SUBNET_CIDR)[1]),
            "public": {"address": PUBLIC_GATEWAY,
                       "prefix_len": int(PUBLIC_CIDR.split("/")[1])},
            # For the identity faults (path_faults.py): the port's device_id, and
            # the decoy servers of wrong_instance (decoys.py).
            "neutron_url": self.url("neutron"), "auth_url": self.auth_url,
            "nova_url": self.url("nova"),
            "decoy": {"image": ids["image"], "flavor": ids["flavor"]},
            **self.lab_ports(token, network_id)}))
        proc = sup.start("hypervisor", [
            sys.executable, "-m", "tests.lab.cloud.hypervisor",
            "--state-dir", str(self.state), "--network", str(network),
            "--metadata-api-port", str(self.ports.metadata)],
            env={"PYTHONPATH": str(config.REPO)})
        ready = self.state / "hypervisor" / "ready"
        wait_for("hypervisor", ready.exists, 60, proc=proc,
                 log=Path(sup.daemons["hypervisor"].log))
        sup.ready("hypervisor")


def _dead(pid: int, name: str, log: Path) -> bool:
    from tests.lab.cloud.procs import ProcError, _tail, alive
    if not alive(pid):
        raise ProcError(f"{name} exited" + _tail(log, 25))
    return False


def timed(label: str, timings: dict[str, float]):
    """A context manager adding the seconds spent under `label` to `timings`."""
    class _Timer:
        def __enter__(self):
            self.start = time.monotonic()

        def __exit__(self, *exc):
            timings[label] = round(timings.get(label, 0) + time.monotonic()
                                   - self.start, 2)
    return _Timer()
