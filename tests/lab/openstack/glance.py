"""Glance v2: the lab's one image and the schema the client checks it against."""

from __future__ import annotations

from aiohttp import web

from tests.lab.openstack.common import STORE_KEY, LabFault
from tests.lab.openstack.store import new_id, now_iso

routes = web.RouteTableDef()
PREFIX = "/image/v2"

_STRING = {"type": ["null", "string"]}
_INT = {"type": ["null", "integer"]}
IMAGE_SCHEMA = {
    "name": "image",
    "additionalProperties": {"type": "string"},
    "links": [{"rel": "self", "href": "{self}"}, {"rel": "enclosure", "href": "{file}"},
              {"rel": "describedby", "href": "{schema}"}],
    "properties": {
        "id": {"type": "string"}, "name": _STRING, "status": {"type": "string"},
        "visibility": {"type": "string"}, "protected": {"type": "boolean"},
        "os_hidden": {"type": "boolean"}, "checksum": _STRING, "owner": _STRING,
        "size": _INT, "virtual_size": _INT, "min_ram": {"type": "integer"},
        "min_disk": {"type": "integer"}, "disk_format": _STRING,
        "container_format": _STRING, "created_at": {"type": "string"},
        "updated_at": {"type": "string"}, "tags": {"type": "array",
                                                   "items": {"type": "string"}},
        "self": {"type": "string"}, "file": {"type": "string"},
        "schema": {"type": "string"}, "os_hash_algo": _STRING, "os_hash_value": _STRING,
        "direct_url": {"type": "string"}, "locations": {"type": "array"},
    },
}


def seed(store, name: str) -> None:
    image_id = new_id()
    store.images[image_id] = {
        "id": image_id, "name": name, "status": "active", "visibility": "public",
        "protected": False, "os_hidden": False, "checksum": "0" * 32, "owner": None,
        "size": 16 * 1024 * 1024, "virtual_size": None, "min_ram": 0, "min_disk": 0,
        "disk_format": "qcow2", "container_format": "bare", "created_at": now_iso(),
        "updated_at": now_iso(), "tags": [], "self": f"/v2/images/{image_id}",
        "file": f"/v2/images/{image_id}/file", "schema": "/v2/schemas/image",
        "os_hash_algo": None, "os_hash_value": None}


@routes.get("/image")
@routes.get("/image/")
@routes.get("/image/versions")
async def versions(request):
    return web.json_response({"versions": [{"id": "v2.16", "status": "CURRENT", "links": [
        {"rel": "self", "href": f"{request.url.origin()}{PREFIX}/"}]}]})


@routes.get(PREFIX + "/schemas/image")
async def image_schema(request):
    return web.json_response(IMAGE_SCHEMA)


@routes.get(PREFIX + "/images")
async def list_images(request):
    images = list(request.app[STORE_KEY].images.values())
    for key in ("status", "name", "visibility"):
        if key in request.query:
            images = [i for i in images if i.get(key) == request.query[key]]
    if "marker" in request.query:
        ids = [i["id"] for i in images]
        marker = request.query["marker"]
        images = images[ids.index(marker) + 1:] if marker in ids else []
    return web.json_response({"images": images, "schema": "/v2/schemas/images",
                              "first": "/v2/images"})


@routes.get(PREFIX + "/images/{id}")
async def get_image(request):
    image = request.app[STORE_KEY].images.get(request.match_info["id"])
    if image is None:
        raise LabFault(404, f"No image found with ID {request.match_info['id']}")
    return web.json_response(image)
