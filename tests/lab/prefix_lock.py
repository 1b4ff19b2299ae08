"""A lock per lab prefix between processes: a file under /run/lock held with flock,
removed again by whoever lets it go, so that no lab leaves a file behind.

Removing a lock file while others wait on it is safe only with a recheck: a waiter
woken on the removed file holds a lock nobody else can see, so it takes the lock
again on the file now at the path.
"""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path
from typing import IO

LOG = logging.getLogger(__name__)

# Each retry means another process removed the file we waited on and let go;
# this many in a row is a bug, not contention.
_ATTEMPTS = 1000


class PrefixLock:
    """flock on `path`; `on_wait` is called once when another holder makes us wait."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None

    @property
    def held(self) -> bool:
        return self._file is not None

    def acquire(self, on_wait=lambda: None) -> None:
        if self._file is not None:
            return
        waited = False
        for _ in range(_ATTEMPTS):
            lock = open(self.path, "a")  # noqa: SIM115 (kept open while held)
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not waited:
                    on_wait()
                    waited = True
                fcntl.flock(lock, fcntl.LOCK_EX)
            if self._is_at_path(lock):
                self._file = lock
                return
            lock.close()
        raise RuntimeError(f"could not take {self.path}: it was replaced "
                           f"{_ATTEMPTS} times in a row")

    def release(self) -> None:
        """Remove the file, then let go: a waiter then finds it gone and retries."""
        if self._file is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            self._file.close()  # closing releases the flock
            self._file = None

    def remove_if_free(self) -> bool:
        """Remove the file if no one holds it (what a killed lab left); whether it
        was removed. Taken first, as release() does, so a waiter rechecks."""
        if self._file is not None or not self.path.exists():
            return False
        with open(self.path, "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            if not self._is_at_path(lock):
                return False
            self.path.unlink(missing_ok=True)
            return True

    def _is_at_path(self, lock: IO[str]) -> bool:
        try:
            at_path = os.stat(self.path)
        except FileNotFoundError:
            return False
        held = os.fstat(lock.fileno())
        return (held.st_dev, held.st_ino) == (at_path.st_dev, at_path.st_ino)
