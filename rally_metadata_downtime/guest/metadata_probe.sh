#!/bin/sh
# rally-metadata-downtime in-guest probe (POSIX sh: busybox ash, dash, bash).
#
# Usage: sh metadata_probe.sh -l LOGFILE -p PIDFILE [-u URL] [-i INTERVAL]
#                             [-t TIMEOUT] [-m hostname|uuid] [-e EXPECT]
#                             [-c auto|curl|wget] [-r RETRY] [-f FAMILIES]
#                             [-U URL6] [-I IFACE]
#   -u URL       polled over IPv4 (default http://169.254.169.254/latest/meta-data/hostname)
#   -f FAMILIES  ipv4 (default), ipv6 or ipv4,ipv6: the families polled; each launch
#                sends one request per family
#   -U URL6      polled over IPv6 (default http://[fe80::a9fe:a9fe]/latest/meta-data/hostname);
#                a link-local host without a zone gets %IFACE
#   -I IFACE     the interface of the IPv6 link-local zone; default: the first
#                interface with a link-local address (/proc/net/if_inet6); none is
#                an error (exit 5) before anything is logged
#   -i INTERVAL  seconds between request launches, decimal > 0 (default 0.1)
#   -r RETRY     seconds between launches while requests fail fast (refused, an HTTP
#                error, a wrong answer), to time the recovery more closely; blackholed
#                requests do not count, so requests in flight stay bounded (default:
#                INTERVAL)
#   -t TIMEOUT   hard limit of one request in seconds, decimal > 0 (default 1)
#   -m MODE      hostname (default): the answer's first line, trimmed and lowercased,
#                has the same first DNS label as EXPECT (vm-1.novalocal matches vm-1,
#                vm-10 does not); uuid: the answer contains EXPECT (fixed string)
#   -e EXPECT    identity expected in the answer; required in uuid mode; empty in
#                hostname mode means this guest's own `hostname`
#   -c CLIENT    HTTP client: auto (default) takes busybox wget if the guest has it
#                (one small static binary: a fraction of curl's start-up cost, which
#                is most of a probe's CPU), else curl, else wget
#   -l LOGFILE   appended to (format: docs/design.md)
#   -p PIDFILE   receives this shell's PID; the start is refused (exit 3) while it
#                names a live process, and it is removed on a clean stop
#
# Every INTERVAL a request is launched in the background, so a blackholed request
# never stalls the sampling; each is bounded by TIMEOUT (curl --max-time, wget under
# `timeout` when the guest has it), so at most ceil(TIMEOUT/INTERVAL)+1 are in flight. Each
# appends one line with a single printf (short O_APPEND writes do not interleave):
#   P <seq> <start uptime> <end uptime> OK|FAIL <reason> <pause>
# reason: http=<code>, curl=<exit>, wget=<exit>, wget=timeout, wget=refused,
# wget=reset, wget=unreachable (busybox wget exits 1 for these three; its message
# tells them apart), mismatch, empty.
# pause: the seconds the probe chose to wait after launching this request before
# launching the next (INTERVAL, or RETRY while the last request to end failed fast):
# what it decided, whatever the scheduler then delivered.
# TERM/INT/HUP: stop launching, wait for the requests in flight, append
# "# stopped <uptime>", remove the pidfile, exit 0.
# With -f ipv6 or ipv4,ipv6 each line ends with its family: `... <pause> ipv6`.
# Exit status: 0 after a clean stop, 2 bad arguments, 3 already running, 4 cannot
# write the pid file or the log, 5 IPv6 asked for and the guest has no link-local
# address.

url=http://169.254.169.254/latest/meta-data/hostname
url6='http://[fe80::a9fe:a9fe]/latest/meta-data/hostname'
families=ipv4
iface=
interval=0.1
retry=
timeout=1
mode=hostname
expect=
client=auto
log=
pidfile=

die() {
    code=$1
    shift
    echo "metadata_probe: $*" >&2
    exit "$code"
}

while getopts u:i:r:t:m:e:c:l:p:f:U:I: opt; do
    case $opt in
        u) url=$OPTARG ;;
        i) interval=$OPTARG ;;
        r) retry=$OPTARG ;;
        t) timeout=$OPTARG ;;
        m) mode=$OPTARG ;;
        e) expect=$OPTARG ;;
        c) client=$OPTARG ;;
        l) log=$OPTARG ;;
        p) pidfile=$OPTARG ;;
        f) families=$OPTARG ;;
        U) url6=$OPTARG ;;
        I) iface=$OPTARG ;;
        *) die 2 "usage: $0 -l LOGFILE -p PIDFILE [-u URL] [-i S] [-r S] [-t S] [-m MODE] [-e EXPECT] [-c CLIENT]" ;;
    esac
done
shift $((OPTIND - 1))
[ $# -eq 0 ] || die 2 "unexpected argument: $1"
if [ -z "$log" ] || [ -z "$pidfile" ]; then
    die 2 "-l LOGFILE and -p PIDFILE are required"
fi

# A bad interval would make `sleep` fail at once and the loop spin: only plain
# positive decimals pass.
positive_decimal() {
    case $1 in
        ''|.|*[!0-9.]*|*.*.*) return 1 ;;
    esac
    case $1 in
        *[1-9]*) return 0 ;;
    esac
    return 1
}
positive_decimal "$interval" || die 2 "bad interval: $interval"
retry=${retry:-$interval}
positive_decimal "$retry" || die 2 "bad retry interval: $retry"
positive_decimal "$timeout" || die 2 "bad timeout: $timeout"
case $mode in
    hostname|uuid) ;;
    *) die 2 "bad mode: $mode (hostname or uuid)" ;;
esac
case $client in
    auto|curl|wget) ;;
    *) die 2 "bad client: $client (auto, curl or wget)" ;;
esac
case $expect in
    *[!A-Za-z0-9._:-]*) die 2 "bad expect: only letters, digits and . _ : - allowed" ;;
esac
if [ "$mode" = uuid ] && [ -z "$expect" ]; then
    die 2 "uuid mode needs -e UUID"
fi
case $families in
    ipv4|ipv6|ipv4,ipv6) ;;
    *) die 2 "bad families: $families" ;;
esac
case $iface in
    *[!A-Za-z0-9._-]*) die 2 "bad interface: $iface" ;;
esac
case $families in
    *ipv6*)
        # /proc/net/if_inet6: address, index, prefix length, scope (20: link),
        # flags, name. The first link-local address not on lo.
        [ -n "$iface" ] || while read -r _ _ _ scope _ name; do
            [ "$scope" = 20 ] && [ "$name" != lo ] && iface=$name && break
        done < /proc/net/if_inet6 2>/dev/null
        [ -n "$iface" ] || die 5 "no IPv6 link-local address on any interface"
        # A link-local host without a zone takes this one.
        case $url6 in
            *%*\]*) ;;
            *) url6="${url6%%]*}%$iface]${url6#*]}" ;;
        esac ;;
esac
if [ "$mode" = hostname ] && [ -z "$expect" ]; then
    expect=$(hostname)
fi

# Hostnames are ASCII; busybox's tr knows [:upper:] only when built with
# FEATURE_TR_CLASSES.
# shellcheck disable=SC2018,SC2019
lower() {
    printf '%s' "$1" | tr 'A-Z' 'a-z'
}
# Forks only for an upper-case name: the probe's start is on the meter's clock.
want_label=${expect%%.*}
case $want_label in
    *[A-Z]*) want_label=$(lower "$want_label") ;;
esac
if [ "$mode" = hostname ] && [ -z "$want_label" ]; then
    die 2 "no hostname to expect (empty first label of '$expect')"
fi

# busybox sleep takes fractions only when built with FLOAT_DURATION; CirrOS's is.
# Without it, round the intervals up rather than spin or sample faster than asked.
whole_seconds() {
    whole=${1%%.*}
    case $1 in
        *.*[1-9]*) whole=$(( ${whole:-0} + 1 )) ;;
    esac
    echo "$whole"
}
if ! sleep 0.0 2>/dev/null; then
    interval=$(whole_seconds "$interval")
    retry=$(whole_seconds "$retry")
fi

has() {
    command -v "$1" >/dev/null 2>&1
}
if [ "$client" = auto ]; then
    # A bare busybox wget prints its usage under a "BusyBox v..." banner.
    if has wget && case $(wget 2>&1 </dev/null) in *BusyBox*) true ;; *) false ;; esac; then
        client=wget
    elif has curl; then
        client=curl
    else
        client=wget
    fi
fi
has "$client" || die 2 "no $client in PATH ($PATH)"

if [ -f "$pidfile" ]; then
    old=
    read -r old 2>/dev/null < "$pidfile"
    if [ -n "$old" ] && kill -0 "$old" 2>/dev/null; then
        die 3 "already running as PID $old ($pidfile)"
    fi
fi
echo $$ 2>/dev/null > "$pidfile" || die 4 "cannot write pid file $pidfile"

if command -v timeout >/dev/null 2>&1; then
    guard=timeout
else
    guard=
fi

uptime_now() {
    read -r now _ < /proc/uptime
}

nl='
'
cr=$(printf '\r')
blanks=" $(printf '\t')"

# Verdict on an answer ($1): sets `verdict` to "OK http=200" or "FAIL <reason>".
# Parameter expansion only: under load, a fork per request is what costs (50
# guests sharing two cores in the lab; a small VM's one core on a cloud).
judge() {
    answer=$1
    if [ -z "$answer" ]; then
        verdict="FAIL empty"
        return
    fi
    if [ "$mode" = uuid ]; then
        case $answer in
            *"$expect"*) verdict="OK http=200" ;;
            *) verdict="FAIL mismatch" ;;
        esac
        return
    fi
    first=${answer%%"$nl"*}
    first=${first%"$cr"}
    # Leading and trailing blanks only: "vm 1" must not become "vm1".
    first=${first#"${first%%[!"$blanks"]*}"}
    first=${first%"${first##*[!"$blanks"]}"}
    if [ -z "$first" ]; then
        verdict="FAIL empty"
        return
    fi
    first=${first%%.*}
    case $first in
        *[A-Z]*) first=$(lower "$first") ;;
    esac
    if [ "$first" = "$want_label" ]; then verdict="OK http=200"; else verdict="FAIL mismatch"; fi
}

# One request: fetch, judge, append one line. Runs in the background.
# $1: its sequence number; $2: the pause chosen after its launch, for the log;
# $3: its URL; $4: its family, written at the line's end ("" for an IPv4-only probe).
probe_once() {
    seq=$1
    pause=$2
    target=$3
    family=$4
    # Read here, not before the fork: under load the fork alone can take longer
    # than an interval, and <start> must be when the request went out.
    uptime_now
    start=$now
    if [ "$client" = curl ]; then
        # Body and status in one substitution: no scratch file, one fork.
        # -g: brackets are an IPv6 host, not a glob.
        answer=$(curl -gsS -w "$nl%{http_code}" --max-time "$timeout" \
                 --connect-timeout "$timeout" -- "$target" 2>/dev/null)
        rc=$?
        code=${answer##*"$nl"}
        if [ "$rc" -ne 0 ]; then
            verdict="FAIL curl=$rc"
        elif [ "$code" != 200 ]; then
            verdict="FAIL http=$code"
        else
            judge "${answer%"$nl"*}"
        fi
    else
        # Body and error message in one substitution (-q: nothing on stderr unless
        # it failed): no scratch file, one fork besides the client's own. Debian's
        # busybox 1.35 wget segfaults on -T: when `timeout` exists it bounds the
        # request instead (CirrOS has both; -T is only the fallback).
        # The braces also catch the shell's "Terminated" when `timeout` ends one.
        if [ -n "$guard" ]; then
            answer=$({ timeout "$timeout" wget -q -O - -- "$target" </dev/null; } 2>&1)
        else
            answer=$(wget -q -T "$timeout" -O - -- "$target" 2>&1 </dev/null)
        fi
        rc=$?
        case $rc in
            0) judge "$answer" ;;
            124|143) verdict="FAIL wget=timeout" ;;  # coreutils / busybox timeout
            *) verdict="FAIL wget=$rc"
               # busybox: "wget: server returned error: HTTP/1.1 503 Service Unavailable"
               case $answer in
                   *"Connection refused"*) verdict="FAIL wget=refused" ;;
                   # curl's 56: the connection was cut while the answer was awaited.
                   *"Connection reset"*) verdict="FAIL wget=reset" ;;
                   # No route to the address, or no link to send it on.
                   *"unreachable"*|*"No route to host"*) verdict="FAIL wget=unreachable" ;;
                   *HTTP/[0-9]*)
                       code=${answer#*HTTP/}
                       code=${code#* }
                       code=${code%%[!0-9]*}
                       [ -n "$code" ] && verdict="FAIL http=$code" ;;
               esac ;;
        esac
    fi
    uptime_now
    # A busybox wget built without IPv6 says "bad address" for a bracketed host.
    case $verdict$answer in
        "FAIL wget="*"bad address '["*) verdict="FAIL wget=noipv6" ;;
    esac
    printf 'P %s %s %s %s %s%s\n' "$seq" "$start" "$now" "$verdict" "$pause" \
        "${family:+ $family}" >> "$log"
    flag=$failing${family:+.$family}
    case $verdict in
        # Two requests ending together may both see the flag: busybox rm -f then
        # reports the loser's unlink ("can't remove"), which is no error here.
        OK*) [ -e "$flag" ] && rm -f -- "$flag" 2>/dev/null ;;
        *=28|*=timeout) ;;
        *) [ -e "$flag" ] || : > "$flag" ;;
    esac
}

running=1
trap 'running=0' TERM INT HUP
# Exists while the last request to end failed fast (set and cleared by the requests).
failing=$log.failing
# Lines carry their family whenever IPv6 is polled; an IPv4-only log stays as it was.
case $families in
    ipv4) tag4= ;;
    *) tag4=ipv4 ;;
esac

uptime_now
printf '# rmd-probe v1 interval=%s retry=%s timeout=%s mode=%s expect=%s client=%s families=%s iface=%s started=%s\n' \
    "$interval" "$retry" "$timeout" "$mode" "$expect" "$client" "$families" "$iface" "$now" >> "$log" \
    || { rm -f -- "$pidfile"; die 4 "cannot write log $log"; }

seq=0
sleeper=
while [ "$running" = 1 ]; do
    seq=$((seq + 1))
    pause=$interval
    for flag in "$failing" "$failing.ipv4" "$failing.ipv6"; do
        [ -e "$flag" ] && pause=$retry
    done
    case $families in *ipv4*) probe_once "$seq" "$pause" "$url" "$tag4" & ;; esac
    case $families in *ipv6*) probe_once "$seq" "$pause" "$url6" ipv6 & ;; esac
    # `wait` returns at once on a trapped signal, a foreground sleep would not: a
    # stop then costs no part of an interval.
    sleep "$pause" &
    sleeper=$!
    wait "$sleeper"
done
kill "$sleeper" 2>/dev/null
# A second signal must not cut the wait short: in-flight requests end within TIMEOUT.
trap '' TERM INT HUP
wait
rm -f -- "$failing" "$failing.ipv4" "$failing.ipv6"
uptime_now
printf '# stopped %s\n' "$now" >> "$log"
read -r owner 2>/dev/null < "$pidfile"
[ "$owner" = "$$" ] && rm -f -- "$pidfile"
exit 0
