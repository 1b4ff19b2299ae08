"""The lab cloud's settings and the Rally environment spec that points at it."""

from __future__ import annotations

import dataclasses

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
    fixed_pool: tuple[str, str] = ("198.51.100.10", "198.51.100.189")
    floating_pool: tuple[str, str] = ("203.0.113.10", "203.0.113.189")
    fixed_gateway: str = "198.51.100.1/24"
    floating_gateway: str = "203.0.113.1/24"
    fault_profile: FaultProfile = dataclasses.field(default_factory=FaultProfile)


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
