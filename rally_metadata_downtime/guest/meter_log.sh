# shellcheck shell=sh
# The probe's log as it is now; the probe may still be writing it
# (rally_metadata_downtime/meter.py).
#
# Usage: sh -c "$SCRIPT" sh LOGFILE [clock]
# With `clock`, /proc/uptime first, in the same round trip: a clock reading.
# Exit 1 when the log cannot be read (gone: guest rebooted or /tmp cleared?).

if [ "$2" = clock ]; then
    cat /proc/uptime || exit 1
fi
cat -- "$1"
