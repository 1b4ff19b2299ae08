"""Where the lab's addresses come from, and the addresses no lab may route.

Lab hosts live in 198.51.100.0/24 (fixed) and 203.0.113.0/24 (floating), the
documentation ranges this workplace gives labs. One address in them is not ours:
the machines reach their package registries (pypi.org, deb.debian.org and the like
resolve to it) at 203.0.113.80. A bridge address whose prefix covers it sends pip and
apt into the lab for as long as the lab, or a crashed lab's leftovers, lives: that is
how a CI run once failed to install anything. Every bridge prefix is checked here.

Layout. Longest prefix wins, so smaller labs nest inside the main lab's fixed /24 and
can run beside it as long as their guest addresses stay apart::

    main lab (demo, sample task, bench)
        fixed 198.51.100.1/24    guests .10-.127
        floating 203.0.113.129/25  guests .130-.254
    probe script tests    fixed 198.51.100.129/27   floating 203.0.113.1/28
    fabric tests          fixed 198.51.100.193/26 (+ .225/28, .241/28)
                          floating 203.0.113.33/27, .17/29, .25/29
    meter tests           fixed 198.51.100.161/27   floating 203.0.113.97/28
    cost bench guests     fixed 198.51.100.113/28   floating 203.0.113.113/28
                          (the top of the main lab's pool: beside a main lab of
                          fewer than about 100 servers, e.g. a test's)
    cloud lab (tests/lab/cloud/; its own, not through this module)
                          tenant 203.0.113.112/28, external 203.0.113.64/28 (both
                          in the root namespace), OVN underlay 198.51.100.240/28
                          inside its namespaces only
"""

from __future__ import annotations

import ipaddress
import os

LAB_RANGES = (ipaddress.ip_network("198.51.100.0/24"), ipaddress.ip_network("203.0.113.0/24"))

# RMD_LAB_KEEP_OFF (comma-separated) adds addresses for a machine whose services
# live elsewhere in the lab ranges.
KEEP_OFF = tuple(ipaddress.ip_address(address.strip()) for address in
                 ("203.0.113.80," + os.environ.get("RMD_LAB_KEEP_OFF", "")).split(",")
                 if address.strip())

# The metadata service, as guests ask it (on their link only, in every lab): Nova's
# address, and Neutron's IPv6 one (ML2/OVS, OVN).
METADATA_IP = "169.254.169.254"
METADATA_IPV6 = "fe80::a9fe:a9fe"

MAIN_FIXED_GATEWAY = "198.51.100.1/24"
MAIN_FLOATING_GATEWAY = "203.0.113.129/25"
MAIN_FIXED_POOL = ("198.51.100.10", "198.51.100.127")
MAIN_FLOATING_POOL = ("203.0.113.130", "203.0.113.254")


def check_gateway(field: str, gateway: str) -> ipaddress.IPv4Interface:
    """The bridge address `gateway` (e.g. "203.0.113.129/25"), or ValueError naming
    `field` when it lies outside the lab ranges or its prefix covers a KEEP_OFF address.
    """
    try:
        interface = ipaddress.ip_interface(gateway)
    except ValueError as exc:
        raise ValueError(f"{field}: {gateway!r} is not an address with a prefix") from exc
    if not any(interface.network.subnet_of(lab) for lab in LAB_RANGES
               if lab.version == interface.version):
        raise ValueError(f"{field}: {gateway} is outside the lab ranges "
                         f"{', '.join(map(str, LAB_RANGES))}")
    covered = [str(address) for address in KEEP_OFF if address in interface.network]
    if covered:
        raise ValueError(f"{field}: {interface.network} would route {', '.join(covered)} "
                         "into the lab (this machine's package registries); use a "
                         "narrower prefix")
    return interface


def check_pool(field: str, pool: tuple[str, str], gateway: ipaddress.IPv4Interface) -> None:
    """ValueError naming `field` unless `pool` is a range inside `gateway`'s network
    (so also clear of KEEP_OFF) that does not hold the gateway itself."""
    first, last = (ipaddress.ip_address(end) for end in pool)
    if first > last or first not in gateway.network or last not in gateway.network:
        raise ValueError(f"{field}: {pool[0]}-{pool[1]} is not a range inside "
                         f"{gateway.network}")
    if first <= gateway.ip <= last:
        raise ValueError(f"{field}: {pool[0]}-{pool[1]} holds the gateway {gateway.ip}")
