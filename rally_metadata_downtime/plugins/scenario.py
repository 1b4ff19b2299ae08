"""Scenario MetadataDowntime.boot_and_live_migrate (Rally glue only)."""

from __future__ import annotations

import time
import typing

from rally.common import cfg
from rally.common import validation
from rally.task import atomic
from rally.task import types
from rally.task import utils as task_utils
from rally.task.scenario import Field
from rally.utils import sshutils
from rally_openstack.common import consts
from rally_openstack.task import scenario
from rally_openstack.task.scenarios.nova import utils as nova_utils
from rally_openstack.task.scenarios.vm import utils as vm_utils

from rally_metadata_downtime.analysis import AnalysisError, analyse
from rally_metadata_downtime.meter import MetadataMeter
from rally_metadata_downtime.net_meter import PingMeter
from rally_metadata_downtime.plugins import charts
from rally_metadata_downtime.probe_config import DEFAULT_URL, ProbeConfig
from rally_metadata_downtime.probe_log import ProbeLogError, parse_probe_log

CONF = cfg.CONF

Seconds = typing.Annotated[float, Field(ge=0)]
PositiveSeconds = typing.Annotated[float, Field(gt=0, le=60)]


class MetadataNotRecovered(RuntimeError):
    """Metadata did not answer again within recovery_timeout after the migration."""


class MetadataNotMeasured(RuntimeError):
    """The probe log gave no usable figure (no success, empty, rebooted guest)."""


@types.convert(image={"type": "glance_image"}, flavor={"type": "nova_flavor"})
@validation.add("image_valid_on_flavor", flavor_param="flavor", image_param="image")
@validation.add("external_network_exists", param_name="floating_network")
@validation.add("required_services",
                services=[consts.Service.NOVA, consts.Service.NEUTRON])
@validation.add("required_platform", platform="openstack", admin=True, users=True)
@validation.add("metadata_probe_args")
@scenario.configure(context={"cleanup@openstack": ["nova", "neutron"],
                             "keypair@openstack": {}, "allow_ssh@openstack": None},
                    name="MetadataDowntime.boot_and_live_migrate",
                    platform="openstack")
class BootAndLiveMigrate(vm_utils.VMScenario):

    def run(self, image, flavor, username: str, password: str | None = None,
            port: typing.Annotated[int, Field(ge=1, le=65535)] = 22,
            use_floating_ip: bool = True, floating_network: str | None = None,
            wait_for_ssh_timeout: typing.Annotated[float, Field(gt=0)] = 120,
            migrations: typing.Annotated[int, Field(ge=1, le=100)] = 1,
            block_migration: bool = False, destination_host: str | None = None,
            metadata_url: str = DEFAULT_URL, probe_interval: PositiveSeconds = 0.2,
            probe_timeout: PositiveSeconds = 1.0, probe_workdir: str = "/tmp",
            settle: Seconds = 5, recovery_timeout: typing.Annotated[float, Field(gt=0)] = 120,
            answer_timeout: typing.Annotated[float, Field(gt=0)] = 60,
            measure_network: bool = True, ping_interval: PositiveSeconds = 0.2,
            boot_server_kwargs: dict | None = None):
        """Measure metadata downtime of a VM while Nova live-migrates it.

        Boots a server (with a floating IP unless use_floating_ip is false), starts
        an in-guest probe that polls the metadata service every probe_interval,
        waits until metadata answers once, live-migrates the server `migrations`
        times (each inside the nova.live_migrate atomic action) while pinging it
        from the Rally host, waits until metadata answered again for `settle`
        seconds, then collects and analyses the probe log. The iteration fails
        when metadata never answered, or did not recover within recovery_timeout.
        Figures go to the report and to the metadata_downtime SLA.

        :param image: image to boot (needs sh, curl or busybox wget)
        :param flavor: flavor to boot
        :param username: SSH user of the image (e.g. cirros)
        :param password: SSH password, if the image takes no key pair
        :param port: SSH port of the guest
        :param use_floating_ip: reach the VM on a floating IP (else its fixed IP)
        :param floating_network: external network for the floating IP (name or id)
        :param wait_for_ssh_timeout: seconds to wait for SSH after boot
        :param migrations: live migrations per iteration (1-100)
        :param block_migration: live migrate with block migration
        :param destination_host: compute host to migrate to; default: the scheduler
        :param metadata_url: URL the probe polls; a meta_data.json URL is checked
            for the instance uuid, any other for the instance hostname
        :param probe_interval: seconds between probe requests (0-60]
        :param probe_timeout: hard timeout of one probe request, seconds (0-60]
        :param probe_workdir: absolute directory in the guest for the probe's
            private directory
        :param settle: seconds of uninterrupted answers needed after the last
            migration before the probe is stopped
        :param recovery_timeout: seconds to wait for metadata to answer again after
            the last migration
        :param answer_timeout: seconds to wait for the first answer before the
            migration
        :param measure_network: ping the VM from the Rally host during migrations
        :param ping_interval: seconds between pings
        :param boot_server_kwargs: extra arguments for server creation
        """
        server, fip = self._boot_server_with_fip(
            image, flavor, use_floating_ip=use_floating_ip,
            floating_network=floating_network, key_name=self.context["user"]["keypair"]["name"],
            **(boot_server_kwargs or {}))
        result = charts.IterationResult(error="the iteration stopped before measuring")
        meter = None
        try:
            def connect():
                return sshutils.SSH(username, fip["ip"], port=port, password=password,
                                    pkey=self.context["user"]["keypair"]["private"])

            self._wait_for_ssh(connect(), timeout=wait_for_ssh_timeout)
            config = ProbeConfig(url=metadata_url, interval=probe_interval,
                                 timeout=probe_timeout, workdir=probe_workdir,
                                 expect=server.id if metadata_url.endswith(
                                     "meta_data.json") else "")
            meter = MetadataMeter(connect, config)
            with atomic.ActionTimer(self, "metadata_meter.start"):
                meter.start()
            with atomic.ActionTimer(self, "metadata_meter.wait_answering"):
                meter.wait_until_answering(answer_timeout)
            result = self._migrate_and_measure(server, fip, meter, migrations,
                                               block_migration, destination_host,
                                               measure_network, ping_interval,
                                               settle, recovery_timeout)
        except Exception as e:
            if result.report is None:
                result = charts.IterationResult(
                    log=result.log, network=result.network,
                    migrations=result.migrations, error=f"{type(e).__name__}: {e}")
            raise
        finally:
            for chart in charts.additive_charts(result):
                self.add_output(additive=chart)
            for chart in charts.complete_charts(result):
                self.add_output(complete=chart)
            if meter is not None and meter.directory is not None:
                with atomic.ActionTimer(self, "metadata_meter.cleanup"):
                    meter.cleanup()
            elif meter is not None:
                meter.close()
            self._delete_server_with_fip(server, fip)
        if not result.report.recovered:
            raise MetadataNotRecovered(
                f"metadata did not answer this VM again within {recovery_timeout:g} s "
                f"after the live migration (down for "
                f"{result.report.unrecovered_downtime:.1f} s when the probe stopped)")

    def _migrate_and_measure(self, server, fip, meter, migrations, block_migration,
                             destination_host, measure_network, ping_interval,
                             settle, recovery_timeout) -> charts.IterationResult:
        windows = []
        pinger = PingMeter(fip["ip"], interval=ping_interval) if measure_network else None
        try:
            if pinger:
                pinger.start()
            for _ in range(migrations):
                started = time.time()
                self._migrate(server, block_migration, destination_host)
                windows.append(charts.Migration(meter.clock.to_guest_uptime(started),
                                                meter.clock.to_guest_uptime(time.time())))
            network = pinger.stop() if pinger else None
        finally:
            if pinger:
                pinger.kill()
        recovered_after = windows[-1].end
        with atomic.ActionTimer(self, "metadata_meter.wait_recovery"):
            self._wait_for_recovery(meter, recovered_after, settle, recovery_timeout)
        with atomic.ActionTimer(self, "metadata_meter.collect"):
            text = meter.stop()
        try:
            log = parse_probe_log(text)
            report = analyse(log, recovered_after=recovered_after)
        except (ProbeLogError, AnalysisError) as e:
            raise MetadataNotMeasured(str(e)) from e
        return charts.IterationResult(log=log, report=report, network=network,
                                      migrations=tuple(windows))

    def _migrate(self, server, block_migration, destination_host):
        if destination_host is None:
            self._live_migrate(server, block_migration=block_migration)
            return
        # rally-openstack's _live_migrate cannot name a host; same call and wait.
        with atomic.ActionTimer(self, "nova.live_migrate"):
            admin_server = self.admin_clients("nova").servers.get(server.id)
            host_before = getattr(admin_server, "OS-EXT-SRV-ATTR:host")
            admin_server.live_migrate(host=destination_host,
                                      block_migration=block_migration,
                                      disk_over_commit=False)
            task_utils.wait_is_ready(
                server,
                is_ready=nova_utils._LiveMigrateReady(self.admin_clients, server.id,
                                                      host_before, False),
                timeout=CONF.openstack.nova_server_live_migrate_timeout,
                check_interval=CONF.openstack.nova_server_live_migrate_poll_interval)

    @staticmethod
    def _wait_for_recovery(meter, recovered_after, settle, timeout):
        """Poll the running probe's log until `settle` s of answers after the migration."""
        deadline = time.monotonic() + timeout + settle
        while time.monotonic() < deadline:
            try:
                report = analyse(parse_probe_log(meter.fetch_log()), recovered_after)
                if report.recovered and report.settled_for >= settle:
                    return
            except (ProbeLogError, AnalysisError):
                pass
            time.sleep(min(1.0, max(settle / 2, 0.2)))
