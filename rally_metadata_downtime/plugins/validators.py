"""Validator metadata_probe_args: probe settings are checked before anything boots."""

from __future__ import annotations

import dataclasses

from novaclient import api_versions
from novaclient import exceptions as nova_exceptions
from rally.common import validation

from rally_metadata_downtime import live_migration
from rally_metadata_downtime.probe_config import (
    DEFAULT_INTERVAL,
    DEFAULT_URL,
    ProbeConfig,
    ProbeConfigError,
)

# uuid mode needs an instance id, which exists only after boot; any well-formed one
# validates the rest of the settings.
_PLACEHOLDER_UUID = "00000000-0000-0000-0000-000000000000"
_ARGUMENT_OF_FIELD = {"url": "metadata_url", "interval": "probe_interval",
                      "timeout": "probe_timeout", "workdir": "probe_workdir",
                      "expect": "metadata_url", "mode": "metadata_url"}


def probe_config(metadata_url=DEFAULT_URL, probe_interval=DEFAULT_INTERVAL, probe_timeout=1.0,
                 probe_workdir="/tmp", server_id: str | None = None) -> ProbeConfig:
    """The probe's settings from scenario arguments.

    A meta_data.json URL is checked for the instance uuid (server_id), any other for
    the guest's own hostname. Raises ProbeConfigError naming the scenario argument.
    """
    try:
        config = ProbeConfig(url=metadata_url, interval=probe_interval,
                             timeout=probe_timeout, workdir=probe_workdir,
                             expect=_PLACEHOLDER_UUID)
        expect = (server_id or _PLACEHOLDER_UUID) if config.mode == "uuid" else ""
        return dataclasses.replace(config, expect=expect)
    except ProbeConfigError as e:
        field, _, problem = str(e).partition(": ")
        name = _ARGUMENT_OF_FIELD.get(field, field)
        raise ProbeConfigError(f"{name}: {problem}") from e


@validation.configure(name="metadata_probe_args", platform="openstack")
class MetadataProbeArgs(validation.Validator):
    """metadata_url, probe_interval, probe_timeout and probe_workdir are valid and
    shell-safe, settle is shorter than recovery_timeout, and an explicit
    nova_microversion can carry block_migration."""

    def validate(self, context, config, plugin_cls, plugin_cfg):
        args = (config or {}).get("args", {})
        try:
            probe_config(**{name: args[name] for name in
                            ("metadata_url", "probe_interval", "probe_timeout",
                             "probe_workdir") if name in args})
        except ProbeConfigError as e:
            name, _, problem = str(e).partition(": ")
            self.fail(f"Invalid argument '{name}': {problem}")
        settle = args.get("settle", 5)
        recovery_timeout = args.get("recovery_timeout", 120)
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool)
                      for v in (settle, recovery_timeout))
        if numbers and settle >= recovery_timeout:
            self.fail(f"Invalid argument 'settle': {settle} s must be shorter than "
                      f"recovery_timeout ({recovery_timeout} s)")
        microversion = args.get("nova_microversion")
        if isinstance(microversion, str) and "latest" not in microversion:
            try:
                live_migration.check_block_migration(
                    args.get("block_migration", False),
                    api_versions.get_api_version(microversion))
            except ValueError as e:
                name, _, problem = str(e).partition(": ")
                self.fail(f"Invalid argument '{name}': {problem}")
            except nova_exceptions.UnsupportedVersion:
                pass  # the argument schema names a malformed version
