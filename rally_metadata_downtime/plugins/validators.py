"""Validator metadata_probe_args: arguments that can be wrong together, or that reach
the guest's shell, are checked before anything boots."""

from __future__ import annotations

import inspect

from novaclient import api_versions
from novaclient import exceptions as nova_exceptions
from rally.common import validation

from rally_metadata_downtime import live_migration, probe_config
from rally_metadata_downtime.arguments import ArgumentError


def scenario_arguments(plugin_cls, given: dict) -> dict:
    """`given` over the defaults of the scenario's run() signature, their one home."""
    defaults = {name: parameter.default for name, parameter in
                inspect.signature(plugin_cls.run).parameters.items()
                if parameter.default is not inspect.Parameter.empty}
    return {**defaults, **given}


def _numbers(*values) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def check_arguments(args: dict) -> None:
    """ArgumentError for the first invalid argument among those checked here; the
    live-migration ones only for a scenario that has them."""
    probe_config.from_arguments(args["metadata_url"], args["probe_interval"],
                                args["probe_timeout"], args["probe_workdir"],
                                metadata_families=args["metadata_families"],
                                metadata_ipv6_interface=args["metadata_ipv6_interface"])
    settle, recovery_timeout = args["settle"], args["recovery_timeout"]
    if _numbers(settle, recovery_timeout) and settle >= recovery_timeout:
        raise ArgumentError("settle", f"{settle} s must be shorter than "
                                      f"recovery_timeout ({recovery_timeout} s)")
    microversion = args.get("nova_microversion")
    if isinstance(microversion, str) and "latest" not in microversion:
        try:
            version = api_versions.get_api_version(microversion)
        except nova_exceptions.UnsupportedVersion:
            return  # the argument schema names a malformed version
        live_migration.check_block_migration(args["block_migration"], version)


@validation.configure(name="metadata_probe_args", platform="openstack")
class MetadataProbeArgs(validation.Validator):
    """metadata_url, probe_interval, probe_timeout, probe_workdir,
    metadata_families and metadata_ipv6_interface are valid and shell-safe, settle
    is shorter than recovery_timeout, and an explicit nova_microversion can carry
    block_migration (boot_and_live_migrate)."""

    def validate(self, context, config, plugin_cls, plugin_cfg):
        try:
            check_arguments(scenario_arguments(plugin_cls, (config or {}).get("args", {})))
        except ArgumentError as e:
            self.fail(f"Invalid argument '{e.argument}': {e.problem}")
