"""The network a server boots on when the task names none (boot_network.py)."""

from __future__ import annotations

import pytest
from novaclient import api_versions

from rally_metadata_downtime.arguments import ArgumentError
from rally_metadata_downtime.boot_network import fixed_address, needs_nics, only_network

V = api_versions.APIVersion
SHARED = {"id": "net-shared", "name": "shared", "shared": True, "project_id": "other"}
OWN = {"id": "net-own", "name": "own", "shared": False, "project_id": "p1"}
EXTERNAL = {"id": "net-ext", "name": "public", "shared": True, "router:external": True,
            "project_id": "admin"}
OTHERS = {"id": "net-x", "name": "private-of-another", "shared": False,
          "project_id": "p2"}


@pytest.mark.parametrize("version, kwargs, context, needed", [
    ("2.36", {}, [], False),             # Nova still picks a network itself
    ("2.37", {}, [], True),
    ("2.79", {}, [], True),
    ("2.79", {"nics": [{"net-id": "n"}]}, [], False),   # the task names one
    ("2.79", {}, [{"id": "ctx-net"}], False),           # the network context's
])
def test_nics_are_needed_from_2_37_when_nothing_names_a_network(version, kwargs,
                                                                 context, needed):
    assert needs_nics(V(version), kwargs, context) is needed


@pytest.mark.parametrize("networks, chosen", [
    ([SHARED, EXTERNAL, OTHERS], "net-shared"),
    ([OWN, EXTERNAL], "net-own"),
    ([{**OWN, "project_id": None, "tenant_id": "p1"}], "net-own"),   # older Neutron
])
def test_the_projects_only_usable_network_is_taken(networks, chosen):
    assert only_network(networks, "p1", V("2.79")) == [{"net-id": chosen}]


@pytest.mark.parametrize("networks, said", [
    ([SHARED, OWN], "can use 2 networks (own, shared)"),
    ([EXTERNAL, OTHERS], "can use 0 networks (none)"),
])
def test_none_or_several_is_an_error_naming_the_argument(networks, said):
    with pytest.raises(ArgumentError) as raised:
        only_network(networks, "p1", V("2.79"))
    assert raised.value.argument == "boot_server_kwargs.nics"
    assert str(raised.value).startswith("boot_server_kwargs.nics: Nova 2.79 needs a "
                                        "network for each server")
    assert said in str(raised.value)


def _addr(addr: str, kind: str = "fixed") -> dict:
    return {"addr": addr, "version": 6 if ":" in addr else 4, "OS-EXT-IPS:type": kind}


@pytest.mark.parametrize("addresses, chosen", [
    # Nova lists a dual-stack port's link-local IPv6 address first: not that one.
    ({"lab": [_addr("fe80::f816:3eff:fe5e:1af5"), _addr("203.0.113.121")]},
     "203.0.113.121"),
    ({"lab": [_addr("2001:db8::5"), _addr("198.51.100.7")]}, "198.51.100.7"),
    # IPv6 only: a global address, never the link-local one.
    ({"v6": [_addr("fe80::1"), _addr("2001:db8::5")]}, "2001:db8::5"),
    # A floating IP listed by Nova is not a fixed address; the first network counts.
    ({"a": [_addr("203.0.113.200", "floating"), _addr("198.51.100.9")],
      "b": [_addr("198.51.100.20")]}, "198.51.100.9"),
])
def test_the_fixed_address_is_one_the_rally_host_can_reach(addresses, chosen):
    assert fixed_address(addresses) == chosen


def test_a_server_with_only_a_link_local_address_is_refused_by_name():
    with pytest.raises(ValueError, match=r"network 'lab'.*fe80::1"):
        fixed_address({"lab": [_addr("fe80::1")]})
