# shellcheck shell=sh
# The meter's stop and cleanup, each in one SSH round trip
# (rally_metadata_downtime/meter.py).
#
# Usage: sh -c "$SCRIPT" sh DIRECTORY GRACE [log]
#   DIRECTORY  the probe's private directory (as guest/meter_start.sh printed it)
#   GRACE      tenths of a second to wait for a clean stop; 0: none (cleanup)
#   log        print the probe's log and keep the directory (the meter removes it in
#              a second call): a call retried after its answer was lost in a dropped
#              SSH session must find the log again
#
# 1. GRACE > 0: TERM the probe, which stops launching, waits for its requests in
#    flight (each ends within the probe's -t), writes "# stopped" and exits; wait up
#    to GRACE for that.
# 2. KILL what is left of the probe's process group (setsid made the probe its
#    leader): the probe and its requests in flight. Wait up to 5 s until no process
#    of the group runs: a request still running could append to the log or make the
#    fail-fast marker while the directory is being removed, and leave it behind.
#    Without setsid (nohup) there is no group to wait for; step 4 retries. A pid
#    file whose process is not this directory's probe is ignored.
# 3. With `log`, print the log (exit 1 when it is gone: guest rebooted?) and stop.
# 4. Without it, remove the directory, retrying for up to 2 s should a late write
#    recreate a file in it (exit 2 when it stays). Removing what is gone is success.
# Zombies do not count as running: they write nothing, and how soon they are reaped
# is up to the guest's init. busybox ash, dash and bash: POSIX sh only; dash's and
# busybox's kill take no `--`, so a process group is `kill -SIG -PGID`.

d=$1
grace=$2
print_log=$3
[ -n "$d" ] || exit 2

# /proc/PID/stat is "PID (COMM) STATE PPID PGRP ...", and COMM may hold spaces and
# parentheses: the fields are read after its last ") ". Sets `state` and `group`.
read_stat() {
    line=
    { read -r line < "$1"; } 2>/dev/null
    fields=${line##*) }
    state=${fields%% *}
    fields=${fields#* }
    fields=${fields#* }
    group=${fields%% *}
    [ -n "$line" ]
}

# Process $1 exists and is not a zombie.
runs() {
    read_stat "/proc/$1/stat" && [ "$state" != Z ] && [ "$state" != X ]
}

# A process of group $1 exists and is not a zombie.
group_runs() {
    for stat in /proc/[0-9]*/stat; do
        if read_stat "$stat" && [ "$group" = "$1" ] && [ "$state" != Z ] \
                && [ "$state" != X ]; then
            return 0
        fi
    done
    return 1
}

pid=
{ read -r pid < "$d/probe.pid"; } 2>/dev/null
case $pid in
    ''|*[!0-9]*) pid= ;;
esac
# A stale pid file (the probe killed long ago) may name a process that is not ours:
# its group is not signalled. While any of our group runs, its id is not reused.
if [ -n "$pid" ] && runs "$pid"; then
    command_line=$(tr '\000' ' ' < "/proc/$pid/cmdline" 2>/dev/null)
    case $command_line in
        *"$d/metadata_probe.sh"*) ;;
        *) pid= ;;
    esac
fi

if [ -n "$pid" ] && [ "$grace" -gt 0 ] && kill -TERM "$pid" 2>/dev/null; then
    i=0
    while [ "$i" -lt "$grace" ] && runs "$pid"; do
        sleep 0.1
        i=$((i + 1))
    done
fi

if [ -n "$pid" ]; then
    kill -KILL -"$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
    i=0
    while [ "$i" -lt 50 ] && group_runs "$pid"; do
        sleep 0.1
        i=$((i + 1))
    done
fi

if [ "$print_log" = log ]; then
    cat "$d/probe.log" || exit 1
    exit 0
fi

i=0
while ! rm -rf -- "$d" 2>/dev/null || [ -e "$d" ]; do
    if [ "$i" -ge 20 ]; then
        echo "could not remove $d" >&2
        exit 2
    fi
    sleep 0.1
    i=$((i + 1))
done
exit 0
