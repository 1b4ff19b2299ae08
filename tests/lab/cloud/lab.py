"""The cloud lab as one object: up, down, status, memory."""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import shutil
import time
from pathlib import Path

from tests.lab.addressing import METADATA_IPV6
from tests.lab.cloud import config, metadata_path
from tests.lab.cloud.infra import MariaDB, RabbitMQ
from tests.lab.cloud.openstack import DB_RECIPE, FLAVOR, RALLY_HOST_IP, OpenStack, timed
from tests.lab.cloud.ovn import Central, Chassis, connect_underlay
from tests.lab.cloud.procs import ProcError, Supervisor, alive, run
from tests.lab.ledger import ResourceLedger

INFRA = ("mariadb", "epmd", "rabbitmq")


SERVICES = ("keystone", "openstack-placement", "glance", "nova", "neutron", "cinder")


def service_versions(venv: Path = config.VENV, services=SERVICES) -> dict[str, str]:
    """The installed versions of the services, as their venv reports them."""
    out = run([str(venv / "bin" / "python"), "-c",
               "import importlib.metadata as m, sys\n"
               "for name in sys.argv[1:]: print(name, m.version(name))", *services])
    return dict(line.split() for line in out.stdout.splitlines())


class Cloud:
    def __init__(self, state_dir: Path = config.DEFAULT_STATE_DIR,
                 port_base: int = config.PORT_BASE):
        self.state = Path(state_dir)
        self.ports = config.Ports.from_base(port_base)
        self.info_file = self.state / "cloud.json"
        # Where down() copies the services' logs before removing the state.
        self.keep_logs: Path | None = None

    def _parts(self, sup: Supervisor | None = None):
        db = MariaDB(self.state, self.ports)
        rabbit = RabbitMQ(self.state, self.ports)
        central = Central(self.state)
        chassis = [Chassis(self.state, host, i + 1, central)
                   for i, host in enumerate(config.COMPUTE_HOSTS)]
        cloud = OpenStack(self.state, self.ports, db, rabbit, central)
        return db, rabbit, central, chassis, cloud

    def info(self) -> dict:
        return json.loads(self.info_file.read_text())

    # --- up ------------------------------------------------------------------------
    def up(self) -> dict:
        """Start everything; the lab's facts (auth, ids, timings) as a dict, also
        in <state>/cloud.json. On failure, everything started is stopped again."""
        if (self.state / "daemons.json").exists() and Supervisor(self.state).running():
            raise ProcError(f"a cloud lab already runs from {self.state}")
        if busy := self.ports.busy():
            raise ProcError(f"ports in use on {config.HOST}: {', '.join(busy)} "
                            "(set RMD_CLOUD_PORT_BASE)")
        if not (config.VENV / "bin" / "nova-manage").exists():
            raise ProcError(f"no services venv at {config.VENV}: run "
                            "tools/install-lab-cloud.sh")
        self._fresh_state()
        sup = Supervisor(self.state)
        try:
            return self._up(sup)
        except BaseException:
            self.down(remove_state=False)
            raise

    def _fresh_state(self) -> None:
        """An empty state directory: what a failed earlier run left (its OVN and OVS
        databases, Nova's instance records) would not match the restored MariaDB.
        Its logs are kept as log.prev."""
        if self.state.exists():
            for entry in self.state.iterdir():
                if entry.name == "log":
                    shutil.rmtree(self.state / "log.prev", ignore_errors=True)
                    entry.rename(self.state / "log.prev")
                elif entry.name != "log.prev":
                    if entry.is_dir():
                        shutil.rmtree(entry)
                    else:
                        entry.unlink()
        self.state.mkdir(parents=True, exist_ok=True)

    def _up(self, sup: Supervisor) -> dict:
        timings: dict[str, float] = {}
        start = time.monotonic()
        db, rabbit, central, chassis, cloud = self._parts(sup)
        cloud.write_configs()
        cloud.write_metadata_agent_configs(chassis)
        snapshot = config.CACHE / f"mariadb-{config.db_key(DB_RECIPE)}.tar"
        pool = concurrent.futures.ThreadPoolExecutor(2)
        rabbit_up = pool.submit(rabbit.start, sup)
        with timed("databases", timings):
            if snapshot.exists():
                db.restore(snapshot)
                db.start(sup)
                timings["databases_from"] = "snapshot"
            else:
                db.initialize()
                db.start(sup)
                cloud.build_databases(sup)
                sup.stop("mariadb")
                for old in config.CACHE.glob("mariadb-*.tar"):
                    old.unlink()  # snapshots of other pins or recipes
                db.snapshot(snapshot)
                db.start(sup)
                timings["databases_from"] = "built"
            cloud.fix_snapshot_rows()
        with timed("ovn", timings):
            central.start(sup)
            for host in chassis:
                host.start(sup)
            connect_underlay(*chassis)
        with timed("apis", timings):
            cloud.start_apis(sup)
            # The RPC workers start as soon as the broker answers, beside the APIs.
            rabbit_up.result()
            timings["rabbitmq"] = round(sup.daemons["rabbitmq"].ready_after, 2)
            cloud.start_workers(sup)
            cloud.wait_apis(sup)
        pool.shutdown()
        with timed("catalog", timings):
            token, body = cloud.token()
            cloud.ensure_catalog(token, body)
        with timed("computes", timings):
            cloud.start_computes(sup)
            cloud.wait_computes(sup)
        cloud.start_neutron_workers(sup)
        with timed("resources", timings):
            ids = cloud.ensure_resources(token, body["project"]["id"])
        with timed("metadata_agents", timings):
            cloud.start_metadata_agents(sup, chassis)
        with timed("hypervisor", timings):
            cloud.start_hypervisor(sup, token, ids)
        with timed("metadata_warm_up", timings):
            cloud.warm_metadata_agents(token, ids["network"], chassis)
        timings["total"] = round(time.monotonic() - start, 2)
        versions = service_versions()
        facts = {
            "auth_url": cloud.auth_url, "region": config.REGION,
            "admin": {"username": "admin", "password": config.ADMIN_PASSWORD,
                      "project_name": "admin", "user_domain_name": "Default",
                      "project_domain_name": "Default"},
            "flavor": {"name": FLAVOR["name"], "id": ids["flavor"]},
            "image": ids["image"], "network": ids["network"],
            "public_network": ids["public"], "rally_host_ip": RALLY_HOST_IP,
            "hosts": list(config.COMPUTE_HOSTS), "timings": timings,
            "versions": versions,
            "metadata_agent": {"release": "current", "neutron": versions["neutron"]},
            "ready_after": {n: d.ready_after for n, d in sup.daemons.items()},
        }
        self.info_file.write_text(json.dumps(facts, indent=1))
        return facts

    # --- down ----------------------------------------------------------------------
    def down(self, remove_state: bool = True) -> list[str]:
        """Stop everything this state directory records, remove its namespaces (and
        the state directory); what could not be removed, as a list."""
        if not self.state.exists():
            return []
        sup = Supervisor(self.state)
        db, rabbit, central, chassis, _ = self._parts(sup)
        ovs_names = {"ovn-nb", "ovn-sb", "ovn-northd"} | {
            f"{kind}-{h.host}" for h in chassis
            for kind in ("ovsdb", "vswitchd", "ovn-controller")}
        # The guests first, while OVS still runs: the hypervisor removes them on
        # SIGTERM; what a killed one left, its ledger names.
        if "hypervisor" in sup.daemons:
            sup.stop("hypervisor", timeout=60)
        ledger = self.state / "hypervisor" / "resources.json"
        if ledger.exists():
            left_by_hypervisor = ResourceLedger.load(ledger).release_all()
        else:
            left_by_hypervisor = []
        # The OpenStack services together: a throwaway lab needs no graceful stop
        # (one by one with oslo.service's graceful shutdown took 40 s).
        sup.stop_many([name for name in sup.daemons
                       if name not in ovs_names and name not in INFRA], timeout=3)
        for host in chassis:
            metadata_path.stop_haproxies(host.dir)
        for host in chassis:
            host.stop(sup)
        central.stop(sup)
        rabbit.stop(sup)
        sup.stop("mariadb", timeout=30)
        sup.stop_all()
        left = [f"{n} (PIDs {p})" for n, p in sup.running().items() if p]
        left += left_by_hypervisor
        for host in chassis:
            if os.path.exists(f"/run/netns/{host.netns}"):
                run(["ip", "netns", "delete", host.netns], check=False)
                if os.path.exists(f"/run/netns/{host.netns}"):
                    left.append(f"netns {host.netns}")
        if self.keep_logs is not None and (self.state / "log").exists():
            shutil.copytree(self.state / "log", self.keep_logs, dirs_exist_ok=True)
        if remove_state and not left:
            shutil.rmtree(self.state, ignore_errors=True)
        return left

    def use_metadata_agents(self, release: str) -> str:
        """Run the metadata agents of `release` (a key of config.AGENT_VENVS) on
        every compute host in place of the running ones; Neutron's version."""
        if release not in config.AGENT_VENVS:
            raise ValueError(f"metadata agent release {release!r}: one of "
                             f"{', '.join(config.AGENT_VENVS)}")
        facts = self.info()
        if facts["metadata_agent"]["release"] == release:
            return facts["metadata_agent"]["neutron"]
        venv = config.AGENT_VENVS[release]
        if not (venv / "bin" / "neutron-ovn-metadata-agent").exists():
            raise ProcError(f"no metadata agent at {venv}: run tools/install-lab-cloud.sh")
        sup = Supervisor(self.state)
        _, _, _, chassis, cloud = self._parts(sup)
        cloud.replace_metadata_agents(sup, chassis, venv, [facts["network"]])
        token, _ = cloud.token()
        cloud.warm_metadata_agents(token, facts["network"], chassis)
        version = service_versions(venv, ["neutron"])["neutron"]
        facts["metadata_agent"] = {"release": release, "neutron": version}
        self.info_file.write_text(json.dumps(facts, indent=1))
        return version

    @property
    def agent_restarts_file(self) -> Path:
        return self.state / "agent-restarts.jsonl"

    def restart_metadata_agent(self, host: str) -> dict:
        """Restart the metadata agent of compute host `host` (metadata_path.
        restart_agent); its ground truth, also appended to agent_restarts_file."""
        sup = Supervisor(self.state)
        _, _, _, chassis, cloud = self._parts(sup)
        hosts = {c.host: c for c in chassis}
        if host not in hosts:
            raise ValueError(f"host {host!r}: one of {', '.join(hosts)}")
        release = self.info()["metadata_agent"]["release"]
        window = metadata_path.restart_agent(sup, hosts[host], cloud.env(),
                                             config.AGENT_VENVS[release])
        with self.agent_restarts_file.open("a") as out:
            out.write(json.dumps(window) + "\n")
        return window

    def agent_restarts(self) -> list[dict]:
        """Every restart_metadata_agent's ground truth, in order."""
        if not self.agent_restarts_file.exists():
            return []
        return [json.loads(line) for line in
                self.agent_restarts_file.read_text().splitlines() if line]

    @contextlib.contextmanager
    def metadata_over_ipv6(self):
        """The lab's network dual-stack while the block runs: its link-local IPv6
        subnet (OpenStack.add_link_local_subnet), so that the guests booted meanwhile
        reach metadata at fe80::a9fe:a9fe too. Adding a subnet makes no agent
        provision the network again: a port bound to each host does (warm-up), and
        where a haproxy already ran the agent restarts it with the new bind, now
        and not at some later migration's arrival. The subnet goes at the end, but
        the haproxy that served it keeps its IPv6 bind (its agent did not go back
        to IPv4 alone within 90 s of a warm-up, once): the cloud tests run this
        last. Not for good: rally-openstack takes a dual-stack server's first
        listed address, the link-local one, for SSH (the plugin takes its IPv4).
        """
        _, _, _, chassis, cloud = self._parts()
        network = self.info()["network"]

        def serving_ipv6(chassis_dir: Path) -> bool:
            config_file = metadata_path.haproxy_config(chassis_dir, network)
            return (bool(metadata_path.running_haproxies(chassis_dir))
                    and config_file.exists()
                    and METADATA_IPV6 in config_file.read_text())
        token, _ = cloud.token()
        subnet = cloud.add_link_local_subnet(token, network)
        try:
            cloud.warm_metadata_agents(token, network, chassis, serving_ipv6)
            yield subnet
        finally:
            cloud.delete_subnet(cloud.token()[0], subnet)

    def vswitchd_crashes(self) -> dict[str, int]:
        """Per compute host: how often its vswitchd crashed and was restarted."""
        return {host.host: host.vswitchd_crashes() for host in self._parts()[3]}

    # --- status and memory ------------------------------------------------------------
    def status(self) -> dict[str, list[int]]:
        if not (self.state / "daemons.json").exists():
            return {}
        return Supervisor(self.state).running()

    def _processes(self) -> dict[str, set[int]]:
        """Each daemon's processes: its process group and its PID file's PID."""
        sup = Supervisor(self.state)
        groups: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                with contextlib.suppress(OSError, IndexError):
                    with open(f"/proc/{entry}/stat") as stat:
                        fields = stat.read().rsplit(")", 1)[1].split()
                    groups.setdefault(int(fields[2]), []).append(int(entry))
        return {name: set(groups.get(d.pid, [])) | set(d.pids())
                for name, d in sup.daemons.items()}

    def cpu_seconds(self, with_reaped: bool = True) -> float:
        """CPU (user + system, s) the lab's processes have used so far; with_reaped:
        also their children that exited and were waited for (a haproxy restarted,
        an `ip` run by an agent)."""
        fields_used = (11, 12, 13, 14) if with_reaped else (11, 12)
        total = 0
        for pids in self._processes().values():
            for pid in pids:
                with contextlib.suppress(OSError, IndexError):
                    with open(f"/proc/{pid}/stat") as stat:
                        fields = stat.read().rsplit(")", 1)[1].split()
                    total += sum(int(fields[i]) for i in fields_used)
        return total / os.sysconf("SC_CLK_TCK")

    def idle_cpu(self, seconds: float = 10.0) -> float:
        """CPU the whole lab uses while idle, in % of one core over `seconds`."""
        before = self.cpu_seconds(with_reaped=False)
        time.sleep(seconds)
        return round(100 * (self.cpu_seconds(with_reaped=False) - before) / seconds, 1)

    def memory(self) -> dict[str, dict[str, float]]:
        """PSS and RSS (MB) of each daemon: all processes of its process group."""
        result = {}
        for name, pids in self._processes().items():
            pss = rss = 0
            for pid in pids:
                if not alive(pid):
                    continue
                with contextlib.suppress(OSError):
                    with open(f"/proc/{pid}/smaps_rollup") as smaps:
                        for line in smaps:
                            if line.startswith("Pss:"):
                                pss += int(line.split()[1])
                            elif line.startswith("Rss:"):
                                rss += int(line.split()[1])
            result[name] = {"pss_mb": round(pss / 1024, 1), "rss_mb": round(rss / 1024, 1),
                            "processes": len(pids)}
        return result
