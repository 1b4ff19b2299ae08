"""The real `rally` command, run with a home, config and database of its own.

The lab never touches the user's ~/.rally or Rally's default /tmp/rally.sqlite: every
RallyHome lives in one directory that the caller owns and removes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

# Rally polls every 2 s after a 1 s pre-poll delay by default: far slower than the
# lab needs. Live migration keeps its own generous timeout for the "hang" fault.
_RALLY_CONF = """\
[DEFAULT]
log_file = {log_file}

[database]
connection = sqlite:///{db}

[openstack]
nova_server_boot_prepoll_delay = 0
nova_server_boot_poll_interval = 0.5
nova_server_delete_prepoll_delay = 0
nova_server_delete_poll_interval = 0.5
nova_server_live_migrate_prepoll_delay = 0
nova_server_live_migrate_poll_interval = 0.5
nova_server_live_migrate_timeout = {live_migrate_timeout}
"""

_TASK_UUID = re.compile(r"Task\s+([0-9a-f-]{36})")


def rally_executable() -> str:
    """The rally script of the running interpreter's environment, else PATH's."""
    beside = Path(sys.executable).with_name("rally")
    if beside.exists():
        return str(beside)
    found = shutil.which("rally")
    if not found:
        raise RuntimeError("the 'rally' command is not installed in this environment")
    return found


class RallyError(RuntimeError):
    """A rally command failed; the message carries its output."""


class RallyHome:
    """A private Rally installation state: HOME, rally.conf and sqlite database."""

    def __init__(self, root: Path, live_migrate_timeout: float = 120) -> None:
        self.root = Path(root)
        self.home = self.root / "home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.config_file = self.root / "rally.conf"
        self.log_file = self.root / "rally.log"
        self.config_file.write_text(_RALLY_CONF.format(
            db=self.root / "rally.sqlite", log_file=self.log_file,
            live_migrate_timeout=live_migrate_timeout))
        self._created = False

    def run(self, *args: str, check: bool = True,
            timeout: float = 1800) -> subprocess.CompletedProcess:
        """Run `rally --config-file <ours> ARGS` and return the finished process."""
        env = dict(os.environ, HOME=str(self.home), COLUMNS="200", NO_COLOR="1")
        env.pop("RALLY_ENV", None)
        proc = subprocess.run(
            [rally_executable(), "--config-file", str(self.config_file), *args],
            capture_output=True, text=True, env=env, timeout=timeout)
        if check and proc.returncode != 0:
            raise RallyError(
                f"rally {' '.join(args)} exited {proc.returncode}\n"
                f"--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}")
        return proc

    def create_env(self, name: str, spec: dict) -> None:
        """Create the database (once) and an environment from a spec dict."""
        if not self._created:
            self.run("db", "create")
            self._created = True
        spec_file = self.root / f"env-{name}.json"
        spec_file.write_text(json.dumps(spec, indent=2))
        self.run("env", "create", "--name", name, "--spec", str(spec_file))

    def start_task(self, task_file: Path, env: str, args: dict | None = None,
                   args_file: Path | None = None) -> tuple[int, str]:
        """Run a task; return (exit code, task uuid). 2 means an SLA failed."""
        cmd = ["task", "start", str(task_file), "--env", env]
        if args:
            cmd += ["--task-args", json.dumps(args)]
        if args_file:
            cmd += ["--task-args-file", str(args_file)]
        proc = self.run(*cmd, check=False)
        match = _TASK_UUID.search(proc.stdout)
        if proc.returncode not in (0, 2) or not match:
            raise RallyError(
                f"rally task start exited {proc.returncode}\n"
                f"--- stdout\n{proc.stdout[-6000:]}\n--- stderr\n{proc.stderr[-4000:]}")
        return proc.returncode, match.group(1)

    def html_report(self, task_uuid: str, out: Path) -> Path:
        self.run("task", "report", task_uuid, "--out", str(out))
        return out

    def json_report(self, task_uuid: str) -> dict:
        out = self.root / f"report-{task_uuid}.json"
        self.run("task", "report", task_uuid, "--json", "--out", str(out))
        return json.loads(out.read_text())

    def sla_check(self, task_uuid: str) -> subprocess.CompletedProcess:
        """`rally task sla-check`: exit code = number of failed criteria."""
        return self.run("task", "sla-check", task_uuid, "--json", check=False)
