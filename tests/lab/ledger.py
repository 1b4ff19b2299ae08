"""A durable record of what the lab created, so a crashed run can still be cleaned up.

Every resource is recorded *before* it is created and forgotten only after it is
gone; `resources.json` is rewritten atomically on each change. Processes are recorded
with their kernel start time so a recycled PID is never killed by mistake.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from tests.lab import netns

LOG = logging.getLogger(__name__)

Entry = dict[str, Any]


def process_starttime(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, or None if it is gone.

    A zombie counts as gone: it runs nothing and holds no namespace.
    """
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            text = stat.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) may contain spaces and parentheses: split after it.
    fields = text[text.rindex(")") + 2:].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def process_alive(pid: int, starttime: int) -> bool:
    """Whether the process recorded as (pid, starttime) still runs."""
    return process_starttime(pid) == starttime


def kill_process(pid: int, starttime: int, timeout: float = 5.0) -> bool:
    """SIGKILL the recorded process (if it is still that process) and wait until gone.

    Returns True when the process is gone within `timeout`.
    """
    if not process_alive(pid, starttime):
        return True
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process_alive(pid, starttime):
            return True
        time.sleep(0.01)
    return not process_alive(pid, starttime)


class ResourceLedger:
    """Thread-safe list of created resources mirrored to a JSON file.

    Entry kinds: {"kind": "process", "pid", "starttime", "label"},
    {"kind": "netns", "name"}, {"kind": "link", "name"},
    {"kind": "address", "dev", "cidr"} (root namespace only).
    """

    def __init__(self, path: Path, prefix: str) -> None:
        self.path = Path(path)
        self.prefix = prefix
        self._lock = threading.Lock()
        self._entries: list[Entry] = []

    def add(self, entry: Entry) -> Entry:
        """Record a resource that is about to be created."""
        with self._lock:
            if entry not in self._entries:
                self._entries.append(dict(entry))
            self._save()
        return entry

    def discard(self, entry: Entry) -> None:
        """Forget a resource that is gone."""
        with self._lock:
            if entry in self._entries:
                self._entries.remove(entry)
            self._save()

    def __contains__(self, entry: object) -> bool:
        with self._lock:
            return entry in self._entries

    def entries(self) -> list[Entry]:
        """A copy of the recorded entries, oldest first."""
        with self._lock:
            return [dict(e) for e in self._entries]

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps({"prefix": self.prefix, "resources": self._entries},
                                  indent=1))
        os.replace(tmp, self.path)

    @classmethod
    def load(cls, path: Path) -> ResourceLedger:
        """The ledger a previous (possibly crashed) run left in `path`."""
        data = json.loads(Path(path).read_text())
        ledger = cls(path, data.get("prefix", ""))
        ledger._entries = list(data.get("resources", []))
        return ledger

    def release_all(self) -> list[str]:
        """Remove every recorded resource, dependants first; return what stayed.

        Order: processes (they hold namespaces), namespaces (their veth ends go too),
        root-namespace addresses, then links newest first (veths before the bridge).
        """
        entries = self.entries()
        leftovers: list[str] = []
        by_kind = {kind: [e for e in reversed(entries) if e["kind"] == kind]
                   for kind in ("process", "netns", "address", "link")}
        for entry in by_kind["process"]:
            if kill_process(entry["pid"], entry["starttime"]):
                self.discard(entry)
            else:
                leftovers.append(f"process {entry['pid']} ({entry.get('label', '')})")
        for entry in by_kind["netns"]:
            netns.delete_netns(entry["name"])
            if netns.netns_exists(entry["name"]):
                leftovers.append(f"netns {entry['name']}")
            else:
                self.discard(entry)
        for entry in by_kind["address"]:
            if netns.link_exists(entry["dev"]):
                netns.ip("addr", "del", entry["cidr"], "dev", entry["dev"], check=False)
            self.discard(entry)
        for entry in by_kind["link"]:
            netns.delete_link(entry["name"])
            if netns.link_exists(entry["name"]):
                leftovers.append(f"link {entry['name']}")
            else:
                self.discard(entry)
        for entry in leftovers:
            LOG.warning("lab resource left behind: %s", entry)
        return leftovers
