"""Property tests of argument validation: whatever the input, it is either accepted
and safe to hand to a shell, or refused with an error that names the argument."""

from __future__ import annotations

import math
import shlex

import hypothesis
import hypothesis.strategies as st
import pytest
from rally.task import sla as rally_sla

from rally_metadata_downtime.meter import MetadataMeter
from rally_metadata_downtime.plugins.scenario import BootAndLiveMigrate
from rally_metadata_downtime.plugins.validators import scenario_arguments
from rally_metadata_downtime.probe_config import ProbeConfigError, from_arguments
from tests.helpers import syntax_errors

SHELL_SPECIAL = set("$`;&|<>()'\"\\ \t\n*")

any_value = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                      st.floats(allow_nan=False), st.text(max_size=20),
                      st.lists(st.integers(), max_size=2))
SETTINGS = hypothesis.settings(max_examples=150, deadline=None)


def probe_config(**given):
    """The probe's settings from scenario arguments, the rest at their defaults."""
    args = scenario_arguments(BootAndLiveMigrate, given)
    return from_arguments(args["metadata_url"], args["probe_interval"],
                          args["probe_timeout"], args["probe_workdir"])


def is_seconds(value, low_open: bool = False, high: float = 3600) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return (value > 0 if low_open else value >= 0) and value <= high


def is_integer(value) -> bool:
    """JSON Schema's integer: 3 and 3.0 both are."""
    return (not isinstance(value, bool) and isinstance(value, (int, float))
            and math.isfinite(value) and float(value).is_integer())


@SETTINGS
@hypothesis.given(name=st.sampled_from(["probe_interval", "probe_timeout", "settle",
                                        "recovery_timeout", "answer_timeout",
                                        "migrations", "probe_workdir", "metadata_url",
                                        "port", "block_migration", "use_floating_ip"]),
                  value=any_value)
def test_a_scenario_argument_is_accepted_or_refused_by_name(name, value):
    errors = syntax_errors(**{name: value})
    if errors:
        assert any(name in error for error in errors), errors
    expected_valid = {
        "probe_interval": lambda v: is_seconds(v, low_open=True, high=60),
        "probe_timeout": lambda v: is_seconds(v, low_open=True, high=60),
        "settle": lambda v: is_seconds(v) and v < 120,
        "recovery_timeout": lambda v: is_seconds(v, low_open=True) and v > 5,
        "answer_timeout": lambda v: is_seconds(v, low_open=True),
        "migrations": lambda v: is_integer(v) and 1 <= v <= 100,
        "port": lambda v: is_integer(v) and 1 <= v <= 65535,
        "block_migration": lambda v: isinstance(v, bool),
        "use_floating_ip": lambda v: isinstance(v, bool),
    }.get(name)
    if expected_valid is not None:
        assert (errors == []) == expected_valid(value), (name, value, errors)


@SETTINGS
@hypothesis.given(tail=st.text(max_size=30), workdir=st.text(min_size=1, max_size=20))
def test_strings_that_reach_the_guest_shell_are_refused_or_stay_one_word(tail, workdir):
    url = "http://169.254.169.254/" + tail
    try:
        config = probe_config(metadata_url=url, probe_workdir="/" + workdir)
    except ProbeConfigError as e:
        assert e.argument in ("metadata_url", "probe_workdir"), e
        assert syntax_errors(metadata_url=url, probe_workdir="/" + workdir)
        return
    assert not SHELL_SPECIAL & set(tail + workdir)
    meter = MetadataMeter(lambda: None, config)
    # sh -c SCRIPT sh WORKDIR PREFIX PROBE OPTION...: each value one word
    words = shlex.split(meter._start_command())
    assert words[:2] == ["sh", "-c"] and words[3:5] == ["sh", config.workdir]
    options = words[7:]
    assert options[options.index("-u") + 1] == url


@SETTINGS
@hypothesis.given(config=st.dictionaries(
    st.sampled_from(["allowed_metadata_downtime", "allowed_network_downtime", "max",
                     "allowed_downtime"]), any_value, max_size=3))
def test_the_sla_config_is_accepted_exactly_when_it_makes_sense(config):
    errors = rally_sla.SLA.validate("metadata_downtime", {}, {}, config)
    known = {"allowed_metadata_downtime", "allowed_network_downtime"}
    sensible = ("allowed_metadata_downtime" in config and set(config) <= known
                and all(is_seconds(v, high=math.inf) for v in config.values()))
    assert (errors == []) == sensible, (config, errors)
    if not sensible:
        assert errors


@pytest.mark.parametrize("argument, value, limit", [
    ("metadata_url", "http://169.254.169.254/" + "a" * 250, 256),
    ("probe_workdir", "/" + "w" * 100, 100)])
def test_values_too_long_for_the_launch_command_are_refused_by_name(argument, value, limit):
    with pytest.raises(ProbeConfigError,
                       match=f"^{argument}: at most {limit} characters, got {len(value)}$"):
        probe_config(**{argument: value})
    probe_config(**{argument: value[:limit]})
