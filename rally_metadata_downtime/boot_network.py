"""Which network a server boots on when the task names none (pure: no I/O).

Nova picks the project's only network itself up to microversion 2.36; from 2.37 a
boot request must carry `networks`, and novaclient refuses to send one without
`nics` ("nics are required after microversion 2.36"). A task with no network
context, on an environment whose api_info asks for 2.37 or later, would then fail
every boot. The plugin makes the choice Nova made before 2.37: the one network the
project can use, else an error that says how to name one.
"""

from __future__ import annotations

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
