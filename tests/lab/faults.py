"""What a lab live migration does to a server, and the record of what it did.

FaultProfile is pure, validated data. GroundTruth keeps every injected window, on
CLOCK_BOOTTIME (the clock of a guest's /proc/uptime) and on wall-clock time, in memory
and as JSON lines.
"""

from __future__ import annotations

import dataclasses
import json
import math
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

METADATA_SHAPES = ("refused", "timeout", "http_404", "http_503", "wrong_instance")
MIGRATION_RESULTS = ("ok", "error", "hang")
GUEST_EVENTS = ("none", "drop_ssh", "kill_probe", "reboot")
# The address families a metadata outage hits (lab_metadata_families).
METADATA_FAMILIES = ("ipv4", "ipv6")
ALL_FAMILIES = "ipv4,ipv6"
# Bounds keep every lab wait finite; no real test wants an hour-long fault.
MAX_SECONDS = 3600.0

# Server metadata key -> FaultProfile field.
METADATA_KEYS = {
    "lab_migration_duration": "duration",
    "lab_network_blackout": "network_blackout",
    "lab_metadata_outage": "metadata_outage",
    "lab_metadata_shape": "metadata_shape",
    "lab_migration_result": "result",
    "lab_guest_event": "guest_event",
    "lab_metadata_families": "metadata_families",
}
_SECONDS_FIELDS = ("duration", "network_blackout", "metadata_outage")


def _seconds(value: Any, what: str) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: not a number: {value!r}") from None
    if not math.isfinite(seconds) or not 0 <= seconds <= MAX_SECONDS:
        raise ValueError(f"{what}: must be between 0 and {MAX_SECONDS:g} s, got {value!r}")
    return seconds


@dataclasses.dataclass(frozen=True)
class FaultProfile:
    """How one live migration behaves.

    duration: seconds from the request to the switchover.
    network_blackout: seconds of dropped packets starting at the switchover.
    metadata_outage: seconds the metadata service fails for the server, starting at
        the switchover (it may outlast the migration, as on a real cloud).
    metadata_shape: how it fails: refused (no listener: TCP RST), timeout (packets
        dropped), http_404 (proxy cannot map the instance), http_503, wrong_instance
        (answers with another instance's data).
    result: ok, error (fails after `duration`, no switchover), hang (never finishes).
    guest_event: what else happens to the guest at the switchover: none, drop_ssh
        (its sshd sessions are killed: every open SSH connection drops), kill_probe
        (the metadata probe's main process is killed) or reboot (every guest process
        dies, /tmp is emptied, sshd starts again).
    metadata_families: which families the metadata outage hits: "ipv4", "ipv6" or
        "ipv4,ipv6" (169.254.169.254 and fe80::a9fe:a9fe break separately on a cloud:
        different listeners, different flows). A network blackout hits both.
    """

    duration: float = 2.0
    network_blackout: float = 0.5
    metadata_outage: float = 0.0
    metadata_shape: str = "refused"
    result: str = "ok"
    guest_event: str = "none"
    metadata_families: str = ALL_FAMILIES

    def __post_init__(self) -> None:
        object.__setattr__(self, "metadata_families",
                           normal_families(self.metadata_families))
        for name in _SECONDS_FIELDS:
            object.__setattr__(self, name, _seconds(getattr(self, name), name))
        if self.metadata_shape not in METADATA_SHAPES:
            raise ValueError(f"metadata_shape: {self.metadata_shape!r} is not one of "
                             f"{', '.join(METADATA_SHAPES)}")
        if self.result not in MIGRATION_RESULTS:
            raise ValueError(f"result: {self.result!r} is not one of "
                             f"{', '.join(MIGRATION_RESULTS)}")
        if self.guest_event not in GUEST_EVENTS:
            raise ValueError(f"guest_event: {self.guest_event!r} is not one of "
                             f"{', '.join(GUEST_EVENTS)}")

    @classmethod
    def from_metadata(cls, base: FaultProfile, metadata: Mapping[str, Any]) -> FaultProfile:
        """`base` overridden by a server's `lab_*` metadata keys (see METADATA_KEYS).

        Keys without the `lab_` prefix are ignored. An unknown `lab_*` key or a bad
        value raises ValueError naming the key.
        """
        changes: dict[str, Any] = {}
        for key, value in metadata.items():
            if not key.startswith("lab_"):
                continue
            field = METADATA_KEYS.get(key)
            if field is None:
                raise ValueError(f"{key}: unknown lab metadata key (known: "
                                 f"{', '.join(sorted(METADATA_KEYS))})")
            if field in _SECONDS_FIELDS:
                changes[field] = _seconds(value, key)
            else:
                changes[field] = str(value).strip()
        try:
            return dataclasses.replace(base, **changes)
        except ValueError as exc:
            field = str(exc).split(":", 1)[0]
            key = next((k for k, f in METADATA_KEYS.items() if f == field), field)
            raise ValueError(f"{key}: {str(exc).split(':', 1)[1].strip()}") from None

    def to_metadata(self) -> dict[str, str]:
        """The server metadata that reproduces this profile (strings, as Nova keeps)."""
        return {key: str(getattr(self, field)) for key, field in METADATA_KEYS.items()}


# Server metadata that shapes the guest at boot rather than its migrations.
FAULTY_SERVERS_KEY = "lab_faulty_servers"
NO_CURL_KEY = "lab_no_curl"  # "true": a guest without curl (busybox wget only)
# Server metadata that picks the migrations the profile applies to: "HOST", only
# those into HOST (the others migrate healthily), so that one host is the broken one.
FAULTS_INTO_KEY = "lab_faults_into"


# Server metadata that gives the servers booted with the same metadata, in turn, a
# variant of the profile: "healthy,timeout,drop_ssh,...", each a metadata shape, a
# guest event, or healthy (no metadata outage), so that one workload mixes them.
PROFILE_CYCLE_KEY = "lab_profile_cycle"
# The server metadata keys that are not FaultProfile's.
SERVER_KEYS = (FAULTY_SERVERS_KEY, NO_CURL_KEY, FAULTS_INTO_KEY, PROFILE_CYCLE_KEY)


def wants_no_curl(metadata: Mapping[str, Any]) -> bool:
    return str(metadata.get(NO_CURL_KEY, "false")).lower() == "true"


class BootCounts:
    """How many servers were booted with each exact metadata, so that one workload
    can hold faulty and healthy iterations side by side: `lab_faulty_servers: N`
    gives the fault profile to the first N servers booted with the same metadata
    only; the main lab's per-workload turns (host, profile cycle) count here too."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def count(self, metadata: Mapping[str, Any]) -> int:
        """This server's turn among those booted with exactly `metadata` (from 1)."""
        key = json.dumps(dict(metadata), sort_keys=True)
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1
            return self._counts[key]

    def beyond_faulty_servers(self, metadata: Mapping[str, Any]) -> bool:
        """True for a server booted after the first `lab_faulty_servers` with its
        metadata (it migrates without the profile); ValueError naming the key for a
        count that is not one."""
        if FAULTY_SERVERS_KEY not in metadata:
            return False
        try:
            limit = int(metadata[FAULTY_SERVERS_KEY])
        except (TypeError, ValueError):
            limit = -1
        if limit < 0:
            raise ValueError(f"{FAULTY_SERVERS_KEY}: must be a count >= 0, got "
                             f"{metadata[FAULTY_SERVERS_KEY]!r}")
        return self.count(metadata) > limit


def cycle_variant(metadata: Mapping[str, Any], counts: BootCounts) -> str | None:
    """This server's variant of the profile (counted among the servers booted with
    its metadata), None without a cycle; ValueError naming the key for one it does
    not know."""
    if PROFILE_CYCLE_KEY not in metadata:
        return None
    variants = [v.strip() for v in str(metadata[PROFILE_CYCLE_KEY]).split(",")]
    unknown = [v for v in variants
               if v != "healthy" and v not in METADATA_SHAPES and v not in GUEST_EVENTS]
    if unknown:
        raise ValueError(f"{PROFILE_CYCLE_KEY}: {unknown[0]!r} is none of healthy, "
                         f"{', '.join(METADATA_SHAPES)}, {', '.join(GUEST_EVENTS)}")
    turn = counts.count({**metadata, "(turn of)": PROFILE_CYCLE_KEY})
    return variants[(turn - 1) % len(variants)]


def with_variant(profile: FaultProfile, variant: str | None) -> FaultProfile:
    """The profile as `variant` (cycle_variant's) changes it."""
    if variant is None:
        return profile
    if variant == "healthy":
        return dataclasses.replace(profile, metadata_outage=0)
    if variant in METADATA_SHAPES:
        return dataclasses.replace(profile, metadata_shape=variant)
    return dataclasses.replace(profile, guest_event=variant)


def normal_families(text: str) -> str:
    """"ipv4", "ipv6" or "ipv4,ipv6" (in that order) from a comma-separated list;
    ValueError naming metadata_families otherwise."""
    names = [f.strip() for f in str(text).split(",")]
    if not names or any(f not in METADATA_FAMILIES for f in names) \
            or len(set(names)) != len(names):
        raise ValueError(f"metadata_families: {text!r} is not a comma-separated list of "
                         f"distinct families among {', '.join(METADATA_FAMILIES)}")
    return ",".join(f for f in METADATA_FAMILIES if f in names)


def boottime() -> float:
    """Seconds on CLOCK_BOOTTIME: the clock a guest's /proc/uptime shows."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


@dataclasses.dataclass
class InjectedWindow:
    """One fault the lab applied: kind `network` (shape `blackout`), `metadata`, or
    `guest` (shape: the guest event; `detail` says what it hit). `families`: the
    address families it hit ("ipv4,ipv6" for a network blackout, which cuts both).

    start/end are taken right after the fault was applied/removed, so the fault was
    certainly active over [start, end]. end is None while the fault lasts.
    applied_within/removed_within: how long applying/removing it took (seconds), where
    a lab measured it: the fault took effect at most that long before start/end, so
    it lasted between duration - removed_within and duration + applied_within (on a
    loaded machine one `ip` call can take a few tenths of a second).
    acted_start/acted_end (CLOCK_BOOTTIME) and acted_count: where a lab counts the
    fault's effects where it acts (the cloud lab's real-path faults: resets sent,
    packets dropped, connections refused), the first and last it counted, and how
    many; None and 0 where nothing was counted.
    """

    kind: str
    shape: str
    server_id: str
    start_boottime: float
    start_wall: float
    end_boottime: float | None = None
    end_wall: float | None = None
    detail: str = ""
    families: str = ALL_FAMILIES
    acted_start_boottime: float | None = None
    acted_end_boottime: float | None = None
    acted_count: int = 0
    applied_within: float = 0.0
    removed_within: float = 0.0

    def hits(self, family: str) -> bool:
        return family in self.families.split(",")

    @property
    def duration(self) -> float | None:
        """Seconds the fault lasted, None while it lasts."""
        if self.end_boottime is None:
            return None
        return self.end_boottime - self.start_boottime


class GroundTruth:
    """Thread-safe record of injected windows; each closed window is one JSON line."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._windows: list[InjectedWindow] = []

    def open(self, kind: str, shape: str, server_id: str,
             families: str = ALL_FAMILIES,
             applying_since: float | None = None) -> InjectedWindow:
        """Start a window now (call right after the fault took effect; applying_since:
        the boottime() when applying it began)."""
        window = InjectedWindow(kind, shape, server_id, boottime(), time.time(),
                                families=families)
        if applying_since is not None:
            window.applied_within = window.start_boottime - applying_since
        with self._lock:
            self._windows.append(window)
        return window

    def close(self, window: InjectedWindow, removing_since: float | None = None) -> None:
        """End a window now (call right after the fault was removed; removing_since:
        the boottime() when removing it began) and log it."""
        with self._lock:
            if window.end_boottime is not None:
                return
            window.end_boottime = boottime()
            if removing_since is not None:
                window.removed_within = window.end_boottime - removing_since
            window.end_wall = time.time()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as out:
                out.write(json.dumps(dataclasses.asdict(window), sort_keys=True) + "\n")

    def close_all(self) -> None:
        """End every open window now (the lab is going away)."""
        with self._lock:
            still_open = [w for w in self._windows if w.end_boottime is None]
        for window in still_open:
            self.close(window)

    def windows(self, server_id: str | None = None) -> list[InjectedWindow]:
        """Copies of the windows so far (open ones included), optionally for one server."""
        with self._lock:
            return [dataclasses.replace(w) for w in self._windows
                    if server_id is None or w.server_id == server_id]


def downtime_per_server(windows: list[dict], family: str = "ipv4") -> dict[str, float]:
    """Seconds each server had no metadata over `family`, from injected windows (as
    dicts): a network blackout also cuts the metadata path, and windows may
    overlap, so this is the length of their union. Windows recorded before the
    families existed hit both."""
    by_server: dict[str, list[tuple[float, float]]] = {}
    for w in windows:
        if w["kind"] in ("network", "metadata") and \
                family in w.get("families", ALL_FAMILIES).split(","):
            by_server.setdefault(w["server_id"], []).append(
                (w["start_boottime"], w["end_boottime"]))
    totals = {}
    for server, spans in by_server.items():
        spans.sort()
        total, (cur_start, cur_end) = 0.0, spans[0]
        for start, end in spans[1:]:
            if start > cur_end:
                total += cur_end - cur_start
                cur_start, cur_end = start, end
            else:
                cur_end = max(cur_end, end)
        totals[server] = total + cur_end - cur_start
    return totals
