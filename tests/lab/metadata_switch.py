"""Guest-side metadata faults both labs switch inside a guest's own network
namespace, one address family at a time (blocking: subprocess)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterable

from tests.lab import netns
from tests.lab.addressing import METADATA_IPV6

# A MAC no lab interface has: frames sent to it are flooded and dropped.
BLACKHOLE_MAC = "02:00:00:00:00:01"


def in_switch_order(families: Iterable[str]) -> list[str]:
    """IPv6 first: its switch (ip6tables) is the slow one. Both ways, so that a
    window opened and closed around the whole switch sits within a fast `ip` call
    of each family's own fault."""
    return sorted(families, key=lambda name: name != "ipv6")


def switch_ipv6(netns_name: str, shape: str, on: bool, check: bool = True) -> None:
    """Break (`on`) or mend the guest's IPv6 metadata in `shape`: refused or timeout."""
    if shape == "refused":
        refuse_ipv6(netns_name, on, check=check)
    elif shape == "timeout":
        blackhole_neighbour(netns_name, METADATA_IPV6, on)
    else:
        raise ValueError(f"unknown metadata fault shape {shape!r}")


def refuse_ipv6(netns_name: str, on: bool, check: bool = True) -> None:
    """The guest's own stack resets its connections to fe80::a9fe:a9fe (or stops).
    A link-local address on lo does not serve eth0's zone, and on eth0 it would
    answer other guests' neighbour solicitations: hence a rule, not an address."""
    argv = ["ip", "netns", "exec", netns_name, "ip6tables", "-w", "5",
            "-I" if on else "-D", "OUTPUT", "-d", METADATA_IPV6, "-p", "tcp",
            "--dport", "80", "-j", "REJECT", "--reject-with", "tcp-reset"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    if check and done.returncode != 0:
        raise netns.IpError(argv, done.stderr)


def blackhole_neighbour(netns_name: str, address: str, on: bool) -> None:
    """Frames for `address` go to BLACKHOLE_MAC on eth0 (no answer ever comes), or
    the guest resolves it again."""
    if on:
        netns.ip("neigh", "replace", address, "lladdr", BLACKHOLE_MAC, "dev", "eth0",
                 "nud", "permanent", netns=netns_name)
    else:
        netns.ip("neigh", "del", address, "dev", "eth0", netns=netns_name, check=False)
