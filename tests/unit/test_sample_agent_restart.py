"""samples/metadata_agent_restart.yaml renders, for a cloud and for the cloud lab, into a
valid v2 task whose marked_sys_call hook fires inside the watch."""

import inspect
import re

import yaml

from rally_metadata_downtime.plugins.scenario import BootAndWatch
from tests.unit.test_samples import SAMPLES, render, the_workload, validate_syntax

TASK = SAMPLES / "metadata_agent_restart.yaml"
SCENARIO = "MetadataDowntime.boot_and_watch"


def render_sample(**args):
    return render(task=TASK, **args)


def cloud_lab_args():
    """samples/cloud-args.yaml, then the agent restart's own (as the test passes them)."""
    return {**yaml.safe_load((SAMPLES / "cloud-args.yaml").read_text()),
            **yaml.safe_load((SAMPLES / "cloud-args-agent-restart.yaml").read_text())}


def test_default_arguments_restart_an_agent_on_a_cloud():
    rendered = render_sample()
    validate_syntax(rendered)
    workload = the_workload(rendered)
    assert workload["scenario"][SCENARIO] == {"image": {"name": "cirros-0.6.2-x86_64-disk"},
                                              "flavor": {"name": "m1.tiny"},
                                              "username": "cirros"}
    assert workload["runner"] == {"constant": {"times": 2, "concurrency": 2}}
    [hook] = workload["hooks"]
    assert hook["action"] == {"marked_sys_call": "ssh compute-1 sudo systemctl restart "
                                                 "neutron-ovn-metadata-agent"}
    assert hook["trigger"] == {"event": {"unit": "time", "at": [60]}}
    # The plugin's own 60 s watch, from the first answer, covers a hook at 60 s.
    assert inspect.signature(BootAndWatch.run).parameters["duration"].default == 60
    assert workload["sla"]["metadata_downtime"] == {"allowed_metadata_downtime": 6.0}


def test_cloud_lab_arguments_restart_its_agent_inside_the_watch():
    rendered = render_sample(**cloud_lab_args())
    validate_syntax(rendered)
    workload = the_workload(rendered)
    scenario = workload["scenario"][SCENARIO]
    assert scenario["duration"] == 30 and scenario["image"] == {"name": "rmdc-image"}
    # The lab's shared network, which the Rally host reaches: no network context.
    assert "network" not in workload["contexts"]
    [hook] = workload["hooks"]
    command = hook["action"]["marked_sys_call"]
    assert command.split()[:5] == ["python3", "-m", "tests.lab.cloud", "restart-agent",
                                   "--host"]
    # The restart (a few seconds here) ends well inside the watch.
    assert hook["trigger"]["event"]["at"] == [10]


def test_every_optional_argument_is_a_scenario_argument():
    names = re.findall(r'optional\("(\w+)"', TASK.read_text())
    assert names and set(names) <= set(inspect.signature(BootAndWatch.run).parameters)
    rendered = render_sample(settle=0, measure_network=False, duration=5)
    validate_syntax(rendered)
    args = the_workload(rendered)["scenario"][SCENARIO]
    assert (args["settle"], args["measure_network"], args["duration"]) == (0, False, 5)
