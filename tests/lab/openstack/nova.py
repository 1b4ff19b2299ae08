"""Nova v2.1: flavors, key pairs, servers, live migration, hypervisors, migrations."""

from __future__ import annotations

import asyncio
import datetime
import io
import logging
import random
import time

import paramiko
from aiohttp import web

from tests.lab.faults import (
    FAULTS_INTO_KEY,
    SERVER_KEYS,
    FaultProfile,
    wants_no_curl,
)
from tests.lab.openstack import microversion, neutron
from tests.lab.openstack.common import (
    BOOT_COUNTS_KEY,
    CONFIG_KEY,
    DRIVER_KEY,
    STORE_KEY,
    LabFault,
    body_of,
    token_of,
)
from tests.lab.openstack.store import new_id, now_iso

LOG = logging.getLogger("lab.nova")
routes = web.RouteTableDef()
PREFIX = "/compute/v2.1"


def _version(request) -> dict:
    return {"id": "v2.1", "status": "CURRENT",
            "version": microversion.as_string(microversion.MAX_VERSION),
            "min_version": microversion.as_string(microversion.MIN_VERSION),
            "updated": "2013-07-23T11:33:21Z",
            "links": [{"rel": "self", "href": f"{request.url.origin()}{PREFIX}/"}]}


@routes.get("/compute")
@routes.get("/compute/")
async def versions(request):
    return web.json_response({"versions": [_version(request)]})


@routes.get(PREFIX)
@routes.get(PREFIX + "/")
async def version(request):
    return web.json_response({"version": _version(request)})


# -- flavors -------------------------------------------------------------------------
@routes.get(PREFIX + "/flavors")
@routes.get(PREFIX + "/flavors/detail")
async def list_flavors(request):
    return web.json_response({"flavors": list(request.app[STORE_KEY].flavors.values())})


@routes.get(PREFIX + "/flavors/{id}")
async def get_flavor(request):
    flavor = request.app[STORE_KEY].flavors.get(request.match_info["id"])
    if flavor is None:
        raise LabFault(404, f"Flavor {request.match_info['id']} could not be found.")
    return web.json_response({"flavor": flavor})


def seed_flavors(store) -> None:
    for flavor_id, name, ram, disk, vcpus in (("1", "m1.tiny", 512, 1, 1),
                                              ("2", "m1.small", 2048, 20, 1)):
        store.flavors[flavor_id] = {
            "id": flavor_id, "name": name, "ram": ram, "disk": disk, "vcpus": vcpus,
            "swap": "", "rxtx_factor": 1.0, "OS-FLV-EXT-DATA:ephemeral": 0,
            "OS-FLV-DISABLED:disabled": False, "os-flavor-access:is_public": True,
            "links": []}


# -- key pairs -------------------------------------------------------------------------
def _keypairs_of(request) -> dict:
    user = token_of(request).user["id"]
    return {k: v for k, v in request.app[STORE_KEY].keypairs.items() if v["user_id"] == user}


@routes.get(PREFIX + "/os-keypairs")
async def list_keypairs(request):
    return web.json_response({"keypairs": [
        {"keypair": {k: v for k, v in kp.items() if k != "private_key"}}
        for kp in _keypairs_of(request).values()]})


@routes.post(PREFIX + "/os-keypairs")
async def create_keypair(request):
    body = body_of(await request.read()).get("keypair", {})
    problem = microversion.keypair_problem(version_of(request), body)
    if problem:
        raise LabFault(400, problem)
    name = body.get("name")
    if not name:
        raise LabFault(400, "keypair name is required")
    if any(kp["name"] == name for kp in _keypairs_of(request).values()):
        raise LabFault(409, f"Key pair '{name}' already exists.")
    keypair = {"name": name, "user_id": token_of(request).user["id"], "type": "ssh",
               "created_at": now_iso(), "deleted": False, "id": random.randint(1, 10**9)}
    if body.get("public_key"):
        keypair["public_key"] = body["public_key"]
    else:
        # Rally hands the private key to paramiko: it must be a real PEM RSA key.
        key = await asyncio.to_thread(paramiko.RSAKey.generate, 2048)
        pem = io.StringIO()
        key.write_private_key(pem)
        keypair["public_key"] = f"{key.get_name()} {key.get_base64()} lab"
        keypair["private_key"] = pem.getvalue()
        keypair["fingerprint"] = ":".join(f"{b:02x}" for b in key.get_fingerprint())
    keypair.setdefault("fingerprint", "00:00")
    request.app[STORE_KEY].keypairs[f"{keypair['user_id']}/{name}"] = keypair
    return web.json_response({"keypair": keypair})


@routes.get(PREFIX + "/os-keypairs/{name}")
async def get_keypair(request):
    for kp in _keypairs_of(request).values():
        if kp["name"] == request.match_info["name"]:
            return web.json_response({"keypair": {k: v for k, v in kp.items()
                                                  if k != "private_key"}})
    raise LabFault(404, f"Keypair {request.match_info['name']} not found.")


@routes.delete(PREFIX + "/os-keypairs/{name}")
async def delete_keypair(request):
    store = request.app[STORE_KEY]
    for key, kp in _keypairs_of(request).items():
        if kp["name"] == request.match_info["name"]:
            del store.keypairs[key]
            return web.Response(status=202)
    raise LabFault(404, f"Keypair {request.match_info['name']} not found.")


# -- servers ---------------------------------------------------------------------------
def _server_visible(request, server) -> bool:
    token = token_of(request)
    return token.is_admin or server["tenant_id"] == token.project["id"]


def _get_server(request, server_id: str | None = None) -> dict:
    server_id = server_id or request.match_info["id"]
    server = request.app[STORE_KEY].servers.get(server_id)
    if server is None or not _server_visible(request, server):
        raise LabFault(404, f"Instance {server_id} could not be found.")
    return server


def _addresses(store, server: dict) -> dict:
    addresses: dict[str, list] = {}
    for port in store.ports.values():
        if port["device_id"] != server["id"]:
            continue
        network = store.networks.get(port["network_id"], {"name": "unknown"})
        entries = addresses.setdefault(network["name"], [])
        for ip in port["fixed_ips"]:
            entries.append({"addr": ip["ip_address"], "version": 4,
                            "OS-EXT-IPS:type": "fixed",
                            "OS-EXT-IPS-MAC:mac_addr": port["mac_address"]})
        for fip in store.floatingips.values():
            if fip["port_id"] == port["id"]:
                entries.append({"addr": fip["floating_ip_address"], "version": 4,
                                "OS-EXT-IPS:type": "floating",
                                "OS-EXT-IPS-MAC:mac_addr": port["mac_address"]})
    return addresses


def _view(request, server: dict) -> dict:
    view = {k: v for k, v in server.items() if not k.startswith("_")}
    view["addresses"] = _addresses(request.app[STORE_KEY], server)
    view["flavor"] = microversion.flavor_view(version_of(request), server["_flavor"])
    if not token_of(request).is_admin:
        for key in [k for k in view if k.startswith("OS-EXT-SRV-ATTR:")]:
            del view[key]
    return view


def hostname_for(name: str) -> str:
    """Nova's sanitize_hostname: what cloud-init would set as the guest hostname."""
    cleaned = "".join(c for c in name.lower().replace("_", "-").replace(" ", "-")
                      if c.isalnum() or c in "-.")
    return cleaned.strip("-.")[:63] or "server"


def _pick_network(request, server_body: dict) -> dict:
    store = request.app[STORE_KEY]
    requested = server_body.get("networks")
    if isinstance(requested, list) and requested:
        net_id = requested[0].get("uuid")
        network = store.networks.get(net_id or "")
        if network is None:
            raise LabFault(400, f"Network {net_id} could not be found.")
        return network
    project = token_of(request).project["id"]
    for network in store.networks.values():
        if network["tenant_id"] == project and not network["router:external"]:
            return network
    raise LabFault(409, "No network available for the server: use the network context")


# lab_no_curl shapes the guest image; lab_faulty_servers: N gives the fault profile to
# the first N servers booted with the same metadata only, the later ones get the lab
# default, so one workload holds faulty and healthy iterations side by side;
# lab_boot_host places the server (as an admin's forced host would, for any user);
# "lab-compute-1,lab-compute-2" places the servers booted with the same metadata on
# those hosts in turn (one guest per host for a per-host disruption);
# lab_faults_into: the others get the lab default. (lab_profile_cycle, faults.py:
# the cloud lab's.)
_NON_PROFILE_KEYS = (*SERVER_KEYS, "lab_boot_host")


def _booted_with(app, metadata: dict) -> int:
    """How many servers were booted with exactly this metadata, this one included."""
    return app[BOOT_COUNTS_KEY].count(metadata)


@routes.post(PREFIX + "/servers")
async def create_server(request):
    store, config = request.app[STORE_KEY], request.app[CONFIG_KEY]
    token = token_of(request)
    body = body_of(await request.read()).get("server", {})
    name = body.get("name") or "server"
    image = store.images.get(body.get("imageRef", ""))
    flavor = store.flavors.get(str(body.get("flavorRef", "")).rsplit("/", 1)[-1])
    if image is None:
        raise LabFault(400, f"Image {body.get('imageRef')} could not be found.")
    if flavor is None:
        raise LabFault(400, f"Flavor {body.get('flavorRef')} could not be found.")
    metadata = body.get("metadata") or {}
    no_curl = wants_no_curl(metadata)
    try:
        profile = FaultProfile.from_metadata(
            config.fault_profile,
            {k: v for k, v in metadata.items() if k not in _NON_PROFILE_KEYS})
        if request.app[BOOT_COUNTS_KEY].beyond_faulty_servers(metadata):
            profile = config.fault_profile
    except ValueError as e:
        raise LabFault(400, f"Invalid server metadata: {e}") from e
    public_key = None
    if body.get("key_name"):
        keypair = store.keypairs.get(f"{token.user['id']}/{body['key_name']}")
        if keypair is None:
            raise LabFault(400, f"Invalid key_name provided: {body['key_name']}")
        public_key = keypair["public_key"]
    network = _pick_network(request, body)
    try:
        fixed_ip = request.app["fixed_pool"].allocate()
    except LookupError as e:
        raise LabFault(409, "No fixed IP address available") from e

    boot_hosts = [h.strip() for h in str(metadata.get("lab_boot_host", "")).split(",")
                  if h.strip()]
    for key, hosts in (("lab_boot_host", boot_hosts),
                       ("lab_faults_into", [metadata.get("lab_faults_into")])):
        if key in metadata and not (hosts and set(hosts) <= set(config.hypervisors)):
            raise LabFault(400, f"Invalid server metadata: {key}: {metadata[key]!r} is "
                                f"not one of {', '.join(config.hypervisors)}")
    if len(boot_hosts) > 1:
        turn = _booted_with(request.app, {**metadata, "(cycle)": "lab_boot_host"})
        host = boot_hosts[(turn - 1) % len(boot_hosts)]
    else:
        host = boot_hosts[0] if boot_hosts else random.choice(config.hypervisors)
    server_id = new_id()
    neutron.create_row(store, "port", "ports", {
        "name": "", "network_id": network["id"], "device_id": server_id,
        "device_owner": "compute:nova", "tenant_id": token.project["id"],
        "mac_address": "fa:16:3e:" + random.randbytes(3).hex(":"),
        "binding:host_id": host,
        "fixed_ips": [{"subnet_id": (network["subnets"] or [""])[0],
                       "ip_address": fixed_ip}],
        "security_groups": [g["id"] for g in store.security_groups.values()
                            if g["name"] in {s.get("name") for s in
                                             body.get("security_groups", [])}]})
    base = f"{request.url.origin()}{PREFIX}"
    server = {
        "id": server_id, "name": name, "status": "BUILD", "tenant_id": token.project["id"],
        "user_id": token.user["id"], "metadata": metadata, "key_name": body.get("key_name"),
        "image": {"id": image["id"], "links": []},
        "created": now_iso(), "updated": now_iso(), "hostId": new_id().replace("-", ""),
        "OS-EXT-SRV-ATTR:host": host, "OS-EXT-SRV-ATTR:hypervisor_hostname": host,
        "OS-EXT-SRV-ATTR:instance_name": f"instance-{len(store.servers) + 1:08x}",
        "OS-EXT-STS:task_state": "spawning", "OS-EXT-STS:vm_state": "building",
        "OS-EXT-STS:power_state": 0, "OS-EXT-AZ:availability_zone": "nova",
        "OS-DCF:diskConfig": "MANUAL", "accessIPv4": "", "accessIPv6": "",
        "progress": 0, "config_drive": "",
        "security_groups": [{"name": s.get("name")} for s in body.get("security_groups", [])],
        "os-extended-volumes:volumes_attached": [],
        "links": [{"rel": "self", "href": f"{base}/servers/{server_id}"}],
        "_fixed_ip": fixed_ip, "_flavor": flavor, "_tasks": set(), "_actions": []}
    store.servers[server_id] = server
    _start_task(server, _boot(request.app, server, hostname_for(name), fixed_ip,
                              public_key, profile, no_curl))
    return web.json_response({"server": {
        "id": server_id, "links": server["links"], "adminPass": "lab",
        "OS-DCF:diskConfig": "MANUAL", "security_groups": server["security_groups"]}},
        status=202)


async def _boot(app, server, hostname, fixed_ip, public_key, profile, no_curl) -> None:
    try:
        await app[DRIVER_KEY].create_guest(server["id"], server["name"], hostname,
                                           fixed_ip, public_key, profile, server["metadata"],
                                           no_curl=no_curl)
    except Exception as e:
        LOG.exception("boot of %s failed", server["id"])
        server.update(status="ERROR", **{"OS-EXT-STS:vm_state": "error",
                                         "OS-EXT-STS:task_state": None},
                      fault={"code": 500, "message": f"lab boot failed: {e}",
                             "created": now_iso()})
        return
    server.update(status="ACTIVE", updated=now_iso(), **{
        "OS-EXT-STS:vm_state": "active", "OS-EXT-STS:task_state": None,
        "OS-EXT-STS:power_state": 1, "OS-SRV-USG:launched_at": now_iso()})


def _servers_for_list(request) -> list[dict]:
    token = token_of(request)
    all_tenants = request.query.get("all_tenants", "0").lower() in ("1", "true")
    rows = [s for s in request.app[STORE_KEY].servers.values()
            if (token.is_admin and all_tenants) or s["tenant_id"] == token.project["id"]]
    for key in ("name", "status"):
        if key in request.query:
            rows = [s for s in rows if s[key] == request.query[key]]
    marker = request.query.get("marker")
    if marker:
        ids = [s["id"] for s in rows]
        if marker not in ids:
            raise LabFault(400, f"marker [{marker}] not found")
        rows = rows[ids.index(marker) + 1:]
    limit = int(request.query.get("limit", 1000))
    return rows[:limit]


@routes.get(PREFIX + "/servers")
async def list_servers(request):
    return web.json_response({"servers": [
        {"id": s["id"], "name": s["name"], "links": s["links"]}
        for s in _servers_for_list(request)]})


@routes.get(PREFIX + "/servers/detail")
async def list_servers_detail(request):
    return web.json_response({"servers": [_view(request, s)
                                          for s in _servers_for_list(request)]})


@routes.get(PREFIX + "/servers/{id}")
async def get_server(request):
    return web.json_response({"server": _view(request, _get_server(request))})


@routes.delete(PREFIX + "/servers/{id}")
async def delete_server(request):
    server = _get_server(request)
    await delete_server_everywhere(request.app, server)
    return web.Response(status=204)


async def delete_server_everywhere(app, server: dict) -> None:
    """Stop any migration, remove the guest, its port and floating IP associations."""
    store = app[STORE_KEY]
    store.servers.pop(server["id"], None)
    for task in list(server["_tasks"]):
        task.cancel()
    try:
        await app[DRIVER_KEY].delete_guest(server["id"])
    except Exception:
        LOG.exception("removing the guest of %s failed", server["id"])
    for port in [p for p in store.ports.values() if p["device_id"] == server["id"]]:
        for fip in store.floatingips.values():
            if fip["port_id"] == port["id"]:
                fip.update(port_id=None, fixed_ip_address=None, status="DOWN")
        del store.ports[port["id"]]
    app["fixed_pool"].release(server["_fixed_ip"])


@routes.post(PREFIX + "/servers/{id}/action")
async def server_action(request):
    body = body_of(await request.read())
    if "os-migrateLive" in body:
        # As Nova: the body is checked against the schema before the server is looked up.
        problem = microversion.live_migrate_problem(version_of(request),
                                                    body["os-migrateLive"])
        if problem:
            raise LabFault(400, problem)
        return await _live_migrate(request, _get_server(request), body["os-migrateLive"])
    if "os-getConsoleOutput" in body:
        server = _get_server(request)
        return web.json_response({"output": (
            f"lab guest {server['name']} ({server['id']}) on "
            f"{server['OS-EXT-SRV-ATTR:host']}: {server['status']}, sshd on port 22\n")})
    raise LabFault(400, f"the lab does not implement server action {sorted(body)}")


async def _live_migrate(request, server, args: dict):
    if not token_of(request).is_admin:
        raise LabFault(403, "Policy doesn't allow os_compute_api:os-migrate-server:"
                            "migrate_live to be performed.")
    config = request.app[CONFIG_KEY]
    if server["status"] != "ACTIVE":
        raise LabFault(409, f"Cannot 'os-migrateLive' instance {server['id']} while it "
                            f"is in vm_state {server['OS-EXT-STS:vm_state']}")
    source = server["OS-EXT-SRV-ATTR:host"]
    destination = args.get("host")
    if destination is not None:
        if destination not in config.hypervisors:
            raise LabFault(400, f"Compute host {destination} could not be found.")
        if destination == source:
            raise LabFault(400, f"The supplied destination {destination} is the "
                                "instance's current host.")
    else:
        destination = random.choice([h for h in config.hypervisors if h != source])
    store = request.app[STORE_KEY]
    migration = {"id": len(store.migrations) + 1, "uuid": new_id(),
                 "instance_uuid": server["id"], "source_compute": source,
                 "dest_compute": destination, "source_node": source,
                 "dest_node": destination, "dest_host": destination,
                 "status": "queued", "migration_type": "live-migration",
                 "created_at": now_iso(), "updated_at": now_iso(),
                 "old_instance_type_id": server["_flavor"]["id"],
                 "new_instance_type_id": server["_flavor"]["id"],
                 "source_region": config.region, "dest_region": config.region,
                 "project_id": server["tenant_id"], "user_id": server["user_id"]}
    store.migrations[migration["id"]] = migration
    request.app["migration_requests"].append({
        "migration_id": migration["id"], "server_id": server["id"],
        "microversion": microversion.as_string(version_of(request)), "body": args,
        "accepted_at": time.time()})
    server.update(status="MIGRATING", **{"OS-EXT-STS:task_state": "migrating"})
    # Nova's instance action for this request, with the events its conductor and
    # computes record as they go (start and finish times, UTC, no zone).
    action = {"action": "live-migration", "request_id": request["request_id"],
              "instance_uuid": server["id"], "user_id": token_of(request).user["id"],
              "project_id": token_of(request).project["id"],
              "start_time": _action_time(), "message": None, "events": [
                  {"event": "conductor_live_migrate_instance",
                   "start_time": _action_time(), "finish_time": _action_time(),
                   "result": "Success", "host": "lab-controller"}]}
    server["_actions"].append(action)
    migration["_action"] = action
    faults_into = server["metadata"].get(FAULTS_INTO_KEY)
    profile = (config.fault_profile if faults_into not in (None, destination)
               else None)
    _start_task(server, _run_migration(request.app, server, migration, destination,
                                       profile))
    return web.Response(status=202)


def _start_task(server: dict, coroutine) -> None:
    """Run a server's boot or migration in the background; deleting the server
    cancels it. A migration's metadata outage may outlive it (the server is ACTIVE
    on its new host meanwhile), so one server can hold several."""
    task = asyncio.ensure_future(coroutine)
    server["_tasks"].add(task)
    task.add_done_callback(server["_tasks"].discard)


async def _run_migration(app, server, migration, destination, profile=None) -> None:
    action = migration["_action"]
    action["events"].append({"event": "compute_live_migration",
                             "start_time": _action_time(), "finish_time": None,
                             "result": None, "host": server["OS-EXT-SRV-ATTR:host"]})

    def switchover():
        # Nova is done at the switchover; a broken metadata path outlives it.
        action["events"][-1].update(finish_time=_action_time(), result="Success")
        action["events"].append({
            "event": "compute_post_live_migration_at_destination",
            "start_time": _action_time(), "finish_time": _action_time(),
            "result": "Success", "host": destination})
        migration.update(status="completed", updated_at=now_iso())
        server.update(status="ACTIVE", updated=now_iso(), **{
            "OS-EXT-SRV-ATTR:host": destination,
            "OS-EXT-SRV-ATTR:hypervisor_hostname": destination,
            "OS-EXT-STS:task_state": None})

    migration.update(status="running", updated_at=now_iso())
    try:
        await app[DRIVER_KEY].migrate(server["id"], switchover, profile)
    except asyncio.CancelledError:
        if migration["status"] != "completed":
            migration.update(status="cancelled", updated_at=now_iso())
        raise
    except Exception:
        # As real Nova does when its virt driver fails the migration (the cloud
        # lab's test shows it): rolled back, the server ACTIVE on its source again.
        action["events"][-1].update(finish_time=_action_time(), result="Error")
        migration.update(status="error", updated_at=now_iso())
        server.update(status="ACTIVE", updated=now_iso(),
                      **{"OS-EXT-STS:task_state": None})
        return


# -- hypervisors, services, zones, migrations ----------------------------------------------
def _action_time() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


# As Nova's policy has it: events (with their host from 2.62) for admins; others
# see none before 2.51, and no host after.
def _action_view(request, action: dict, with_events: bool) -> dict:
    view = {k: v for k, v in action.items() if k != "events"}
    version = version_of(request)
    if with_events and (token_of(request).is_admin or version >= (2, 51)):
        shown = []
        for event in action["events"]:
            event = dict(event)
            if version < (2, 62) or not token_of(request).is_admin:
                event.pop("host")
            shown.append(event)
        view["events"] = shown
    return view


@routes.get(PREFIX + "/servers/{id}/os-instance-actions")
async def list_instance_actions(request):
    server = _get_server(request)
    return web.json_response({"instanceActions": [
        _action_view(request, a, with_events=False) for a in reversed(server["_actions"])]})


@routes.get(PREFIX + "/servers/{id}/os-instance-actions/{request_id}")
async def get_instance_action(request):
    server = _get_server(request)
    for action in server["_actions"]:
        if action["request_id"] == request.match_info["request_id"]:
            return web.json_response({"instanceAction": _action_view(
                request, action, with_events=True)})
    raise LabFault(404, f"Action {request.match_info['request_id']} could not be found.")


def version_of(request) -> tuple[int, int]:
    """The microversion the request was negotiated at (by the API middleware)."""
    return request.get("microversion", microversion.MIN_VERSION)


def _require_admin(request) -> None:
    if not token_of(request).is_admin:
        raise LabFault(403, "admin role required")


def _hypervisor(request, index: int, host: str) -> dict:
    running = sum(1 for s in request.app[STORE_KEY].servers.values()
                  if s["OS-EXT-SRV-ATTR:host"] == host)
    return {"id": index, "hypervisor_hostname": host, "state": "up", "status": "enabled",
            "hypervisor_type": "QEMU", "hypervisor_version": 8002000,
            "host_ip": "127.0.0.1", "service": {"host": host, "id": index,
                                                "disabled_reason": None},
            "vcpus": 64, "vcpus_used": running, "memory_mb": 262144,
            "memory_mb_used": 512 * running, "local_gb": 1000, "local_gb_used": running,
            "free_ram_mb": 262144 - 512 * running, "free_disk_gb": 1000 - running,
            "running_vms": running, "current_workload": 0, "disk_available_least": 900,
            "cpu_info": "{}"}


# rally-openstack's cleanup lists server groups after every task; the lab has none.
@routes.get(PREFIX + "/os-server-groups")
async def list_server_groups(request):
    token_of(request)
    return web.json_response({"server_groups": []})


@routes.get(PREFIX + "/os-hypervisors")
@routes.get(PREFIX + "/os-hypervisors/detail")
async def hypervisors(request):
    _require_admin(request)
    hosts = request.app[CONFIG_KEY].hypervisors
    return web.json_response({"hypervisors": [_hypervisor(request, i + 1, h)
                                              for i, h in enumerate(hosts)]})


@routes.get(PREFIX + "/os-services")
async def services(request):
    hosts = request.app[CONFIG_KEY].hypervisors
    return web.json_response({"services": [
        {"id": i + 1, "binary": "nova-compute", "host": h, "zone": "nova",
         "status": "enabled", "state": "up", "updated_at": now_iso(),
         "disabled_reason": None, "forced_down": False} for i, h in enumerate(hosts)]})


@routes.get(PREFIX + "/os-availability-zone")
@routes.get(PREFIX + "/os-availability-zone/detail")
async def availability_zones(request):
    hosts = request.app[CONFIG_KEY].hypervisors
    return web.json_response({"availabilityZoneInfo": [{
        "zoneName": "nova", "zoneState": {"available": True},
        "hosts": {h: {"nova-compute": {"available": True, "active": True,
                                       "updated_at": now_iso()}} for h in hosts}}]})


@routes.get(PREFIX + "/os-migrations")
async def migrations(request):
    _require_admin(request)
    rows = list(request.app[STORE_KEY].migrations.values())
    if "instance_uuid" in request.query:
        rows = [m for m in rows if m["instance_uuid"] == request.query["instance_uuid"]]
    return web.json_response({"migrations": [
        {k: v for k, v in m.items() if not k.startswith("_")} for m in rows]})
