"""A local OpenStack API (Keystone v3, Nova, Neutron, Glance) for the lab."""
