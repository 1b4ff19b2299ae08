"""The lab's prefix lock (tests/lab/prefix_lock.py): held by one at a time, its file
gone once let go, and a waiter woken on a removed file takes the lock again on the
file now at the path. flock locks belong to open files, so threads of one process
contend as processes would."""

from __future__ import annotations

import threading

from tests.helpers import wait_until
from tests.lab.prefix_lock import PrefixLock


def test_released_lock_leaves_no_file(tmp_path):
    lock = PrefixLock(tmp_path / "rmd-lab-x.lock")
    lock.acquire()
    assert lock.held and lock.path.exists()
    lock.release()
    assert not lock.held and not lock.path.exists()
    lock.release()      # twice is harmless


def test_one_holder_at_a_time_through_removals(tmp_path):
    """Three contenders, each holding a while and removing the file as it lets go:
    never two holders at once, and every one gets its turn."""
    path = tmp_path / "rmd-lab-x.lock"
    holders, most, turns, waits = [], [0], [], []
    guard = threading.Lock()

    def contender(name):
        lock = PrefixLock(path)
        for _ in range(20):
            lock.acquire(on_wait=lambda: waits.append(name))
            with guard:
                holders.append(name)
                most[0] = max(most[0], len(holders))
            threading.Event().wait(0.002)
            with guard:
                holders.remove(name)
                turns.append(name)
            lock.release()

    threads = [threading.Thread(target=contender, args=(n,)) for n in "abc"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert most[0] == 1
    assert sorted(turns) == sorted("abc" * 20)
    assert waits                      # they did contend
    assert not path.exists()


def test_a_waiter_on_a_removed_file_takes_the_new_one(tmp_path):
    path = tmp_path / "rmd-lab-x.lock"
    first, second, third = PrefixLock(path), PrefixLock(path), PrefixLock(path)
    first.acquire()
    waiting = threading.Event()
    thread = threading.Thread(target=second.acquire, kwargs={"on_wait": waiting.set})
    thread.start()
    wait_until(waiting.is_set, "the second contender waiting")
    first.release()                   # file removed: the waiter wakes on a dead file
    thread.join(10)
    assert second.held and path.exists()
    # A newcomer now waits on the file the second holds: they do not both hold it.
    blocked = threading.Event()
    newcomer = threading.Thread(target=third.acquire, kwargs={"on_wait": blocked.set})
    newcomer.start()
    wait_until(blocked.is_set, "the newcomer waiting")
    assert not third.held
    second.release()
    newcomer.join(10)
    assert third.held
    third.release()
    assert not path.exists()


def test_a_file_no_one_holds_is_removed_a_held_one_is_not(tmp_path):
    """What a killed lab left (a file, no holder) goes; a running lab's stays."""
    left = PrefixLock(tmp_path / "rmd-lab-dead.lock")
    left.path.touch()
    assert PrefixLock(left.path).remove_if_free() is True
    assert not left.path.exists()
    held = PrefixLock(tmp_path / "rmd-lab-live.lock")
    held.acquire()
    assert PrefixLock(held.path).remove_if_free() is False
    assert held.path.exists() and held.held
    held.release()
    assert PrefixLock(held.path).remove_if_free() is False   # nothing left to remove
