"""Keystone v3: version discovery, tokens, and what Rally's users context needs."""

from __future__ import annotations

import datetime
import uuid

from aiohttp import web

from tests.lab.openstack.common import CONFIG_KEY, STORE_KEY, LabFault, body_of, token_of
from tests.lab.openstack.store import Store, Token, new_id

routes = web.RouteTableDef()


def base_url(request: web.Request) -> str:
    return str(request.url.origin())


def _version(request: web.Request) -> dict:
    return {"id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z",
            "links": [{"rel": "self", "href": f"{base_url(request)}/identity/v3/"}],
            "media-types": [{"base": "application/json",
                             "type": "application/vnd.openstack.identity-v3+json"}]}


@routes.get("/")
@routes.get("/identity")
@routes.get("/identity/")
async def versions(request):
    return web.json_response({"versions": {"values": [_version(request)]}}, status=300)


@routes.get("/identity/v3")
@routes.get("/identity/v3/")
async def v3(request):
    return web.json_response({"version": _version(request)})


def seed(store: Store, admin_user: str, admin_password: str, admin_project: str) -> None:
    """The domain, admin project/user and roles a fresh cloud has."""
    store.domains["default"] = {"id": "default", "name": "Default", "enabled": True,
                                "description": "", "links": {}}
    for name in ("admin", "member", "reader"):
        role_id = new_id()
        store.roles[role_id] = {"id": role_id, "name": name, "domain_id": None,
                                "links": {}}
    project = _new_project(store, admin_project)
    user = _new_user(store, admin_user, admin_password, project["id"])
    admin_role = store.find("roles", "admin")
    store.assignments[new_id()] = {"user": user["id"], "project": project["id"],
                                   "role": admin_role["id"]}


def _new_project(store: Store, name: str, **extra) -> dict:
    project_id = uuid.uuid4().hex
    project = {"id": project_id, "name": name, "domain_id": "default", "enabled": True,
               "description": extra.get("description", ""), "is_domain": False,
               "parent_id": "default", "tags": [], "links": {}}
    store.projects[project_id] = project
    return project


def _new_user(store: Store, name: str, password: str, project_id: str | None) -> dict:
    user_id = uuid.uuid4().hex
    user = {"id": user_id, "name": name, "domain_id": "default", "enabled": True,
            "default_project_id": project_id, "password_expires_at": None,
            "options": {}, "links": {}, "_password": password}
    store.users[user_id] = user
    return user


def _public(row: dict) -> dict:
    return {k: v for k, v in row.items() if not k.startswith("_")}


def catalog(request: web.Request) -> list[dict]:
    base = base_url(request)
    region = request.app[CONFIG_KEY].region
    services = [("identity", "keystone", f"{base}/identity"),
                ("compute", "nova", f"{base}/compute/v2.1"),
                ("network", "neutron", f"{base}/network"),
                ("image", "glance", f"{base}/image")]
    return [{"type": kind, "name": name, "id": kind,
             "endpoints": [{"interface": iface, "region": region, "region_id": region,
                            "url": url, "id": f"{kind}-{iface}"}
                           for iface in ("public", "internal", "admin")]}
            for kind, name, url in services]


def _token_body(request: web.Request, token: Token) -> dict:
    return {"token": {"methods": ["password"], "expires_at": token.expires_at,
                      "issued_at": token.issued_at, "audit_ids": [uuid.uuid4().hex[:22]],
                      "user": {"id": token.user["id"], "name": token.user["name"],
                               "domain": {"id": "default", "name": "Default"},
                               "password_expires_at": None},
                      "project": {"id": token.project["id"], "name": token.project["name"],
                                  "domain": {"id": "default", "name": "Default"}},
                      "is_domain": False,
                      "roles": token.roles, "catalog": catalog(request)}}


@routes.post("/identity/v3/auth/tokens")
async def issue_token(request):
    store = request.app[STORE_KEY]
    auth = body_of(await request.read()).get("auth", {})
    password = auth.get("identity", {}).get("password", {}).get("user", {})
    user = store.find("users", password.get("id") or password.get("name", ""))
    if user is None or user["_password"] != password.get("password"):
        raise LabFault(401, "The request you have made requires authentication.")
    scope = auth.get("scope", {}).get("project", {})
    project = (store.find("projects", scope.get("id") or scope.get("name", ""))
               if scope else store.projects.get(user["default_project_id"]))
    if project is None:
        raise LabFault(401, "project scope not found")
    roles = [store.roles[a["role"]] for a in store.assignments.values()
             if a["user"] == user["id"] and a["project"] == project["id"]]
    if not roles:
        raise LabFault(401, f"user {user['name']} has no role on {project['name']}")
    issued = datetime.datetime.now(datetime.UTC)
    token = Token(user=user, project=project,
                  roles=[{"id": r["id"], "name": r["name"]} for r in roles],
                  issued_at=issued.strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
                  expires_at=(issued + datetime.timedelta(hours=12)).strftime(
                      "%Y-%m-%dT%H:%M:%S.000000Z"))
    token_id = uuid.uuid4().hex
    store.tokens[token_id] = token
    return web.json_response(_token_body(request, token), status=201,
                             headers={"X-Subject-Token": token_id})


@routes.get("/identity/v3/auth/tokens")
async def validate_token(request):
    token_id = request.headers.get("X-Subject-Token", "")
    token = request.app[STORE_KEY].tokens.get(token_id)
    if token is None:
        raise LabFault(404, "token not found")
    return web.json_response(_token_body(request, token),
                             headers={"X-Subject-Token": token_id})


def _require_admin(request) -> None:
    if not token_of(request).is_admin:
        raise LabFault(403, "admin role required")


@routes.get("/identity/v3/domains/{id}")
async def get_domain(request):
    domain = request.app[STORE_KEY].domains.get(request.match_info["id"])
    if domain is None:
        raise LabFault(404, f"Could not find domain: {request.match_info['id']}.")
    return web.json_response({"domain": domain})


@routes.get("/identity/v3/domains")
async def list_domains(request):
    name = request.query.get("name")
    return web.json_response({"domains": [d for d in request.app[STORE_KEY].domains.values()
                                          if name in (None, d["name"])]})


@routes.post("/identity/v3/projects")
async def create_project(request):
    _require_admin(request)
    body = body_of(await request.read())["project"]
    project = _new_project(request.app[STORE_KEY], body["name"],
                           description=body.get("description", ""))
    return web.json_response({"project": project}, status=201)


@routes.get("/identity/v3/projects")
async def list_projects(request):
    name = request.query.get("name")
    return web.json_response({"projects": [
        p for p in request.app[STORE_KEY].projects.values() if name in (None, p["name"])]})


@routes.get("/identity/v3/projects/{id}")
async def get_project(request):
    project = request.app[STORE_KEY].projects.get(request.match_info["id"])
    if project is None:
        raise LabFault(404, f"Could not find project: {request.match_info['id']}.")
    return web.json_response({"project": project})


@routes.delete("/identity/v3/projects/{id}")
async def delete_project(request):
    _require_admin(request)
    store = request.app[STORE_KEY]
    if store.projects.pop(request.match_info["id"], None) is None:
        raise LabFault(404, f"Could not find project: {request.match_info['id']}.")
    return web.Response(status=204)


@routes.post("/identity/v3/users")
async def create_user(request):
    _require_admin(request)
    body = body_of(await request.read())["user"]
    user = _new_user(request.app[STORE_KEY], body["name"], body.get("password", ""),
                     body.get("default_project_id"))
    return web.json_response({"user": _public(user)}, status=201)


@routes.get("/identity/v3/users")
async def list_users(request):
    name = request.query.get("name")
    return web.json_response({"users": [
        _public(u) for u in request.app[STORE_KEY].users.values() if name in (None, u["name"])]})


@routes.get("/identity/v3/users/{id}")
async def get_user(request):
    user = request.app[STORE_KEY].users.get(request.match_info["id"])
    if user is None:
        raise LabFault(404, f"Could not find user: {request.match_info['id']}.")
    return web.json_response({"user": _public(user)})


@routes.delete("/identity/v3/users/{id}")
async def delete_user(request):
    _require_admin(request)
    store = request.app[STORE_KEY]
    user_id = request.match_info["id"]
    if store.users.pop(user_id, None) is None:
        raise LabFault(404, f"Could not find user: {user_id}.")
    for key in [k for k, a in store.assignments.items() if a["user"] == user_id]:
        del store.assignments[key]
    return web.Response(status=204)


@routes.get("/identity/v3/roles")
async def list_roles(request):
    name = request.query.get("name")
    return web.json_response({"roles": [r for r in request.app[STORE_KEY].roles.values()
                                        if name in (None, r["name"])]})


@routes.put("/identity/v3/projects/{project}/users/{user}/roles/{role}")
async def grant_role(request):
    _require_admin(request)
    m = request.match_info
    request.app[STORE_KEY].assignments[new_id()] = {
        "user": m["user"], "project": m["project"], "role": m["role"]}
    return web.Response(status=204)


@routes.delete("/identity/v3/projects/{project}/users/{user}/roles/{role}")
async def revoke_role(request):
    _require_admin(request)
    m = request.match_info
    store = request.app[STORE_KEY]
    for key in [k for k, a in store.assignments.items()
                if (a["user"], a["project"], a["role"]) == (m["user"], m["project"], m["role"])]:
        del store.assignments[key]
    return web.Response(status=204)


@routes.get("/identity/v3/role_assignments")
async def role_assignments(request):
    store = request.app[STORE_KEY]
    user, project = request.query.get("user.id"), request.query.get("scope.project.id")
    return web.json_response({"role_assignments": [
        {"role": {"id": a["role"]}, "user": {"id": a["user"]},
         "scope": {"project": {"id": a["project"]}}}
        for a in store.assignments.values()
        if user in (None, a["user"]) and project in (None, a["project"])]})

