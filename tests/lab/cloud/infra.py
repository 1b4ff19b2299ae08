"""MariaDB and RabbitMQ from Debian, each with its own directories, on 127.0.0.1."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

from tests.lab.cloud import config
from tests.lab.cloud.procs import Supervisor, run, wait_for

DATABASES = ("keystone", "placement", "nova_api", "nova", "nova_cell0", "neutron",
             "glance", "cinder")


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((config.HOST, port)) == 0


class MariaDB:
    """mariadbd with its own datadir and socket; the services use the socket."""

    name = "mariadb"

    def __init__(self, state_dir: Path, ports: config.Ports):
        self.dir = state_dir / "mariadb"
        self.datadir = self.dir / "data"
        self.socket = self.dir / "mysqld.sock"
        self.port = ports.mariadb

    def url(self, database: str) -> str:
        return (f"mysql+pymysql://root@localhost/{database}"
                f"?unix_socket={self.socket}&charset=utf8")

    def initialize(self) -> None:
        """A fresh datadir with the lab's empty databases (the server must run)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        run(["mariadb-install-db", "--no-defaults", f"--datadir={self.datadir}",
             "--user=root", "--auth-root-authentication-method=normal",
             "--skip-test-db", "--skip-name-resolve"], timeout=120)

    def create_databases(self) -> None:
        self.sql("; ".join(f"CREATE DATABASE IF NOT EXISTS {db} CHARACTER SET utf8"
                           for db in DATABASES))

    def sql(self, statements: str) -> str:
        return run(["mariadb", "--no-defaults", f"--socket={self.socket}", "-uroot",
                    "-N", "-e", statements], timeout=60).stdout

    def start(self, sup: Supervisor) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        # Loopback only; no binary log; a small buffer pool and no fsync per commit:
        # a throwaway lab database.
        argv = ["mariadbd", "--no-defaults", f"--datadir={self.datadir}",
                f"--socket={self.socket}", f"--port={self.port}",
                f"--bind-address={config.HOST}", f"--pid-file={self.dir}/mysqld.pid",
                "--user=root", "--skip-log-bin", "--skip-name-resolve",
                "--innodb-buffer-pool-size=128M", "--innodb-log-file-size=32M",
                "--innodb-flush-log-at-trx-commit=0", "--innodb-doublewrite=0",
                "--performance-schema=0", "--max-connections=1000",
                "--character-set-server=utf8mb3", "--collation-server=utf8mb3_general_ci",
                f"--tmpdir={self.dir}", f"--log-error={self.error_log(sup)}"]
        proc = sup.start(self.name, argv, pidfile=self.dir / "mysqld.pid")
        # Ready when it answers a query on its socket and listens on its port; if it
        # exits first, the error names its log's tail.
        wait_for("mariadb", lambda: self.socket.exists() and _listening(self.port)
                 and self.sql("SELECT 1").strip() == "1", 60, interval=0.2, proc=proc,
                 log=self.error_log(sup))
        sup.ready(self.name)

    @staticmethod
    def error_log(sup: Supervisor) -> Path:
        """Beside the other logs (kept when the state directory goes)."""
        sup.log_dir.mkdir(parents=True, exist_ok=True)
        return sup.log_dir / "mariadb-error.log"

    def snapshot(self, tarball: Path) -> None:
        """Pack the datadir of a stopped server."""
        tarball.parent.mkdir(parents=True, exist_ok=True)
        tmp = tarball.with_suffix(".tmp")
        run(["tar", "-C", str(self.datadir), "-cf", str(tmp), "."], timeout=300)
        tmp.replace(tarball)

    def restore(self, tarball: Path) -> None:
        if self.datadir.exists():
            shutil.rmtree(self.datadir)
        self.datadir.mkdir(parents=True)
        run(["tar", "-C", str(self.datadir), "-xf", str(tarball)], timeout=300)


class RabbitMQ:
    """A RabbitMQ node of its own (node name, mnesia, logs, cookie, epmd, ports), no
    plugins, an Erlang VM told not to busy-wait on the 2 shared cores."""

    name = "rabbitmq"

    def __init__(self, state_dir: Path, ports: config.Ports):
        self.dir = state_dir / "rabbitmq"
        self.ports = ports
        self.node = "rmdc@localhost"

    @property
    def transport_url(self) -> str:
        return (f"rabbit://{config.RABBIT_USER}:{config.RABBIT_PASSWORD}@"
                f"{config.HOST}:{self.ports.rabbit}/")

    def env(self) -> dict[str, str]:
        d = self.dir
        return {
            "HOME": str(d),  # the Erlang cookie
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": config.HOST,
            "RABBITMQ_NODE_PORT": str(self.ports.rabbit),
            "RABBITMQ_DIST_PORT": str(self.ports.rabbit_dist),
            "ERL_EPMD_ADDRESS": config.HOST,
            "ERL_EPMD_PORT": str(self.ports.epmd),
            "RABBITMQ_CONF_ENV_FILE": str(d / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(d / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(d / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(d / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(d / "mnesia"),
            "RABBITMQ_LOG_BASE": str(d / "log"),
            "RABBITMQ_PID_FILE": str(d / "rabbit.pid"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": (
                "-kernel inet_dist_use_interface {127,0,0,1} "
                "+S 2:2 +sbwt none +sbwtdcpu none +sbwtdio none"),
        }

    def start(self, sup: Supervisor) -> None:
        d = self.dir
        (d / "log").mkdir(parents=True, exist_ok=True)
        (d / "rabbitmq-env.conf").write_text("")
        (d / "enabled_plugins").write_text("[].\n")
        (d / "advanced.config").write_text("[].\n")
        (d / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = {config.HOST}:{self.ports.rabbit}\n"
            f"default_user = {config.RABBIT_USER}\n"
            f"default_pass = {config.RABBIT_PASSWORD}\n"
            "loopback_users = none\n"
            "disk_free_limit.absolute = 50MB\n"
            "log.console = true\nlog.console.level = warning\nlog.file = false\n")
        # Our own epmd on our own port, in the foreground (rabbit would otherwise
        # start one with -daemon: its own session, on every interface).
        epmd = sup.start("epmd", ["epmd", "-address", config.HOST, "-port",
                                  str(self.ports.epmd)], env=self.env())
        wait_for("epmd", lambda: _listening(self.ports.epmd), 10, proc=epmd)
        proc = sup.start(self.name, ["/usr/lib/rabbitmq/bin/rabbitmq-server"],
                         env=self.env(), pidfile=d / "rabbit.pid")
        wait_for("rabbitmq", lambda: _listening(self.ports.rabbit), 90, proc=proc,
                 log=sup.log_dir / f"{self.name}.log")
        sup.ready(self.name)

    def stop(self, sup: Supervisor) -> None:
        sup.stop(self.name, timeout=20)
        sup.stop("epmd")


