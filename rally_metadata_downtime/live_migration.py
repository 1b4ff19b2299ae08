"""Live migration at any Nova microversion, and the wait for it (OpenStack I/O).

rally-openstack 4.1's `_live_migrate` passes `disk_over_commit`, which novaclient
refuses from microversion 2.25 on, and it cannot name a destination host. This module
makes the call with novaclient's public API at whatever microversion the client
speaks, and waits with its own loop on the server's public fields.
"""

from __future__ import annotations

import datetime
import time
import typing
from collections.abc import Callable

from novaclient import api_versions

from rally_metadata_downtime.arguments import ArgumentError
from rally_metadata_downtime.records import NovaEvent

# Nova takes block_migration "auto" (it decides from the storage) from 2.25 on; before
# it the request must say true or false, and also carry disk_over_commit.
AUTO_BLOCK_MIGRATION_SINCE = api_versions.APIVersion("2.25")

BlockMigration = bool | typing.Literal["auto"]


class LiveMigrationError(RuntimeError):
    """Nova refused, failed or rolled back a live migration, or it did not finish."""


def check_block_migration(block_migration: BlockMigration,
                          version: api_versions.APIVersion) -> None:
    """ArgumentError when `version` cannot carry `block_migration`."""
    if block_migration == "auto" and version < AUTO_BLOCK_MIGRATION_SINCE:
        raise ArgumentError(
            "block_migration", f"'auto' needs Nova microversion "
            f"{AUTO_BLOCK_MIGRATION_SINCE.get_string()} or later, this client speaks "
            f"{version.get_string()} (set nova_microversion, or the environment's "
            f"api_info nova version)")


def resolve_microversion(client, requested: str) -> api_versions.APIVersion:
    """The explicit microversion for `requested` ("2.60", or "2.latest": the newest
    that both the cloud, asked through `client`, and novaclient know)."""
    version = api_versions.get_api_version(requested)
    if version.is_latest():
        return api_versions.discover_version(client, version)
    return version


def start_live_migration(server, host: str | None,
                         block_migration: BlockMigration) -> str | None:
    """Ask Nova to live-migrate `server` (a novaclient Server of an admin client);
    return the request id Nova gave the request (its instance action's), if any.

    novaclient shapes the body for its microversion: disk_over_commit false before
    2.25, no `force` (the scheduler checks a named host) from 2.30 to 2.67.
    """
    check_block_migration(block_migration, server.manager.api_version)
    answer = server.live_migrate(host=host, block_migration=block_migration)
    request_ids = getattr(answer, "request_ids", None) or [None]
    return request_ids[0]


def _epoch(timestamp: str | None) -> float | None:
    """Nova's timestamps are UTC, written without a zone."""
    if not timestamp:
        return None
    moment = datetime.datetime.fromisoformat(timestamp)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


def nova_events(nova, server_id: str, request_id: str | None
                ) -> tuple[tuple[NovaEvent, ...], str | None]:
    """Nova's events of the live migration `request_id` and, when there are none
    to show, why. Never raises for a cloud that hides them: it is only context."""
    if request_id is None:
        return (), "Nova gave the request no id"
    try:
        action = nova.instance_action.get(server_id, request_id)
    except Exception as e:  # noqa: BLE001 - a policy (403), an old cloud (404)...
        return (), f"Nova's instance action not readable: {type(e).__name__}: {e}"
    events = tuple(NovaEvent(name=e.get("event", "?"), start=_epoch(e.get("start_time")),
                             finish=_epoch(e.get("finish_time")),
                             result=e.get("result"))
                   for e in getattr(action, "events", None) or ())
    if not events:
        return (), "Nova shows no events for this action (policy hides them)"
    return events, None


def host_of(server) -> str | None:
    return getattr(server, "OS-EXT-SRV-ATTR:host", None)


def wait_for_live_migration(get_server: Callable[[], typing.Any], source: str,
                            destination: str | None, timeout: float, interval: float,
                            clock=time.monotonic, sleep=time.sleep) -> str:
    """Poll until the server is ACTIVE on a host other than `source` (`destination`
    when named); return that host.

    Raises LiveMigrationError when the server goes to ERROR, when it is ACTIVE again
    on `source` with no task (Nova rolled the migration back: it sets the task state
    before it answers the request, so an idle server on the old host is not one still
    waiting to start), when it lands on another host than `destination`, or after
    `timeout` seconds.
    """
    deadline = clock() + timeout
    while True:
        server = get_server()
        host, status = host_of(server), server.status
        task_state = getattr(server, "OS-EXT-STS:task_state", None)
        if status == "ERROR":
            fault = getattr(server, "fault", None) or {}
            raise LiveMigrationError(
                f"server {server.id} went to ERROR during live migration from {source}: "
                f"{fault.get('message', 'Nova gave no fault message')}")
        if status == "ACTIVE" and task_state is None:
            if host == source:
                raise LiveMigrationError(
                    f"server {server.id} is ACTIVE on its source host {source} again: "
                    f"Nova rolled the live migration back (see the server's instance "
                    f"actions and nova-compute's log)")
            if destination is not None and host != destination:
                raise LiveMigrationError(
                    f"server {server.id} was live-migrated to {host}, not to the "
                    f"requested destination_host {destination}")
            return host
        if clock() >= deadline:
            raise LiveMigrationError(
                f"server {server.id} did not finish its live migration from {source} "
                f"within {timeout:g} s (status {status}, task state {task_state}, host "
                f"{host})")
        sleep(interval)
