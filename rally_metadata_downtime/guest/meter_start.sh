# shellcheck shell=sh
# The meter's start, in one SSH round trip (rally_metadata_downtime/meter.py).
#
# Usage: sh -c "$SCRIPT" sh WORKDIR PREFIX PROBE [PROBE OPTION...]
#   WORKDIR  where the private directory is made (validated, an absolute path)
#   PREFIX   the private directory's name before mktemp's XXXXXX
#   PROBE    the probe's text (guest/metadata_probe.sh): written into the directory
#   PROBE OPTION...  the probe's options; -l and -p (in the directory) are added here
#
# Prints /proc/uptime (the meter's first clock reading), then the directory. Exit:
#   0   the probe runs and has begun its log (that takes milliseconds)
#   10  a probe already runs in WORKDIR (another run's: refused)
#   11  mktemp could not make the directory
#   12  the probe exited at once: its stderr and exit status follow on stderr
#   13  the probe runs but began no log within 5 s: its stderr follows
#   1   the probe could not be written
#
# The probe travels inside the command, not on stdin: Rally's SSH.run waits up to a
# second per 4 KiB written to stdin. CirrOS's sshd (dropbear) refuses commands over
# 9000 bytes (MAX_CMD_LEN): the meter sends this text and the probe's without comment
# lines, blank lines and indentation, so neither may hold a here-document or a
# multi-line string. busybox ash, dash and bash: POSIX sh only, no `kill --`.

workdir=$1
prefix=$2
probe=$3
shift 3

for pidfile in "$workdir/$prefix"*/probe.pid; do
    other=
    if [ -s "$pidfile" ] && read -r other < "$pidfile" && kill -0 "$other" 2>/dev/null; then
        echo "a probe already runs in ${pidfile%/probe.pid}" >&2
        exit 10
    fi
done

cat /proc/uptime
d=$(mktemp -d "$workdir/${prefix}XXXXXX") || exit 11
echo "$d"
printf '%s' "$probe" > "$d/metadata_probe.sh" || exit 1

# setsid puts the probe and its requests in a session and process group of their
# own: a dropped SSH session does not stop them, and the meter's stop can end them
# all (guest/meter_stop.sh). Without setsid, nohup: the session still may drop.
detach="nohup"
if command -v setsid >/dev/null 2>&1; then
    detach="setsid"
fi
"$detach" sh "$d/metadata_probe.sh" -l "$d/probe.log" -p "$d/probe.pid" "$@" \
    </dev/null >/dev/null 2>"$d/probe.err" &
launched=$!

# The probe writes its pid file, then its log's header: a header means the pid file
# is this run's. A launched process that exited is noticed at the next look (the
# shell reaps it while it waits for `sleep`): a probe that refused its arguments or
# could not write its files is reported at once, not after the 5 s. Its exit status
# 0 only means setsid forked (it does when it leads a process group) and the probe
# went on in the child: then the pid file and the log tell.
exited=
i=0
while [ "$i" -lt 250 ]; do
    pid=
    if [ -s "$d/probe.log" ] && read -r pid 2>/dev/null < "$d/probe.pid" \
            && kill -0 "$pid" 2>/dev/null; then
        exit 0
    fi
    if [ -z "$exited" ] && ! kill -0 "$launched" 2>/dev/null; then
        wait "$launched"
        exited=$?
        if [ "$exited" -ne 0 ]; then
            cat "$d/probe.err" >&2
            echo "(the probe exited with status $exited)" >&2
            exit 12
        fi
    fi
    sleep 0.02
    i=$((i + 1))
done
cat "$d/probe.err" >&2
echo "(the probe began no log within 5 s)" >&2
exit 13
