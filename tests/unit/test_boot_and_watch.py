"""MetadataDowntime.boot_and_watch with Nova, SSH, the meter and ping mocked, and the
record, charts, atomic actions and SLA it produces."""

import types
from unittest import mock

import pytest
from novaclient import api_versions
from rally.task import atomic

from rally_metadata_downtime import hook_marks
from rally_metadata_downtime.arguments import ArgumentError
from rally_metadata_downtime.meter import GuestClock
from rally_metadata_downtime.plugins import atomics, charts
from rally_metadata_downtime.plugins import scenario as scenario_module
from rally_metadata_downtime.plugins.scenario import BootAndWatch, MetadataNotRecovered
from rally_metadata_downtime.plugins.sla import MetadataDowntime
from rally_metadata_downtime.plugins.validators import check_arguments, scenario_arguments
from rally_metadata_downtime.records import IterationRecord
from tests.unit.plugin_data import network, probe_text

# The probe log: OKs from guest uptime 100.0, failures 101.0 - 102.8, OKs 103.0 - 106.8.
RECOVERED_LOG = probe_text(*(["OK"] * 5 + ["curl=7"] * 10 + ["OK"] * 20))
NEVER_RECOVERED_LOG = probe_text(*(["OK"] * 5 + ["curl=7"] * 30))
WATCH_AT = 100.5            # guest uptime when the watch begins
HOST_AT_WATCH = 1_000_000.0  # the Rally host's clock then
OFFSET = HOST_AT_WATCH - WATCH_AT
KEYPAIR = {"name": "rally-kp", "private": "-----BEGIN RSA PRIVATE KEY-----"}
ARGS = {"image": "image-id", "flavor": "flavor-id", "username": "cirros",
        "duration": 4, "settle": 1, "recovery_timeout": 2}


class FakeTime:
    """The scenario's clock: the watch's sleep moves it, nothing waits."""

    def __init__(self):
        self.now = HOST_AT_WATCH

    def time(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


class WatchRig:
    def __init__(self, monkeypatch, tmp_path, log=RECOVERED_LOG):
        monkeypatch.setenv("HOME", str(tmp_path))
        self.clock = FakeTime()
        monkeypatch.setattr(scenario_module, "time", self.clock)
        self.scenario = BootAndWatch(
            context={"user": {"keypair": KEYPAIR, "credential": mock.Mock()},
                     "task": {"uuid": "task-1"}, "owner_id": "owner"},
            admin_clients=mock.Mock(), clients=mock.Mock())
        self.server = mock.Mock(id="6c0a7c4e-2f1b-4b8e-9b3a-1f0e7f1c2d3e")
        admin_server = types.SimpleNamespace(**{"OS-EXT-SRV-ATTR:host": "compute-1"})
        self.scenario._admin_clients.nova.return_value.servers.get.return_value = (
            admin_server)
        self.meter = mock.Mock(name="meter", clock=GuestClock(offset=OFFSET, error=0.01))
        self.meter.fetch_log.return_value = log
        self.meter.stop.return_value = log
        monkeypatch.setattr(scenario_module, "MetadataMeter",
                            mock.Mock(return_value=self.meter))
        self.pingers = []
        monkeypatch.setattr(scenario_module, "PingMeter", self._pinger)
        monkeypatch.setattr(scenario_module.sshutils, "SSH", mock.Mock(name="SSH"))
        s = self.scenario
        s._clients.nova.return_value.api_version = api_versions.APIVersion("2.1")
        s._boot_server_with_fip = mock.Mock(side_effect=self._boot)
        s._wait_for_ssh = mock.Mock()
        s._delete_server_with_fip = mock.Mock()

    def _pinger(self, address, interval):
        pinger = mock.Mock(name="PingMeter", address=address, interval=interval)
        pinger.stop.return_value = network(lost=2)
        self.pingers.append(pinger)
        return pinger

    def _boot(self, *args, **kwargs):
        with atomic.ActionTimer(self.scenario, "nova.boot_server"):
            pass
        return self.server, {"ip": "203.0.113.10", "is_floating": True}

    def run(self, **overrides):
        self.scenario.run(**dict(ARGS, **overrides))

    @property
    def actions(self):
        return [a["name"] for a in self.scenario.atomic_actions()]

    def record(self) -> IterationRecord:
        return IterationRecord.from_output(self.scenario._output)


def mark_run(started_uptime, finished_uptime, name="restart agent", task="task-1"):
    hook_marks.write_mark(task, {"run": name, "name": name, "triggered_by": "time: 10",
                                 "started_at": started_uptime + OFFSET})
    if finished_uptime is not None:
        hook_marks.write_mark(task, {"run": name, "finished_at": finished_uptime + OFFSET,
                                     "status": "success"})


@pytest.fixture
def rig(monkeypatch, tmp_path):
    return WatchRig(monkeypatch, tmp_path)


def test_one_watch_in_order_gives_the_same_record_and_charts(rig):
    mark_run(100.95, 103.0)
    rig.run()
    assert rig.actions == ["nova.boot_server", "metadata_meter.start",
                           "metadata_meter.wait_answering", "metadata_meter.watch",
                           "metadata_meter.wait_recovery", "metadata_meter.collect",
                           "metadata.downtime", "network.downtime"]
    assert [c["title"] for c in rig.scenario._output["additive"]] == list(
        charts.ADDITIVE_TITLES)
    assert [c["title"] for c in rig.scenario._output["complete"]] == [
        charts.SUMMARY_TITLE, charts.TIMELINE_TITLE, charts.OUTAGES_TITLE,
        "Metadata downtime record"]
    record = rig.record()
    assert record.migrations == ()
    assert record.watch.start == pytest.approx(WATCH_AT)
    assert record.watch.end == pytest.approx(WATCH_AT + 4)
    assert record.watch.host == "compute-1"
    assert record.watch.network_downtime == pytest.approx(0.4)
    assert 1.8 <= record.metadata.downtime <= 2.2 and record.metadata.recovered
    [run] = record.disruptions
    assert (run.name, run.triggered_by, run.status) == ("restart agent", "time: 10",
                                                        "success")
    assert record.to_guest(run.started_at) == pytest.approx(100.95)
    [pinger] = rig.pingers
    pinger.start.assert_called_once_with()
    rig.scenario._delete_server_with_fip.assert_called_once()


def test_hook_runs_outside_the_measurement_or_of_other_tasks_are_not_kept(rig):
    mark_run(90.0, 95.0, name="earlier")
    mark_run(101.0, 102.0, name="other task", task="task-2")
    mark_run(104.0, None, name="still running")
    rig.run()
    assert [d.name for d in rig.record().disruptions] == ["still running"]


def test_no_marks_is_no_disruption_and_says_so(rig):
    rig.run()
    record = rig.record()
    assert record.disruptions == ()
    [timeline] = [c for c in rig.scenario._output["complete"]
                  if c["title"] == charts.TIMELINE_TITLE]
    assert "No marked hook ran" in timeline["description"]


def test_not_recovered_after_the_watch_fails_the_iteration(monkeypatch, tmp_path):
    rig = WatchRig(monkeypatch, tmp_path, log=NEVER_RECOVERED_LOG)
    with pytest.raises(MetadataNotRecovered, match="after the watch"):
        rig.run()
    record = rig.record()
    assert record.metadata.recovered is False
    checker = MetadataDowntime({"allowed_metadata_downtime": 100})
    checker.add_iteration({"timestamp": 1.0, "output": rig.scenario._output})
    assert checker.success is False
    assert "metadata did not recover after the watch" in checker.details()


def test_unreadable_marks_do_not_fail_the_iteration(rig, tmp_path):
    marks = hook_marks.marks_directory(create=True)
    marks.chmod(0o777)
    rig.run()
    assert rig.record().disruptions == ()
    assert rig.record().metadata.recovered


def test_timeline_marks_the_hook_run_and_the_watch(rig):
    mark_run(100.95, 103.0)
    rig.run()
    record = rig.record()
    chart = charts.timeline_chart(scenario_module.parse_probe_log(RECOVERED_LOG), record)
    series = dict(chart["data"])
    assert list(series) == ["probe ok", "hook run", "probe failed", "watch"]
    hook_box = series["hook run"]
    assert [round(x, 2) for x, y in hook_box if y == charts.MIGRATION_HIGH] == [0.45, 2.5]
    watch_box = series["watch"]
    assert [round(x, 2) for x, y in watch_box if y == charts.NOVA_HIGH] == [0.0, 4.0]
    assert "restart agent (time: 10; 0.45 - 2.50 s, success)" in chart["description"]
    assert chart["axis_label"] == "seconds since the watch began"
    [outage] = charts.outage_table(record)["data"]["rows"]
    # Against the hook run's start: the outage began as it did, ended 2 s later.
    assert outage[-1] == "-0.04 / +1.96"


def test_sla_and_atomics_read_a_watch_record(rig):
    mark_run(100.95, 103.0)
    rig.run()
    record = rig.record()
    [metadata_root, network_root] = atomics.downtime_actions(record)
    assert metadata_root["started_at"] == pytest.approx(record.metadata.outages[0].start
                                                        + OFFSET)
    strict, lenient = (MetadataDowntime({"allowed_metadata_downtime": limit})
                       for limit in (1.0, 5.0))
    for checker in (strict, lenient):
        checker.add_iteration({"timestamp": 1.0, "output": rig.scenario._output})
    assert (strict.success, lenient.success) == (False, True)
    rows = dict(map(tuple, charts.host_pair_table(record)["data"]))
    assert set(rows) == {"compute-1 (watched): metadata", "compute-1 (watched): network"}


def test_a_quiet_watch_puts_the_downtime_root_at_its_end(rig, monkeypatch, tmp_path):
    quiet = WatchRig(monkeypatch, tmp_path, log=probe_text(*(["OK"] * 40)))
    quiet.run()
    record = quiet.record()
    [metadata_root, _] = atomics.downtime_actions(record)
    assert metadata_root["started_at"] == pytest.approx(record.watch.end + OFFSET)
    assert metadata_root["finished_at"] == metadata_root["started_at"]


def test_old_records_without_a_watch_still_read():
    text = ('{"version": 1, "metadata": null, "network": null, "migrations": [], '
            '"error": "x", "clock_offset": null, "server_id": null}')
    record = IterationRecord.from_json(text)
    assert record.watch is None and record.disruptions == ()
    assert record.event == "the migration"


@pytest.mark.parametrize("args, argument", [
    ({"settle": 10, "recovery_timeout": 5}, "settle"),
    ({"metadata_url": "http://x/;reboot"}, "metadata_url"),
    ({"probe_workdir": "tmp"}, "probe_workdir"),
])
def test_watch_arguments_are_checked_from_the_signature_defaults(args, argument):
    with pytest.raises(ArgumentError) as error:
        check_arguments(scenario_arguments(BootAndWatch, args))
    assert error.value.argument == argument


def test_watch_defaults_pass_validation():
    defaults = scenario_arguments(BootAndWatch, {})
    assert defaults["duration"] == 60
    check_arguments(defaults)
