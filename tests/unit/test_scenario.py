"""MetadataDowntime.boot_and_live_migrate with Nova, SSH, the meter and ping mocked."""

import time
from unittest import mock

import pytest
import requests
from novaclient import api_versions
from novaclient import client as nova_client
from novaclient.v2 import servers as nova_servers
from rally.task import atomic

from rally_metadata_downtime.meter import GuestClock, MeterError
from rally_metadata_downtime.plugins import charts
from rally_metadata_downtime.plugins import scenario as scenario_module
from rally_metadata_downtime.plugins.scenario import (
    BootAndLiveMigrate,
    MetadataNotMeasured,
    MetadataNotRecovered,
    MetadataProbeStopped,
    wait_for_recovery,
)
from rally_metadata_downtime.probe_log import ProbeLogError
from rally_metadata_downtime.records import IterationRecord
from tests.helpers import syntax_errors
from tests.unit.plugin_data import network, probe_text

# Guest uptime when the (instant, mocked) migration happens: the probe log below has
# OKs from 100.0, failures 101.0 - 102.8, OKs 103.0 - 106.8.
MIGRATION_AT = 100.9
RECOVERED_LOG = probe_text(*(["OK"] * 5 + ["curl=28"] * 10 + ["OK"] * 20))
NEVER_RECOVERED_LOG = probe_text(*(["OK"] * 5 + ["curl=28"] * 30))
NEVER_ANSWERED_LOG = probe_text(*(["curl=7"] * 20))

KEYPAIR = {"name": "rally-kp", "private": "-----BEGIN RSA PRIVATE KEY-----"}
ARGS = {"image": "image-id", "flavor": "flavor-id", "username": "cirros",
        "settle": 1, "recovery_timeout": 2}


class Rig:
    """The scenario with every outside call replaced, recording what happened."""

    def __init__(self, monkeypatch, log=RECOVERED_LOG):
        self.calls = []
        self.scenario = BootAndLiveMigrate(
            context={"user": {"keypair": KEYPAIR, "credential": mock.Mock()},
                     "task": {"uuid": "task"}, "owner_id": "owner"},
            admin_clients=mock.Mock(), clients=mock.Mock())
        self.server = mock.Mock(id="6c0a7c4e-2f1b-4b8e-9b3a-1f0e7f1c2d3e")
        self.fip = {"ip": "203.0.113.10", "is_floating": True}
        self.meter = mock.Mock(name="meter")
        self.meter.clock = GuestClock(offset=time.time() - MIGRATION_AT, error=0.01)
        self.meter.fetch_log.return_value = log
        self.meter.stop.return_value = log
        self.meter.start.side_effect = lambda: self.calls.append("meter.start")
        self.meter.cleanup.side_effect = lambda: self.calls.append("meter.cleanup")
        self.meter_class = mock.Mock(return_value=self.meter)
        self.pingers = []
        self.ssh_class = mock.Mock(name="SSH")
        monkeypatch.setattr(scenario_module, "MetadataMeter", self.meter_class)
        monkeypatch.setattr(scenario_module, "PingMeter", self._pinger)
        monkeypatch.setattr(scenario_module.sshutils, "SSH", self.ssh_class)
        s = self.scenario
        # The user's clients (boot): Nova at 2.1 picks a network by itself.
        self.user_nova = s._clients.nova.return_value
        self.user_nova.api_version = api_versions.APIVersion("2.1")
        s._boot_server_with_fip = mock.Mock(side_effect=self._boot)
        s._wait_for_ssh = mock.Mock(side_effect=self._timed("vm.wait_for_ssh"))
        self.nova = mock.Mock(name="admin nova", api_version=api_versions.APIVersion("2.96"))
        s._migration_client = mock.Mock(return_value=self.nova)
        s._live_migrate_server = mock.Mock(side_effect=self._timed(
            "nova.live_migrate", result=("compute-1", "compute-2", "req-1")))
        self.nova.instance_action.get.return_value = mock.Mock(events=[
            {"event": "compute_live_migration", "start_time": "2026-12-02T01:00:00.000000",
             "finish_time": "2026-12-02T01:00:02.500000", "result": "Success"}])
        s._delete_server_with_fip = mock.Mock(side_effect=self._delete)

    def _pinger(self, address, interval):
        pinger = mock.Mock(name="PingMeter", address=address, interval=interval)
        pinger.stop.return_value = network(lost=5)
        self.pingers.append(pinger)
        return pinger

    def _timed(self, name, error=None, result=None):
        def action(*args, **kwargs):
            with atomic.ActionTimer(self.scenario, name):
                self.calls.append(name)
                if error:
                    raise error
            return result
        return action

    def _boot(self, *args, **kwargs):
        with atomic.ActionTimer(self.scenario, "nova.boot_server"):
            self.calls.append("boot")
        return self.server, self.fip

    def _delete(self, server, fip):
        self.calls.append("delete")

    def run(self, **overrides):
        self.scenario.run(**dict(ARGS, **overrides))

    def fails(self, error, **overrides):
        with pytest.raises(error) as info:
            self.run(**overrides)
        return info.value

    @property
    def actions(self):
        return [a["name"] for a in self.scenario.atomic_actions()]

    @property
    def additive_titles(self):
        return [c["title"] for c in self.scenario._output["additive"]]

    def record(self) -> IterationRecord:
        return IterationRecord.from_output(self.scenario._output)


@pytest.fixture
def rig(monkeypatch):
    monkeypatch.setattr(scenario_module.time, "sleep", lambda s: None)
    return Rig(monkeypatch)


def test_one_iteration_in_order(rig):
    rig.run()
    assert rig.actions == ["nova.boot_server", "vm.wait_for_ssh", "metadata_meter.start",
                           "metadata_meter.wait_answering", "nova.live_migrate",
                           "nova.get_instance_action",
                           "metadata_meter.wait_recovery", "metadata_meter.collect",
                           "metadata.downtime", "network.downtime"]
    assert rig.calls == ["boot", "vm.wait_for_ssh", "meter.start", "nova.live_migrate",
                         "meter.cleanup", "delete"]
    rig.scenario._live_migrate_server.assert_called_once_with(rig.nova, rig.server, None,
                                                             False)
    rig.scenario._delete_server_with_fip.assert_called_once_with(rig.server, rig.fip)
    assert rig.additive_titles == list(charts.ADDITIVE_TITLES)
    assert [c["title"] for c in rig.scenario._output["complete"]] == [
        charts.SUMMARY_TITLE, charts.TIMELINE_TITLE, charts.OUTAGES_TITLE,
        "Metadata downtime record"]
    record = rig.record()
    assert record.server_id == rig.server.id
    assert record.measured and record.metadata.recovered
    assert 1.8 <= record.metadata.downtime <= 2.2
    assert record.network.downtime == pytest.approx(1.0)
    [migration] = record.migrations
    assert (migration.source_host, migration.destination_host) == ("compute-1",
                                                                   "compute-2")
    rig.nova.instance_action.get.assert_called_once_with(rig.server.id, "req-1")
    [event] = migration.nova_events
    assert (event.name, event.finish - event.start) == ("compute_live_migration", 2.5)


def test_each_migration_ends_the_ssh_session_before_the_meter_is_asked_again(rig):
    order = []
    rig.meter.close.side_effect = lambda: order.append("close")
    rig.scenario._live_migrate_server.side_effect = (
        lambda *args: order.append("migrate") or ("compute-1", "compute-2", "req-1"))
    log = rig.meter.stop.return_value
    rig.meter.fetch_log.side_effect = lambda: order.append("fetch") or log
    rig.run(migrations=2)
    assert order[:4] == ["migrate", "close", "migrate", "close"]
    assert order[4:] and set(order[4:]) == {"fetch"}


def test_boot_ssh_and_meter_arguments(rig):
    rig.run(port=2222, password="pw", floating_network="public", probe_interval=0.5,
            boot_server_kwargs={"availability_zone": "nova"})
    rig.scenario._boot_server_with_fip.assert_called_once_with(
        "image-id", "flavor-id", use_floating_ip=True, floating_network="public",
        key_name="rally-kp", availability_zone="nova")
    rig.ssh_class.assert_called_with("cirros", "203.0.113.10", port=2222, password="pw",
                                     pkey=KEYPAIR["private"])
    connect, config = rig.meter_class.call_args.args
    assert config.interval == 0.5 and config.mode == "hostname" and config.expect == ""
    connect()  # a new SSH on every call: the meter reconnects after a migration
    assert rig.ssh_class.call_count == 2
    rig.meter.wait_until_answering.assert_called_once_with(60)


def test_uuid_mode_expects_this_server(rig):
    rig.run(metadata_url="http://169.254.169.254/openstack/latest/meta_data.json")
    config = rig.meter_class.call_args.args[1]
    assert config.mode == "uuid" and config.expect == rig.server.id


def test_several_migrations_each_pinged(rig):
    rig.run(migrations=3, ping_interval=0.1)
    assert rig.actions.count("nova.live_migrate") == 3
    assert [(p.address, p.interval) for p in rig.pingers] == [("203.0.113.10", 0.1)] * 3
    for pinger in rig.pingers:
        pinger.start.assert_called_once_with()
        pinger.stop.assert_called_once_with()
    assert rig.record().network.downtime == pytest.approx(3.0)


def test_without_network_measurement(rig):
    rig.run(measure_network=False)
    assert rig.pingers == []
    assert rig.record().network is None
    assert rig.additive_titles == list(charts.ADDITIVE_TITLES)


def test_explicit_destination_host_and_microversion(rig):
    rig.run(destination_host="compute-2", block_migration="auto", nova_microversion="2.30")
    rig.scenario._migration_client.assert_called_once_with("2.30")
    rig.scenario._live_migrate_server.assert_called_once_with(rig.nova, rig.server,
                                                             "compute-2", "auto")


def test_auto_block_migration_below_2_25_is_refused_before_boot(rig):
    rig.nova.api_version = api_versions.APIVersion("2.1")
    error = rig.fails(ValueError, block_migration="auto")
    assert str(error).startswith("block_migration: 'auto' needs Nova microversion 2.25")
    assert "boot" not in rig.calls


def test_without_a_network_context_nova_from_2_37_boots_on_the_projects_network(rig):
    """An environment at api_info 2.79 and no network context: novaclient refuses a
    boot without nics, so the scenario names the project's only network."""
    rig.user_nova.api_version = api_versions.APIVersion("2.79")
    rig.scenario.context["tenant"] = {"id": "p1"}
    neutron = rig.scenario._clients.neutron.return_value
    neutron.list_networks.return_value = {"networks": [
        {"id": "net-1", "name": "shared", "shared": True, "project_id": "admin"},
        {"id": "net-ext", "name": "public", "shared": True, "router:external": True}]}
    rig.run()
    assert rig.scenario._boot_server_with_fip.call_args.kwargs["nics"] == [
        {"net-id": "net-1"}]
    assert rig.actions[:2] == ["neutron.list_networks", "nova.boot_server"]


def test_several_networks_and_no_context_is_refused_before_boot(rig):
    rig.user_nova.api_version = api_versions.APIVersion("2.79")
    rig.scenario.context["tenant"] = {"id": "p1"}
    rig.scenario._clients.neutron.return_value.list_networks.return_value = {
        "networks": [{"id": "a", "name": "a", "shared": True},
                     {"id": "b", "name": "b", "project_id": "p1"}]}
    error = rig.fails(ValueError)
    assert str(error).startswith("boot_server_kwargs.nics: Nova 2.79 needs a network")
    assert "boot" not in rig.calls


def _migrating_scenario(version: str, host_after: str = "compute-2", **server_fields):
    """The real _live_migrate_server on a novaclient at `version` whose HTTP calls are
    recorded: the server is ACTIVE on compute-1, then on `host_after`."""
    scenario = BootAndLiveMigrate(context={"user": {"credential": mock.Mock()},
                                           "task": {"uuid": "t"}, "owner_id": "o"},
                                  admin_clients=mock.Mock(), clients=mock.Mock())
    nova = nova_client.Client(version, session=mock.Mock(), endpoint_override="http://n")
    fields = {"id": "s1", "status": "ACTIVE", "OS-EXT-STS:task_state": None}
    answers = iter([dict(fields, **{"OS-EXT-SRV-ATTR:host": "compute-1"}),
                    dict(fields, **server_fields, **{"OS-EXT-SRV-ATTR:host": host_after})])
    nova.servers.get = lambda server_id: nova_servers.Server(nova.servers, next(answers))
    answer = requests.Response()
    answer.status_code = 202
    answer.headers["x-openstack-request-id"] = "req-9"
    nova.client.post = mock.Mock(return_value=(answer, None))
    return scenario, nova


@pytest.mark.parametrize("version, host, block_migration, body", [
    ("2.1", None, False, {"host": None, "block_migration": False,
                          "disk_over_commit": False}),
    ("2.24", "compute-2", True, {"host": "compute-2", "block_migration": True,
                                 "disk_over_commit": False}),
    ("2.25", None, "auto", {"host": None, "block_migration": "auto"}),
    ("2.30", "compute-2", False, {"host": "compute-2", "block_migration": False}),
    ("2.68", None, True, {"host": None, "block_migration": True}),
    ("2.96", "compute-2", "auto", {"host": "compute-2", "block_migration": "auto"}),
])
def test_live_migration_body_at_each_microversion(version, host, block_migration, body):
    scenario, nova = _migrating_scenario(version)
    assert scenario._live_migrate_server(nova, mock.Mock(id="s1"), host,
                                         block_migration) == ("compute-1", "compute-2",
                                                              "req-9")
    nova.client.post.assert_called_once_with(
        "/servers/s1/action", body={"os-migrateLive": body})
    assert [a["name"] for a in scenario.atomic_actions()] == ["nova.live_migrate"]


def assert_failed_iteration(rig, *, deleted=True, cleaned=True):
    """Same additive charts in the same order, cleanup done, summary says why."""
    assert rig.additive_titles == list(charts.ADDITIVE_TITLES)
    assert rig.scenario._output["complete"][0]["title"] == charts.SUMMARY_TITLE
    assert (rig.calls[-1:] == ["delete"]) == deleted
    assert ("meter.cleanup" in rig.calls) == cleaned


def test_boot_fails(rig):
    rig.scenario._boot_server_with_fip.side_effect = RuntimeError("no valid host")
    rig.fails(RuntimeError)
    assert_failed_iteration(rig, deleted=False, cleaned=False)
    assert not rig.record().measured
    assert rig.record().error == "RuntimeError: no valid host"


def test_ssh_never_up(rig):
    from rally import exceptions
    rig.scenario._wait_for_ssh.side_effect = exceptions.SSHTimeout("timed out")
    rig.fails(exceptions.SSHTimeout)
    # the meter owns the connection that waited, so its cleanup closes it
    assert_failed_iteration(rig, cleaned=True)
    rig.meter.start.assert_not_called()
    [waited_on], _ = rig.scenario._wait_for_ssh.call_args
    assert rig.meter_class.call_args.kwargs["connection"] is waited_on


def test_the_meter_reuses_the_connection_that_waited_for_ssh(rig):
    rig.run()
    [waited_on], _ = rig.scenario._wait_for_ssh.call_args
    assert rig.meter_class.call_args.kwargs["connection"] is waited_on


def test_meter_start_fails(rig):
    rig.meter.start.side_effect = MeterError("no sh")
    rig.fails(MeterError)
    assert_failed_iteration(rig)
    assert not rig.record().measured
    assert rig.record().error == "MeterError: no sh"
    rig.scenario._live_migrate_server.assert_not_called()


def test_metadata_never_answered_before_migration(rig):
    rig.meter.wait_until_answering.side_effect = MeterError(
        "metadata never answered from this VM within 60 s")
    error = rig.fails(MeterError)
    assert "never answered" in str(error)
    rig.scenario._live_migrate_server.assert_not_called()
    assert_failed_iteration(rig)


def test_migration_raises(rig):
    rig.scenario._live_migrate_server.side_effect = rig._timed(
        "nova.live_migrate", RuntimeError("migration went to ERROR"))
    rig.fails(RuntimeError)
    assert_failed_iteration(rig)
    rig.pingers[0].kill.assert_called_once_with()
    rig.pingers[0].stop.assert_not_called()
    rig.meter.stop.assert_not_called()


def test_recovery_times_out_after_output(rig, monkeypatch):
    rig.meter.fetch_log.return_value = rig.meter.stop.return_value = NEVER_RECOVERED_LOG
    error = rig.fails(MetadataNotRecovered, recovery_timeout=0.01)
    assert "did not answer this VM again within 0.01 s" in str(error)
    assert_failed_iteration(rig)
    assert rig.record().metadata.recovered is False
    assert "metadata_meter.collect" in rig.actions


def test_collect_fails(rig):
    rig.meter.stop.side_effect = MeterError("the probe log is gone")
    rig.fails(MeterError)
    assert_failed_iteration(rig)
    assert not rig.record().measured
    assert rig.record().error == "MeterError: the probe log is gone"


def test_no_successful_probe_in_final_log(rig):
    rig.meter.fetch_log.return_value = rig.meter.stop.return_value = NEVER_ANSWERED_LOG
    error = rig.fails(MetadataNotMeasured, recovery_timeout=0.01)
    assert "never answered correctly" in str(error)
    assert_failed_iteration(rig)


def test_meter_cleanup_failure_still_deletes_server(rig):
    rig.meter.cleanup.side_effect = RuntimeError("ssh gone")
    rig.run()
    assert rig.calls[-1] == "delete"


def test_chart_failure_still_cleans_up(rig, monkeypatch):
    monkeypatch.setattr(scenario_module.charts, "additive_charts",
                        mock.Mock(side_effect=ValueError("bad chart")))
    rig.fails(ValueError)
    assert rig.calls[-2:] == ["meter.cleanup", "delete"]


def test_a_cleanup_failure_does_not_hide_the_iterations_own_error(rig):
    rig.scenario._live_migrate_server.side_effect = rig._timed(
        "nova.live_migrate", RuntimeError("did not finish its live migration"))
    rig.scenario._delete_server_with_fip.side_effect = RuntimeError("delete failed")
    error = rig.fails(RuntimeError)
    assert str(error) == "did not finish its live migration"
    assert rig.record().error == "RuntimeError: did not finish its live migration"


def test_a_cleanup_failure_after_a_good_iteration_is_the_error(rig):
    rig.scenario._delete_server_with_fip.side_effect = RuntimeError("delete failed")
    assert str(rig.fails(RuntimeError)) == "delete failed"


def test_a_server_shown_in_error_on_its_way_out_is_waited_for(rig, monkeypatch):
    """Nova fails a live migration whose server is being deleted and shows the
    server in ERROR for a moment (real Nova did, in the cloud lab)."""
    from novaclient import exceptions as nova_exceptions
    from rally import exceptions
    monkeypatch.setattr(scenario_module.rally_utils.time, "sleep", lambda s: None)
    rig.scenario._delete_server_with_fip.side_effect = exceptions.GetResourceErrorStatus(
        resource=rig.server, status="ERROR", fault="Status in failure list {'ERROR'}")
    rig.server.status = "ERROR"
    rig.server.manager.get.side_effect = [mock.Mock(status="ERROR"),
                                          mock.Mock(status="ERROR"),
                                          nova_exceptions.NotFound(404)]
    rig.run()
    assert rig.server.manager.get.call_count == 3
    assert rig.actions[-1] == "nova.wait_for_deletion"


def test_wait_for_recovery_returns_once_settled():
    now = [0.0]
    fetch = mock.Mock(side_effect=[
        NEVER_RECOVERED_LOG,                                  # still down
        probe_text(*(["OK"] * 5 + ["curl=28"] * 10 + ["OK"] * 3)),  # 0.4 s up
        RECOVERED_LOG])                                       # 3.8 s up
    assert wait_for_recovery(fetch, MIGRATION_AT, settle=1, timeout=10,
                             clock=lambda: now[0],
                             sleep=lambda s: now.__setitem__(0, now[0] + s))
    assert fetch.call_count == 3


def test_wait_for_recovery_gives_up_at_timeout():
    now = [0.0]
    fetch = mock.Mock(side_effect=ProbeLogError("empty"))
    assert not wait_for_recovery(fetch, MIGRATION_AT, settle=1, timeout=3,
                                 clock=lambda: now[0],
                                 sleep=lambda s: now.__setitem__(0, now[0] + s))
    assert 3 <= now[0] <= 4


def test_wait_for_recovery_names_a_probe_that_stopped_before_recovery():
    now = [0.0]
    fetch = mock.Mock(return_value=NEVER_RECOVERED_LOG)
    running = mock.Mock(side_effect=[True, False])
    with pytest.raises(MetadataProbeStopped, match=r"stopped running in the guest before "
                       r"metadata recovered \(its log ends at guest uptime 106\.\d s"):
        wait_for_recovery(fetch, MIGRATION_AT, settle=1, timeout=60,
                          probe_running=running, clock=lambda: now[0],
                          sleep=lambda s: now.__setitem__(0, now[0] + s))
    assert running.call_count == 2   # asked only while the log did not grow
    assert now[0] < 60


def test_wait_for_recovery_does_not_ask_while_the_log_grows():
    now = [0.0]
    fetch = mock.Mock(side_effect=[probe_text(*(["OK"] * 5 + ["curl=28"] * n))
                                   for n in range(1, 40)])
    running = mock.Mock(return_value=False)
    assert not wait_for_recovery(fetch, MIGRATION_AT, settle=1, timeout=3,
                                 probe_running=running, clock=lambda: now[0],
                                 sleep=lambda s: now.__setitem__(0, now[0] + s))
    running.assert_not_called()


# -- validation: refused before anything boots, naming the argument -----------------

def test_argument_schema_is_built_from_annotations():
    schema = BootAndLiveMigrate.get_info()["schema"]
    props = schema["properties"]
    assert {k: props["settle"][k] for k in ("type", "minimum", "default")} == {
        "type": "number", "minimum": 0, "default": 5}
    assert all(props[name].get("description") for name in props)  # every one documented
    assert props["migrations"]["minimum"] == 1
    assert props["password"]["type"] == ["string", "null"]
    assert set(schema["required"]) == {"image", "flavor", "username"}


def test_valid_arguments_pass():
    assert syntax_errors() == []
    assert syntax_errors(metadata_url="http://169.254.169.254/openstack/latest/"
                                      "meta_data.json", probe_interval=1,
                         settle=0, migrations=3, floating_network=None) == []
    assert syntax_errors(block_migration="auto", nova_microversion="2.latest") == []
    assert syntax_errors(block_migration="auto", nova_microversion="2.25") == []


@pytest.mark.parametrize("args, field", [
    ({"settle": -1}, "settle"),
    ({"migrations": 0}, "migrations"),
    ({"probe_interval": "fast"}, "probe_interval"),
    ({"probe_timeout": 0}, "probe_timeout"),
    ({"recovery_timeout": -5}, "recovery_timeout"),
    ({"port": 70000}, "port"),
    ({"measure_network": "yes"}, "measure_network"),
    ({"metadata_url": "http://169.254.169.254/$(reboot)"}, "metadata_url"),
    ({"metadata_url": "ftp://169.254.169.254/x"}, "metadata_url"),
    ({"probe_workdir": "tmp"}, "probe_workdir"),
    ({"settle": 200}, "settle"),
    ({"unknown_knob": 1}, "unknown_knob"),
    ({"block_migration": "yes"}, "block_migration"),
    ({"nova_microversion": "3.1"}, "nova_microversion"),
    ({"nova_microversion": "2.24", "block_migration": "auto"}, "block_migration"),
])
def test_bad_arguments_name_the_field(args, field):
    errors = syntax_errors(**args)
    assert errors, args
    assert any(f"'{field}'" in e or f"['{field}']" in e for e in errors), errors


def test_ssh_that_never_comes_up_brings_the_console_log_into_the_error(rig):
    from rally import exceptions
    rig.scenario._wait_for_ssh.side_effect = exceptions.SSHTimeout("timed out")
    rig.scenario._get_server_console_output = mock.Mock(
        return_value="cloud-init: no route to 169.254.169.254")
    error = rig.fails(exceptions.SSHTimeout)
    assert str(error).endswith("timed out; the server's console log ends with:\n"
                               "cloud-init: no route to 169.254.169.254")
    rig.scenario._get_server_console_output.assert_called_once_with(
        rig.server, scenario_module.CONSOLE_LINES)
    rig.scenario._get_server_console_output.side_effect = RuntimeError("403")
    error = rig.fails(exceptions.SSHTimeout)
    assert "(console log not available: 403)" in str(error)


def test_the_migration_client_is_the_environments_unless_a_version_is_asked():
    admin = mock.Mock()
    scenario = BootAndLiveMigrate(context={"user": {"credential": mock.Mock()},
                                           "task": {"uuid": "t"}, "owner_id": "o"},
                                  admin_clients=admin, clients=mock.Mock())
    assert scenario._migration_client(None) is admin.nova.return_value
    admin.nova.assert_called_once_with()
    assert scenario._migration_client("2.30") is admin.nova.return_value
    admin.nova.assert_called_with("2.30")
    admin.nova.return_value.versions.get_current.return_value = mock.Mock(
        min_version="2.1", version="2.60")
    scenario._migration_client("2.latest")
    admin.nova.assert_called_with("2.60")
