"""The real probe script, run under busybox sh and dash inside lab guests.

Needs root. Every metadata fault shape is injected by a lab live migration while the
probe runs; its log, parsed and analysed, must show the shape's verdict only while
the lab's fault was in place, no answer while it certainly was, and one outage
there. These hold on a loaded machine too (two CPU hogs beside twenty probes);
how close the edge estimates come, which load changes, is the accuracy bench's
figure (python -m tests.bench accuracy; the table in the README).

The lab here uses its own prefix and gateways (198.51.100.129/27, 203.0.113.1/28)
apart from tests/lab/test_fabric.py's and the main lab's (tests/lab/addressing.py), so
they can run at the same time in one root namespace. Guests: 198.51.100.130-.158.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import os
import shutil
import time

import pytest

from rally_metadata_downtime.analysis import analyse
from rally_metadata_downtime.meter import probe_script
from rally_metadata_downtime.probe_log import parse_probe_log
from tests.helpers import wait_until
from tests.lab.fabric import Fabric
from tests.lab.faults import FaultProfile
from tests.lab.guest_os import BUSYBOX

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")

SCRIPT = probe_script()   # the text the meter writes into guests
PREFIX = f"rmdp{os.getpid() % 1000}"
FIXED_GW, FLOATING_GW = "198.51.100.129/27", "203.0.113.1/28"
SHELLS = {"busybox": [BUSYBOX, "sh"], "dash": [shutil.which("dash") or "/usr/bin/dash"]}
INTERVAL, TIMEOUT, RETRY = 0.2, 1.0, 0.05
# case: (fault shape, the probe's -c, guest without curl, outage seconds). Lab guests
# have busybox and curl, so "auto" must take busybox wget. Each case gets its own
# outage length, so a window matched to the wrong guest shows.
CASES = {
    "curl_refused": ("refused", "curl", False, 1.0),
    "curl_timeout": ("timeout", "curl", False, 2.0),
    "curl_http_404": ("http_404", "curl", False, 1.5),
    "curl_http_503": ("http_503", "curl", False, 3.0),
    "curl_wrong_instance": ("wrong_instance", "curl", False, 2.5),
    "wget_refused": ("refused", "auto", False, 1.2),
    "wget_timeout": ("timeout", "auto", False, 2.2),
    "wget_http_404": ("http_404", "auto", False, 1.7),
    "wget_wrong_instance": ("wrong_instance", "auto", False, 2.7),
    "nocurl_http_503": ("http_503", "auto", True, 1.6),
}
TIMEOUT_REASON = {"curl": "curl=28", "wget": "wget=timeout"}
REASONS = {("curl", "refused"): "curl=7", ("wget", "refused"): "wget=refused",
           **{(client, "timeout"): reason for client, reason in TIMEOUT_REASON.items()},
           **{(client, shape): reason for client in ("curl", "wget") for shape, reason in
              (("http_404", "http=404"), ("http_503", "http=503"),
               ("wrong_instance", "mismatch"))}}
# Upper bound on every wait below: nothing here should take more than seconds.
WAIT = 10.0
# ... except metadata answering again after an outage on a loaded machine, where
# twenty probes and two CPU hogs share two cores.
RECOVERY_WAIT = 60.0
# /proc/uptime's 10 ms steps between a request's recorded start/end and the lab's.
CLOCK_SLACK = 0.05
# The lab records a window's start once its fault is in place and its end once the
# fault is gone: the fault may act up to one switch (an `ip` command, slow on a
# loaded machine) before the start, and be gone up to one switch before the end.
SWITCH_SLACK = 0.5


def client_of(case: str) -> str:
    """The client the probe must have used."""
    return "curl" if CASES[case][1] == "curl" else "wget"


def expected_reason(case: str) -> str:
    return REASONS[(client_of(case), CASES[case][0])]


class GuestProbe:
    """One copy of the script running inside a guest, in its own directory."""

    def __init__(self, lab: Fabric, server_id: str, shell: str, name: str,
                 *args: str) -> None:
        self.lab, self.server_id, self.shell = lab, server_id, shell
        self.dir = f"/tmp/rmd-{name}"
        self.log, self.pidfile = f"{self.dir}/probe.log", f"{self.dir}/probe.pid"
        self.stderr = f"/tmp/rmd-{name}.stderr"
        self.args = ["-i", str(INTERVAL), "-t", str(TIMEOUT), *args,
                     "-l", self.log, "-p", self.pidfile]
        self.pid: str | None = None

    def sh(self, command: str, *args: str, timeout: float = WAIT, input: str | None = None):
        return self.lab.guest_exec(self.server_id, ["sh", "-c", command, "sh", *args],
                                   timeout=timeout, input=input)

    def upload(self) -> None:
        done = self.sh('mkdir -p "$1" && cat > "$1/metadata_probe.sh"', self.dir,
                       input=SCRIPT)
        assert done.returncode == 0, done.stderr

    def launch(self):
        """Start it detached: setsid, every std fd redirected, so guest_exec returns."""
        return self.sh('err=$1; shift; setsid "$@" </dev/null >/dev/null 2>"$err" &',
                       self.stderr, *SHELLS[self.shell], f"{self.dir}/metadata_probe.sh",
                       *self.args)

    def run_in_foreground(self):
        return self.sh('"$@"', *SHELLS[self.shell], f"{self.dir}/metadata_probe.sh",
                       *self.args)

    def start(self) -> None:
        self.upload()
        assert self.launch().returncode == 0
        # The header is written after the pid file: then the pid file is this run's.
        wait_until(lambda: "# rmd-probe v1 " in self.log_text(), "the log header")
        self.pid = self.read(self.pidfile).strip()

    def read(self, path: str) -> str:
        return self.sh('cat "$1" 2>/dev/null', path).stdout

    def log_text(self) -> str:
        return self.read(self.log)

    def wait_for_probes(self, ok: int, after: float = 0.0, timeout: float = WAIT,
                        interval: float = 0.05) -> None:
        """Until `ok` requests launched after guest uptime `after` succeeded."""
        def enough() -> bool:
            probes = parse_probe_log(self.log_text()).probes
            return sum(1 for p in probes if p.ok and p.start > after) >= ok
        wait_until(enough, lambda: f"{ok} successes after {after} in {self.server_id} "
                   f"({self.shell}); the log's last lines: "
                   f"{self.log_text().splitlines()[-5:]}", timeout=timeout,
                   interval=interval)

    def stop(self) -> str:
        """TERM it and return the log once it wrote `# stopped`."""
        assert self.sh('kill -TERM "$1"', self.pid).returncode == 0
        def stopped_log() -> str:
            text = self.log_text()
            return text if "# stopped" in text else ""
        return wait_until(stopped_log, "# stopped")

    def files(self) -> list[str]:
        return sorted(self.sh('ls -A "$1"', self.dir).stdout.split())


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    fabric = Fabric(tmp_path_factory.mktemp("probe-lab"), PREFIX, fixed_gateway=FIXED_GW,
                    floating_gateway=FLOATING_GW)
    with fabric:
        yield fabric


def hostname(case: str) -> str:
    return "vm-" + case.replace("_", "-")


@pytest.fixture(scope="module")
def shape_runs(lab):
    """Every case on its own guest, both shells probing it at once, one migration each.

    Two probes in one guest also show that two meters do not collide as long as
    their directories differ.
    Returns {(shell, case): (stopped log text, files left, stderr, window)}.
    """
    for i, (case, (_, _, no_curl, _)) in enumerate(CASES.items()):
        lab.create_guest(f"srv-{case}", f"vm-{case}", hostname(case), f"198.51.100.{130 + i}",
                         None, no_curl=no_curl)
    probes = {(shell, case): GuestProbe(lab, f"srv-{case}", shell, f"{shell}-{case}",
                                        "-e", hostname(case), "-c", CASES[case][1],
                                        "-r", str(RETRY))
              for case in CASES for shell in SHELLS}
    try:
        with concurrent.futures.ThreadPoolExecutor(len(probes)) as pool:
            list(pool.map(GuestProbe.start, probes.values()))
            # A baseline of successes before the fault.
            list(pool.map(lambda p: p.wait_for_probes(ok=3), probes.values()))

        async def migrate_all():
            await asyncio.gather(*(lab.migrate(f"srv-{case}", FaultProfile(
                duration=0.3, network_blackout=0, metadata_outage=outage,
                metadata_shape=shape)) for case, (shape, _, _, outage) in CASES.items()))

        asyncio.run(asyncio.wait_for(migrate_all(), timeout=WAIT))
        # Successes after the fault (a loaded machine answers late: waited for, not
        # slept on), then every request in flight given up (TIMEOUT).
        ends = {f"srv-{case}": w.end_boottime for case in CASES
                for w in lab.injected_windows(f"srv-{case}")}
        # One probe at a time, seldom: reading twenty logs fast would take the CPU
        # the probes need.
        for probe in probes.values():
            probe.wait_for_probes(ok=2, after=ends[probe.server_id],
                                  timeout=RECOVERY_WAIT, interval=0.5)
        time.sleep(TIMEOUT + 0.5)
    finally:
        with concurrent.futures.ThreadPoolExecutor(len(probes)) as pool:
            logs = dict(zip(probes, pool.map(
                lambda p: p.stop() if p.pid else "", probes.values())))
    runs = {}
    for key, probe in probes.items():
        (window,) = lab.injected_windows(probe.server_id)
        runs[key] = (logs[key], probe.files(), probe.read(probe.stderr), window)
    return runs


def _meets(probe, window) -> bool:
    """The request was in flight while the lab's fault may have been in place."""
    return (probe.start <= window.end_boottime + CLOCK_SLACK
            and probe.end >= window.start_boottime - SWITCH_SLACK)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("shell", SHELLS)
def test_the_probe_sees_each_shape_where_the_lab_injected_it(shape_runs, shell, case):
    """What the probe decided, request by request, against the lab's window: how
    close its edge estimates come is the accuracy bench's figure (it varies with
    load); what must hold on any machine is here. A request that took longer than
    its timeout is a timeout, whenever a loaded machine made it so."""
    text, _, stderr, window = shape_runs[(shell, case)]
    log = parse_probe_log(text)
    assert (log.header.mode, log.header.expect) == ("hostname", hostname(case))
    assert log.header.client == client_of(case)
    assert (log.garbage_lines, log.truncated_last_line, log.clock_reset) == (0, False, False)
    assert log.stopped
    reason, timed_out = expected_reason(case), TIMEOUT_REASON[client_of(case)]
    failed = [p for p in log.probes if not p.ok]
    # Only the shape's own verdict, or a timeout.
    assert {p.reason for p in failed} <= {reason, timed_out}, failed
    shaped = [p for p in failed if p.reason == reason]
    assert shaped, failed
    if reason != timed_out:
        # The fault's verdict only while the fault was there ...
        assert all(_meets(p, window) for p in shaped), (shaped, window)
    else:
        # (a blackhole's timeouts must include ones in flight during it)
        assert any(_meets(p, window) for p in shaped), (shaped, window)
    # ... and no answer while it was there: a success runs past its edges.
    inside = [p for p in log.probes if p.ok
              and p.start >= window.start_boottime + CLOCK_SLACK
              and p.end <= window.end_boottime - SWITCH_SLACK]
    assert inside == [], (inside, window)
    # It answered again once the fault was gone (settle 0: a loaded machine may
    # time out again later, in outages of timeouts alone).
    report = analyse(log, recovered_after=window.end_boottime, settle=0.0)
    assert report.recovered
    # The shape's verdicts fell in outages (after the first answer). (How many:
    # one on an idle machine; a success recorded late by a loaded one can split
    # it, and timeouts can add others: the accuracy bench counts that.)
    holding = [o for o in report.outages if any(
        o.first_failed <= p.start <= o.last_failed for p in shaped)]
    assert holding, report.outages
    assert stderr == ""


@pytest.mark.parametrize("case", ["curl_timeout", "wget_timeout"])
@pytest.mark.parametrize("shell", SHELLS)
def test_requests_in_flight_stay_bounded(shape_runs, shell, case):
    # Blackholed requests live TIMEOUT each; one is launched every INTERVAL.
    log = parse_probe_log(shape_runs[(shell, case)][0])
    assert any(p.reason == expected_reason(case) and p.end - p.start >= TIMEOUT - 0.05
               for p in log.probes)
    # Each request is killed at TIMEOUT; a loaded machine records its end later, and
    # starts the children late: the bound counts what the log shows of that.
    overrun = max(0.0, max(p.end - p.start for p in log.probes) - TIMEOUT)
    assert overrun < 1.0, overrun          # the timeout did end them
    bound = math.ceil((TIMEOUT + overrun) / INTERVAL) + 1
    in_flight = max(sum(1 for q in log.probes if q.start <= p.start < q.end)
                    for p in log.probes)
    assert in_flight <= bound, (in_flight, overrun)
    # A blackholed request does not hold the sampling back: the next launch came
    # while it was still in flight.
    by_seq = sorted(log.probes, key=lambda p: p.seq)
    assert any(p.reason == expected_reason(case) and q.start < p.end
               for p, q in zip(by_seq, by_seq[1:]))


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("shell", SHELLS)
def test_fast_failures_are_probed_again_sooner_blackholes_are_not(shape_runs, shell, case):
    # What the probe decided (each record holds the pause it chose after that
    # launch), not the spacing the guest's scheduler delivered: on a loaded machine
    # launches come later than chosen, and a timing bound fails by chance.
    log = parse_probe_log(shape_runs[(shell, case)][0])
    assert log.header.retry == RETRY
    pauses = [p.pause for p in sorted(log.probes, key=lambda p: p.seq)]
    assert set(pauses) <= {INTERVAL, RETRY}, pauses
    fast_failures = [p for p in log.probes
                     if not p.ok and p.reason != TIMEOUT_REASON[client_of(case)]]
    if CASES[case][0] == "timeout":
        # A blackholed request fails only at its timeout: re-probing sooner would
        # only pile up requests in flight.
        assert not fast_failures
        assert set(pauses) == {INTERVAL}, pauses
        return
    # The outage's fast failures made it re-probe sooner ...
    retried = [p for p in log.probes if p.pause == RETRY]
    assert retried, pauses
    # ... only once one of them had ended (it decides before the launch, which reads
    # its start after the fork: a decision on a failure is after that failure's end).
    # When it went back to the interval depends on when the lab's metadata answered
    # again, which a loaded machine delays: not asserted here.
    first_fast_end = min(p.end for p in fast_failures)
    assert all(p.start >= first_fast_end for p in retried), (first_fast_end, retried)


@pytest.mark.parametrize("shell", SHELLS)
def test_stop_leaves_only_the_log_and_removes_the_pid_file(shape_runs, shell):
    for case in CASES:
        text, files, _, _ = shape_runs[(shell, case)]
        assert files == ["metadata_probe.sh", "probe.log"], (case, files)
        stopped = [line for line in text.splitlines() if line.startswith("# stopped ")]
        assert len(stopped) == 1 and text.endswith(stopped[0] + "\n")
        log = parse_probe_log(text)
        assert log.stopped_at >= max(p.end for p in log.probes)


@pytest.fixture(scope="module")
def identity_guest(lab):
    return lab.create_guest("srv-ident", "vm-ident", "vm-ident", "198.51.100.150", None)


IDENTITY_CASES = {
    # name: (probe arguments, whether the answers identify the guest)
    "own-hostname": ((), True),
    "fqdn-upper": (("-e", "VM-IDENT.novalocal"), True),
    "longer-label": (("-e", "vm-identx"), False),
    "shorter-label": (("-e", "vm-iden"), False),
    "uuid-own": (("-m", "uuid", "-e", "srv-ident",
                  "-u", "http://169.254.169.254/openstack/latest/meta_data.json"), True),
    "uuid-other": (("-m", "uuid", "-e", "srv-other",
                    "-u", "http://169.254.169.254/openstack/latest/meta_data.json"), False),
}


@pytest.mark.parametrize("shell", SHELLS)
def test_identity_check(lab, identity_guest, shell):
    probes = {name: GuestProbe(lab, "srv-ident", shell, f"id-{shell}-{name}", *args)
              for name, (args, _) in IDENTITY_CASES.items()}
    with concurrent.futures.ThreadPoolExecutor(len(probes)) as pool:
        list(pool.map(GuestProbe.start, probes.values()))
        time.sleep(4 * INTERVAL)
        logs = dict(zip(probes, pool.map(GuestProbe.stop, probes.values())))
    for name, (_, identifies) in IDENTITY_CASES.items():
        log = parse_probe_log(logs[name])
        assert log.probes, name
        expected = {"OK http=200"} if identifies else {"FAIL mismatch"}
        assert {f"{'OK' if p.ok else 'FAIL'} {p.reason}" for p in log.probes} == expected, \
            (name, logs[name])
    assert parse_probe_log(logs["own-hostname"]).header.expect == "vm-ident"


@pytest.mark.parametrize("shell", SHELLS)
def test_stop_does_not_wait_for_the_next_interval(lab, identity_guest, shell):
    # With a foreground `sleep 60` the TERM would be handled only after it:
    # stop() (WAIT = 10 s) would time out.
    probe = GuestProbe(lab, "srv-ident", shell, f"long-{shell}", "-i", "60")
    probe.start()
    probe.wait_for_probes(ok=1)
    log = parse_probe_log(probe.stop())
    assert log.stopped and len(log.probes) == 1
    assert probe.files() == ["metadata_probe.sh", "probe.log"]
    assert probe.sh('ps -o args | grep -c "[s]leep 60"').stdout.strip() == "0"


@pytest.mark.parametrize("shell", SHELLS)
def test_second_start_is_refused_while_the_first_runs(lab, identity_guest, shell):
    first = GuestProbe(lab, "srv-ident", shell, f"twice-{shell}")
    first.start()
    try:
        second = first.run_in_foreground()
        assert second.returncode != 0
        assert "already running" in second.stderr
        assert first.read(first.pidfile).strip() == first.pid
    finally:
        text = first.stop()
    assert "# stopped" in text
    # A stale pid file (its process gone) does not block a new start.
    first.sh('echo 99999 > "$1" && rm "$2"', first.pidfile, first.log)
    again = GuestProbe(lab, "srv-ident", shell, f"twice-{shell}")
    again.start()
    assert again.pid != "99999"
    again.stop()


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("args, message", [
    (("-i", "0"), "bad interval"),
    (("-i", "abc"), "bad interval"),
    (("-t", "1s"), "bad timeout"),
    (("-m", "uuid"), "uuid mode needs"),
    (("-m", "json"), "bad mode"),
    (("-e", "a;b"), "bad expect"),
])
def test_bad_arguments_are_refused_before_anything_runs(lab, identity_guest, shell, args,
                                                         message):
    probe = GuestProbe(lab, "srv-ident", shell, f"bad-{shell}", *args)
    probe.upload()
    done = probe.run_in_foreground()
    assert done.returncode == 2 and message in done.stderr, done
    assert probe.files() == ["metadata_probe.sh"]
