"""The guest side of the lab: a bridge, a metadata service and guests made of
namespaces running sshd, plus live migrations that inject faults.

Topology (root namespace = the Rally host)::

    <prefix>br0  fixed and floating gateways (bridge; the only root-ns addresses;
                 see tests.lab.addressing for the layout and what they must not cover)
      |-- <prefix>m0 == eth0 in <prefix>-meta: 169.254.169.254/32, metadata HTTP on :80
      |-- <prefix>v<N> == eth0 in <prefix>-g<N>: fixed IP/24 (+ floating IPs/24), sshd

Threading: the synchronous methods block (subprocesses, waits) and are thread-safe;
an aiohttp server calls them through `asyncio.to_thread`. `migrate` is a coroutine
for any event loop: it sleeps on the caller's loop and runs `ip` in the fabric's own
worker threads.
The metadata service runs on the fabric's own event loop in a daemon thread.

This module holds the fabric's state and life (setup, teardown, the prefix lock);
each job is a module of its own, mixed into Fabric:

- tests.lab.topology: the bridge, the metadata namespace and its service;
- tests.lab.guests: guests (create, boot, reboot, delete, floating IPs, exec);
- tests.lab.migration: live migrations and the faults they inject;
- tests.lab.errors: what the fabric raises;
- tests.lab.fabric_cli: `python -m tests.lab.fabric cleanup --state-dir D`.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import threading
from pathlib import Path
from typing import Self

from tests.lab import addressing
from tests.lab import ledger as ledger_mod
from tests.lab.addressing import METADATA_IP
from tests.lab.errors import FabricError, GuestNotFound, MigrationError, MigrationInProgress
from tests.lab.fabric_cli import main
from tests.lab.faults import FaultProfile, GroundTruth
from tests.lab.guest_os import GuestImage
from tests.lab.guests import Guest, GuestsMixin
from tests.lab.metadata_service import MetadataService
from tests.lab.migration import MigrationMixin, _ActiveFault
from tests.lab.prefix_lock import PrefixLock
from tests.lab.sweep import PREFIX_LOCK_DIR
from tests.lab.topology import TopologyMixin

__all__ = ["METADATA_IP", "PREFIX_LOCK_DIR", "WAITING_FOR_LAB", "Fabric", "FabricError",
           "Guest", "GuestNotFound", "MigrationError", "MigrationInProgress", "main"]

LOG = logging.getLogger(__name__)

_PREFIX_RE = re.compile(r"^[a-z][a-z0-9]{0,9}$")
# Logged while the lock is held elsewhere; tests.lab.harness waits longer on seeing it.
WAITING_FOR_LAB = "is running: waiting for it"
_PREFIXES_HELD: set[str] = set()  # the prefix locks this process holds


class Fabric(TopologyMixin, GuestsMixin, MigrationMixin):
    """Network namespaces, sshd guests and the metadata service of one lab.

    `state_dir` receives resources.json (what to remove after a crash), injected.jsonl
    (ground truth), keys, configs and guest console logs. Use as a context manager or
    call setup()/teardown(); teardown removes everything, also after partial failure.
    fixed_gateway/floating_gateway are the bridge's addresses: a narrower prefix
    (e.g. 198.51.100.193/26) lets a second lab share the root namespace with one
    that holds the /24s, as long as their guest addresses stay apart.
    """

    def __init__(self, state_dir: Path, prefix: str = "rmdlab", *,
                 fixed_gateway: str = addressing.MAIN_FIXED_GATEWAY,
                 floating_gateway: str = addressing.MAIN_FLOATING_GATEWAY,
                 default_profile: FaultProfile | None = None,
                 sshd_timeout: float = 20.0) -> None:
        if not _PREFIX_RE.match(prefix):
            raise ValueError(f"prefix {prefix!r}: 1-10 lowercase letters/digits, "
                             "starting with a letter (interface names max 15 chars)")
        self.state_dir = Path(state_dir).resolve()
        if re.search(r"[\s\"'\\]", str(self.state_dir)):
            raise ValueError(f"state_dir {self.state_dir}: no spaces or quotes (sshd_config)")
        self.prefix = prefix
        self.fixed_gateway = addressing.check_gateway("fixed_gateway", fixed_gateway)
        self.floating_gateway = addressing.check_gateway("floating_gateway", floating_gateway)
        self.default_profile = default_profile or FaultProfile()
        self.sshd_timeout = sshd_timeout
        self.bridge = f"{prefix}br0"
        self.metadata_netns = f"{prefix}-meta"
        self.metadata_veth = f"{prefix}m0"
        self.metadata = MetadataService()
        self.image = GuestImage(self.state_dir)
        self.ground_truth = GroundTruth(self.state_dir / "injected.jsonl")
        self._ledger = ledger_mod.ResourceLedger(self.state_dir / "resources.json", prefix)
        self._lock = threading.RLock()
        self._guests: dict[str, Guest] = {}
        self._next_index = 1
        self._migrating: set[str] = set()
        # A migration's metadata outage outlives it; a later migration of the same
        # guest extends the one still running (the guest sees one outage).
        self._metadata_outages: dict[str, _ActiveFault] = {}
        self._outage_lock = threading.Lock()
        self._fault_executor = self._new_fault_executor()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._up = False
        self._prefix_lock: PrefixLock | None = None

    # --- lifecycle ------------------------------------------------------------------

    def __enter__(self) -> Self:
        self.setup()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.teardown()

    def setup(self) -> None:
        """Create the bridge, the metadata namespace and start the metadata service."""
        with self._lock:
            if self._up:
                return
            self.state_dir.mkdir(parents=True, exist_ok=True)
            self._take_prefix_lock()
            self._release_previous_run()
            self._fault_executor = self._new_fault_executor()
            try:
                self.image.prepare()
                self._create_bridge()
                self._create_metadata_netns()
                self._start_metadata_service()
                self._up = True
            except BaseException:
                try:
                    self.teardown()
                except FabricError:
                    LOG.exception("cleaning up after a failed setup")
                raise

    def teardown(self) -> None:
        """Remove everything this fabric created; safe to call more than once.

        Windows still open (an outage outlasting the lab) are closed now. Running
        migrations end (GuestNotFound, or quietly after their switchover). Raises
        FabricError naming what could not be removed.
        """
        with self._lock:
            self._up = False
            guests = list(self._guests.values())
            self._guests.clear()
        self.ground_truth.close_all()
        self._fault_executor.shutdown(wait=False, cancel_futures=True)
        self._stop_metadata_service()
        for guest in guests:
            self._stop_init(guest)
        leftovers = self._ledger.release_all()
        self._drop_prefix_lock()
        if leftovers:
            raise FabricError(f"could not remove: {', '.join(leftovers)}")

    def _take_prefix_lock(self) -> None:
        # Two labs of one prefix would take each other's bridge and addresses: one in
        # another process (another test run, a bench) is waited for. Within one
        # process the second is let through, to fail on the names it finds taken.
        if self._prefix_lock is not None or self.prefix in _PREFIXES_HELD:
            return
        lock = PrefixLock(PREFIX_LOCK_DIR / f"rmd-lab-{self.prefix}.lock")
        lock.acquire(on_wait=lambda: LOG.warning("another lab with prefix %s %s",
                                                 self.prefix, WAITING_FOR_LAB))
        self._prefix_lock = lock
        _PREFIXES_HELD.add(self.prefix)

    def _drop_prefix_lock(self) -> None:
        if self._prefix_lock is not None:
            self._prefix_lock.release()
            self._prefix_lock = None
            _PREFIXES_HELD.discard(self.prefix)

    def _release_previous_run(self) -> None:
        path = self.state_dir / "resources.json"
        if not path.exists():
            return
        previous = ledger_mod.ResourceLedger.load(path)
        if previous.entries():
            LOG.warning("removing leftovers of a previous run in %s", self.state_dir)
            leftovers = previous.release_all()
            if leftovers:
                raise FabricError(f"leftovers of a previous run remain: {leftovers}")


if __name__ == "__main__":
    sys.exit(main())
