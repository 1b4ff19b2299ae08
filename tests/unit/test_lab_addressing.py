"""The lab's address plan keeps off the addresses this machine needs (no root)."""

from __future__ import annotations

import ipaddress

import pytest

from tests.lab import addressing
from tests.lab.openstack.config import LabConfig

REGISTRIES = ipaddress.ip_address("203.0.113.80")


def test_the_registry_address_is_kept_off():
    assert REGISTRIES in addressing.KEEP_OFF


@pytest.mark.parametrize("gateway", ["203.0.113.1/24", "203.0.113.65/26", "203.0.113.80/32"])
def test_a_prefix_covering_the_registries_is_refused_by_field(gateway):
    with pytest.raises(ValueError, match=r"floating_gateway: .*203\.0\.113\.80"):
        addressing.check_gateway("floating_gateway", gateway)


@pytest.mark.parametrize("gateway, problem", [
    ("192.0.2.1/24", "outside the lab ranges"),
    ("10.0.0.1/8", "outside the lab ranges"),
    ("203.0.113.1/16", "outside the lab ranges"),
    ("198.51.100.1", None),
    ("not-an-address", "not an address"),
])
def test_gateways_outside_the_lab_ranges_are_refused(gateway, problem):
    if problem is None:
        assert addressing.check_gateway("fixed_gateway", gateway).network.prefixlen == 32
        return
    with pytest.raises(ValueError, match=f"fixed_gateway: .*{problem}"):
        addressing.check_gateway("fixed_gateway", gateway)


def test_every_layout_prefix_is_accepted_and_the_main_pools_fit_100_servers():
    config = LabConfig()
    for pool in (config.fixed_pool, config.floating_pool):
        first, last = (ipaddress.ip_address(end) for end in pool)
        assert int(last) - int(first) + 1 >= 100
    assert config.public_subnet == {
        "cidr": "203.0.113.128/25", "gateway_ip": "203.0.113.129",
        "allocation_pools": [{"start": "203.0.113.130", "end": "203.0.113.254"}]}


def test_the_main_lab_stays_apart_from_the_test_labs():
    main_fixed = [ipaddress.ip_address(end) for end in addressing.MAIN_FIXED_POOL]
    main_floating = ipaddress.ip_interface(addressing.MAIN_FLOATING_GATEWAY).network
    for fixed, floating in [("198.51.100.129/27", "203.0.113.1/28"),     # probe tests
                            ("198.51.100.193/26", "203.0.113.33/27"),    # fabric tests
                            ("198.51.100.225/28", "203.0.113.17/29"),
                            ("198.51.100.241/28", "203.0.113.25/29"),
                            ("198.51.100.161/27", "203.0.113.97/28")]:    # meter tests
        fixed_net = addressing.check_gateway("fixed", fixed).network
        assert main_fixed[1] < fixed_net.network_address
        assert not addressing.check_gateway("floating", floating).network.overlaps(
            main_floating)


@pytest.mark.parametrize("field, kwargs, problem", [
    ("floating_pool", {"floating_pool": ("203.0.113.100", "203.0.113.140")}, "not a range"),
    ("fixed_pool", {"fixed_pool": ("198.51.100.1", "198.51.100.20")}, "holds the gateway"),
    ("fixed_pool", {"fixed_pool": ("198.51.100.20", "198.51.100.10")}, "not a range"),
    ("floating_gateway", {"floating_gateway": "203.0.113.1/24"}, "203.0.113.80"),
])
def test_lab_config_refuses_pools_and_gateways_by_field(field, kwargs, problem):
    with pytest.raises(ValueError, match=f"{field}: .*{problem}"):
        LabConfig(**kwargs)
