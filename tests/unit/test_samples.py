"""The sample task renders, with default and lab arguments, into a valid v2 task."""

import inspect
import json
import pathlib
import re
from unittest import mock

import pytest
import yaml
from rally import api
from rally.common.plugin import plugin as rally_plugin
from rally.task import engine, task_cfg

from rally_metadata_downtime.plugins.scenario import BootAndLiveMigrate

SAMPLES = pathlib.Path(__file__).resolve().parents[2] / "samples"
TASK = SAMPLES / "live_migrate_metadata.yaml"


def render(task=TASK, **args):
    renderer = api._Task(api=mock.Mock())
    return yaml.safe_load(renderer.render_template(task_template=task.read_text(),
                                                   template_dir=str(SAMPLES), **args))


def lab_args():
    return yaml.safe_load((SAMPLES / "lab-args.yaml").read_text())


def fake_task():
    task = mock.MagicMock()
    task.__getitem__.side_effect = {"uuid": "sample-check"}.__getitem__
    return task


def validate_syntax(rendered):
    config = task_cfg.TaskConfig(rendered)
    task = fake_task()
    engine.TaskEngine(config, task, mock.Mock()).validate(only_syntax=True)
    task.set_failed.assert_not_called()
    return config


def the_workload(rendered):
    (subtask,) = rendered["subtasks"]
    (workload,) = subtask["workloads"]
    return workload


def test_default_arguments():
    rendered = render()
    validate_syntax(rendered)
    workload = the_workload(rendered)
    args = workload["scenario"]["MetadataDowntime.boot_and_live_migrate"]
    # Only what the sample must say: every other argument takes the plugin's default.
    assert args == {"image": {"name": "cirros-0.6.2-x86_64-disk"},
                    "flavor": {"name": "m1.tiny"}, "username": "cirros"}
    assert workload["sla"] == {"failure_rate": {"max": 0},
                               "metadata_downtime": {"allowed_metadata_downtime": 6.0}}
    assert set(workload["contexts"]) == {"users", "network", "allow_ssh"}
    assert workload["runner"] == {"constant": {"times": 4, "concurrency": 2}}


def test_lab_arguments():
    rendered = render(**lab_args())
    validate_syntax(rendered)
    args = the_workload(rendered)["scenario"]["MetadataDowntime.boot_and_live_migrate"]
    assert args["image"] == {"name": "cirros-lab"}
    assert args["flavor"] == {"name": "m1.tiny"}
    assert args["username"] == "root"
    assert args["floating_network"] == "public"


def test_overrides_reach_the_task():
    rendered = render(allowed_metadata_downtime=0, allowed_network_downtime=7,
                      probe_interval=0.5, times=1, concurrency=1)
    validate_syntax(rendered)
    workload = the_workload(rendered)
    assert workload["sla"]["metadata_downtime"] == {"allowed_metadata_downtime": 0,
                                                    "allowed_network_downtime": 7}
    args = workload["scenario"]["MetadataDowntime.boot_and_live_migrate"]
    assert args["probe_interval"] == 0.5


def test_every_optional_argument_reaches_the_task_falsy_values_included():
    names = re.findall(r'optional\("(\w+)"', TASK.read_text())
    parameters = inspect.signature(BootAndLiveMigrate.run).parameters
    assert names and set(names) <= set(parameters)
    chosen = {"use_floating_ip": False, "settle": 0, "measure_network": False,
              "block_migration": "auto", "boot_server_kwargs": {}, "password": "pw",
              "floating_network": "public", "destination_host": "compute-2",
              "nova_microversion": "2.30"}
    given = {name: chosen.get(name, parameters[name].default) for name in names}
    rendered = render(**given)
    validate_syntax(rendered)
    args = the_workload(rendered)["scenario"]["MetadataDowntime.boot_and_live_migrate"]
    assert {name: args[name] for name in given} == given


def test_bad_argument_fails_syntax_validation():
    rendered = render(probe_interval=120)
    config = task_cfg.TaskConfig(rendered)
    task = fake_task()
    with pytest.raises(Exception, match="probe_interval"):
        engine.TaskEngine(config, task, mock.Mock()).validate(only_syntax=True)


def test_env_spec_is_an_existing_cloud():
    spec = json.loads((SAMPLES / "env-existing-cloud.json").read_text())
    assert set(spec["openstack"]["admin"]) >= {"username", "password", "project_name"}


def test_rally_finds_both_plugins():
    found = {(p.get_name(), p.__module__) for p in rally_plugin.Plugin.get_all()
             if p.__module__.startswith("rally_metadata_downtime")}
    assert ("MetadataDowntime.boot_and_live_migrate",
            "rally_metadata_downtime.plugins.scenario") in found
    assert ("metadata_downtime", "rally_metadata_downtime.plugins.sla") in found
    assert ("metadata_probe_args", "rally_metadata_downtime.plugins.validators") in found
