"""The cloud lab: the real OpenStack services (Keystone, Placement, Nova, Neutron with
ML2/OVN, Glance) on Debian's MariaDB, RabbitMQ, Open vSwitch and OVN, each daemon
started and stopped by PID with its own state directory, listening on 127.0.0.1 only.

    python -m tests.lab.cloud up|down|status|bench [--state-dir DIR]

Installed by tools/install-lab-cloud.sh (the services live in their own virtualenv,
pinned by constraints.txt beside this file). The namespaces this lab makes are
named rmdc-<4 hex of the state dir>-h<N> (hyphens where tests.lab.sweep's patterns
allow none, so neither sweep takes the other's); it makes no link outside them.
"""
