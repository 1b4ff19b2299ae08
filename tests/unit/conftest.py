"""Unit-test setup: Rally's plugins loaded once, and a private HOME.

Rally reads ~/.rally and registers the [openstack] options only when its plugins are
loaded (else `NoSuchOptError: openstack`), so both happen before any test module
imports rally_openstack or our plugins.
"""

import atexit
import os
import shutil
import tempfile

_HOME = tempfile.mkdtemp(prefix="rmd-unit-home-")
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)
os.environ["HOME"] = _HOME

from rally import plugins  # noqa: E402  (after HOME is set)

plugins.load()
