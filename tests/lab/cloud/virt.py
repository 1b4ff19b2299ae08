"""The lab's Nova virt driver (loaded by nova-compute as nova.virt.rmdc_lab.LabDriver;
see compute_main.py). Runs inside nova-compute, in the services' venv: it imports
Nova and nothing of this repo.

Today an instance is a record in <state_path>/instances.json (kept across a compute
restart) and, for each of its ports, an OVS internal port on this host's br-int with
external_ids:iface-id = the Neutron port (what os-vif does for a real guest): OVN
claims it for this host's chassis, Neutron marks the port ACTIVE and tells Nova
(network-vif-plugged), which spawn waits for as the libvirt driver does. The node
has a stable identity: it is named after the host and its UUID is the one the lab
writes to <state_path>/compute_id, so a restarted compute finds its node again.

Where the lab's namespace guests (tests/lab/fabric.py) will hook in, each call is
made with the host it runs on:
    spawn          -> guest_create(instance, network_info): namespace, sshd, key;
                      plug its veth into this host's br-int with
                      external_ids:iface-id=<port id> (what os-vif does)
    destroy        -> guest_delete(instance): unplug and remove
    pre_live_migration (destination) -> guest_prepare(instance, network_info)
    live_migration (source)          -> guest_move(instance, dest): move the veth to
                      the destination's bridge, then a RARP from the guest's MAC (what
                      QEMU does on resume), fault profile applied here
    post_live_migration_at_destination -> guest_landed(instance)
"""

import json
import os
import subprocess
import threading

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
    cfg.StrOpt("ovsdb", help="this host's ovsdb-server, unix:PATH; empty: no VIFs"),
    cfg.StrOpt("bridge", default="br-int", help="the integration bridge"),
], group="rmdc_lab")


def _vif_name(vif):
    return ("tap" + vif["id"])[:14]  # the name Nova's libvirt driver would give


def _vsctl(*args):
    result = subprocess.run(
        ["ovs-vsctl", f"--db={CONF.rmdc_lab.ovsdb}", "--timeout=20", *args],
        capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise exception.NovaException(
            f"ovs-vsctl {' '.join(args)}: {result.stderr.strip()}")


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

    # --- VIFs -----------------------------------------------------------------
    def _plug(self, instance, network_info):
        if not CONF.rmdc_lab.ovsdb:
            return
        for vif in network_info or []:
            name = _vif_name(vif)
            _vsctl("--may-exist", "add-port", CONF.rmdc_lab.bridge, name, "--",
                   "set", "Interface", name, "type=internal",
                   f"external_ids:iface-id={vif['id']}",
                   f"external_ids:attached-mac={vif['address']}",
                   f"external_ids:vm-uuid={instance.uuid}",
                   "external_ids:iface-status=active")

    def _unplug(self, network_info):
        if not CONF.rmdc_lab.ovsdb:
            return
        for vif in network_info or []:
            _vsctl("--if-exists", "del-port", CONF.rmdc_lab.bridge, _vif_name(vif))

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
                  if vif.get("active", True) is False] if CONF.rmdc_lab.ovsdb else []
        timeout = CONF.vif_plugging_timeout if events else 0
        try:
            with self.virtapi.wait_for_instance_event(
                    instance, events, timeout=timeout,
                    error_callback=self._neutron_failed):
                self._plug(instance, network_info)
        except exception.InstanceEventTimeout:
            LOG.warning("Timeout waiting for %s", events, instance=instance)
            if CONF.vif_plugging_is_fatal:
                self._unplug(network_info)
                raise exception.VirtualInterfaceCreateException() from None
        self._add(instance, power_state.RUNNING if power_on else power_state.SHUTDOWN)

    def destroy(self, context, instance, network_info, block_device_info=None,
                destroy_disks=True, destroy_secrets=True):
        self._unplug(network_info)
        self._remove(instance)

    def cleanup(self, context, instance, network_info, block_device_info=None,
                destroy_disks=True, migrate_data=None, destroy_vifs=True,
                destroy_secrets=True):
        if destroy_vifs:
            self._unplug(network_info)
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
        self._plug(instance, network_info)

    def unplug_vifs(self, instance, network_info):
        self._unplug(network_info)

    def get_console_output(self, context, instance):
        return f"lab instance {instance.uuid} on {self._host}\n"

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
        # The destination's port, as libvirt's pre_live_migration plugs it: OVN
        # claims it as the additional chassis of the port's binding.
        self._plug(instance, network_info)
        return migrate_data

    def live_migration(self, context, instance, dest, post_method, recover_method,
                       block_migration=False, migrate_data=None):
        LOG.debug("lab live migration of %s to %s", instance.uuid, dest)
        post_method(context, instance, dest, block_migration, migrate_data)

    def live_migration_force_complete(self, instance):
        pass

    def live_migration_abort(self, instance):
        pass

    def post_live_migration_at_source(self, context, instance, network_info):
        self._unplug(network_info)
        self._remove(instance)

    def post_live_migration_at_destination(self, context, instance, network_info,
                                           block_migration=False,
                                           block_device_info=None):
        self._add(instance)

    def rollback_live_migration_at_destination(self, context, instance,
                                               network_info, block_device_info,
                                               destroy_disks=True,
                                               migrate_data=None):
        self._unplug(network_info)
        self._remove(instance)
