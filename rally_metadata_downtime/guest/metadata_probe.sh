#!/bin/sh
# rally-metadata-downtime in-guest probe (POSIX sh: busybox ash, dash, bash).
#
# Usage: sh metadata_probe.sh -l LOGFILE -p PIDFILE [-u URL] [-i INTERVAL]
#                             [-t TIMEOUT] [-m hostname|uuid] [-e EXPECT]
#   -u  URL polled (default http://169.254.169.254/latest/meta-data/hostname)
#   -i  seconds between request launches (default 0.2)
#   -t  hard timeout of one request in seconds (default 1)
#   -m  hostname: the answer's first DNS label must equal EXPECT's (EXPECT empty:
#       this guest's hostname); uuid: the answer must contain EXPECT
#   -e  identity expected in the answer
#   -l  log file; its directory also holds the per-request scratch files
#   -p  pid file; a start is refused while it names a live process
#
# Requests are launched every INTERVAL in the background, so a blackholed request
# never stalls the sampling. Each writes one line:
#   P <seq> <start uptime> <end uptime> OK|FAIL <reason>
# TERM/INT: stop launching, wait for requests in flight, write "# stopped <uptime>".

url=http://169.254.169.254/latest/meta-data/hostname
interval=0.2
timeout=1
mode=hostname
expect=
log=
pidfile=
while getopts u:i:t:m:e:l:p: opt; do
    case $opt in
        u) url=$OPTARG ;;
        i) interval=$OPTARG ;;
        t) timeout=$OPTARG ;;
        m) mode=$OPTARG ;;
        e) expect=$OPTARG ;;
        l) log=$OPTARG ;;
        p) pidfile=$OPTARG ;;
        *) echo "metadata_probe: unknown option" >&2; exit 2 ;;
    esac
done
if [ -z "$log" ] || [ -z "$pidfile" ]; then
    echo "metadata_probe: -l LOGFILE and -p PIDFILE are required" >&2
    exit 2
fi
case $mode in hostname|uuid) ;; *) echo "metadata_probe: bad mode: $mode" >&2; exit 2 ;; esac
if [ "$mode" = hostname ] && [ -z "$expect" ]; then
    expect=$(hostname)
fi
workdir=$(dirname -- "$log")

if [ -f "$pidfile" ]; then
    old=$(cat -- "$pidfile" 2>/dev/null)
    if [ -n "$old" ] && kill -0 "$old" 2>/dev/null; then
        echo "metadata_probe: already running as PID $old ($pidfile)" >&2
        exit 3
    fi
fi
echo $$ > "$pidfile" || exit 4

if command -v curl >/dev/null 2>&1; then
    client=curl
else
    client=wget
fi
if command -v timeout >/dev/null 2>&1; then
    guard=timeout
else
    guard=
fi

uptime_now() {
    read -r now _ < /proc/uptime
}

lower() {
    printf '%s' "$1" | tr 'A-Z' 'a-z'
}
want_label=$(lower "${expect%%.*}")

# Verdict on a fetched body file: echoes OK or FAIL reason.
judge() {
    body=$1
    if [ ! -s "$body" ]; then
        echo "FAIL empty"
        return
    fi
    if [ "$mode" = uuid ]; then
        if grep -qF -- "$expect" "$body"; then echo "OK"; else echo "FAIL mismatch"; fi
        return
    fi
    IFS= read -r first < "$body" || true
    first=$(lower "$first")
    first=${first%%.*}
    # strip surrounding white space
    first=$(printf '%s' "$first" | tr -d ' \t\r')
    if [ "$first" = "$want_label" ]; then echo "OK"; else echo "FAIL mismatch"; fi
}

# One request: fetch, judge, append one line. Runs in the background.
probe_once() {
    seq=$1
    start=$2
    body="$workdir/body.$seq"
    if [ "$client" = curl ]; then
        code=$(curl -sS -o "$body" -w '%{http_code}' --max-time "$timeout" \
               --connect-timeout "$timeout" -- "$url" 2>/dev/null)
        rc=$?
        if [ "$rc" -ne 0 ]; then
            verdict="FAIL curl=$rc"
        elif [ "$code" != 200 ]; then
            verdict="FAIL http=$code"
        else
            verdict=$(judge "$body")
            [ "$verdict" = OK ] && verdict="OK http=200"
        fi
    else
        err="$workdir/err.$seq"
        # Debian's busybox 1.35 wget crashes on -T: prefer the timeout wrapper.
        if [ -n "$guard" ]; then
            $guard "$timeout" wget -q -O "$body" "$url" 2>"$err"
        else
            wget -q -T "$timeout" -O "$body" "$url" 2>"$err"
        fi
        rc=$?
        status=$(sed -n 's/.*HTTP\/[0-9.]* \([0-9][0-9][0-9]\).*/\1/p' "$err" | head -n 1)
        rm -f -- "$err"
        if [ -n "$status" ]; then
            verdict="FAIL http=$status"
        elif [ "$rc" -eq 143 ]; then
            verdict="FAIL wget=timeout"
        elif [ "$rc" -ne 0 ]; then
            verdict="FAIL wget=$rc"
        else
            verdict=$(judge "$body")
            [ "$verdict" = OK ] && verdict="OK http=200"
        fi
    fi
    rm -f -- "$body"
    uptime_now
    printf 'P %s %s %s %s\n' "$seq" "$start" "$now" "$verdict" >> "$log"
}

running=1
trap 'running=0' TERM INT HUP

uptime_now
printf '# rmd-probe v1 interval=%s timeout=%s mode=%s expect=%s started=%s\n' \
    "$interval" "$timeout" "$mode" "$expect" "$now" >> "$log"

seq=0
while [ "$running" = 1 ]; do
    seq=$((seq + 1))
    uptime_now
    probe_once "$seq" "$now" &
    sleep "$interval"
done
wait
uptime_now
printf '# stopped %s\n' "$now" >> "$log"
rm -f -- "$pidfile"
exit 0
