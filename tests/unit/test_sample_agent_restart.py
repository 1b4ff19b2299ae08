"""samples/metadata_agent_restart.yaml renders, for a cloud and for the lab, into a
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


def lab_args():
    return yaml.safe_load((SAMPLES / "lab-args-agent-restart.yaml").read_text())


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


def test_lab_arguments_disrupt_the_lab_inside_the_watch():
    args = lab_args()
    rendered = render_sample(**args)
    validate_syntax(rendered)
    workload = the_workload(rendered)
    scenario = workload["scenario"][SCENARIO]
    assert scenario["duration"] == 20 and scenario["image"] == {"name": "cirros-lab"}
    assert scenario["boot_server_kwargs"]["meta"]["lab_boot_host"] == (
        "lab-compute-1,lab-compute-2")
    [hook] = workload["hooks"]
    command = hook["action"]["marked_sys_call"]
    assert command.startswith("python3 -m tests.lab.disrupt metadata-agent ")
    assert hook["trigger"]["event"]["at"] == [10]
    seconds = float(re.search(r"--seconds (\S+)", command).group(1))
    assert 10 + seconds < 20


def test_every_optional_argument_is_a_scenario_argument():
    names = re.findall(r'optional\("(\w+)"', TASK.read_text())
    assert names and set(names) <= set(inspect.signature(BootAndWatch.run).parameters)
    rendered = render_sample(settle=0, measure_network=False, duration=5)
    validate_syntax(rendered)
    args = the_workload(rendered)["scenario"][SCENARIO]
    assert (args["settle"], args["measure_network"], args["duration"]) == (0, False, 5)
