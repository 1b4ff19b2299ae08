"""IPv6 metadata beside IPv4 (metadata_families): the pure parts. Each family's
lines of one probe log, its own figures in the record, its own charts and SLA limit."""

from __future__ import annotations

import json

import pytest

from rally_metadata_downtime.analysis import analyse
from rally_metadata_downtime.meter import MetadataMeter, MeterError
from rally_metadata_downtime.plugins import atomics, charts
from rally_metadata_downtime.plugins.scenario import (
    BootAndLiveMigrate,
    BootAndWatch,
    wait_for_recovery,
)
from rally_metadata_downtime.plugins.sla import MetadataDowntime
from rally_metadata_downtime.plugins.validators import check_arguments, scenario_arguments
from rally_metadata_downtime.probe_config import ProbeConfig, ProbeConfigError, from_arguments
from rally_metadata_downtime.probe_log import parse_probe_log
from rally_metadata_downtime.records import IterationRecord, Measurement, Migration
from tests.unit.plugin_data import iteration

HEADER = ("# rmd-probe v1 interval=0.2 retry=0.05 timeout=1 mode=hostname expect= "
          "client=wget families=ipv4,ipv6 iface=eth0 started=99.90\n")


def two_family_text(ipv4: list[str], ipv6: list[str], step=0.2) -> str:
    """One launch per step, each with one request per family; a state is "OK" or a
    failure reason."""
    lines = [HEADER]
    for seq, (four, six) in enumerate(zip(ipv4, ipv6), start=1):
        t = 100.0 + (seq - 1) * step
        for family, state in (("ipv4", four), ("ipv6", six)):
            verdict = "OK http=200" if state == "OK" else f"FAIL {state}"
            lines.append(f"P {seq} {t:.2f} {t + 0.01:.2f} {verdict} {step} {family}\n")
    lines.append(f"# stopped {100.0 + len(ipv4) * step:.2f}\n")
    return "".join(lines)


# ipv6 down 10 probes (2 s), ipv4 untouched.
IPV6_OUTAGE = two_family_text(["OK"] * 25, ["OK"] * 5 + ["http=503"] * 10 + ["OK"] * 10)


def two_family_measurement(text=IPV6_OUTAGE) -> Measurement:
    log = parse_probe_log(text)
    return Measurement(log=log, families=("ipv4", "ipv6"),
                       report=analyse(log.family("ipv4"), recovered_after=101.0),
                       more_reports={"ipv6": analyse(log.family("ipv6"),
                                                     recovered_after=101.0)},
                       migrations=[Migration(100.9, 101.8, "compute-1", "compute-2")])


# -- probe settings ------------------------------------------------------------------
def test_the_ipv6_url_is_the_metadata_path_at_the_link_local_address():
    config = ProbeConfig(families=["ipv4", "ipv6"])
    assert config.families == ("ipv4", "ipv6")
    assert config.url6 == "http://[fe80::a9fe:a9fe]/latest/meta-data/hostname"
    zoned = ProbeConfig(url="http://169.254.169.254/openstack/latest/meta_data.json?x=1",
                        expect="00000000-0000-0000-0000-000000000000",
                        families=("ipv6",), ipv6_interface="ens3")
    assert zoned.url6 == "http://[fe80::a9fe:a9fe%ens3]/openstack/latest/meta_data.json?x=1"


@pytest.mark.parametrize("families", [[], ["ipv5"], ["ipv4", "ipv4"], "ipv4", None,
                                      [4], ["ipv6; reboot"]])
def test_bad_families_are_refused_by_the_argument_name(families):
    with pytest.raises(ProbeConfigError) as error:
        from_arguments("http://169.254.169.254/latest/meta-data/hostname", 0.1, 1.0,
                       "/tmp", metadata_families=families)
    assert error.value.argument == "metadata_families"
    assert "ipv4, ipv6" in error.value.problem


@pytest.mark.parametrize("interface", ["eth0;reboot", "$(id)", "a b", "x" * 16, "'",
                                       "eth0%1", 5])
def test_an_interface_that_could_act_in_a_shell_is_refused_by_name(interface):
    with pytest.raises(ProbeConfigError) as error:
        from_arguments("http://169.254.169.254/latest/meta-data/hostname", 0.1, 1.0,
                       "/tmp", metadata_families=["ipv6"], metadata_ipv6_interface=interface)
    assert error.value.argument == "metadata_ipv6_interface"


@pytest.mark.parametrize("scenario", [BootAndLiveMigrate, BootAndWatch])
def test_both_scenarios_take_the_families_and_default_to_ipv4(scenario):
    args = scenario_arguments(scenario, {})
    assert args["metadata_families"] == ["ipv4"]
    assert args["metadata_ipv6_interface"] is None
    check_arguments(scenario_arguments(scenario, {"metadata_families": ["ipv4", "ipv6"],
                                                  "metadata_ipv6_interface": "eth0"}))
    with pytest.raises(ProbeConfigError, match="ipv4, ipv6"):
        check_arguments(scenario_arguments(scenario, {"metadata_families": ["ipv7"]}))


def test_the_probe_is_told_the_families_and_the_ipv6_url_only_when_asked():
    assert "-f" not in MetadataMeter(lambda: None, ProbeConfig())._probe_options()
    options = MetadataMeter(lambda: None, ProbeConfig(
        families=("ipv6", "ipv4"), ipv6_interface="eth1"))._probe_options()
    assert options[options.index("-f") + 1] == "ipv4,ipv6"
    assert options[options.index("-U") + 1] == \
        "http://[fe80::a9fe:a9fe%eth1]/latest/meta-data/hostname"


def test_a_guest_without_ipv6_is_a_clear_error_at_the_start():
    class Guest:
        def execute(self, command, timeout):
            return (12, "100.00 1.00\n/tmp/rmd-probe.abc123\n",
                    "metadata_probe: no IPv6 link-local address on any interface\n"
                    "(the probe exited with status 5)\n")

        def close(self):
            pass
    meter = MetadataMeter(Guest, ProbeConfig(families=("ipv4", "ipv6")))
    with pytest.raises(MeterError, match="metadata_families asks for ipv6 and the guest "
                                         "has no IPv6 link-local address"):
        meter.start()


# -- the log ---------------------------------------------------------------------------
def test_each_family_is_its_own_log_and_old_lines_are_ipv4():
    log = parse_probe_log(IPV6_OUTAGE)
    assert log.families == ("ipv4", "ipv6")
    assert log.header.interface == "eth0"
    assert not log.clock_reset          # one seq per family, not a second probe run
    assert len(log.family("ipv4").probes) == len(log.family("ipv6").probes) == 25
    assert analyse(log.family("ipv4")).outages == ()
    (outage,) = analyse(log.family("ipv6")).outages
    assert outage.duration == pytest.approx(2.0, abs=0.01)
    old = parse_probe_log("P 1 1.00 1.10 OK http=200 0.1\nP 2 1.10 1.20 FAIL curl=7\n")
    assert [p.family for p in old.probes] == ["ipv4", "ipv4"]
    assert old.families == ("ipv4",)
    # A family needs the pause before it: no other field can be taken for one.
    assert parse_probe_log("P 1 1.00 1.10 OK http=200 ipv6\n"
                           "P 2 1.1 1.2 OK http=200\n").garbage_lines == 1


# -- record, charts, SLA ------------------------------------------------------------------
def test_each_family_has_its_own_figures_in_the_record_and_survives_json():
    record = two_family_measurement().record()
    assert record.families == ("ipv4", "ipv6")
    by_family = record.metadata_by_family
    assert by_family["ipv4"].downtime == 0
    assert by_family["ipv6"].downtime == pytest.approx(2.0, abs=0.01)
    assert by_family["ipv6"].family == "ipv6"
    assert IterationRecord.from_json(record.to_json()) == record


def test_a_version_1_record_reads_as_ipv4_only():
    record = two_family_measurement().record()
    data = json.loads(record.to_json())
    data["version"] = 1
    for key in ("families", "more_metadata"):
        del data[key]
    del data["metadata"]["family"]
    old = IterationRecord.from_json(json.dumps(data))
    assert old.families == ("ipv4",)
    assert list(old.metadata_by_family) == ["ipv4"]


def test_the_charts_show_each_family():
    measurement = two_family_measurement()
    record = measurement.record()
    additive = charts.additive_charts(record)
    assert additive[-1]["title"] == "Metadata downtime (ipv6)"
    assert additive[-1]["data"] == [["ipv6 metadata downtime", 2.0]]
    summary, timeline, outages, _ = charts.complete_charts(record, measurement.log)
    rows = dict(summary["data"]["rows"])
    assert rows["metadata families"].startswith("ipv4, ipv6")
    assert rows["ipv6 metadata downtime (s)"] == pytest.approx(2.0, abs=0.01)
    assert rows["metadata downtime (s)"] == 0
    names = [name for name, _ in timeline["data"]]
    assert names[:3] == ["probe ok", "live migration", "probe failed"]
    assert {"ipv6 probe ok", "ipv6 probe failed"} <= set(names)
    assert [row[0] for row in outages["data"]["rows"]] == ["ipv6 1"]
    # IPv4 alone draws what it always drew.
    assert [c["title"] for c in charts.additive_charts(Measurement().record())] == \
        list(charts.ADDITIVE_TITLES)


def test_the_sla_holds_each_family_to_its_own_limit_and_names_it():
    result = iteration(two_family_measurement())
    checker = MetadataDowntime({"allowed_metadata_downtime": 6})
    assert checker.add_iteration(result)
    assert "worst ipv6 metadata downtime 2.00 s (iteration 1), allowed 6 s" in \
        checker.details()
    tight = MetadataDowntime({"allowed_metadata_downtime": 6,
                              "allowed_metadata_downtime_ipv6": 1})
    assert not tight.add_iteration(result)
    assert "worst ipv4 metadata downtime 0.00 s (iteration 1), allowed 6 s; worst " \
           "ipv6 metadata downtime 2.00 s (iteration 1), allowed 1 s" in tight.details()
    # A limit for IPv4 alone leaves IPv6 at the general one.
    assert MetadataDowntime({"allowed_metadata_downtime": 6,
                             "allowed_metadata_downtime_ipv4": 0.5}).add_iteration(result)


def test_recovery_waits_for_every_family():
    ipv6_down = two_family_text(["OK"] * 25, ["OK"] * 5 + ["http=503"] * 20)
    ticks = iter(range(100))
    args = dict(recovered_after=101.0, settle=0.5, timeout=3, clock=lambda: next(ticks),
                sleep=lambda _: None)
    assert wait_for_recovery(lambda: ipv6_down, families=("ipv4",), **args)
    assert not wait_for_recovery(lambda: ipv6_down, families=("ipv4", "ipv6"), **args)


def test_each_family_after_the_first_is_an_atomic_action_of_its_own():
    measurement = two_family_measurement()
    measurement.clock_offset = 1000.0
    actions = {a["name"]: a for a in atomics.downtime_actions(measurement.record())}
    assert set(actions) == {"metadata.downtime", "metadata.ipv6.downtime"}
    assert actions["metadata.downtime"]["children"] == []
    ipv6 = actions["metadata.ipv6.downtime"]
    assert ipv6["finished_at"] - ipv6["started_at"] == pytest.approx(2.0, abs=0.01)
    assert [c["name"] for c in ipv6["children"]] == ["metadata.ipv6.outage"]
