"""The lab cloud's settings and the Rally environment spec that points at it."""

from __future__ import annotations

import dataclasses
import ipaddress

from tests.lab import addressing
from tests.lab.faults import FaultProfile


@dataclasses.dataclass
class LabConfig:
    """Credentials, names, address pools and the default migration fault profile."""

    admin_user: str = "admin"
    admin_password: str = "lab-admin-secret"
    admin_project: str = "admin"
    region: str = "RegionOne"
    image_name: str = "cirros-lab"
    hypervisors: tuple[str, ...] = ("lab-compute-1", "lab-compute-2")
    fixed_pool: tuple[str, str] = addressing.MAIN_FIXED_POOL
    floating_pool: tuple[str, str] = addressing.MAIN_FLOATING_POOL
    fixed_gateway: str = addressing.MAIN_FIXED_GATEWAY
    floating_gateway: str = addressing.MAIN_FLOATING_GATEWAY
    fault_profile: FaultProfile = dataclasses.field(default_factory=FaultProfile)

    def __post_init__(self) -> None:
        for pool_field, gateway_field in (("fixed_pool", "fixed_gateway"),
                                          ("floating_pool", "floating_gateway")):
            gateway = addressing.check_gateway(gateway_field, getattr(self, gateway_field))
            addressing.check_pool(pool_field, getattr(self, pool_field), gateway)

    @property
    def public_subnet(self) -> dict:
        """The external network's subnet as Neutron shows it."""
        gateway = ipaddress.ip_interface(self.floating_gateway)
        start, end = self.floating_pool
        return {"cidr": str(gateway.network), "gateway_ip": str(gateway.ip),
                "allocation_pools": [{"start": start, "end": end}]}


def env_spec(url: str, config: LabConfig | None = None) -> dict:
    """`rally env create --spec` content for the lab at `url`."""
    config = config or LabConfig()
    return {"openstack": {
        "auth_url": f"{url}/identity",
        "region_name": config.region,
        "https_insecure": False,
        "admin": {"username": config.admin_user, "password": config.admin_password,
                  "project_name": config.admin_project, "user_domain_name": "Default",
                  "project_domain_name": "Default"}}}
