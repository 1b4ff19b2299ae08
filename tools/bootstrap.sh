#!/usr/bin/env bash
# Install what the tests and the lab need on a fresh Debian machine (run as root).
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

# A lab killed with its session (no teardown) leaves its bridge routing lab
# addresses; remove such remains before apt and pip need the network.
python3 -S -m tests.lab.sweep
python3 -S -m tests.lab.cloud.sweep

apt_packages=(openssh-server openssh-client iproute2 busybox curl dash
              iptables iputils-ping procps util-linux chromium shellcheck)
missing=()
for pkg in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" \
        || missing+=("$pkg")
done
if ((${#missing[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# Debian's openssh-server package starts a system sshd; the lab runs its own
# sshd processes inside namespaces and needs only the binary and /run/sshd.
mkdir -p /run/sshd

python3 -m pip install -q --disable-pip-version-check 'tox>=4.11'
# The cloud lab's real OpenStack services (Debian's MariaDB, RabbitMQ, Open vSwitch,
# OVN; the pinned services from the package index): tox -e all runs it too.
tools/install-lab-cloud.sh
