# shellcheck shell=sh
# Whether the probe still runs (rally_metadata_downtime/meter.py).
#
# Usage: sh -c "$SCRIPT" sh PIDFILE
# Exit 0 when PIDFILE names a live process, else 1. A zombie (state Z in
# /proc/PID/stat, after ") ") is dead: a killed probe stays one until init reaps it.

pid=
{ [ -s "$1" ] && read -r pid < "$1"; } 2>/dev/null
case $pid in
    ''|*[!0-9]*) exit 1 ;;
esac
line=
{ read -r line < "/proc/$pid/stat"; } 2>/dev/null || exit 1
state=${line##*) }
case $state in
    Z*|X*) exit 1 ;;
esac
exit 0
