"""The lab's instance metadata service (the Nova API behind Neutron's metadata proxy).

Like the proxy, it identifies the instance by the request's source address (the
instance's fixed IP, or over IPv6 at fe80::a9fe:a9fe its link-local address, as
Neutron's IPv6 metadata does); an unknown source gets 404. Faults are per address
family: the two listeners break separately on a cloud. Per-instance HTTP faults (404, 503,
another instance's data) are switched on and off by the fabric during a migration.
The registry is guarded by a lock: it is changed from any thread while the service
answers on the fabric's event loop.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import socket
import threading
from typing import Any

from aiohttp import web

HTTP_FAULTS = ("http_404", "http_503", "wrong_instance")
FAMILIES = ("ipv4", "ipv6")

_NOT_FOUND = "404 Not Found\n\nThe resource could not be found.\n\n   "
_UNAVAILABLE = "503 Service Unavailable\n\nThe server is currently unavailable. " \
               "Please try again at a later time.\n\n   "


@dataclasses.dataclass(frozen=True)
class InstanceInfo:
    """What the metadata service tells an instance about itself."""

    uuid: str
    name: str
    hostname: str
    fixed_ip: str
    launch_index: int = 0
    availability_zone: str = "nova"
    meta: dict[str, str] = dataclasses.field(default_factory=dict)
    key_name: str | None = None
    public_key: str | None = None
    ec2_id: str = ""
    floating_ips: tuple[str, ...] = ()
    link_local: str | None = None    # its IPv6 link-local address on the guests' link

    def meta_data_json(self) -> dict[str, Any]:
        """The body of /openstack/latest/meta_data.json."""
        doc: dict[str, Any] = {
            "uuid": self.uuid,
            "name": self.name,
            "hostname": self.hostname,
            "launch_index": self.launch_index,
            "availability_zone": self.availability_zone,
            "meta": dict(self.meta),
            "devices": [],
        }
        if self.key_name and self.public_key:
            doc["public_keys"] = {self.key_name: self.public_key}
            doc["keys"] = [{"name": self.key_name, "type": "ssh", "data": self.public_key}]
        return doc

    def ec2_meta_data(self) -> dict[str, str]:
        """The leaves of /latest/meta-data/ (EC2 style)."""
        leaves = {
            "hostname": self.hostname,
            "local-hostname": self.hostname,
            "instance-id": self.ec2_id,
            "local-ipv4": self.fixed_ip,
            "placement/availability-zone": self.availability_zone,
        }
        if self.floating_ips:
            leaves["public-ipv4"] = self.floating_ips[0]
        return leaves


DECOY = InstanceInfo(uuid="00000000-0000-4000-8000-000000000000", name="lab-decoy",
                     hostname="lab-decoy", fixed_ip="0.0.0.0", ec2_id="i-00000000")


class MetadataService:
    """Instance registry + aiohttp app answering metadata requests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_uuid: dict[str, InstanceInfo] = {}
        self._faults: dict[tuple[str, str], str] = {}   # (uuid, family) -> shape
        self._ec2_ids = itertools.count(1)
        self._runner: web.AppRunner | None = None

    # --- registry (any thread) -------------------------------------------------------

    def register(self, info: InstanceInfo) -> InstanceInfo:
        """Add or replace an instance (keyed by uuid; its fixed_ip identifies it)."""
        with self._lock:
            old = self._by_uuid.get(info.uuid)
            ec2_id = old.ec2_id if old else f"i-{next(self._ec2_ids):08x}"
            info = dataclasses.replace(info, ec2_id=info.ec2_id or ec2_id)
            self._by_uuid[info.uuid] = info
            return info

    def update(self, uuid: str, **changes: Any) -> InstanceInfo:
        """Change fields of a registered instance (e.g. meta, floating_ips)."""
        with self._lock:
            info = dataclasses.replace(self._by_uuid[uuid], **changes)
            self._by_uuid[uuid] = info
            return info

    def unregister(self, uuid: str) -> None:
        """Forget an instance and any fault set for it."""
        with self._lock:
            self._by_uuid.pop(uuid, None)
            for family in FAMILIES:
                self._faults.pop((uuid, family), None)

    def instance(self, uuid: str) -> InstanceInfo | None:
        """The registered instance with this uuid, if any."""
        with self._lock:
            return self._by_uuid.get(uuid)

    def set_fault(self, uuid: str, shape: str | None,
                  families: tuple[str, ...] = FAMILIES) -> None:
        """Answer this instance with an HTTP fault (see HTTP_FAULTS) over `families`,
        None to restore them."""
        if shape is not None and shape not in HTTP_FAULTS:
            raise ValueError(f"not an HTTP fault: {shape!r}")
        with self._lock:
            for family in families:
                if shape is None:
                    self._faults.pop((uuid, family), None)
                else:
                    self._faults[(uuid, family)] = shape

    def _resolve(self, source_ip: str | None) -> tuple[InstanceInfo | None, str | None]:
        # A link-local peer comes with its zone: fe80::1%eth0.
        source = (source_ip or "").partition("%")[0]
        family = "ipv6" if ":" in source else "ipv4"
        with self._lock:
            info = next((i for i in self._by_uuid.values()
                         if source in (i.fixed_ip, i.link_local)), None)
            if info is None:
                return None, None
            fault = self._faults.get((info.uuid, family))
            if fault == "wrong_instance":
                other = next((i for i in self._by_uuid.values() if i.uuid != info.uuid), DECOY)
                return other, None
            return info, fault

    # --- HTTP (the fabric's event loop) ---------------------------------------------

    def app(self) -> web.Application:
        """The aiohttp application (one catch-all route, Nova's metadata tree)."""
        application = web.Application()
        application.router.add_route("GET", "/{path:.*}", self._handle)
        return application

    async def _handle(self, request: web.Request) -> web.Response:
        info, fault = self._resolve(request.remote)
        if info is None or fault == "http_404":
            return web.Response(status=404, text=_NOT_FOUND)
        if fault == "http_503":
            return web.Response(status=503, text=_UNAVAILABLE)
        return answer(info, request.path)

    async def start(self, sock: socket.socket, *more: socket.socket) -> None:
        """Serve on already listening sockets (created in the metadata namespace:
        169.254.169.254, and fe80::a9fe:a9fe on the guests' link)."""
        runner = web.AppRunner(self.app(), access_log=None)
        await runner.setup()
        for listening in (sock, *more):
            await web.SockSite(runner, listening).start()
        self._runner = runner

    async def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def answer(info: InstanceInfo, path: str) -> web.Response:
    """The response for `path` as Nova's metadata API would give it to `info`."""
    clean = "/" + path.strip("/")
    ec2 = info.ec2_meta_data()
    listings = {
        "/": "latest",
        "/latest": "meta-data/",
        "/latest/meta-data": "\n".join(sorted({k.split("/")[0] + ("/" if "/" in k else "")
                                               for k in ec2})),
        "/latest/meta-data/placement": "availability-zone",
        "/openstack": "latest",
        "/openstack/latest": "meta_data.json",
    }
    if clean in listings:
        return web.Response(text=listings[clean])
    prefix = "/latest/meta-data/"
    if clean.startswith(prefix) and clean[len(prefix):] in ec2:
        return web.Response(text=ec2[clean[len(prefix):]])
    if clean == "/openstack/latest/meta_data.json":
        return web.Response(text=json.dumps(info.meta_data_json()),
                            content_type="application/json")
    return web.Response(status=404, text=_NOT_FOUND)
