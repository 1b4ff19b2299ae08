"""Live migration at any microversion: the version choice and the wait (no cloud)."""

from types import SimpleNamespace
from unittest import mock

import pytest
from novaclient import api_versions

from rally_metadata_downtime.live_migration import (
    LiveMigrationError,
    check_block_migration,
    nova_events,
    resolve_microversion,
    wait_for_live_migration,
)


def server(status="ACTIVE", host="compute-1", task_state=None, **extra):
    return SimpleNamespace(id="s1", status=status, **{"OS-EXT-SRV-ATTR:host": host,
                                                      "OS-EXT-STS:task_state": task_state},
                           **extra)


def wait(*answers, destination=None, timeout=10.0):
    """wait_for_live_migration over `answers` (the last one repeats) on a fake clock."""
    now = [0.0]
    queue = list(answers)

    def get_server():
        return queue.pop(0) if len(queue) > 1 else queue[0]

    host = wait_for_live_migration(get_server, "compute-1", destination, timeout=timeout,
                                   interval=0.5, clock=lambda: now[0],
                                   sleep=lambda s: now.__setitem__(0, now[0] + s))
    return host, now[0]


def test_waits_through_migrating_until_active_on_the_new_host():
    host, waited = wait(server("MIGRATING", task_state="migrating"),
                        server("MIGRATING", task_state="migrating"),
                        server(host="compute-2"))
    assert (host, waited) == ("compute-2", 1.0)


def test_a_named_destination_must_be_where_it_lands():
    assert wait(server(host="compute-3"), destination="compute-3")[0] == "compute-3"
    with pytest.raises(LiveMigrationError, match="to compute-2, not to the requested "
                                                 "destination_host compute-3"):
        wait(server(host="compute-2"), destination="compute-3")


def test_error_status_names_novas_fault():
    with pytest.raises(LiveMigrationError, match="went to ERROR .*: no valid host"):
        wait(server("MIGRATING", task_state="migrating"),
             server("ERROR", fault={"message": "no valid host"}))


def test_idle_on_the_source_host_is_a_rollback_not_a_wait():
    # Nova sets task_state before it answers 202: an idle server on the source host
    # means the migration ended there.
    with pytest.raises(LiveMigrationError, match="rolled the live migration back"):
        wait(server("MIGRATING", task_state="migrating"), server())


def test_gives_up_after_the_timeout_naming_what_it_saw():
    with pytest.raises(LiveMigrationError, match=r"within 3 s \(status MIGRATING, task "
                                                 r"state migrating, host compute-1\)"):
        wait(server("MIGRATING", task_state="migrating"), timeout=3)


@pytest.mark.parametrize("version, allowed", [("2.1", False), ("2.24", False),
                                              ("2.25", True), ("2.96", True)])
def test_auto_block_migration_needs_2_25(version, allowed):
    check_block_migration(True, api_versions.APIVersion(version))
    check_block_migration(False, api_versions.APIVersion(version))
    if allowed:
        check_block_migration("auto", api_versions.APIVersion(version))
    else:
        with pytest.raises(ValueError, match=rf"^block_migration: 'auto' needs Nova "
                                             rf"microversion 2.25 or later, this client "
                                             rf"speaks {version}"):
            check_block_migration("auto", api_versions.APIVersion(version))


def test_latest_is_the_newest_both_the_cloud_and_novaclient_know():
    cloud = mock.Mock()
    cloud.versions.get_current.return_value = SimpleNamespace(min_version="2.1",
                                                              version="2.60")
    assert resolve_microversion(cloud, "2.latest") == api_versions.APIVersion("2.60")
    cloud.versions.get_current.return_value = SimpleNamespace(min_version="2.1",
                                                              version="2.999")
    import novaclient
    assert resolve_microversion(cloud, "2.latest") == novaclient.API_MAX_VERSION


def test_an_explicit_version_is_taken_as_given():
    cloud = mock.Mock()
    assert resolve_microversion(cloud, "2.30") == api_versions.APIVersion("2.30")
    cloud.versions.get_current.assert_not_called()


def test_novas_events_on_the_host_clock():
    nova = mock.Mock()
    nova.instance_action.get.return_value = SimpleNamespace(events=[
        {"event": "compute_live_migration", "start_time": "2026-12-02T01:00:00.250000",
         "finish_time": None, "result": None}])
    [event], note = nova_events(nova, "s1", "req-1")
    assert note is None
    assert event.start == 1796173200.25 and event.finish is None
    nova.instance_action.get.assert_called_once_with("s1", "req-1")


@pytest.mark.parametrize("answer, note", [
    (SimpleNamespace(events=[]), "Nova shows no events for this action (policy hides "
                                 "them)"),
    (RuntimeError("Policy doesn't allow os_compute_api:os-instance-actions:show"),
     "Nova's instance action not readable: RuntimeError: Policy doesn't allow"),
])
def test_hidden_events_are_a_note_not_an_error(answer, note):
    nova = mock.Mock()
    if isinstance(answer, Exception):
        nova.instance_action.get.side_effect = answer
    else:
        nova.instance_action.get.return_value = answer
    events, said = nova_events(nova, "s1", "req-1")
    assert events == () and said.startswith(note)
    assert nova_events(nova, "s1", None) == ((), "Nova gave the request no id")
