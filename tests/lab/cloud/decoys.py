"""Decoy servers for the real path's wrong_instance fault (path_faults.py).

Nova's metadata API answers the agent for the server that the port's device_id names
(X-Instance-ID), provided that server belongs to the port's project (X-Tenant-ID);
otherwise it answers 404. So that a guest is served another server's data, the lab
boots a decoy: a real server of Nova's, in the guest's project, on the lab's network.
The decoy never migrates. For the fault's length the guest's port carries the
decoy's id, and it gets its own id back before either server is deleted, because
Nova releases a deleted server's ports by their device_id (a trial run with another
guest as the decoy lost the faulted guest's network when the decoy was deleted).

A decoy is booted when its guest is created (the guest's server metadata asks for
the fault), so that it is ACTIVE by the migration; it is deleted once its guest is.
The lab's admin gets the member role in the guest's project to boot it there
(Rally's temporary projects go, with their role assignments, at the task's end).
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
import uuid
from collections.abc import Callable

from tests.lab.cloud import config
from tests.lab.cloud.openstack import admin_token, http

LOG = logging.getLogger("rmdc.hypervisor.decoys")
ACTIVE_WAIT = 120.0   # seconds for a decoy to become ACTIVE
POLL = 0.5


class Decoys:
    """One decoy server per guest that asks for one."""

    def __init__(self, auth_url: str, nova_url: str, image: str, flavor: str,
                 network_id: str, token: Callable[[], str] | None = None) -> None:
        self.auth_url, self.nova = auth_url, nova_url.rstrip("/") + "/v2.1"
        self.image, self.flavor, self.network_id = image, flavor, network_id
        self._admin = token or (lambda: admin_token(auth_url)[0])
        self._lock = threading.Lock()
        self._pool = concurrent.futures.ThreadPoolExecutor(2, "decoy")
        self._booting: dict[str, concurrent.futures.Future[str]] = {}
        self._closed = False

    def prepare(self, server_id: str) -> None:
        """Start booting `server_id`'s decoy (once)."""
        with self._lock:
            if server_id not in self._booting and not self._closed:
                self._booting[server_id] = self._pool.submit(self._boot, server_id)

    def get(self, server_id: str, timeout: float = ACTIVE_WAIT) -> str:
        """The ACTIVE decoy's id (waits for its boot); RuntimeError if none came."""
        with self._lock:
            booting = self._booting.get(server_id)
        if booting is None:
            raise RuntimeError(f"no decoy was prepared for server {server_id}")
        try:
            return booting.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            raise RuntimeError(f"server {server_id}'s decoy: not ACTIVE after "
                               f"{timeout:g} s") from None

    def release(self, server_id: str) -> None:
        """Delete `server_id`'s decoy, if it has one (in the background; Rally's own
        cleanup of the project deletes it too, whichever comes first)."""
        with self._lock:
            booting = self._booting.pop(server_id, None)
            if booting is not None and not self._closed:
                self._pool.submit(self._delete, booting)

    def close(self) -> None:
        """No more boots or deletions (the lab is going away, and Nova's records
        with it)."""
        with self._lock:
            self._closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)

    # --- Keystone and Nova ----------------------------------------------------------
    def _boot(self, server_id: str) -> str:
        admin = self._admin()
        status, _, body = http("GET", f"{self.nova}/servers/{server_id}", token=admin)
        if status != 200:
            raise RuntimeError(f"server {server_id}: HTTP {status} {body}")
        project = body["server"]["tenant_id"]
        token = self._project_token(admin, project)
        status, _, body = http("POST", f"{self.nova}/servers", {"server": {
            "name": f"rmdc-decoy-{uuid.uuid4().hex[:8]}", "imageRef": self.image,
            "flavorRef": self.flavor, "networks": [{"uuid": self.network_id}]}},
            token=token)
        if status != 202:
            raise RuntimeError(f"decoy for {server_id}: HTTP {status} {body}")
        decoy = body["server"]["id"]
        deadline = time.monotonic() + ACTIVE_WAIT
        while time.monotonic() < deadline:
            status, _, body = http("GET", f"{self.nova}/servers/{decoy}", token=admin)
            state = body["server"]["status"] if status == 200 else f"HTTP {status}"
            if state == "ACTIVE":
                return decoy
            if state == "ERROR":
                raise RuntimeError(f"decoy {decoy} for {server_id}: ERROR "
                                   f"{body['server'].get('fault')}")
            time.sleep(POLL)
        raise RuntimeError(f"decoy {decoy} for {server_id}: {state} after "
                           f"{ACTIVE_WAIT:g} s")

    def _project_token(self, admin: str, project: str) -> str:
        """A token of the lab's admin scoped to `project`, with the member role
        given there first."""
        ks = self.auth_url
        _, _, users = http("GET", ks + "/users?name=admin", token=admin)
        _, _, roles = http("GET", ks + "/roles?name=member", token=admin)
        user, role = users["users"][0]["id"], roles["roles"][0]["id"]
        status, _, body = http("PUT", f"{ks}/projects/{project}/users/{user}/roles/{role}",
                               token=admin)
        if status not in (200, 204):
            raise RuntimeError(f"member role in project {project}: HTTP {status} {body}")
        status, headers, body = http("POST", ks + "/auth/tokens", {"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "id": user, "password": config.ADMIN_PASSWORD}}},
            "scope": {"project": {"id": project}}}})
        if status != 201:
            raise RuntimeError(f"token for project {project}: HTTP {status} {body}")
        return headers["X-Subject-Token"]

    def _delete(self, booting: concurrent.futures.Future[str]) -> None:
        try:
            decoy = booting.result(timeout=ACTIVE_WAIT)
        except Exception:  # noqa: BLE001 - a decoy that never came has nothing to delete
            return
        status, _, body = http("DELETE", f"{self.nova}/servers/{decoy}",
                               token=self._admin())
        if status not in (204, 404):
            LOG.error("deleting decoy %s: HTTP %s %s", decoy, status, body)
