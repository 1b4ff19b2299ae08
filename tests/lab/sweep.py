"""Remove what killed labs left on this machine: python -m tests.lab.sweep

A lab tears itself down, and after a crash `python -m tests.lab.fabric cleanup
--state-dir DIR` replays its resources.json. When the state directory went too (a
session killed along with its temporary files), this project's namespaces and links
stay behind, and a bridge among them keeps routing lab addresses. This sweep finds
them by the project's naming scheme (prefix "rmd", see tests.lab.fabric) and removes
them, but never while a process runs in any of them: a live lab is left alone and
reported. Lock files of lab prefixes (/run/lock/rmd-lab-*.lock) that no process holds
go too. Exit 1 only when something could not be removed. Standard library only, so
it runs before anything is installed.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import sys
from pathlib import Path

from tests.lab import netns
from tests.lab.prefix_lock import PrefixLock

# Where fabric.py keeps each lab prefix's lock file (rmd-lab-<prefix>.lock).
PREFIX_LOCK_DIR = Path("/run/lock")

# <prefix>-meta and <prefix>-g<N> namespaces; <prefix>br0, <prefix>m0, <prefix>v<N>
# links, with <prefix> = "rmd" + up to 7 lowercase letters/digits.
NETNS_RE = re.compile(r"^(rmd[a-z0-9]{0,7})-(?:meta|g[0-9]+)$")
LINK_RE = re.compile(r"^(rmd[a-z0-9]{0,7}?)(?:br0|m0|v[0-9]+)$")


@dataclasses.dataclass
class LabRemains:
    """The namespaces and links one lab prefix left on this machine."""

    prefix: str
    namespaces: list[str] = dataclasses.field(default_factory=list)
    links: list[str] = dataclasses.field(default_factory=list)

    def busy(self) -> dict[str, list[str]]:
        """Its namespaces that processes still run in, with their PIDs."""
        busy = {}
        for name in self.namespaces:
            pids = netns.ip("netns", "pids", name, check=False).split()
            if pids:
                busy[name] = pids
        return busy

    def remove(self) -> list[str]:
        """Delete them all; returns what is still there afterwards."""
        for name in self.namespaces:
            netns.delete_netns(name)
        for name in self.links:
            netns.delete_link(name)
        return ([name for name in self.namespaces if netns.netns_exists(name)]
                + [name for name in self.links if netns.link_exists(name)])


def find_remains() -> dict[str, LabRemains]:
    """This project's namespaces and root-namespace links, grouped by lab prefix."""
    labs: dict[str, LabRemains] = {}
    try:
        namespaces = os.listdir(netns.NETNS_DIR)
    except FileNotFoundError:
        namespaces = []
    for name in sorted(namespaces):
        if match := NETNS_RE.match(name):
            labs.setdefault(match[1], LabRemains(match[1])).namespaces.append(name)
    for name in sorted(os.listdir("/sys/class/net")):
        if match := LINK_RE.match(name):
            labs.setdefault(match[1], LabRemains(match[1])).links.append(name)
    return labs


def sweep(prefixes: list[str] | None = None) -> int:
    """Remove the remains of every lab with no process left (or only of `prefixes`);
    0 unless something could not be removed."""
    labs = find_remains()
    if prefixes is not None:
        labs = {prefix: labs[prefix] for prefix in prefixes if prefix in labs}
    for path in sorted(PREFIX_LOCK_DIR.glob("rmd-lab-*.lock")):
        prefix = path.name.removeprefix("rmd-lab-").removesuffix(".lock")
        if (prefixes is None or prefix in prefixes) and PrefixLock(path).remove_if_free():
            print(f"lab sweep: removed {path}, which no lab holds")
    if not labs:
        print("lab sweep: nothing left by earlier labs")
        return 0
    status = 0
    for lab in labs.values():
        names = " ".join(lab.namespaces + lab.links)
        if busy := lab.busy():
            pids = " ".join(pid for pids in busy.values() for pid in pids)
            print(f"lab sweep: {lab.prefix} is running (PIDs {pids}), left alone")
            continue
        left = lab.remove()
        if left:
            print(f"lab sweep: {lab.prefix}: could not remove {' '.join(left)}",
                  file=sys.stderr)
            status = 1
        else:
            print(f"lab sweep: removed what lab {lab.prefix} left: {names}")
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.lab.sweep",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--prefix", action="append", dest="prefixes",
                        help="only this lab prefix (repeatable)")
    return sweep(parser.parse_args(argv).prefixes)


if __name__ == "__main__":
    sys.exit(main())
