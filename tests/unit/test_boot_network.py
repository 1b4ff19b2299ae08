"""The network a server boots on when the task names none (boot_network.py)."""

from __future__ import annotations

import pytest
from novaclient import api_versions

from rally_metadata_downtime.arguments import ArgumentError
from rally_metadata_downtime.boot_network import needs_nics, only_network

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
