"""rally-openstack's own scenarios, through the real `rally` command, against a
running cloud lab (a client we did not write)."""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import sys
from pathlib import Path

from tests.lab import rally_cli
from tests.lab.cloud import config, openstack


def rally_executable() -> str:
    """Rally beside this interpreter (the tox env), else $RMD_RALLY, else the one
    tools/install-lab-cloud.sh --with-rally installs, else PATH's."""
    for candidate in (Path(sys.executable).with_name("rally"),
                      os.environ.get("RMD_RALLY"),
                      config.LAB_ROOT / "rally-venv" / "bin" / "rally",
                      shutil.which("rally")):
        if candidate and Path(candidate).exists():
            return str(candidate)
    raise RuntimeError("no rally command: run tools/install-lab-cloud.sh --with-rally")


class CloudRally(rally_cli.RallyHome):
    """RallyHome (own HOME, rally.conf, sqlite) with the rally found above."""

    def run(self, *args, check=True, timeout=1800):
        import subprocess
        env = dict(os.environ, HOME=str(self.home), COLUMNS="200", NO_COLOR="1")
        env.pop("RALLY_ENV", None)
        proc = subprocess.run([rally_executable(), "--config-file",
                               str(self.config_file), *args],
                              capture_output=True, text=True, env=env, timeout=timeout)
        if check and proc.returncode != 0:
            raise rally_cli.RallyError(
                f"rally {' '.join(args)} exited {proc.returncode}\n--- stdout\n"
                f"{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}")
        return proc


def env_spec(facts: dict) -> dict:
    return {"openstack": {"auth_url": facts["auth_url"],
                          "region_name": facts["region"], "admin": facts["admin"]}}


SCENARIOS = ("NovaServers.boot_and_live_migrate_server",
             "NovaServers.boot_and_delete_server",
             "VMTasks.boot_runcommand_delete")
# What VMTasks.boot_runcommand_delete runs in each guest, over SSH through its
# floating IP: the guest's own addresses, which name its port's fixed IP.
GUEST_COMMAND = {"script_inline": "ip -4 -o addr show", "interpreter": "/bin/sh"}


def task(facts: dict, scenarios=SCENARIOS, times: int = 2,
         concurrency: int = 1) -> dict:
    """One workload per scenario, all booting the lab's flavor, image and network."""
    workloads = {}
    for name in scenarios:
        args = {"flavor": {"name": facts["flavor"]["name"]},
                "image": {"name": "rmdc-image"},
                "nics": [{"net-id": facts["network"]}]}
        if name.endswith("live_migrate_server"):
            args["block_migration"] = False
        if name == "VMTasks.boot_runcommand_delete":
            args.update(username="root", command=GUEST_COMMAND,
                        floating_network=openstack.PUBLIC_NAME)
        workloads[name] = [{
            "args": args,
            "runner": {"type": "constant", "times": times, "concurrency": concurrency},
            "context": {"users": {"tenants": 1, "users_per_tenant": 1}},
            "sla": {"failure_rate": {"max": 0}}}]
    return workloads


def run(facts: dict, root: Path, scenarios=SCENARIOS, times: int = 2,
        concurrency: int = 1) -> dict:
    """Run the scenarios in one task; Rally's JSON report (raises if rally fails)."""
    rally = CloudRally(root, live_migrate_timeout=120)
    rally.create_env("cloud", env_spec(facts))
    task_file = root / "task.json"
    task_file.write_text(json.dumps(task(facts, scenarios, times, concurrency)))
    code, uuid = rally.start_task(task_file, "cloud")
    report = rally.json_report(uuid)
    report["rally_exit"] = code
    return report


SAMPLE_TASK = config.REPO / "samples" / "live_migrate_metadata.yaml"
CLOUD_ARGS = config.REPO / "samples" / "cloud-args.yaml"


def sample_variants(variants: dict[str, dict], template_file: Path = SAMPLE_TASK) -> dict:
    """One task of a sample's workload (`template_file`) once per variant (title ->
    task arguments over samples/cloud-args.yaml), each rendered by Rally's own
    template renderer (which needs no database): one `rally` start for all of them.
    A variant's `scenario_args` go into its scenario's arguments as they are: those
    the sample does not expose (VMScenario's SSH `port`, `wait_for_ssh_timeout`)."""
    import yaml
    from rally import api
    renderer = api._Task(None)
    template = template_file.read_text()
    cloud_args = yaml.safe_load(CLOUD_ARGS.read_text())
    subtasks = []
    for title, task_args in variants.items():
        task_args = dict(task_args)
        scenario_args = task_args.pop("scenario_args", {})
        rendered = yaml.safe_load(renderer.render_template(
            task_template=template, **{**cloud_args, **task_args}))
        [subtask] = rendered["subtasks"]
        [workload] = subtask["workloads"]
        [arguments] = workload["scenario"].values()
        arguments.update(scenario_args)
        subtasks.append({**subtask, "title": title})
    return {"version": 2, "title": "sample variants", "subtasks": subtasks}


def run_sample(facts: dict, state: Path, out_dir: Path, task_args: dict | None = None,
               task_file: Path = SAMPLE_TASK, api_info: dict | None = None,
               live_migrate_timeout: float = 120, rally: CloudRally | None = None,
               html: bool = False) -> dict:
    """Our sample task (MetadataDowntime.boot_and_live_migrate) through the real
    `rally` against the running cloud lab (a task file given is run as it is, a
    template with the cloud's arguments; `api_info` goes into the environment,
    `live_migrate_timeout` into rally.conf: how long a migration is waited for;
    `rally`, a Rally home with the environment "cloud" already made, runs it there
    instead of in a new one under out_dir, so that runs can be compared);
    what the run produced: task_uuid, exit_code (2: SLA failed), report (JSON),
    html (the HTML report's path if `html`, else None), rally_home (the run's
    Rally, for more of its commands), injected (the hypervisor's ground truth of
    this run), guests_left (guests still booted), leftovers (what the task's users
    left in the cloud, by kind), rally_errors (the ERROR lines of Rally's log)."""
    seen = _windows_so_far(state)
    run = _run_rally(facts, out_dir, task_args, task_file, api_info,
                     live_migrate_timeout, rally, html)
    return {**run, **_what_the_cloud_kept(facts, state, seen)}


def run_samples_at_once(facts: dict, state: Path, out_dir: Path,
                        task_files: dict[str, Path], **kwargs) -> dict[str, dict]:
    """Each of `task_files` (name -> task file) in a `rally` run of its own, all at
    once, each in a Rally home under out_dir/<name> (kwargs as run_sample's); each
    run's result as run_sample's, but injected is the ground truth of every run of
    the batch (look a server's windows up by its id), and guests_left and
    leftovers are what all of them left, asked once the last has ended."""
    seen = _windows_so_far(state)
    with concurrent.futures.ThreadPoolExecutor(len(task_files)) as pool:
        runs = dict(zip(task_files, pool.map(
            lambda name: _run_rally(facts, out_dir / name, None, task_files[name],
                                    **kwargs), task_files)))
    kept = _what_the_cloud_kept(facts, state, seen)
    return {name: {**run, **kept} for name, run in runs.items()}


def _run_rally(facts: dict, out_dir: Path, task_args: dict | None, task_file: Path,
               api_info: dict | None = None, live_migrate_timeout: float = 120,
               rally: CloudRally | None = None, html: bool = False) -> dict:
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    if rally is None:
        rally = CloudRally(out_dir / "rally", live_migrate_timeout=live_migrate_timeout)
        spec = env_spec(facts)
        if api_info:
            spec["openstack"]["api_info"] = api_info
        rally.create_env("cloud", spec)
    elif api_info:
        raise ValueError("api_info belongs to the environment of the Rally home given")
    code, uuid = rally.start_task(task_file, "cloud", args=task_args, args_file=CLOUD_ARGS)
    log = rally.log_file.read_text() if rally.log_file.exists() else ""
    return {"task_uuid": uuid, "exit_code": code, "report": rally.json_report(uuid),
            "html": rally.html_report(uuid, out_dir / "report.html") if html else None,
            "rally_home": rally,
            "rally_errors": [line for line in log.splitlines() if " ERROR " in line]}


def _windows_so_far(state: Path) -> int:
    from tests.lab.cloud import hypervisor
    return len(hypervisor.ask(state, "/injected"))


def _what_the_cloud_kept(facts: dict, state: Path, windows_seen: int) -> dict:
    """The windows injected since `windows_seen`, the guests and the leftovers."""
    from tests.lab.cloud import hypervisor
    return {"injected": hypervisor.ask(state, "/injected")[windows_seen:],
            "guests_left": hypervisor.ask(state, "/guests"),
            "leftovers": openstack.leftovers(facts["auth_url"])}


def summary(report: dict) -> dict[str, dict]:
    """Per scenario: SLA verdict, iterations, failures, mean of each atomic (s)."""
    result = {}
    for subtask in report["tasks"][0]["subtasks"]:
        for workload in subtask["workloads"]:
            iterations = workload["data"]
            atomics: dict[str, list[float]] = {}
            for iteration in iterations:
                for action in iteration["atomic_actions"]:
                    atomics.setdefault(action["name"], []).append(
                        action["finished_at"] - action["started_at"])
            result[next(iter(workload["scenario"]))] = {
                "pass_sla": workload["pass_sla"], "iterations": len(iterations),
                "failed": sum(1 for i in iterations if i["error"]),
                "errors": [i["error"][:2] for i in iterations if i["error"]],
                "atomic_mean_s": {k: round(sum(v) / len(v), 2)
                                  for k, v in atomics.items()}}
    return result


def script_outputs(report: dict, scenario: str) -> list[str]:
    """The text VMTasks put in each iteration's "Script Output" of `scenario`."""
    texts = []
    for subtask in report["tasks"][0]["subtasks"]:
        for workload in subtask["workloads"]:
            if next(iter(workload["scenario"])) != scenario:
                continue
            for iteration in workload["data"]:
                texts += ["\n".join(chart["data"])
                          for chart in iteration["output"]["complete"]
                          if chart["title"] == "Script Output"]
    return texts
