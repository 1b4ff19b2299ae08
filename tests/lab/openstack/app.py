"""The lab API application: Keystone, Nova, Neutron and Glance on one aiohttp app."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from tests.lab.faults import BootCounts
from tests.lab.openstack import glance, keystone, neutron, nova
from tests.lab.openstack.common import (
    BOOT_COUNTS_KEY,
    CONFIG_KEY,
    DRIVER_KEY,
    STORE_KEY,
    middleware,
)
from tests.lab.openstack.config import LabConfig
from tests.lab.openstack.store import AddressPool, Store


def _seed_public_network(store: Store, admin_project_id: str, config: LabConfig) -> None:
    network = neutron.create_row(store, "network", "networks", {
        "name": "public", "tenant_id": admin_project_id, "router:external": True,
        "shared": False})
    subnet = neutron.create_row(store, "subnet", "subnets", {
        "name": "public-subnet", "network_id": network["id"], "tenant_id": admin_project_id,
        **config.public_subnet})
    network["subnets"].append(subnet["id"])


async def _lab_state(request):
    store = request.app[STORE_KEY]
    admin = store.find("projects", request.app[CONFIG_KEY].admin_project)
    return web.json_response(store.leftovers(admin["id"]))


async def _lab_injected(request):
    return web.json_response({"windows": request.app[DRIVER_KEY].injected_windows()})


async def _lab_migrations(request):
    """Every os-migrateLive the lab accepted: its microversion and body."""
    return web.json_response({"migrations": request.app["migration_requests"]})


async def _delete_all_servers(app: web.Application) -> None:
    for server in list(app[STORE_KEY].servers.values()):
        await nova.delete_server_everywhere(app, server)


def make_app(driver, config: LabConfig | None = None,
             state_dir: Path | None = None) -> web.Application:
    config = config or LabConfig()
    app = web.Application(middlewares=[middleware(state_dir)],
                          client_max_size=4 * 1024 * 1024)
    store = Store()
    keystone.seed(store, config.admin_user, config.admin_password, config.admin_project)
    nova.seed_flavors(store)
    glance.seed(store, config.image_name)
    _seed_public_network(store, store.find("projects", config.admin_project)["id"], config)
    app[STORE_KEY] = store
    app[CONFIG_KEY] = config
    app[DRIVER_KEY] = driver
    app["fixed_pool"] = AddressPool(*config.fixed_pool)
    app["floating_pool"] = AddressPool(*config.floating_pool)
    app[BOOT_COUNTS_KEY] = BootCounts()
    app["migration_requests"] = []
    app.router.add_get("/lab/state", _lab_state)
    app.router.add_get("/lab/injected", _lab_injected)
    app.router.add_get("/lab/migrations", _lab_migrations)
    for module in (keystone, nova, glance, neutron):
        app.router.add_routes(module.routes)
    app.on_shutdown.append(_delete_all_servers)
    return app
