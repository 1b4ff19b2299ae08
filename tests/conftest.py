"""Fixtures that more than one test folder uses (plain helper functions are in
tests/helpers.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def key():
    """An RSA key for root's SSH login into lab guests (one per session: generating
    one takes a noticeable fraction of a second)."""
    import paramiko
    return paramiko.RSAKey.generate(2048)
