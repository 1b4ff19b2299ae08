"""Run neutron-ovn-metadata-agent from a services' venv, with the lab's one change:

    VENV/bin/python metadata_agent_main.py --config-file A

When br-int is a userspace (netdev) bridge, as the lab's are, the agent fills in TCP
checksums in its ovnmeta namespaces (LP#1904871), but only for IPv4: it adds no
IPv6 rule. Answers from fe80::a9fe:a9fe then leave with a partial checksum and the
guest drops them (seen here with neutron 29: the guest's neighbour entry for
fe80::a9fe:a9fe resolved, curl timed out; with the rule added by hand it got its
answer). This adds the same rule for IPv6, in the same call; nothing else of the
agent changes. A cloud whose br-int is a DPDK bridge may meet the same.
"""

import importlib.metadata
import os
import sys

CHECKSUM_RULE = "-p tcp -m tcp -j CHECKSUM --checksum-fill"


def main() -> None:
    # Running as a script puts this directory first on sys.path, where openstack.py
    # would shadow the openstack (SDK) package the agent imports.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    # The venv's own console script (neutron.cmd.agents... from 2025.1, neutron.cmd.
    # eventlet.agents... before), loaded first: the eventlet one monkey-patches on
    # import, which must come before the agent's modules are.
    [script] = importlib.metadata.entry_points(group="console_scripts",
                                               name="neutron-ovn-metadata-agent")
    agent_main = script.load()
    from neutron.agent.linux import iptables_manager
    from neutron.agent.ovn.metadata import agent

    ensure_ipv4_only = agent.MetadataAgent._ensure_datapath_checksum

    def ensure_both_families(self, namespace):
        ensure_ipv4_only(self, namespace)
        if self.ovs_idl.db_get("Bridge", self.ovn_bridge, "datapath_type").execute() \
                != "netdev":
            return
        tables = iptables_manager.IptablesManager(
            use_ipv6=True, nat=False, namespace=namespace, external_lock=False)
        tables.ipv6["mangle"].add_rule("POSTROUTING", CHECKSUM_RULE, wrap=False)
        tables.apply()

    agent.MetadataAgent._ensure_datapath_checksum = ensure_both_families
    sys.argv[0] = "neutron-ovn-metadata-agent"
    sys.exit(agent_main())


if __name__ == "__main__":
    main()
