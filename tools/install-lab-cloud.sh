#!/usr/bin/env bash
# Install the real OpenStack services the cloud lab (tests/lab/cloud) runs: Debian's
# MariaDB, RabbitMQ, Open vSwitch and OVN, and Keystone, Placement, Nova, Neutron,
# Glance and Cinder (its API only) from the package index into their own virtualenv, every Python package pinned
# by tests/lab/cloud/constraints.txt. Run as root. Idempotent: a second run with the
# same constraints only checks.
#
#   tools/install-lab-cloud.sh                 install (or check) with the pins
#   tools/install-lab-cloud.sh --with-rally    also Rally + rally-openstack in their
#                                              own venv (when no tox env has them)
#   tools/install-lab-cloud.sh --repin         resolve afresh and rewrite the pins
#
# Environment: RMD_LAB_ROOT (default /opt/rmd-lab): venv/, agent-2023.2/ and
# rally-venv/ under it.
set -euo pipefail
cd "$(dirname "$0")/.."

root=${RMD_LAB_ROOT:-/opt/rmd-lab}
venv=$root/venv
rally_venv=$root/rally-venv
old_agent_venv=$root/agent-2023.2
pins=tests/lab/cloud/constraints.txt
rally_pins=tests/lab/cloud/rally-constraints.txt
# The services and the few libraries the lab itself needs in their venv (the MySQL
# driver; gunicorn serves the WSGI apps).
requirements=(keystone==30.0.0 openstack-placement==16.0.0 nova==34.0.0
              neutron==29.0.0 glance==33.0.0 cinder==29.0.0 PyMySQL gunicorn)
rally_requirements=(rally==5.1.1 rally-openstack==4.1.0)
# The metadata agent of the last Neutron release without the fix for Launchpad bug
# 2036118, which the lab runs in place of the current one to show what the plugin
# catches (tests/lab/cloud/agents.py). Its pins come from OpenStack's 2023.2-eol
# upper-constraints, so --repin leaves them alone.
old_agent_pins=tests/lab/cloud/agent-2023.2-constraints.txt
old_agent_requirements=(neutron==23.3.0)
with_rally=0 repin=0
for arg in "$@"; do
    case $arg in
        --with-rally) with_rally=1 ;;
        --repin) repin=1 ;;
        *) echo "usage: $0 [--with-rally] [--repin]" >&2; exit 2 ;;
    esac
done
python=${RMD_LAB_PYTHON:-$(command -v python3.11 || command -v python3)}

# --- Debian packages: installed, never started (the lab starts each daemon itself;
# haproxy and iptables are the OVN metadata agent's).
apt_packages=(mariadb-server rabbitmq-server openvswitch-switch ovn-central ovn-host
              ethtool haproxy iptables)
missing=()
for pkg in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" \
        || missing+=("$pkg")
done
if ((${#missing[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    # Keep the packages' init scripts from starting system-wide daemons (MariaDB on
    # 3306, RabbitMQ, ovsdb): exit 101 = "action forbidden" for invoke-rc.d.
    own_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        own_policy=1
    fi
    apt-get update -qq
    nice -n 10 apt-get install -y -qq --no-install-recommends "${missing[@]}"
    if ((own_policy)); then rm -f /usr/sbin/policy-rc.d; fi
fi

stamp() {  # PINS REQUIREMENT...: a digest of the pins, the requirements, the Python
    local pinfile=$1
    shift
    { printf '%s\n' "$@" "$("$python" -V)" bytecode; [[ -f $pinfile ]] && cat "$pinfile"; true; } \
        | sha256sum | cut -c1-16
}

# --- A venv whose stamp records what it was built from; rebuilt when that changes.
install_venv() {  # DIR PINS REQUIREMENT...
    local dir=$1 pinfile=$2
    shift 2
    local want
    want=$(stamp "$pinfile" "$@")
    if ((!repin)) && [[ -f $dir/.rmd-stamp && $(cat "$dir/.rmd-stamp") == "$want" ]]; then
        echo "lab cloud: $dir up to date ($want)"
        return
    fi
    [[ -x $dir/bin/python ]] || "$python" -m venv "$dir"
    if ((!repin)) && [[ -s $pinfile ]]; then
        nice -n 10 "$python" -m uv pip install -q --python "$dir/bin/python" \
            -c "$pinfile" "$@"
    else  # resolve afresh with pip, and write down what it chose
        "$dir/bin/python" -m pip install -q --upgrade 'pip>=24' setuptools wheel
        nice -n 10 "$dir/bin/python" -m pip install -q "$@"
        {
            echo "# Every package pip resolved for: $*"
            echo "# Written by tools/install-lab-cloud.sh --repin; $("$dir/bin/python" -V)"
            "$dir/bin/python" -m pip freeze --all --exclude-editable \
                | grep -v -E '^(pip|setuptools|wheel)=='
        } >"$pinfile"
    fi
    # Bytecode now: this machine's environment sets PYTHONDONTWRITEBYTECODE, so every
    # service start compiled its imports from source again, half of the lab's
    # start-up (65 s without, 35 s with). uv compiles only what it installs.
    nice -n 10 "$dir/bin/python" -m compileall -q -j 0 "$dir/lib" >/dev/null
    want=$(stamp "$pinfile" "$@")
    echo "$want" >"$dir/.rmd-stamp"
    echo "lab cloud: $dir installed ($want)"
}

mkdir -p "$root"
# Everything is pinned: uv installs the same packages in about a tenth of pip's time
# (10 s against 64 s for the services here).
if ((!repin)); then
    "$python" -m uv --version >/dev/null 2>&1 \
        || "$python" -m pip install -q --disable-pip-version-check 'uv>=0.5'
    # Beside the services' venv: most of its time is downloads and one build.
    install_venv "$old_agent_venv" "$old_agent_pins" "${old_agent_requirements[@]}" &
    old_agent_install=$!
fi
install_venv "$venv" "$pins" "${requirements[@]}"
if ((!repin)); then
    wait "$old_agent_install"
fi
if ((with_rally)); then
    install_venv "$rally_venv" "$rally_pins" "${rally_requirements[@]}"
fi
