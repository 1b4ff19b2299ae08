"""Validator metadata_probe_args: probe settings are checked before anything boots."""

from __future__ import annotations

from rally.common import validation

from rally_metadata_downtime.probe_config import DEFAULT_URL, ProbeConfig, ProbeConfigError

# uuid mode needs an instance id, which exists only after boot; any well-formed one
# validates the rest of the settings.
_PLACEHOLDER_UUID = "00000000-0000-0000-0000-000000000000"


@validation.configure(name="metadata_probe_args", platform="openstack")
class MetadataProbeArgs(validation.Validator):
    """metadata_url, probe_interval, probe_timeout and probe_workdir are valid and
    shell-safe, and settle is shorter than recovery_timeout."""

    def validate(self, context, config, plugin_cls, plugin_cfg):
        args = (config or {}).get("args", {})
        try:
            ProbeConfig(url=args.get("metadata_url", DEFAULT_URL),
                        interval=args.get("probe_interval", 0.2),
                        timeout=args.get("probe_timeout", 1.0),
                        workdir=args.get("probe_workdir", "/tmp"),
                        expect=_PLACEHOLDER_UUID)
        except ProbeConfigError as e:
            field, _, problem = str(e).partition(": ")
            name = {"url": "metadata_url", "interval": "probe_interval",
                    "timeout": "probe_timeout", "workdir": "probe_workdir"}.get(field, field)
            self.fail(f"Invalid argument '{name}': {problem}")
        settle = args.get("settle", 5)
        recovery_timeout = args.get("recovery_timeout", 120)
        if (isinstance(settle, (int, float)) and isinstance(recovery_timeout, (int, float))
                and settle >= recovery_timeout):
            self.fail(f"Invalid argument 'settle': {settle} s must be shorter than "
                      f"recovery_timeout ({recovery_timeout} s)")
