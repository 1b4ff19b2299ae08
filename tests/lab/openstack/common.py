"""What every service of the lab API shares: faults, auth, unknown-call logging."""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path

from aiohttp import web

from tests.lab.faults import BootCounts
from tests.lab.openstack import microversion
from tests.lab.openstack.store import Store, Token

LOG = logging.getLogger("lab.api")

STORE_KEY = web.AppKey("store", Store)
CONFIG_KEY = web.AppKey("config", object)
DRIVER_KEY = web.AppKey("driver", object)
BOOT_COUNTS_KEY = web.AppKey("boot_counts", BootCounts)

PUBLIC_PATHS = {"/", "/identity", "/identity/", "/identity/v3", "/identity/v3/",
                "/identity/v3/auth/tokens", "/compute", "/compute/", "/compute/v2.1",
                "/compute/v2.1/", "/network", "/network/", "/image", "/image/",
                "/image/versions"}


def service_of(path: str) -> str:
    return path.strip("/").split("/", 1)[0] or "identity"


def fault(path: str, status: int, message: str) -> web.Response:
    """An error body in the shape the service's own client expects."""
    service = service_of(path)
    title = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
             404: "Not Found", 406: "Not Acceptable", 409: "Conflict"}.get(status, "Error")
    if service == "compute":
        key = {400: "badRequest", 403: "forbidden", 404: "itemNotFound",
               406: "notAcceptable", 409: "conflictingRequest"}.get(status, "computeFault")
        body = {key: {"code": status, "message": message}}
    elif service == "network":
        kind = {404: "NotFound", 409: "Conflict", 400: "BadRequest"}.get(status, "Error")
        body = {"NeutronError": {"type": kind, "message": message, "detail": ""}}
    elif service == "image":
        body = {"code": status, "title": title, "message": message}
    else:
        body = {"error": {"code": status, "title": title, "message": message}}
    return web.json_response(body, status=status)


class LabFault(Exception):
    """Raised by handlers; turned into the service's JSON fault."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def token_of(request: web.Request) -> Token:
    return request["token"]


def body_of(payload: bytes) -> dict:
    try:
        return json.loads(payload or b"{}")
    except ValueError as e:
        raise LabFault(400, f"malformed JSON body: {e}") from e


def _log_unknown(request: web.Request, state_dir: Path | None) -> None:
    line = f"{request.method} {request.path_qs}"
    LOG.warning("lab API has no route for %s", line)
    if state_dir is not None:
        with open(state_dir / "unknown-requests.log", "a") as f:
            f.write(line + "\n")


def middleware(state_dir: Path | None):
    @web.middleware
    async def handle(request: web.Request, handler):
        if request.path not in PUBLIC_PATHS and not request.path.startswith("/lab/"):
            token = request.app[STORE_KEY].tokens.get(request.headers.get("X-Auth-Token", ""))
            if token is None:
                return fault(request.path, 401, "The request you have made requires "
                                                "authentication.")
            request["token"] = token
        versioned = request.path.startswith("/compute/v2.1/")
        request["request_id"] = f"req-{uuid.uuid4()}"
        try:
            if versioned:
                request["microversion"] = microversion.requested(request.headers)
            try:
                response = await handler(request)
            except LabFault as e:
                response = fault(request.path, e.status, str(e))
            if versioned:  # on errors too, as Nova does
                response.headers.update(
                    microversion.response_headers(request["microversion"]))
                response.headers["x-openstack-request-id"] = request["request_id"]
            return response
        except microversion.VersionError as e:
            return fault(request.path, e.status, str(e))
        except web.HTTPNotFound:
            _log_unknown(request, state_dir)
            return fault(request.path, 404, f"no such resource: {request.path}")
        except web.HTTPMethodNotAllowed:
            _log_unknown(request, state_dir)
            return fault(request.path, 405, f"method not allowed: {request.method}")
    return handle
