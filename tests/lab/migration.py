"""Live migrations of lab guests, and the faults they inject.

Part of tests.lab.fabric.Fabric: a migration waits, then at its switchover opens a
metadata outage (held across overlapping migrations of one guest) and a network
blackout, and may do something to the guest (reboot, drop its SSH sessions, kill
the plugin's probe). A metadata outage can also come alone (break_metadata: a
metadata agent restarted on the guest's host). Every fault is recorded as a
ground-truth window.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import inspect
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tests.lab import guest_process, metadata_switch, netns
from tests.lab.addressing import METADATA_IP
from tests.lab.errors import GuestNotFound, MigrationError, MigrationInProgress
from tests.lab.faults import (
    ALL_FAMILIES,
    FaultProfile,
    GroundTruth,
    InjectedWindow,
    boottime,
)
from tests.lab.guests import Guest
from tests.lab.metadata_service import HTTP_FAULTS, MetadataService

if TYPE_CHECKING:
    from tests.lab.fabric import Fabric


class MigrationMixin:
    """Fabric's live migrations with their faults, and the ground truth they leave.

    Uses GuestsMixin's guest(), reboot_guest() and guest_exec().
    """

    prefix: str
    default_profile: FaultProfile
    metadata: MetadataService
    ground_truth: GroundTruth
    _lock: threading.RLock
    _guests: dict[str, Guest]
    _up: bool
    _migrating: set[str]
    # (server id, families) -> the outage held for them
    _metadata_outages: dict[tuple[str, str], _ActiveFault]
    _outage_lock: threading.Lock
    _fault_executor: concurrent.futures.ThreadPoolExecutor

    def _new_fault_executor(self) -> concurrent.futures.ThreadPoolExecutor:
        # Fault switches get threads of their own: the caller's default executor may
        # be busy booting guests, and a late switch would blur the windows' edges.
        return concurrent.futures.ThreadPoolExecutor(
            max_workers=16, thread_name_prefix=f"{self.prefix}-fault")

    def profile_for(self, server_id: str) -> FaultProfile:
        """The guest's own fault profile, else the lab default."""
        return self.guest(server_id).fault_profile or self.default_profile

    async def migrate(self, server_id: str, profile: FaultProfile | None = None,
                      on_switchover: Callable[[], Any] | None = None) -> None:
        """Live-migrate a guest, injecting the profile's faults (profile_for() if None).

        Timeline: wait `duration`; result `error` raises MigrationError here, `hang`
        waits until the guest is deleted (then GuestNotFound) or the task is cancelled.
        Otherwise the switchover: the metadata outage and the network blackout start
        together; after the blackout `on_switchover()` is called (sync or async: the
        API sets the new host and ACTIVE there) and the guest may be migrated again;
        the coroutine returns when the metadata outage is over. A metadata outage
        still running from an earlier migration is extended rather than applied
        twice. A guest deleted after the switchover ends it quietly.
        Every fault is removed on any exit, cancellation included.
        """
        guest = self.guest(server_id)
        profile = profile or self.profile_for(server_id)
        with self._lock:
            if server_id in self._migrating:
                raise MigrationInProgress(f"server {server_id} is already migrating")
            self._migrating.add(server_id)
        outage = blackout = None
        try:
            await self._sleep_while_present(guest, profile.duration)
            if profile.result == "error":
                raise MigrationError(f"lab: migration of {server_id} failed (profile)")
            if profile.result == "hang":
                await self._sleep_while_present(guest, float("inf"))
            if profile.guest_event != "none":
                await self._in_fault_thread(
                    lambda: self._apply_guest_event(guest, profile.guest_event))
            if profile.metadata_outage > 0:
                outage = await self._in_fault_thread(
                    lambda: self._hold_metadata_outage(guest, profile))
            if profile.network_blackout > 0:
                blackout = _ActiveFault(self, guest, "network", "blackout")
                await self._in_fault_thread(blackout.apply)
                await asyncio.sleep(profile.network_blackout)
                await self._in_fault_thread(blackout.remove)
            if on_switchover is not None:
                result = on_switchover()
                if inspect.isawaitable(result):
                    await result
            with self._lock:
                self._migrating.discard(server_id)
            if outage is not None:
                await self._outlive_and_release(guest, outage)
                outage = None
        finally:
            # Also reached on cancellation: remove synchronously, no further await.
            if blackout is not None:
                blackout.remove()
            if outage is not None:
                self._release_metadata_outage(outage)
            with self._lock:
                self._migrating.discard(server_id)

    async def break_metadata(self, server_id: str, shape: str, seconds: float,
                             detail: str = "", families: str = ALL_FAMILIES
                             ) -> InjectedWindow:
        """Metadata fails for the guest in `shape` (a metadata outage shape) for
        `seconds` from now, then answers again, as when the metadata agent on its
        host restarts; an outage already running (a migration's) is extended
        rather than applied twice. Returns when it is over (at once when the guest
        goes away) with a copy of the window recorded; removed on any exit,
        cancellation included."""
        guest = self.guest(server_id)
        profile = FaultProfile(metadata_outage=seconds, metadata_shape=shape,
                               metadata_families=families)
        outage = await self._in_fault_thread(
            lambda: self._hold_metadata_outage(guest, profile))
        if detail and outage.holders == 1:
            outage.window.detail = detail
        released = False
        try:
            await self._outlive_and_release(guest, outage)
            released = True
        finally:
            if not released:  # cancelled: remove synchronously, no further await
                self._release_metadata_outage(outage)
        return dataclasses.replace(outage.window)

    async def _outlive_and_release(self, guest: Guest, outage: _ActiveFault) -> None:
        """Wait until the outage's end (at once when the guest goes away), then
        release this holder's share of it."""
        try:
            # `until` moves when a later migration extends the outage.
            while (remaining := outage.until - time.monotonic()) > 0:
                await self._sleep_while_present(guest, remaining)
        except GuestNotFound:
            pass
        await self._in_fault_thread(lambda: self._release_metadata_outage(outage))

    def _hold_metadata_outage(self, guest: Guest, profile: FaultProfile) -> _ActiveFault:
        """The guest's metadata outage, applied now or extended, lasting at least
        `profile.metadata_outage` s from now; each holder releases it once. One
        outage per guest and set of families (profile.metadata_families)."""
        key = (guest.server_id, profile.metadata_families)
        with self._outage_lock:
            outage = self._metadata_outages.get(key)
            if outage is None:
                outage = _ActiveFault(self, guest, "metadata", profile.metadata_shape,
                                      families=profile.metadata_families)
                outage.apply()
                outage.until = outage.started + profile.metadata_outage
                self._metadata_outages[key] = outage
            else:
                outage.until = max(outage.until, time.monotonic() + profile.metadata_outage)
                outage.window.detail = (f"extended by {outage.holders} later "
                                        f"migration(s)")
            outage.holders += 1
            return outage

    def _release_metadata_outage(self, outage: _ActiveFault) -> None:
        with self._outage_lock:
            outage.holders -= 1
            if outage.holders > 0:
                return
            key = (outage.guest.server_id, outage.families)
            if self._metadata_outages.get(key) is outage:
                del self._metadata_outages[key]
        outage.remove()

    def _apply_guest_event(self, guest: Guest, event: str) -> None:
        """Do `event` (FaultProfile.guest_event) to the guest and record what it hit."""
        window = self.ground_truth.open("guest", event, guest.server_id)
        try:
            if event == "reboot":
                self.reboot_guest(guest.server_id)
                window.detail = "rebooted"
            elif event == "drop_ssh":
                killed_sessions = self.drop_ssh_sessions(guest.server_id)
                window.detail = f"killed sshd sessions {killed_sessions}"
            elif event == "kill_probe":
                killed = guest_process.kill_probes(guest.sshd_pid, guest.path,
                                                   guest.files.home)
                window.detail = f"killed probe PIDs {killed}"
            else:
                raise ValueError(f"unknown guest event {event!r}")
        finally:
            self.ground_truth.close(window)

    def drop_ssh_sessions(self, server_id: str) -> list[int]:
        """SIGKILL the guest's per-connection sshd processes: every open SSH
        connection drops. Returns their PIDs."""
        return guest_process.drop_ssh_sessions(self.guest(server_id).sshd_pid)

    async def _in_fault_thread(self, switch: Callable[[], Any]) -> Any:
        """switch() in the fault threads; its result."""
        try:
            pending = asyncio.get_running_loop().run_in_executor(self._fault_executor, switch)
        except RuntimeError:  # executor shut down: the lab is being torn down
            return switch()
        return await pending

    async def _sleep_while_present(self, guest: Guest, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while True:
            with self._lock:
                present = self._up and self._guests.get(guest.server_id) is guest
            if not present:
                raise GuestNotFound(guest.server_id)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            await asyncio.sleep(min(0.25, remaining))

    def injected_windows(self, server_id: str | None = None) -> list[InjectedWindow]:
        """Ground truth: every fault window so far (copies), optionally for one server."""
        return self.ground_truth.windows(server_id)


class _ActiveFault:
    """One fault on one guest; apply() and remove() block briefly and record the window.

    remove() is idempotent and tolerates a guest that is already gone.
    """

    def __init__(self, fabric: Fabric, guest: Guest, kind: str, shape: str,
                 families: str = ALL_FAMILIES) -> None:
        self.fabric, self.guest, self.kind, self.shape = fabric, guest, kind, shape
        self.families = families   # a network fault cuts both
        self.window: InjectedWindow | None = None
        self.started = 0.0
        self.until = 0.0   # a held fault lasts until then (time.monotonic)
        self.holders = 0
        self._lock = threading.Lock()

    def apply(self) -> None:
        with self._lock:
            since = boottime()
            self._switch(on=True)
            self.window = self.fabric.ground_truth.open(self.kind, self.shape,
                                                        self.guest.server_id,
                                                        families=self.families,
                                                        applying_since=since)
            # After the window opened, so that a fault held until started + length
            # is recorded as lasting at least that length.
            self.started = time.monotonic()

    def remove(self) -> None:
        with self._lock:
            if self.window is None or self.window.end_boottime is not None:
                return
            since = boottime()
            self._switch(on=False)
            self.fabric.ground_truth.close(self.window, removing_since=since)

    def _switch(self, on: bool) -> None:
        guest, shape = self.guest, self.shape
        check = on  # removing from a deleted guest must not fail
        families = tuple(self.families.split(","))
        if self.kind == "network":
            netns.ip("link", "set", guest.host_veth, "down" if on else "up", check=check)
            return
        if shape in HTTP_FAULTS:
            self.fabric.metadata.set_fault(guest.server_id, shape if on else None,
                                           families)
            return
        if shape not in ("refused", "timeout"):
            raise ValueError(f"unknown metadata fault shape {shape!r}")
        for family in metadata_switch.in_switch_order(families):
            if family == "ipv6":
                metadata_switch.switch_ipv6(guest.netns, shape, on, check=check)
            elif shape == "refused":
                netns.ip("addr", "add" if on else "del", f"{METADATA_IP}/32", "dev", "lo",
                         netns=guest.netns, check=check)
            else:
                metadata_switch.blackhole_neighbour(guest.netns, METADATA_IP, on)
