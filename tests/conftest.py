"""Fixtures that more than one test folder uses (plain helper functions are in
tests/helpers.py)."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def key():
    """An RSA key for root's SSH login into lab guests (one per session: generating
    one takes a noticeable fraction of a second)."""
    import paramiko
    return paramiko.RSAKey.generate(2048)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI (CI=true, as .ci/run's machine sets it) a skip is a failure: every
    test must run there, and one skipped for want of root, the lab or the cloud
    lab's services means CI's set-up is incomplete, not that the test passed."""
    outcome = yield
    report = outcome.get_result()
    if (os.environ.get("CI", "").lower() in ("1", "true", "yes") and report.skipped
            and not hasattr(report, "wasxfail")):
        report.outcome = "failed"
        report.longrepr = f"skipped under CI: {report.longrepr}"


# The cloud lab (real OpenStack services) is addressed apart from every other lab
# (tests/lab/addressing.py), so its tests run beside the rest: under pytest-xdist
# (tox -e all: -n 2) each group goes whole to one worker, in collection order, where
# its labs come up one at a time as in a plain run.
PARALLEL_GROUPS = {"tests/lab/cloud/": "cloud"}
DEFAULT_GROUP = "main"


def parallel_group(nodeid: str) -> str:
    return next((name for folder, name in PARALLEL_GROUPS.items()
                 if nodeid.startswith(folder)), DEFAULT_GROUP)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    # xdist's own loadgroup marks no longer reach its scheduler under pytest 9.2
    # (Item.nodeid is read-only there); a scope per group does the same.
    from xdist.scheduler import LoadScopeScheduling

    class ByLabGroup(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return parallel_group(nodeid)

    return ByLabGroup(config, log)
