"""OVN central (NB and SB ovsdb-servers on unix sockets, ovn-northd) and one chassis
per compute host: its own ovsdb-server, an ovs-vswitchd with the userspace datapath in
the host's own network namespace (two netdev vswitchds cannot share one: both make a
tap named ovs-netdev), and ovn-controller. Every daemon runs in the foreground under
the Supervisor; none uses /run/openvswitch or /run/ovn."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from tests.lab.cloud import config
from tests.lab.cloud.procs import ProcError, Supervisor, run, wait_for

OVN_NB_SCHEMA = "/usr/share/ovn/ovn-nb.ovsschema"
OVN_SB_SCHEMA = "/usr/share/ovn/ovn-sb.ovsschema"
VSWITCH_SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"


def _ovsdb_argv(db: Path, sock: Path, name: str) -> list[str]:
    d = db.parent
    return ["ovsdb-server", str(db), f"--remote=punix:{sock}", "--no-chdir",
            f"--pidfile={d / name}.pid", f"--unixctl={d / name}.ctl",
            f"--log-file={d / name}.log", "-vconsole:off"]


class Central:
    name = "ovn"

    def __init__(self, state_dir: Path):
        self.dir = state_dir / "ovn"
        self.nb_sock = self.dir / "nb.sock"
        self.sb_sock = self.dir / "sb.sock"

    @property
    def nb(self) -> str:
        return f"unix:{self.nb_sock}"

    @property
    def sb(self) -> str:
        return f"unix:{self.sb_sock}"

    def env(self) -> dict[str, str]:
        return {"OVN_RUNDIR": str(self.dir), "OVS_RUNDIR": str(self.dir),
                "OVN_LOGDIR": str(self.dir), "OVS_LOGDIR": str(self.dir)}

    def start(self, sup: Supervisor) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        procs = []
        for name, schema, sock in (("nb", OVN_NB_SCHEMA, self.nb_sock),
                                   ("sb", OVN_SB_SCHEMA, self.sb_sock)):
            db = self.dir / f"{name}.db"
            if not db.exists():
                run(["ovsdb-tool", "create", str(db), schema])
            procs.append((sock, sup.start(f"ovn-{name}", _ovsdb_argv(db, sock, name),
                                          env=self.env())))
        for sock, proc in procs:
            wait_for(f"ovsdb {sock.name}", sock.exists, 20, proc=proc)
        # NB_Global/SB_Global rows exist once ovn-nbctl init has run.
        run(["ovn-nbctl", f"--db={self.nb}", "init"], env=self.env())
        run(["ovn-sbctl", f"--db={self.sb}", "init"], env=self.env())
        for name in ("ovn-nb", "ovn-sb"):
            sup.ready(name)
        d = self.dir
        northd = sup.start("ovn-northd", [
            "ovn-northd", f"--ovnnb-db={self.nb}", f"--ovnsb-db={self.sb}",
            "--no-chdir", f"--pidfile={d}/northd.pid", f"--unixctl={d}/northd.ctl",
            f"--log-file={d}/northd.log", "-vconsole:off"], env=self.env())
        wait_for("ovn-northd", lambda: (d / "northd.ctl").exists(), 20, proc=northd)
        sup.ready("ovn-northd")

    def stop(self, sup: Supervisor) -> None:
        for name in ("ovn-northd", "ovn-sb", "ovn-nb"):
            sup.stop(name)


class Chassis:
    """One compute host's Open vSwitch and ovn-controller."""

    def __init__(self, state_dir: Path, host: str, index: int, central: Central):
        self.host = host
        self.index = index
        self.central = central
        self.netns = config.netns_name(state_dir, index)
        self.dir = state_dir / "chassis" / host
        self.db_sock = self.dir / "db.sock"
        self.system_id = config.node_uuid(host)

    @property
    def db(self) -> str:
        return f"unix:{self.db_sock}"

    def env(self) -> dict[str, str]:
        return {"OVS_RUNDIR": str(self.dir), "OVN_RUNDIR": str(self.dir),
                "OVS_LOGDIR": str(self.dir), "OVN_LOGDIR": str(self.dir),
                "OVS_DBDIR": str(self.dir)}

    def vswitchd_crashes(self) -> int:
        """How often this host's vswitchd died and its monitor restarted it."""
        log = self.dir / "vswitchd.log"
        if not log.exists():
            return 0
        return sum(" crashes: pid " in line for line in
                   log.read_text(errors="replace").splitlines())

    def vsctl(self, *args: str, wait: bool = False) -> str:
        argv = ["ovs-vsctl", f"--db={self.db}", "--timeout=20"]
        if not wait:
            argv.append("--no-wait")
        return run(argv + list(args), env=self.env()).stdout

    def start(self, sup: Supervisor) -> None:
        d = self.dir
        d.mkdir(parents=True, exist_ok=True)
        db = d / "conf.db"
        if not db.exists():
            run(["ovsdb-tool", "create", str(db), VSWITCH_SCHEMA])
        proc = sup.start(f"ovsdb-{self.host}", _ovsdb_argv(db, self.db_sock, "ovsdb"),
                         env=self.env())
        wait_for(f"ovsdb {self.host}", self.db_sock.exists, 20, proc=proc)
        sup.ready(f"ovsdb-{self.host}")
        self.vsctl("init")
        ids = {"system-id": self.system_id, "hostname": self.host,
               "ovn-remote": self.central.sb, "ovn-encap-type": "geneve",
               "ovn-encap-ip": config.ENCAP_IPS[self.host], "ovn-bridge": "br-int",
               "ovn-bridge-datapath-type": "netdev",
               # The external network's physnet "public" on br-ex.
               "ovn-bridge-mappings": "public:br-ex"}
        if self.host == config.GATEWAY_HOST:
            # Routers' gateways here only: the Rally host is wired to this br-ex.
            ids["ovn-cms-options"] = "enable-chassis-as-gw"
        self.vsctl("set", "Open_vSwitch", ".",
                   *(f"external_ids:{k}=\"{v}\"" for k, v in ids.items()))
        self.vsctl("--may-exist", "add-br", "br-ex", "--", "set", "Bridge", "br-ex",
                   "datapath_type=netdev")
        if not os.path.exists(f"/run/netns/{self.netns}"):
            run(["ip", "netns", "add", self.netns])
        run(["ip", "-n", self.netns, "link", "set", "lo", "up"])
        # `ip netns exec` execs: the PID we start is vswitchd's monitor, which
        # restarts a crashed vswitchd as the distributions' service files do:
        # Debian's 3.1 userspace conntrack can abort on related ICMP
        # ("assertion conn->conn_type == CT_CONN_TYPE_DEFAULT failed"), and a
        # dead bridge would end the lab (crashes_so_far() counts them).
        vswitchd = sup.start(f"vswitchd-{self.host}", [
            "ip", "netns", "exec", self.netns, "ovs-vswitchd", self.db, "--no-chdir",
            "--monitor",
            f"--pidfile={d}/vswitchd.pid", f"--unixctl={d}/vswitchd.ctl",
            f"--log-file={d}/vswitchd.log", "-vconsole:off"], env=self.env())
        wait_for(f"vswitchd {self.host}", lambda: (d / "vswitchd.ctl").exists(), 30,
                 proc=vswitchd, log=d / "vswitchd.log")
        sup.ready(f"vswitchd-{self.host}")
        controller = sup.start(f"ovn-controller-{self.host}", [
            "ovn-controller", self.db, "--no-chdir",
            f"--pidfile={d}/ovn-controller.pid",
            f"--log-file={d}/ovn-controller.log", "-vconsole:off"], env=self.env())
        wait_for(f"ovn-controller {self.host}", lambda: self._registered(), 30,
                 proc=controller, log=d / "ovn-controller.log")
        sup.ready(f"ovn-controller-{self.host}")

    def _registered(self) -> bool:
        out = run(["ovn-sbctl", f"--db={self.central.sb}", "--bare", "--columns=name",
                   "find", "Chassis", f"name={self.system_id}"],
                  env=self.central.env(), timeout=10).stdout
        return self.system_id in out

    def metadata_agent_registered(self) -> bool:
        """The metadata agent wrote its id into this chassis' SB record."""
        out = run(["ovn-sbctl", f"--db={self.central.sb}", "--bare",
                   "--columns=external_ids", "find", "Chassis_Private",
                   f"name={self.system_id}"], env=self.central.env(), timeout=10).stdout
        return "neutron:ovn-metadata-id" in out

    def forget_metadata_agent(self) -> None:
        """Remove the metadata agent's id from this chassis' SB record."""
        run(["ovn-sbctl", f"--db={self.central.sb}", "remove", "Chassis_Private",
             self.system_id, "external_ids", '"neutron:ovn-metadata-id"'],
            env=self.central.env(), timeout=10)

    def stop(self, sup: Supervisor) -> None:
        # ovn-controller first: it would re-create br-int and its taps.
        sup.stop(f"ovn-controller-{self.host}")
        if f"vswitchd-{self.host}" in sup.daemons:
            with contextlib.suppress(ProcError):
                self.vsctl("--if-exists", "del-br", "br-int", "--", "--if-exists",
                           "del-br", "br-ex", "--", "--if-exists", "del-br", "br-ul",
                           wait=True)
        sup.stop(f"vswitchd-{self.host}")
        sup.stop(f"ovsdb-{self.host}")
        if os.path.exists(f"/run/netns/{self.netns}"):
            run(["ip", "netns", "delete", self.netns], check=False)
        # The chassis record stays in the SB database, which is dropped with it.


UNDERLAY_PREFIX = 30  # ovs/route refuses a /32 for the tunnel's next hop; a /30 works


def connect_underlay(first: Chassis, second: Chassis) -> None:
    """The Geneve underlay between two hosts: a veth pair "ul" from one host's
    namespace to the other's, on a netdev bridge br-ul per host whose internal port
    holds the host's encap address. The userspace datapath learns the connected
    route from its namespace's kernel table. Transmit checksum offload is off on the
    veth: with the userspace datapath it would leave TCP checksums unfilled."""
    run(["ip", "-n", first.netns, "link", "add", "ul", "type", "veth", "peer", "name",
         "ul", "netns", second.netns])
    for host in (first, second):
        run(["ip", "-n", host.netns, "link", "set", "ul", "up"])
        run(["ip", "netns", "exec", host.netns, "ethtool", "-K", "ul", "tx", "off"])
        host.vsctl("--may-exist", "add-br", "br-ul", "--", "set", "Bridge", "br-ul",
                   "datapath_type=netdev", "--", "--may-exist", "add-port", "br-ul",
                   "ul", wait=True)
        run(["ip", "-n", host.netns, "addr", "add",
             f"{config.ENCAP_IPS[host.host]}/{UNDERLAY_PREFIX}", "dev", "br-ul"])
        run(["ip", "-n", host.netns, "link", "set", "br-ul", "up"])
