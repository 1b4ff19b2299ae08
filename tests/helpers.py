"""Helpers that more than one test folder uses: one home each (fixtures are in
tests/conftest.py).

- wait_until: poll a condition until a deadline.
- public_key: a paramiko key as an authorized_keys line.
- logged_probes: how many probes a MetadataMeter's log holds so far.
- outages_meeting, outage_of_window: a record's measured outages against a window
  the lab injected.
- syntax_errors: Rally's syntax validation of the scenario's arguments (unit tests;
  Rally's plugins must be loaded, as tests/unit/conftest.py does).
- lab_workload, write_task: the e2e tests' Rally tasks against the lab.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from rally_metadata_downtime.probe_config import DEFAULT_TIMEOUT
from rally_metadata_downtime.probe_log import ProbeLogError, parse_probe_log

T = TypeVar("T")

SCENARIO = "MetadataDowntime.boot_and_live_migrate"


# --- polling ---------------------------------------------------------------------------

def wait_until(predicate: Callable[[], T], what: str | Callable[[], str],
               timeout: float = 10, interval: float = 0.05) -> T:
    """predicate()'s first truthy value, polled every `interval` s; AssertionError
    naming `what` (a string, or a function that says it then) after `timeout` s.
    An assertion inside predicate() fails at once."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            said = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout} s waiting for {said}")
        time.sleep(interval)


# --- keys ------------------------------------------------------------------------------

def public_key(key: Any, comment: str = "lab-test") -> str:
    """A paramiko key's public half as one authorized_keys line."""
    return f"{key.get_name()} {key.get_base64()} {comment}"


# --- the meter ---------------------------------------------------------------------------

def logged_probes(meter: Any) -> int:
    """Probes a MetadataMeter's log holds so far (none yet: only its header)."""
    try:
        return len(parse_probe_log(meter.fetch_log()).probes)
    except ProbeLogError:
        return 0


# --- measured outages against the lab's injected windows --------------------------------

# What the probe calls a request that got no answer in time (busybox wget, curl).
TIMEOUT_REASONS = frozenset({"wget=timeout", "curl=28"})
# What it calls a request reset mid-answer: a fault that refuses connections resets
# the one in flight when it begins (1 toggle in 40 in a loop of busybox wget
# against an address added to the client's lo; seen in CI as `wget=1` before the
# probe named it).
RESET_REASONS = frozenset({"wget=reset", "curl=56"})


# How far from a window's edge a request launched on one side of it may still be
# answered on the other: the probe's timeout (the scenario's default).
IN_FLIGHT = DEFAULT_TIMEOUT


def _last(outage: Any) -> float:
    return math.inf if outage.unrecovered else outage.end


def outages_meeting(record: Any, start: float, end: float) -> tuple[list, list]:
    """The measured outages of an iteration record that meet an injected window
    [start, end] (guest uptime), each edge widened by the record's resolution (an
    edge estimate's reach), and the others.

    Near an edge a loaded guest's verdicts come out of order: the analysis places a
    failure at its launch and a success at its end (analysis.sample_time), and
    requests in flight at the edge are up to the probe's timeout long. So when an
    outage covers the window's middle, another that reaches into the window no
    further than IN_FLIGHT from an edge is among the others (seen under two CPU
    hogs: a 503 launched 0.27 s before the window, a success ending 0.16 s into it,
    then the window's outage)."""
    slack = record.metadata.resolution
    meeting = [o for o in record.metadata.outages
               if o.start - slack <= end and _last(o) + slack >= start]
    reach = min(IN_FLIGHT, (end - start) / 2)
    middle = [o for o in meeting if o.start < end - reach and _last(o) > start + reach]
    if middle:
        meeting = middle
    return meeting, [o for o in record.metadata.outages if o not in meeting]


def explained_by_load(outage: Any, start: float, end: float) -> bool:
    """Whether an outage that is not a window's own is what a loaded machine adds:
    timeouts alone (a request the service answered later than the probe's timeout,
    which the probe rightly calls a timeout), or verdicts out of order within
    IN_FLIGHT of one of the window's edges (outages_meeting)."""
    if set(outage.reasons) <= TIMEOUT_REASONS:
        return True
    return any(edge - IN_FLIGHT <= outage.start and _last(outage) <= edge + IN_FLIGHT
               for edge in (start, end))


def injected_bounds(window: Mapping[str, Any]) -> tuple[float, float]:
    """The shortest and longest an injected window's fault can have lasted: it was
    in place over [start, end] and took effect up to applied_within before start,
    went away up to removed_within before end (where the lab measured them)."""
    held = window["end_boottime"] - window["start_boottime"]
    return (held - window.get("removed_within", 0.0),
            held + window.get("applied_within", 0.0))


def outage_of_window(record: Any, start: float, end: float,
                     real_spans: tuple[tuple[float, float], ...] = ()) -> Any:
    """The one measured outage that meets the window. Any other must be what a
    loaded machine adds (explained_by_load); anything else would be a measurement
    error. On real services, outages of any kind may begin in `real_spans` (guest
    uptime: the migrations) besides: real code's own, which nobody injected, and
    which may last past the span (the agent still moving the port to its new host
    when Nova reports the migration done: a 503 at 0.01 s before its end, six at
    once)."""
    meeting, others = outages_meeting(record, start, end)
    unexplained = [o for o in others if not explained_by_load(o, start, end)
                   and not any(a <= o.start <= b for a, b in real_spans)]
    assert not unexplained, (unexplained, real_spans)
    assert len(meeting) == 1, (start, end, record.metadata.outages)
    return meeting[0]


def lead_of_real_code(outage: Any, start: float,
                      real_spans: tuple[tuple[float, float], ...]) -> float:
    """How much of a window's outage came before the window while real code ran (a
    migration, guest uptime): a fault that Nova's post-live-migration opens can meet
    the switchover's own outage (OVN moving the port, requests in flight at the cut
    timing out) with no answer between them, and the probe rightly sees one
    outage. 0 for an outage that starts in the window, or before it elsewhere."""
    if outage.start >= start:
        return 0.0
    if any(a <= outage.start <= b for a, b in real_spans):
        return start - outage.start
    return 0.0


# --- the scenario's argument validation (unit) -----------------------------------------

# The arguments the scenario requires, each at a value it accepts.
REQUIRED_ARGS = {"image": {"name": "cirros"}, "flavor": {"name": "m1.tiny"},
                 "username": "cirros"}


def syntax_errors(**args: Any) -> list[str]:
    """Rally's syntax validation of the scenario with REQUIRED_ARGS and `args`: the
    errors it reports (none: accepted before anything boots)."""
    from rally.task import scenario as rally_scenario
    return rally_scenario.Scenario.validate(
        name=SCENARIO, context={}, config={"args": {**REQUIRED_ARGS, **args}},
        plugin_cfg=None, vtype="syntax")


# --- Rally tasks against the lab (e2e) -------------------------------------------------

# The lab's image, flavor, guest user and floating network (tests/lab/openstack).
LAB_SERVER = {"image": {"name": "cirros-lab"}, "flavor": {"name": "m1.tiny"},
              "username": "root", "floating_network": "public"}


def lab_workload(args: Mapping[str, Any] | None = None,
                 meta: Mapping[str, str] | None = None, *, times: int = 1,
                 concurrency: int = 1, sla: Mapping[str, Any] | None = None,
                 contexts: Mapping[str, Any] | None = None) -> dict:
    """One workload of the scenario against the lab: LAB_SERVER with `args` over it,
    `meta` as the servers' metadata (the lab reads its fault profile there), a
    constant runner, one tenant with one user and a network (+ `contexts`)."""
    scenario_args = {**LAB_SERVER, **(args or {})}
    if meta is not None:
        scenario_args["boot_server_kwargs"] = {"meta": dict(meta)}
    workload = {
        "scenario": {SCENARIO: scenario_args},
        "runner": {"constant": {"times": times, "concurrency": concurrency}},
        "contexts": {"users": {"tenants": 1, "users_per_tenant": 1}, "network": {},
                     **(contexts or {})},
    }
    if sla is not None:
        workload["sla"] = dict(sla)
    return workload


def write_task(path: Path, title: str, subtasks: Mapping[str, dict]) -> Path:
    """Write a Rally task (format 2) of one subtask per title, each its one workload."""
    path.write_text(json.dumps({"version": 2, "title": title, "subtasks": [
        {"title": name, "workloads": [workload]} for name, workload in subtasks.items()]}))
    return path
