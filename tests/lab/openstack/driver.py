"""Where servers really live: namespace guests (FabricDriver) or nowhere (FakeDriver)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
from collections.abc import Callable
from typing import Protocol

from tests.lab.faults import FaultProfile


class Driver(Protocol):
    async def create_guest(self, server_id: str, name: str, hostname: str,
                           fixed_ip: str, public_key: str | None,
                           profile: FaultProfile, meta: dict, no_curl: bool = False) -> None: ...

    async def delete_guest(self, server_id: str) -> None: ...

    async def add_floating_ip(self, server_id: str, address: str) -> None: ...

    async def remove_floating_ip(self, server_id: str, address: str) -> None: ...

    async def migrate(self, server_id: str, on_switchover: Callable[[], None],
                      profile: FaultProfile | None = None) -> None:
        """Return when done; raise on a failed migration; never return on a hang.
        `profile` replaces the server's own for this migration."""

    def injected_windows(self) -> list[dict]: ...


class FakeDriver:
    """No guests: migrations just take their profile's time. For API-only tests."""

    def __init__(self) -> None:
        self.profiles: dict[str, FaultProfile] = {}

    async def create_guest(self, server_id, name, hostname, fixed_ip, public_key,
                           profile, meta, no_curl=False) -> None:
        self.profiles[server_id] = profile

    async def delete_guest(self, server_id) -> None:
        self.profiles.pop(server_id, None)

    async def add_floating_ip(self, server_id, address) -> None:
        pass

    async def remove_floating_ip(self, server_id, address) -> None:
        pass

    async def migrate(self, server_id, on_switchover, profile=None) -> None:
        profile = profile or self.profiles[server_id]
        await asyncio.sleep(profile.duration)
        if profile.result == "error":
            raise RuntimeError("injected migration error")
        if profile.result == "hang":
            await asyncio.Event().wait()
        on_switchover()

    def injected_windows(self) -> list[dict]:
        return []


class FabricDriver:
    """Thin adapter onto tests.lab.fabric.Fabric; blocking calls run in a pool big
    enough that 100 guests can boot at once without starving the API's loop."""

    def __init__(self, fabric, workers: int = 32) -> None:
        self.fabric = fabric
        self._pool = concurrent.futures.ThreadPoolExecutor(workers, "lab-driver")

    async def _call(self, fn, *args, **kwargs):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))

    async def create_guest(self, server_id, name, hostname, fixed_ip, public_key,
                           profile, meta, no_curl=False) -> None:
        await self._call(self.fabric.create_guest, server_id, name, hostname, fixed_ip,
                         public_key, profile, no_curl=no_curl,
                         meta={str(k): str(v) for k, v in meta.items()})

    async def delete_guest(self, server_id) -> None:
        await self._call(self.fabric.delete_guest, server_id)

    async def add_floating_ip(self, server_id, address) -> None:
        await self._call(self.fabric.add_floating_ip, server_id, address)

    async def remove_floating_ip(self, server_id, address) -> None:
        await self._call(self.fabric.remove_floating_ip, server_id, address)

    async def migrate(self, server_id, on_switchover, profile=None) -> None:
        await self.fabric.migrate(server_id, profile, on_switchover=on_switchover)

    def injected_windows(self) -> list[dict]:
        return [dataclasses.asdict(w) for w in self.fabric.injected_windows()]

    def close(self) -> None:
        self._pool.shutdown(wait=True)

