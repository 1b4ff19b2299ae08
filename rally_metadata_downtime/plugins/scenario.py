"""Scenarios MetadataDowntime.boot_and_live_migrate and boot_and_watch (Rally glue
only): both boot a VM and measure with the same probe, analysis, record and charts;
they differ in what happens meanwhile (live migrations, or the task's hooks)."""

from __future__ import annotations

import contextlib
import dataclasses
import time
import typing

from rally import exceptions
from rally.common import cfg, logging, validation
from rally.task import atomic, types
from rally.task import utils as rally_utils
from rally.task.scenario import Field
from rally.utils import sshutils
from rally_openstack.common import consts
from rally_openstack.task import scenario
from rally_openstack.task.scenarios.vm import utils as vm_utils

from rally_metadata_downtime import boot_network, hook_marks, live_migration, probe_config
from rally_metadata_downtime.analysis import AnalysisError, analyse
from rally_metadata_downtime.meter import MetadataMeter
from rally_metadata_downtime.net_meter import PingMeter
from rally_metadata_downtime.plugins import atomics, charts
from rally_metadata_downtime.probe_log import ProbeLogError, parse_probe_log
from rally_metadata_downtime.records import Measurement, Migration, Watch

CONF = cfg.CONF
LOG = logging.getLogger(__name__)

# Every wait is bounded: an hour is more than any migration needs.
Seconds = typing.Annotated[float, Field(ge=0, le=3600)]
PositiveSeconds = typing.Annotated[float, Field(gt=0, le=3600)]
ProbeSeconds = typing.Annotated[float, Field(gt=0, le=60)]
CONSOLE_LINES = 30
Microversion = typing.Annotated[str, Field(pattern=r"^2\.(latest|[1-9][0-9]{0,2})$")]
Family = typing.Literal["ipv4", "ipv6"]


class MetadataNotRecovered(RuntimeError):
    """Metadata did not answer again within recovery_timeout after the migration."""


class MetadataNotMeasured(RuntimeError):
    """The probe log gave no usable figure (no success, empty, rebooted guest)."""


class MetadataProbeStopped(MetadataNotMeasured):
    """The probe stopped running in the guest before metadata recovered."""


def wait_for_recovery(fetch_log: typing.Callable[[], str], recovered_after: float,
                      settle: float, timeout: float,
                      probe_running: typing.Callable[[], bool] = lambda: True,
                      clock=time.monotonic, sleep=time.sleep,
                      families: typing.Sequence[str] = ("ipv4",)) -> bool:
    """Poll the running probe's log until metadata answered again after
    `recovered_after` (guest uptime) and kept answering for `settle` s, over
    every one of `families`.

    Gives up after `timeout` s and returns False; the caller judges the final log.
    When the log stops growing, asks `probe_running` and raises MetadataProbeStopped
    if the probe is gone: its log cannot show a recovery any more.
    """
    deadline = clock() + timeout
    seen = -1
    while True:
        log = None
        try:
            log = parse_probe_log(fetch_log())
            reports = [analyse(log.family(f), recovered_after, settle) for f in families]
            if all(r.recovered and r.settled_for >= settle for r in reports):
                return True
        except (ProbeLogError, AnalysisError):
            pass  # nothing usable yet: keep polling until the deadline
        probes = len(log.probes) if log else 0
        if probes == seen and not probe_running():
            ends = (f"its log ends at guest uptime {log.probes[-1].end:.1f} s, "
                    f"{log.probes[-1].end - recovered_after:.1f} s after the migration"
                    if probes else "it logged no probe")
            raise MetadataProbeStopped(
                f"the metadata probe stopped running in the guest before metadata "
                f"recovered ({ends}): was it killed, or did the guest run out of memory?")
        seen = probes
        if clock() >= deadline:
            return False
        sleep(min(1.0, max(settle / 2, 0.2)))


@dataclasses.dataclass
class _Probed:
    """The VM under measurement and its probe, as far as they got (for cleanup)."""

    server: typing.Any = None
    fip: dict | None = None
    meter: MetadataMeter | None = None


class MetadataScenario(vm_utils.VMScenario):
    """The steps both scenarios share: boot a VM and start the probe in it, wait
    for metadata to recover and collect the log, then charts, atomic actions and
    cleanup whatever failed."""

    @contextlib.contextmanager
    def _measuring(self, measured: Measurement) -> typing.Iterator[_Probed]:
        """Around an iteration: the error goes into the record, the charts are
        added and the VM removed, whatever happened inside."""
        vm = _Probed()
        try:
            yield vm
        except BaseException as e:
            if isinstance(e, Exception):
                measured.error = f"{type(e).__name__}: {e}"
            try:
                self._finish(measured, vm)
            except Exception:  # the iteration's own error is the one to report
                LOG.warning("cleaning up after %s failed too", type(e).__name__,
                            exc_info=True)
            raise
        self._finish(measured, vm)

    def _finish(self, measured: Measurement, vm: _Probed) -> None:
        """The charts, then the VM removed whatever the charts did."""
        try:
            self._add_charts(measured)
        finally:
            self._clean_up(vm.meter, vm.server, vm.fip)

    def _with_nics(self, boot_kwargs: dict) -> dict:
        """boot_kwargs, plus the project's only network when the boot would need
        nics and the task gives none (boot_network.py says why)."""
        nova = self.clients("nova")
        if not boot_network.needs_nics(nova.api_version, boot_kwargs,
                                       self.context.get("tenant", {}).get("networks", [])):
            return boot_kwargs
        with atomic.ActionTimer(self, "neutron.list_networks"):
            networks = self.clients("neutron").list_networks()["networks"]
        return {**boot_kwargs, "nics": boot_network.only_network(
            networks, self.context["tenant"]["id"], nova.api_version)}

    def _boot_server_with_fip(self, image, flavor, use_floating_ip=True,
                              floating_network=None, **kwargs):
        """rally-openstack's, with the server's address from
        boot_network.fixed_address (its first IPv4 address, not the first listed)."""
        kwargs["auto_assign_nic"] = True
        server = self._boot_server(image, flavor, **kwargs)
        if not server.networks:
            raise RuntimeError(f"Server {server.name!r} is not connected to any network: "
                               "add the network context or boot_server_kwargs.nics")
        address = boot_network.fixed_address(server.addresses)
        if not use_floating_ip:
            return server, {"ip": address, "id": None, "is_floating": False}
        floating = self.neutron.create_floatingip(floating_network=floating_network)
        self._associate_floating_ip(server, floating, fixed_address=address)
        return server, {"ip": floating["floating_ip_address"], "id": floating["id"],
                        "is_floating": True}

    def _boot_with_probe(self, vm: _Probed, measured: Measurement, image, flavor,
                         username, password, port, use_floating_ip, floating_network,
                         wait_for_ssh_timeout, metadata_url, probe_interval,
                         probe_timeout, probe_workdir, answer_timeout,
                         boot_server_kwargs, metadata_families=("ipv4",),
                         metadata_ipv6_interface=None) -> None:
        """Boot the VM, wait for SSH, start the probe and wait until metadata
        answers once."""
        vm.server, vm.fip = self._boot_server_with_fip(
            image, flavor, use_floating_ip=use_floating_ip,
            floating_network=floating_network,
            key_name=self.context["user"]["keypair"]["name"],
            **self._with_nics(boot_server_kwargs or {}))
        measured.server_id = vm.server.id
        address = vm.fip["ip"]

        def connect():
            return sshutils.SSH(username, address, port=port, password=password,
                                pkey=self.context["user"]["keypair"]["private"])

        config = probe_config.from_arguments(
            metadata_url, probe_interval, probe_timeout, probe_workdir,
            server_id=vm.server.id, metadata_families=metadata_families,
            metadata_ipv6_interface=metadata_ipv6_interface)
        ssh = connect()
        vm.meter = MetadataMeter(connect, config, connection=ssh)
        self._wait_for_ssh_or_show_console(vm.server, ssh, wait_for_ssh_timeout)
        with atomic.ActionTimer(self, "metadata_meter.start"):
            vm.meter.start()
        with atomic.ActionTimer(self, "metadata_meter.wait_answering"):
            vm.meter.wait_until_answering(answer_timeout)

    def _recover_and_collect(self, meter: MetadataMeter, measured: Measurement,
                             recovered_after: float, settle: float,
                             recovery_timeout: float) -> None:
        """Wait until metadata answered for `settle` s after `recovered_after`
        (guest uptime), stop the probe and analyse its log."""
        with atomic.ActionTimer(self, "metadata_meter.wait_recovery"):
            wait_for_recovery(meter.fetch_log, recovered_after, settle,
                              recovery_timeout, probe_running=meter.is_running,
                              families=measured.families)
        with atomic.ActionTimer(self, "metadata_meter.collect"):
            text = meter.stop()
        try:
            measured.log = parse_probe_log(text)
            first, *others = measured.families
            measured.report = analyse(measured.log.family(first),
                                      recovered_after=recovered_after, settle=settle)
            measured.more_reports = {
                family: analyse(measured.log.family(family),
                                recovered_after=recovered_after, settle=settle)
                for family in others}
        except (ProbeLogError, AnalysisError) as e:
            raise MetadataNotMeasured(f"the probe log gives no figure: {e}") from e

    @staticmethod
    def _check_recovered(measured: Measurement, recovery_timeout: float,
                         after: str) -> None:
        reports = {measured.families[0]: measured.report, **measured.more_reports}
        for family, report in reports.items():
            if report.recovered:
                continue
            over = f" over {family}" if measured.families != ("ipv4",) else ""
            raise MetadataNotRecovered(
                f"metadata did not answer this VM again{over} within "
                f"{recovery_timeout:g} s after {after} (down for "
                f"{report.unrecovered_downtime:.1f} s when the probe stopped)")

    def _wait_for_ssh_or_show_console(self, server, ssh, timeout):
        """Wait for SSH; when it never comes up, the server's console log tail goes
        into the error (what the guest said while booting is the first clue)."""
        try:
            self._wait_for_ssh(ssh, timeout=timeout)
        except (exceptions.SSHTimeout, exceptions.TimeoutException) as e:
            try:
                console = self._get_server_console_output(server, CONSOLE_LINES)
            except Exception as console_error:  # the SSH failure is the one to report
                console = f"(console log not available: {console_error})"
            raise type(e)(f"{e}; the server's console log ends with:\n"
                          f"{console}") from e

    def _add_charts(self, measured: Measurement) -> None:
        record = measured.record()
        # Where trends, exporters and per-atomic SLAs look (plugins/atomics.py).
        self.atomic_actions().extend(atomics.downtime_actions(record))
        for chart in charts.additive_charts(record):
            self.add_output(additive=chart)
        for chart in charts.complete_charts(record, measured.log):
            self.add_output(complete=chart)

    def _clean_up(self, meter, server, fip) -> None:
        """Remove the probe, then the server and its floating IP, whatever failed."""
        if meter is not None:
            try:
                meter.cleanup()
            except Exception:  # the server goes next anyway; do not mask the cause
                LOG.warning("removing the metadata probe from the guest failed",
                            exc_info=True)
        if server is not None:
            try:
                self._delete_server_with_fip(server, fip)
            except exceptions.GetResourceErrorStatus:
                # Deleting a server whose live migration is still running makes
                # that migration fail, and Nova shows the server in ERROR for a
                # moment on its way out (seen on real Nova): wait until it is gone.
                self._wait_until_deleted(server)

    @atomic.action_timer("nova.wait_for_deletion")
    def _wait_until_deleted(self, server) -> None:
        """Until Nova no longer has `server`, whatever status it shows meanwhile."""
        def refreshed(_):
            try:
                return server.manager.get(server.id)
            except Exception as e:
                if getattr(e, "code", None) == 404:
                    raise exceptions.GetResourceNotFound(resource=server) from e
                raise
        rally_utils.wait_for_status(
            server, ready_statuses=["deleted"], failure_statuses=[],
            check_deletion=True, update_resource=refreshed,
            timeout=CONF.openstack.nova_server_delete_timeout,
            check_interval=CONF.openstack.nova_server_delete_poll_interval)



def _metadata_scenario(name: str) -> typing.Callable[[type], type]:
    """Register a scenario under `name` with the validators and contexts every
    metadata scenario shares (as stacked decorators would, innermost first)."""
    decorators = [
        validation.add("image_valid_on_flavor", flavor_param="flavor",
                       image_param="image"),
        validation.add("external_network_exists", param_name="floating_network"),
        validation.add("required_services",
                       services=[consts.Service.NOVA, consts.Service.NEUTRON]),
        validation.add("required_platform", platform="openstack", admin=True,
                       users=True),
        validation.add("metadata_probe_args"),
        scenario.configure(context={"cleanup@openstack": ["nova", "neutron"],
                                    "keypair@openstack": {},
                                    "allow_ssh@openstack": None},
                           name=name, platform="openstack"),
    ]

    def register(cls: type) -> type:
        for decorator in reversed(decorators):
            cls = decorator(cls)
        return cls
    return register


@_metadata_scenario("MetadataDowntime.boot_and_live_migrate")
class BootAndLiveMigrate(MetadataScenario):

    def run(self, image: typing.Annotated[str, types.Convert("glance_image")],
            flavor: typing.Annotated[str, types.Convert("nova_flavor")],
            username: str, password: str | None = None,
            port: typing.Annotated[int, Field(ge=1, le=65535)] = 22,
            use_floating_ip: bool = True, floating_network: str | None = None,
            wait_for_ssh_timeout: PositiveSeconds = 120,
            migrations: typing.Annotated[int, Field(ge=1, le=100)] = 1,
            block_migration: live_migration.BlockMigration = False,
            destination_host: str | None = None,
            nova_microversion: Microversion | None = None,
            metadata_url: str = probe_config.DEFAULT_URL,
            metadata_families: list[Family] = ["ipv4"],  # noqa: B006 (never mutated)
            metadata_ipv6_interface: str | None = None,
            probe_interval: ProbeSeconds = probe_config.DEFAULT_INTERVAL,
            probe_timeout: ProbeSeconds = probe_config.DEFAULT_TIMEOUT,
            probe_workdir: str = probe_config.DEFAULT_WORKDIR,
            settle: Seconds = 5, recovery_timeout: PositiveSeconds = 120,
            answer_timeout: PositiveSeconds = 60,
            measure_network: bool = True,
            ping_interval: typing.Annotated[float, Field(ge=0.002, le=60)] = 0.2,
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

        :param image: image to boot (needs sh, and curl or busybox wget)
        :param flavor: flavor to boot
        :param username: SSH user of the image (e.g. cirros)
        :param password: SSH password, if the image takes no key pair
        :param port: SSH port of the guest (1-65535)
        :param use_floating_ip: reach the VM on a floating IP (else its fixed IP)
        :param floating_network: external network for the floating IP (name);
            default: any external network
        :param wait_for_ssh_timeout: seconds to wait for SSH after boot (> 0)
        :param migrations: live migrations per iteration (1-100)
        :param block_migration: true: copy the disks (block migration); false:
            shared storage; "auto" (microversion 2.25 and later): Nova decides
            from the storage. Before 2.25 the request also says
            disk_over_commit false.
        :param destination_host: compute host to migrate to; default: the
            scheduler picks one. From 2.30 to 2.67 the scheduler still checks
            the named host (force is never set); from 2.68 Nova always checks it.
        :param nova_microversion: Nova API microversion of the live-migration
            call, e.g. "2.30", or "2.latest" (the newest that both the cloud and
            novaclient know, asked once per iteration); default: the
            environment's (its api_info nova version, else 2.1)
        :param metadata_url: http URL the probe polls; a meta_data.json URL is
            checked for the instance uuid, any other for the instance hostname
        :param metadata_families: address families to measure, each with its
            own figures, outages, timeline series and SLA limit: "ipv4" (the
            metadata_url), "ipv6" (the same path at fe80::a9fe:a9fe on the
            guest's link, as Neutron serves it), or both, polled in the same
            iteration. A guest with no IPv6 link-local address fails before
            anything is migrated or watched
        :param metadata_ipv6_interface: the guest's interface of the IPv6
            link-local URL (http://[fe80::a9fe:a9fe%IFACE]/...); default: the
            first one with a link-local address, found in the guest
        :param probe_interval: seconds between probe requests, in (0, 60]; a
            quarter of it (at least 0.05 s) while requests fail fast, to time
            the recovery closely
        :param probe_timeout: hard timeout of one probe request, seconds, in (0, 60]
        :param probe_workdir: absolute directory in the guest under which the
            probe makes its private directory
        :param settle: seconds of uninterrupted answers needed after the last
            migration before the probe is stopped (>= 0, < recovery_timeout)
        :param recovery_timeout: seconds to wait, after the last migration, for
            metadata to answer again and hold for `settle` seconds (> 0)
        :param answer_timeout: seconds to wait for the first answer before any
            migration (> 0)
        :param measure_network: ping the VM from the Rally host during each
            migration
        :param ping_interval: seconds between pings, in [0.002, 60] (below 0.2
            ping needs root)
        :param boot_server_kwargs: extra arguments for server creation
        """
        measured = Measurement(families=tuple(metadata_families))
        with self._measuring(measured) as vm:
            nova = self._migration_client(nova_microversion)
            # Refused before anything is booted.
            live_migration.check_block_migration(block_migration, nova.api_version)
            self._boot_with_probe(vm, measured, image, flavor, username, password, port,
                                  use_floating_ip, floating_network,
                                  wait_for_ssh_timeout, metadata_url, probe_interval,
                                  probe_timeout, probe_workdir, answer_timeout,
                                  boot_server_kwargs, metadata_families,
                                  metadata_ipv6_interface)
            for _ in range(migrations):
                self._migrate_once(nova, vm.server, vm.fip["ip"], vm.meter, measured,
                                   block_migration, destination_host, measure_network,
                                   ping_interval)
            self._recover_and_collect(vm.meter, measured, measured.migrations[-1].end,
                                      settle, recovery_timeout)
        self._check_recovered(measured, recovery_timeout, "the live migration")

    def _migrate_once(self, nova, server, address, meter, measured, block_migration,
                      destination_host, measure_network, ping_interval):
        """One live migration, pinged from the Rally host; records its window."""
        pinger = PingMeter(address, interval=ping_interval) if measure_network else None
        try:
            if pinger:
                pinger.start()
            started = time.time()
            source, destination, request_id = self._live_migrate_server(
                nova, server, destination_host, block_migration)
            ended = time.time()
            network = pinger.stop() if pinger else None
        finally:
            if pinger:
                pinger.kill()
        if network is not None:
            measured.networks.append(network)
        with atomic.ActionTimer(self, "nova.get_instance_action"):
            events, note = live_migration.nova_events(nova, server.id, request_id)
        measured.clock_offset = meter.clock.offset
        measured.migrations.append(Migration(
            meter.clock.to_guest_uptime(started), meter.clock.to_guest_uptime(ended),
            source, destination,
            network_downtime=network.total_downtime if network else None,
            nova_events=events, nova_events_note=note))
        # The SSH session may not survive the move: where connection tracking does
        # not follow the VM (OVS's userspace datapath), the new host drops the old
        # session's packets and only the command timeout (60 s) would tell. A new
        # session costs one handshake.
        meter.close()

    def _migration_client(self, nova_microversion):
        """The admin novaclient that makes the live-migration call."""
        nova = self.admin_clients("nova")
        if nova_microversion is None:
            return nova
        version = live_migration.resolve_microversion(nova, nova_microversion)
        return self.admin_clients("nova", version=version.get_string())

    @atomic.action_timer("nova.live_migrate")
    def _live_migrate_server(self, nova, server, destination_host, block_migration):
        """Live-migrate and wait until the server is ACTIVE on its new host;
        return (source host, destination host, Nova's request id)."""
        admin_server = nova.servers.get(server.id)
        source = live_migration.host_of(admin_server)
        request_id = live_migration.start_live_migration(admin_server, destination_host,
                                                         block_migration)
        return source, live_migration.wait_for_live_migration(
            lambda: nova.servers.get(server.id), source, destination_host,
            timeout=CONF.openstack.nova_server_live_migrate_timeout,
            interval=CONF.openstack.nova_server_live_migrate_poll_interval), request_id


@_metadata_scenario("MetadataDowntime.boot_and_watch")
class BootAndWatch(MetadataScenario):

    def run(self, image: typing.Annotated[str, types.Convert("glance_image")],
            flavor: typing.Annotated[str, types.Convert("nova_flavor")],
            username: str, password: str | None = None,
            port: typing.Annotated[int, Field(ge=1, le=65535)] = 22,
            use_floating_ip: bool = True, floating_network: str | None = None,
            wait_for_ssh_timeout: PositiveSeconds = 120,
            duration: PositiveSeconds = 60,
            metadata_url: str = probe_config.DEFAULT_URL,
            metadata_families: list[Family] = ["ipv4"],  # noqa: B006 (never mutated)
            metadata_ipv6_interface: str | None = None,
            probe_interval: ProbeSeconds = probe_config.DEFAULT_INTERVAL,
            probe_timeout: ProbeSeconds = probe_config.DEFAULT_TIMEOUT,
            probe_workdir: str = probe_config.DEFAULT_WORKDIR,
            settle: Seconds = 5, recovery_timeout: PositiveSeconds = 120,
            answer_timeout: PositiveSeconds = 60,
            measure_network: bool = True,
            ping_interval: typing.Annotated[float, Field(ge=0.002, le=60)] = 0.2,
            boot_server_kwargs: dict | None = None):
        """Measure metadata downtime of a VM while the task's hooks disrupt the cloud.

        Boots a server (with a floating IP unless use_floating_ip is false), starts
        the in-guest probe that polls the metadata service every probe_interval,
        waits until metadata answers once, then watches for `duration` seconds
        (the metadata_meter.watch atomic action) while pinging it from the Rally
        host. No migration: the disruption is the task's hooks' (sys_call,
        fault_injection...), e.g. a metadata agent restarted on the VM's host;
        trigger them so that they run during the watch. Then waits until
        metadata answered for `settle` seconds after the watch, and collects and
        analyses the probe log: the same figures, charts, atomic actions and
        metadata_downtime SLA as MetadataDowntime.boot_and_live_migrate. Runs of
        the marked_sys_call hook are marked on the probe timeline. The iteration
        fails when metadata never answered, or did not recover within
        recovery_timeout after the watch.

        :param image: image to boot (needs sh, and curl or busybox wget)
        :param flavor: flavor to boot
        :param username: SSH user of the image (e.g. cirros)
        :param password: SSH password, if the image takes no key pair
        :param port: SSH port of the guest (1-65535)
        :param use_floating_ip: reach the VM on a floating IP (else its fixed IP)
        :param floating_network: external network for the floating IP (name);
            default: any external network
        :param wait_for_ssh_timeout: seconds to wait for SSH after boot (> 0)
        :param duration: seconds to watch, from the first answer on; the hooks'
            disruption should fall inside (> 0, at most 3600)
        :param metadata_url: http URL the probe polls; a meta_data.json URL is
            checked for the instance uuid, any other for the instance hostname
        :param metadata_families: address families to measure, each with its
            own figures, outages, timeline series and SLA limit: "ipv4" (the
            metadata_url), "ipv6" (the same path at fe80::a9fe:a9fe on the
            guest's link, as Neutron serves it), or both, polled in the same
            iteration. A guest with no IPv6 link-local address fails before
            anything is migrated or watched
        :param metadata_ipv6_interface: the guest's interface of the IPv6
            link-local URL (http://[fe80::a9fe:a9fe%IFACE]/...); default: the
            first one with a link-local address, found in the guest
        :param probe_interval: seconds between probe requests, in (0, 60]; a
            quarter of it (at least 0.05 s) while requests fail fast, to time
            the recovery closely
        :param probe_timeout: hard timeout of one probe request, seconds, in (0, 60]
        :param probe_workdir: absolute directory in the guest under which the
            probe makes its private directory
        :param settle: seconds of uninterrupted answers needed after the watch
            before the probe is stopped (>= 0, < recovery_timeout)
        :param recovery_timeout: seconds to wait, after the watch, for metadata
            to answer again and hold for `settle` seconds (> 0)
        :param answer_timeout: seconds to wait for the first answer before the
            watch (> 0)
        :param measure_network: ping the VM from the Rally host during the watch
        :param ping_interval: seconds between pings, in [0.002, 60] (below 0.2
            ping needs root)
        :param boot_server_kwargs: extra arguments for server creation
        """
        measured = Measurement(families=tuple(metadata_families))
        with self._measuring(measured) as vm:
            self._boot_with_probe(vm, measured, image, flavor, username, password, port,
                                  use_floating_ip, floating_network,
                                  wait_for_ssh_timeout, metadata_url, probe_interval,
                                  probe_timeout, probe_workdir, answer_timeout,
                                  boot_server_kwargs, metadata_families,
                                  metadata_ipv6_interface)
            host = live_migration.host_of(self.admin_clients("nova").servers.get(
                vm.server.id))
            started = self._watch(vm, measured, host, duration, measure_network,
                                  ping_interval)
            try:
                self._recover_and_collect(vm.meter, measured, measured.watch.end,
                                          settle, recovery_timeout)
            finally:
                measured.disruptions = self._hook_runs(started, time.time())
        self._check_recovered(measured, recovery_timeout, "the watch")

    def _watch(self, vm: _Probed, measured: Measurement, host: str | None,
               duration: float, measure_network: bool, ping_interval: float) -> float:
        """Watch `duration` s, pinged from the Rally host; records the window and
        returns its start on the Rally host's clock."""
        pinger = (PingMeter(vm.fip["ip"], interval=ping_interval)
                  if measure_network else None)
        try:
            if pinger:
                pinger.start()
            with atomic.ActionTimer(self, "metadata_meter.watch"):
                started = time.time()
                time.sleep(duration)
                ended = time.time()
            network = pinger.stop() if pinger else None
        finally:
            if pinger:
                pinger.kill()
        if network is not None:
            measured.networks.append(network)
        clock = vm.meter.clock
        measured.clock_offset = clock.offset
        measured.watch = Watch(clock.to_guest_uptime(started),
                               clock.to_guest_uptime(ended), host,
                               network_downtime=network.total_downtime
                               if network else None)
        return started

    def _hook_runs(self, start: float, end: float) -> list:
        """The marked hook runs of this task that overlapped [start, end] (host
        clock); none when they cannot be read (the figures do not need them)."""
        try:
            runs = hook_marks.read_marks(self.context["task"]["uuid"])
        except (OSError, hook_marks.MarksError) as e:
            LOG.warning(f"hook runs are not marked on the timeline: {e}")
            return []
        return hook_marks.overlapping(runs, start, end)
