"""Neutron v2.0: networks, subnets, routers, ports, floating IPs, security groups."""

from __future__ import annotations

from aiohttp import web

from tests.lab.openstack.common import DRIVER_KEY, STORE_KEY, LabFault, body_of, token_of
from tests.lab.openstack.store import Store, new_id, now_iso

routes = web.RouteTableDef()
PREFIX = "/network/v2.0"

# collection in the URL -> (member key in bodies, store table)
COLLECTIONS = {
    "networks": ("network", "networks"),
    "subnets": ("subnet", "subnets"),
    "routers": ("router", "routers"),
    "ports": ("port", "ports"),
    "floatingips": ("floatingip", "floatingips"),
    "security-groups": ("security_group", "security_groups"),
    "security-group-rules": ("security_group_rule", "security_group_rules"),
}
_NOT_FILTERS = {"fields", "limit", "marker", "sort_key", "sort_dir", "page_reverse"}
EXTENSIONS = ("security-group", "external-net", "router", "ext-gw-mode", "quotas",
              "binding", "port-security")


def _defaults(kind: str, row: dict) -> dict:
    common = {"description": "", "tags": [], "created_at": now_iso(),
              "updated_at": now_iso(), "revision_number": 0}
    per_kind = {
        "network": {"admin_state_up": True, "status": "ACTIVE", "subnets": [],
                    "shared": False, "router:external": False, "mtu": 1500,
                    "port_security_enabled": True, "availability_zones": ["nova"]},
        "subnet": {"ip_version": 4, "enable_dhcp": True, "dns_nameservers": [],
                   "host_routes": [], "allocation_pools": [], "gateway_ip": None},
        "router": {"admin_state_up": True, "status": "ACTIVE", "routes": [],
                   "external_gateway_info": None},
        "port": {"admin_state_up": True, "status": "ACTIVE", "device_id": "",
                 "device_owner": "", "fixed_ips": [], "security_groups": [],
                 "mac_address": "fa:16:3e:00:00:00", "binding:host_id": ""},
        "floatingip": {"status": "DOWN", "port_id": None, "fixed_ip_address": None,
                       "router_id": None},
        "security_group": {"security_group_rules": [], "stateful": True},
        "security_group_rule": {"direction": "ingress", "ethertype": "IPv4",
                                "protocol": None, "port_range_min": None,
                                "port_range_max": None, "remote_ip_prefix": None,
                                "remote_group_id": None},
    }[kind]
    merged = {**common, **per_kind, **row}
    merged["project_id"] = merged["tenant_id"]
    merged.setdefault("name", "")
    return merged


def create_row(store: Store, kind: str, table: str, row: dict) -> dict:
    row = _defaults(kind, {"id": new_id(), **row})
    getattr(store, table)[row["id"]] = row
    return row


def _visible(request: web.Request, row: dict) -> bool:
    token = token_of(request)
    return (token.is_admin or row.get("tenant_id") == token.project["id"]
            or row.get("shared") or row.get("router:external"))


def _matches(row: dict, query) -> bool:
    for key in set(query) - _NOT_FILTERS:
        wanted = {v.lower() for v in query.getall(key)}
        if str(row.get(key)).lower() not in wanted:
            return False
    return True


def _get(request: web.Request, table: str, row_id: str) -> dict:
    row = getattr(request.app[STORE_KEY], table).get(row_id)
    if row is None or not _visible(request, row):
        raise LabFault(404, f"{table} {row_id} could not be found.")
    return row


@routes.get("/network")
@routes.get("/network/")
async def versions(request):
    return web.json_response({"versions": [{"id": "v2.0", "status": "CURRENT", "links": [
        {"rel": "self", "href": f"{request.url.origin()}{PREFIX}/"}]}]})


@routes.get(PREFIX + "/extensions")
async def extensions(request):
    return web.json_response({"extensions": [
        {"alias": a, "name": a, "description": "", "updated": "2013-01-01T00:00:00-00:00",
         "links": []} for a in EXTENSIONS]})


@routes.get(PREFIX + "/trunks")
async def trunks(request):
    return web.json_response({"trunks": []})


@routes.get(PREFIX + "/{collection}")
async def list_rows(request):
    member, table = _collection(request)
    rows = [r for r in getattr(request.app[STORE_KEY], table).values()
            if _visible(request, r) and _matches(r, request.query)]
    return web.json_response({request.match_info["collection"].replace("-", "_"): rows})


def _collection(request) -> tuple[str, str]:
    name = request.match_info["collection"]
    if name not in COLLECTIONS:
        raise web.HTTPNotFound()
    return COLLECTIONS[name]


@routes.post(PREFIX + "/{collection}")
async def create(request):
    kind, table = _collection(request)
    store = request.app[STORE_KEY]
    body = body_of(await request.read()).get(kind)
    if not isinstance(body, dict):
        raise LabFault(400, f"request body must be {{'{kind}': {{...}}}}")
    body.setdefault("tenant_id", body.get("project_id") or token_of(request).project["id"])
    row = await _CREATE_HOOKS.get(kind, _plain_create)(request, store, kind, table, body)
    return web.json_response({kind: row}, status=201)


async def _plain_create(request, store, kind, table, body) -> dict:
    return create_row(store, kind, table, body)


async def _create_subnet(request, store, kind, table, body) -> dict:
    network = _get(request, "networks", body.get("network_id", ""))
    row = create_row(store, kind, table, body)
    network["subnets"].append(row["id"])
    return row


async def _create_security_group(request, store, kind, table, body) -> dict:
    group = create_row(store, kind, table, body)
    for ethertype in ("IPv4", "IPv6"):
        rule = create_row(store, "security_group_rule", "security_group_rules",
                          {"security_group_id": group["id"], "direction": "egress",
                           "ethertype": ethertype, "tenant_id": group["tenant_id"]})
        group["security_group_rules"].append(rule)
    return group


async def _create_rule(request, store, kind, table, body) -> dict:
    group = _get(request, "security_groups", body.get("security_group_id", ""))
    rule = create_row(store, kind, table, body)
    group["security_group_rules"].append(rule)
    return rule


async def _create_floatingip(request, store, kind, table, body) -> dict:
    network = store.networks.get(body.get("floating_network_id", ""))
    if network is None or not network["router:external"]:
        raise LabFault(400, "floating_network_id must name an external network")
    try:
        address = request.app["floating_pool"].allocate()
    except LookupError as e:
        raise LabFault(409, "No more IP addresses available on the external network") from e
    port_id = body.pop("port_id", None)
    row = create_row(store, kind, table, {**body, "floating_ip_address": address})
    if port_id:
        await associate(request, row, port_id)
    return row


_CREATE_HOOKS = {"subnet": _create_subnet, "security_group": _create_security_group,
                 "security_group_rule": _create_rule, "floatingip": _create_floatingip}


@routes.get(PREFIX + "/{collection}/{id}")
async def show(request):
    kind, table = _collection(request)
    return web.json_response({kind: _get(request, table, request.match_info["id"])})


@routes.put(PREFIX + "/{collection}/{id}")
async def update(request):
    kind, table = _collection(request)
    row = _get(request, table, request.match_info["id"])
    body = body_of(await request.read()).get(kind, {})
    if kind == "floatingip" and "port_id" in body:
        port_id = body.pop("port_id")
        if port_id:
            await associate(request, row, port_id)
        else:
            await disassociate(request, row)
    row.update({k: v for k, v in body.items() if k not in ("id", "tenant_id")})
    row["updated_at"] = now_iso()
    return web.json_response({kind: row})


async def associate(request, fip: dict, port_id: str) -> None:
    port = _get(request, "ports", port_id)
    if fip["port_id"]:
        await disassociate(request, fip)
    if port["device_owner"].startswith("compute:"):
        await request.app[DRIVER_KEY].add_floating_ip(port["device_id"],
                                                      fip["floating_ip_address"])
    fip.update(port_id=port_id, fixed_ip_address=port["fixed_ips"][0]["ip_address"],
               status="ACTIVE")


async def disassociate(request, fip: dict) -> None:
    port = request.app[STORE_KEY].ports.get(fip["port_id"] or "")
    if port is not None and port["device_owner"].startswith("compute:"):
        await request.app[DRIVER_KEY].remove_floating_ip(port["device_id"],
                                                         fip["floating_ip_address"])
    fip.update(port_id=None, fixed_ip_address=None, status="DOWN")


@routes.delete(PREFIX + "/{collection}/{id}")
async def delete(request):
    kind, table = _collection(request)
    store = request.app[STORE_KEY]
    row = _get(request, table, request.match_info["id"])
    if kind == "network" and any(p["network_id"] == row["id"] for p in store.ports.values()):
        raise LabFault(409, f"Unable to complete operation on network {row['id']}. "
                            "There are one or more ports still in use on the network.")
    if kind == "floatingip":
        if row["port_id"]:
            await disassociate(request, row)
        request.app["floating_pool"].release(row["floating_ip_address"])
    if kind == "subnet" and row["network_id"] in store.networks:
        store.networks[row["network_id"]]["subnets"].remove(row["id"])
    if kind == "security_group_rule":
        group = store.security_groups.get(row["security_group_id"])
        if group:
            group["security_group_rules"] = [r for r in group["security_group_rules"]
                                             if r["id"] != row["id"]]
    if kind == "security_group":
        for rule_id in [r["id"] for r in row["security_group_rules"]]:
            store.security_group_rules.pop(rule_id, None)
    if kind == "router" and any(p["device_id"] == row["id"] for p in store.ports.values()):
        raise LabFault(409, f"Router {row['id']} still has ports")
    del getattr(store, table)[row["id"]]
    return web.Response(status=204)


@routes.put(PREFIX + "/routers/{id}/add_router_interface")
async def add_router_interface(request):
    router = _get(request, "routers", request.match_info["id"])
    store = request.app[STORE_KEY]
    subnet = _get(request, "subnets", body_of(await request.read()).get("subnet_id", ""))
    port = create_row(store, "port", "ports", {
        "network_id": subnet["network_id"], "device_id": router["id"],
        "device_owner": "network:router_interface", "tenant_id": router["tenant_id"],
        "fixed_ips": [{"subnet_id": subnet["id"], "ip_address": subnet["gateway_ip"]}]})
    return web.json_response({"id": router["id"], "subnet_id": subnet["id"],
                              "subnet_ids": [subnet["id"]], "port_id": port["id"],
                              "tenant_id": router["tenant_id"]})


@routes.put(PREFIX + "/routers/{id}/remove_router_interface")
async def remove_router_interface(request):
    router = _get(request, "routers", request.match_info["id"])
    store = request.app[STORE_KEY]
    body = body_of(await request.read())
    for port in [p for p in store.ports.values() if p["device_id"] == router["id"]]:
        if body.get("port_id") in (None, port["id"]) and (
                body.get("subnet_id") is None
                or any(ip["subnet_id"] == body["subnet_id"] for ip in port["fixed_ips"])):
            del store.ports[port["id"]]
    return web.json_response({"id": router["id"], "subnet_id": body.get("subnet_id")})
