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
