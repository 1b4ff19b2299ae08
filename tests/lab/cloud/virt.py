"""The lab's Nova virt driver (loaded by nova-compute as nova.virt.rmdc_lab.LabDriver;
see compute_main.py). Runs inside nova-compute, in the services' venv: it imports
Nova and nothing of this repo.

An instance is a record in <state_path>/instances.json (kept across a compute
restart) and a namespace guest of the lab's hypervisor (hypervisor.py, over its unix
socket): its eth0's other end is plugged into this host's br-int with
external_ids:iface-id = the Neutron port (what os-vif does for a real guest): OVN
claims it for this host's chassis, Neutron marks the port ACTIVE and tells Nova
(network-vif-plugged), which spawn waits for as the libvirt driver does. The node
has a stable identity: it is named after the host and its UUID is the one the lab
writes to <state_path>/compute_id, so a restarted compute finds its node again.

Live migration is Nova's own flow (conductor checks, port bindings on both hosts,
post-migration on each side); the driver's part is the switchover: the hypervisor
moves the guest's link to the destination's bridge and sends its RARP, injecting the
fault profile of the server's `lab_*` metadata as the main lab does.
"""

import http.client
import json
import os
import socket
import threading
import urllib.parse

import nova.conf
import nova.virt.node
from nova import exception
from nova.compute import power_state
from nova.objects import fields as obj_fields
from nova.objects import migrate_data
from nova.virt import driver, hardware
from oslo_config import cfg
from oslo_log import log as logging
from oslo_serialization import jsonutils
from oslo_utils import versionutils

CONF = nova.conf.CONF
LOG = logging.getLogger(__name__)
CONF.register_opts([
    cfg.StrOpt("hypervisor", help="the lab hypervisor's unix socket"),
], group="rmdc_lab")


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


class HypervisorError(exception.NovaException):
    def __init__(self, status, text):
        super().__init__(f"lab hypervisor: HTTP {status}: {text}")
        self.status = status


def _hypervisor(method, path, body=None, timeout=600):
    """One call to the lab's hypervisor; its JSON answer (text for other types)."""
    conn = _UnixConnection(CONF.rmdc_lab.hypervisor, timeout)
    try:
        conn.request(method, path, body=None if body is None else json.dumps(body),
                     headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        text = response.read().decode(errors="replace")
    finally:
        conn.close()
    if response.status >= 400:
        raise HypervisorError(response.status, text)
    if response.getheader("Content-Type", "").startswith("application/json"):
        return json.loads(text)
    return text


def _port(vif):
    ips = [ip["address"] for subnet in vif["network"]["subnets"]
           for ip in subnet["ips"] if ip["version"] == 4]
    if not ips:
        raise exception.NovaException(f"port {vif['id']}: no IPv4 address")
    return {"port_id": vif["id"], "mac": vif["address"], "ip": ips[0]}


class LabDriver(driver.ComputeDriver):
    capabilities = dict(driver.ComputeDriver.capabilities,
                        supports_image_type_raw=True)
    vcpus = 64
    memory_mb = 65536
    local_gb = 1024

    def __init__(self, virtapi, read_only=False):
        super().__init__(virtapi)
        self._host = None
        self._lock = threading.Lock()
        self._instances = {}  # uuid -> {"name":..., "state":...}

    # --- bookkeeping ---------------------------------------------------------
    def _record_path(self):
        return os.path.join(CONF.state_path, "instances.json")

    def _save(self):
        tmp = self._record_path() + ".tmp"
        with open(tmp, "w") as out:
            json.dump(self._instances, out)
        os.replace(tmp, self._record_path())

    def _add(self, instance, state=power_state.RUNNING):
        with self._lock:
            self._instances[instance.uuid] = {"name": instance.name, "state": state}
            self._save()

    def _remove(self, instance):
        with self._lock:
            if self._instances.pop(instance.uuid, None) is not None:
                self._save()

    def _set_state(self, instance, state):
        with self._lock:
            if instance.uuid not in self._instances:
                raise exception.InstanceNotFound(instance_id=instance.uuid)
            self._instances[instance.uuid]["state"] = state
            self._save()

    # --- host ----------------------------------------------------------------
    def init_host(self, host):
        self._host = host
        try:
            with open(self._record_path()) as record:
                self._instances = json.load(record)
        except FileNotFoundError:
            self._instances = {}

    def get_available_nodes(self, refresh=False):
        return [self._host]

    def get_nodenames_by_uuid(self, refresh=False):
        return {nova.virt.node.get_local_node_uuid(): self._host}

    def get_host_ip_addr(self):
        return CONF.my_ip

    def get_available_resource(self, nodename):
        if nodename != self._host:
            return {}
        used = len(self._instances)
        return {
            "vcpus": self.vcpus, "memory_mb": self.memory_mb, "local_gb": self.local_gb,
            "vcpus_used": used, "memory_mb_used": 0, "local_gb_used": 0,
            "hypervisor_type": "rmdc-lab",
            "hypervisor_version": versionutils.convert_version_to_int("1.0"),
            "hypervisor_hostname": nodename,
            "cpu_info": jsonutils.dumps({"arch": "x86_64", "model": "lab",
                                         "vendor": "lab", "features": [],
                                         "topology": {"cores": 1, "threads": 1,
                                                      "sockets": self.vcpus}}),
            "disk_available_least": self.local_gb,
            "supported_instances": [(obj_fields.Architecture.X86_64,
                                     obj_fields.HVType.QEMU, obj_fields.VMMode.HVM)],
            "numa_topology": None,
            "uuid": nova.virt.node.get_local_node_uuid(),
        }

    def update_provider_tree(self, provider_tree, nodename, allocations=None):
        inv = provider_tree.data(nodename).inventory
        ratios = self._get_allocation_ratios(inv)
        inventory = {}
        for rc, total, reserved in (
                ("VCPU", self.vcpus, CONF.reserved_host_cpus),
                ("MEMORY_MB", self.memory_mb, CONF.reserved_host_memory_mb),
                ("DISK_GB", self.local_gb,
                 self._get_reserved_host_disk_gb_from_config())):
            inventory[rc] = {"total": total, "min_unit": 1, "max_unit": total,
                             "step_size": 1, "allocation_ratio": ratios[rc],
                             "reserved": reserved}
        provider_tree.update_inventory(nodename, inventory)

    def get_volume_connector(self, instance):
        return {"ip": CONF.my_ip, "initiator": "lab", "host": self._host}

    # --- instances -----------------------------------------------------------
    def list_instances(self):
        return [item["name"] for item in self._instances.values()]

    def list_instance_uuids(self):
        return list(self._instances)

    def instance_exists(self, instance):
        return instance.uuid in self._instances

    def get_info(self, instance, use_cache=True):
        item = self._instances.get(instance.uuid)
        if item is None:
            raise exception.InstanceNotFound(instance_id=instance.uuid)
        return hardware.InstanceInfo(state=item["state"])

    # --- guests ---------------------------------------------------------------
    def _create_guest(self, instance, network_info):
        if len(network_info or []) != 1:
            raise exception.NovaException(
                f"the lab boots guests with exactly one port, not {len(network_info or [])}")
        _hypervisor("POST", "/guests", {
            "uuid": instance.uuid, "host": self._host, "port": _port(network_info[0]),
            "name": instance.display_name, "hostname": instance.hostname,
            "key_name": instance.key_name, "public_key": instance.key_data,
            "meta": dict(instance.metadata or {}),
            "availability_zone": instance.availability_zone,
            "launch_index": instance.launch_index or 0})

    def _delete_guest(self, instance):
        query = urllib.parse.urlencode({"host": self._host})
        _hypervisor("DELETE", f"/guests/{instance.uuid}?{query}")

    def _neutron_failed(self, event_name, instance):
        LOG.error("Neutron reported failure on event %s", event_name,
                  instance=instance)
        if CONF.vif_plugging_is_fatal:
            raise exception.VirtualInterfaceCreateException()

    def spawn(self, context, instance, image_meta, injected_files,
              admin_password, allocations, network_info=None,
              block_device_info=None, power_on=True, accel_info=None):
        # As the libvirt driver: wait for Neutron's network-vif-plugged for every
        # port not yet active, which OVN's claim of the port triggers.
        events = [("network-vif-plugged", vif["id"]) for vif in network_info or []
                  if vif.get("active", True) is False]
        timeout = CONF.vif_plugging_timeout if events else 0
        try:
            with self.virtapi.wait_for_instance_event(
                    instance, events, timeout=timeout,
                    error_callback=self._neutron_failed):
                self._create_guest(instance, network_info)
        except exception.InstanceEventTimeout:
            LOG.warning("Timeout waiting for %s", events, instance=instance)
            if CONF.vif_plugging_is_fatal:
                self._delete_guest(instance)
                raise exception.VirtualInterfaceCreateException() from None
        self._add(instance, power_state.RUNNING if power_on else power_state.SHUTDOWN)

    def destroy(self, context, instance, network_info, block_device_info=None,
                destroy_disks=True, destroy_secrets=True):
        self._delete_guest(instance)
        self._remove(instance)

    def cleanup(self, context, instance, network_info, block_device_info=None,
                destroy_disks=True, migrate_data=None, destroy_vifs=True,
                destroy_secrets=True):
        if destroy_vifs:
            self._delete_guest(instance)
        self._remove(instance)

    def reboot(self, context, instance, network_info, reboot_type,
               block_device_info=None, bad_volumes_callback=None,
               accel_info=None, share_info=None):
        self._set_state(instance, power_state.RUNNING)

    def power_off(self, instance, timeout=0, retry_interval=0):
        self._set_state(instance, power_state.SHUTDOWN)

    def power_on(self, context, instance, network_info, block_device_info=None,
                 accel_info=None, share_info=None):
        self._set_state(instance, power_state.RUNNING)

    def plug_vifs(self, instance, network_info):
        pass  # the guest's link stays plugged while the hypervisor runs

    def unplug_vifs(self, instance, network_info):
        pass

    def get_console_output(self, context, instance):
        return _hypervisor("GET", f"/guests/{instance.uuid}/console")

    def get_instance_disk_info(self, instance, block_device_info=None):
        return None

    def instance_on_disk(self, instance):
        return False

    # --- live migration (Nova's own flow; the driver's parts are bookkeeping) --
    def check_can_live_migrate_destination(self, context, instance,
                                           src_compute_info, dst_compute_info,
                                           block_migration=False,
                                           disk_over_commit=False):
        data = migrate_data.LibvirtLiveMigrateData()
        data.filename = "rmdc-lab"
        data.image_type = CONF.libvirt.images_type
        data.graphics_listen_addr_vnc = CONF.vnc.server_listen
        data.graphics_listen_addr_spice = CONF.spice.server_listen
        data.serial_listen_addr = None
        if block_migration is not None:
            data.block_migration = block_migration
        if disk_over_commit is not None:
            data.disk_over_commit = disk_over_commit
        data.disk_available_mb = self.local_gb * 1024
        data.is_shared_block_storage = True
        data.is_shared_instance_path = True
        return data

    def cleanup_live_migration_destination_check(self, context, dest_check_data):
        pass

    def check_can_live_migrate_source(self, context, instance, dest_check_data,
                                      block_device_info=None):
        return dest_check_data

    def pre_live_migration(self, context, instance, block_device_info,
                           network_info, disk_info, migrate_data):
        # The destination's NIC, as libvirt's pre_live_migration plugs it: OVN
        # claims the port for this host too (additional chassis); Neutron's
        # network-vif-plugged then lets the source go on.
        _hypervisor("POST", f"/guests/{instance.uuid}/prepare", {"dest": self._host})
        return migrate_data

    def live_migration(self, context, instance, dest, post_method, recover_method,
                       block_migration=False, migrate_data=None):
        LOG.debug("lab live migration of %s to %s", instance.uuid, dest)
        try:
            _hypervisor("POST", f"/guests/{instance.uuid}/migrate",
                        {"dest": dest, "meta": dict(instance.metadata or {})})
        except HypervisorError as exc:
            if exc.status != 409:  # 409: the profile's failed migration
                raise
            LOG.error("live migration failed: %s", exc, instance=instance)
            recover_method(context, instance, dest, migrate_data)
            return
        post_method(context, instance, dest, block_migration, migrate_data)

    def live_migration_force_complete(self, instance):
        pass

    def live_migration_abort(self, instance):
        pass

    def post_live_migration_at_source(self, context, instance, network_info):
        self._remove(instance)  # the guest and its link are on the destination now

    def post_live_migration_at_destination(self, context, instance, network_info,
                                           block_migration=False,
                                           block_device_info=None):
        self._add(instance)
        # Nova has made its last port update of the migration (the binding moved):
        # from here a fault in the port's identity lasts as long as asked.
        _hypervisor("POST", f"/guests/{instance.uuid}/migrated", {"dest": self._host})

    def rollback_live_migration_at_destination(self, context, instance,
                                               network_info, block_device_info,
                                               destroy_disks=True,
                                               migrate_data=None):
        _hypervisor("POST", f"/guests/{instance.uuid}/unprepare", {"dest": self._host})
        self._remove(instance)
