"""Nova's microversion negotiation, and the request bodies each version accepts.

As Nova does it: the version comes from `OpenStack-API-Version: compute X.Y` or the
legacy `X-OpenStack-Nova-API-Version: X.Y` header (2.1 without either), `latest` is
the maximum, a malformed one is 400, one outside [min, max] is 406; every answer
names the version it was served at. A body the version does not accept is refused
with 400, so a client that sends, say, disk_over_commit at 2.25 fails here as it
would on a cloud.
"""

from __future__ import annotations

import re

MIN_VERSION = (2, 1)
MAX_VERSION = (2, 96)

_VERSION_RE = re.compile(r"^([1-9][0-9]*)\.(0|[1-9][0-9]*|latest)$")


class VersionError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def as_string(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


def requested(headers) -> tuple[int, int]:
    """The microversion a request asks for, or VersionError (400 or 406)."""
    text = None
    for value in headers.getall("OpenStack-API-Version", []):
        service, _, version = value.strip().partition(" ")
        if service.lower() == "compute":
            text = version.strip()
    if text is None:
        text = headers.get("X-OpenStack-Nova-API-Version")
    if text is None:
        return MIN_VERSION
    match = _VERSION_RE.match(text.strip())
    if not match:
        raise VersionError(400, f"API Version String {text} is of invalid format. Must "
                                "be of format MajorNum.MinorNum.")
    if match.group(2) == "latest":
        return MAX_VERSION
    version = (int(match.group(1)), int(match.group(2)))
    if not MIN_VERSION <= version <= MAX_VERSION:
        raise VersionError(406, f"Version {text} is not supported by the API. Minimum is "
                                f"{as_string(MIN_VERSION)} and maximum is "
                                f"{as_string(MAX_VERSION)}.")
    return version


def response_headers(version: tuple[int, int]) -> dict[str, str]:
    return {"OpenStack-API-Version": f"compute {as_string(version)}",
            "X-OpenStack-Nova-API-Version": as_string(version),
            "Vary": "OpenStack-API-Version, X-OpenStack-Nova-API-Version"}


def _invalid(action: str, body: dict, problem: str) -> str:
    return f"Invalid input for field/attribute {action}. Value: {body}. {problem}"


def _is_boolean(value, *, strings: bool) -> bool:
    if isinstance(value, bool):
        return True
    # Before 2.25 Nova's boolean parameter type also took these strings.
    return strings and isinstance(value, str) and value.lower() in (
        "true", "false", "1", "0", "yes", "no", "on", "off")


def live_migrate_problem(version: tuple[int, int], body) -> str | None:
    """Why Nova at `version` refuses this os-migrateLive body (None: accepted)."""
    action = "os-migrateLive"
    if not isinstance(body, dict):
        return _invalid(action, body, f"{body!r} is not of type 'object'")
    allowed = {"host", "block_migration"}
    if version < (2, 25):
        allowed.add("disk_over_commit")
    if (2, 30) <= version < (2, 68):
        allowed.add("force")
    for key in sorted(body):
        if key not in allowed:
            return _invalid(action, body, f"Additional properties are not allowed "
                                          f"('{key}' was unexpected)")
    for key in sorted(allowed - {"force"}):
        if key not in body:
            return _invalid(action, body, f"'{key}' is a required property")
    old = version < (2, 25)
    block = body["block_migration"]
    if not (_is_boolean(block, strings=old) or (not old and block == "auto")):
        return _invalid(action, body, f"{block!r} is not valid under any of the given "
                                      "schemas")
    if old and not _is_boolean(body["disk_over_commit"], strings=True):
        return _invalid(action, body, f"{body['disk_over_commit']!r} is not of type "
                                      "'boolean'")
    if "force" in body and not _is_boolean(body["force"], strings=False):
        return _invalid(action, body, f"{body['force']!r} is not of type 'boolean'")
    if body["host"] is not None and not isinstance(body["host"], str):
        return _invalid(action, body, f"{body['host']!r} is not of type 'string', 'null'")
    return None


def keypair_problem(version: tuple[int, int], body: dict) -> str | None:
    """From 2.92 Nova no longer generates key pairs: public_key is required."""
    if version >= (2, 92) and not body.get("public_key"):
        return _invalid("keypair", body, "'public_key' is a required property")
    return None


def flavor_view(version: tuple[int, int], flavor: dict) -> dict:
    """A server's flavor: a link to it before 2.47, its copy from 2.47 on."""
    if version < (2, 47):
        return {"id": flavor["id"], "links": []}
    return {"original_name": flavor["name"], "vcpus": flavor["vcpus"],
            "ram": flavor["ram"], "disk": flavor["disk"],
            "ephemeral": flavor["OS-FLV-EXT-DATA:ephemeral"],
            "swap": flavor["swap"] or 0}
