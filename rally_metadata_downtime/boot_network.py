"""Which network a server boots on when the task names none, and which of its
addresses the Rally host reaches it on (pure: no I/O).

Nova picks the project's only network itself up to microversion 2.36; from 2.37 a
boot request must carry `networks`, and novaclient refuses to send one without
`nics` ("nics are required after microversion 2.36"). A task with no network
context, on an environment whose api_info asks for 2.37 or later, would then fail
every boot. The plugin makes the choice Nova made before 2.37: the one network the
project can use, else an error that says how to name one.

On a dual-stack network Nova may list a server's IPv6 address first, and
rally-openstack takes the first address it lists, for SSH and as the fixed address
of its floating IP: a link-local one (a metadata-over-IPv6 network's, fe80::/64)
reaches nothing from the Rally host, and Neutron puts no IPv4 floating IP on an
IPv6 address. The plugin takes the first network's IPv4 address instead.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping

from novaclient import api_versions

from rally_metadata_downtime.arguments import ArgumentError

NICS_REQUIRED_SINCE = api_versions.APIVersion("2.37")


def needs_nics(version: api_versions.APIVersion, boot_kwargs: Mapping,
               context_networks: Iterable) -> bool:
    """True when a boot at `version` would go out without the nics it needs."""
    return (version >= NICS_REQUIRED_SINCE and "nics" not in boot_kwargs
            and not list(context_networks))


def only_network(networks: Iterable[Mapping], project_id: str,
                 version: api_versions.APIVersion) -> list[dict]:
    """nics for the one network (not external) the project owns or shares; an
    ArgumentError naming boot_server_kwargs.nics when there are none or several."""
    usable = sorted((n for n in networks if not n.get("router:external")
                     and (n.get("shared") or (n.get("project_id") or n.get("tenant_id"))
                          == project_id)), key=lambda n: n.get("name") or n["id"])
    if len(usable) == 1:
        return [{"net-id": usable[0]["id"]}]
    found = (", ".join(n.get("name") or n["id"] for n in usable) if usable
             else "none")
    raise ArgumentError(
        "boot_server_kwargs.nics", f"Nova {version.get_string()} needs a network "
        f"for each server (from 2.37) and the task has no network context; the "
        f"project can use {len(usable)} networks ({found}): name one, e.g. "
        f"boot_server_kwargs: {{nics: [{{net-id: <network id>}}]}}, or add the "
        f"network context")


def fixed_address(addresses: Mapping[str, Iterable[Mapping]]) -> str:
    """The address the Rally host reaches a server on, from Nova's `addresses` (network
    name -> [{"addr": ..., "version": ...}]): the first network's first IPv4 fixed
    address, else its first IPv6 one that is not link-local; ValueError when there
    is neither."""
    network, entries = next(iter(addresses.items()), (None, ()))
    fixed = [ipaddress.ip_address(entry["addr"]) for entry in entries
             if entry.get("OS-EXT-IPS:type", "fixed") == "fixed"]
    usable = ([a for a in fixed if a.version == 4]
              + [a for a in fixed if a.version == 6 and not a.is_link_local])
    if not usable:
        raise ValueError(f"server has no address the Rally host can reach on network "
                         f"{network!r}: {[str(a) for a in fixed]}")
    return str(usable[0])
