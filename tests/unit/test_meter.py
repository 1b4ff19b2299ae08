"""MetadataMeter's shell commands run for real in a local shell (no SSH, no root).

The probe polls a closed loopback port, so it only ever fails; what is checked here
is the meter's own work: one private directory per probe, a second probe refused,
clear errors naming the cause, and nothing left after stop or cleanup.
"""

from __future__ import annotations

import dataclasses
import io
import os
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from rally import exceptions as rally_exceptions

from rally_metadata_downtime import meter as meter_module
from rally_metadata_downtime import probe_config as probe_config_module
from rally_metadata_downtime.meter import GuestClock, MetadataMeter, MeterError
from rally_metadata_downtime.probe_config import ProbeConfig
from rally_metadata_downtime.probe_log import parse_probe_log
from tests.helpers import logged_probes, wait_until
from tests.unit.plugin_data import probe_text

CLOSED_PORT_URL = "http://127.0.0.1:9/latest/meta-data/hostname"


class LocalShell:
    """Stands in for rally.utils.sshutils.SSH: execute() runs `sh -c` here."""

    def __init__(self, shell: str, fail_next: int = 0) -> None:
        self.shell, self.fail_next = shell, fail_next
        # Commands that run and then lose their answer, as in an SSH session that
        # drops after the guest got the command.
        self.lose_answer_of_next = 0
        self.commands: list[str] = []
        self.closed = 0

    def execute(self, command, stdin=None, timeout=None):
        if self.fail_next:
            self.fail_next -= 1
            raise rally_exceptions.SSHError("Socket error.")
        self.commands.append(command)
        proc = subprocess.run([self.shell, "-c", command], capture_output=True, text=True,
                              input=stdin.read() if isinstance(stdin, io.StringIO) else None,
                              stdin=None if stdin else subprocess.DEVNULL, timeout=timeout)
        if self.lose_answer_of_next:
            self.lose_answer_of_next -= 1
            raise rally_exceptions.SSHError("Socket error.")
        return proc.returncode, proc.stdout, proc.stderr

    def close(self):
        self.closed += 1


SHELLS = [s for s in ("dash", "bash") if shutil.which(s)]


@pytest.fixture(params=SHELLS)
def shell(request):
    return request.param


def meter_in(workdir, shell, **config):
    connections = []

    def connect():
        connections.append(LocalShell(shell))
        return connections[-1]
    meter = MetadataMeter(connect, ProbeConfig(url=CLOSED_PORT_URL, interval=0.1,
                                               timeout=0.5, workdir=str(workdir),
                                               **config))
    return meter, connections


def probe_dirs(workdir):
    return sorted(p.name for p in workdir.iterdir())


def test_start_runs_the_probe_in_its_own_directory_and_stop_removes_it(tmp_path, shell):
    meter, connections = meter_in(tmp_path, shell)
    clock = meter.start()
    try:
        [directory] = probe_dirs(tmp_path)
        assert directory.startswith("rmd-probe.")
        assert meter.directory == str(tmp_path / directory)
        assert meter.is_running()
        # The guest clock is this machine's: uptime + offset ~= now.
        uptime = float(open("/proc/uptime").read().split()[0])
        assert abs(clock.to_host_time(uptime) - time.time()) < 1 + clock.error
        wait_until(lambda: logged_probes(meter) >= 3, meter.fetch_log, interval=0.1)
    finally:
        log = parse_probe_log(meter.stop())
    assert log.stopped and not any(p.ok for p in log.probes)
    assert {p.reason for p in log.probes} <= {"curl=7", "wget=1", "wget=timeout"}
    assert probe_dirs(tmp_path) == []
    assert len(connections) == 1  # every step on one connection


def test_start_is_one_round_trip(tmp_path, shell):
    meter, connections = meter_in(tmp_path, shell)
    meter.start()
    try:
        # refuse a second probe, read the clock, make the directory, write the
        # probe, launch, confirm: all in one command
        [command] = connections[0].commands
        # static text from guest/meter_start.sh, run with quoted arguments
        script = meter_module.guest_script("meter_start.sh")
        assert command.startswith(f"sh -c {shlex.quote(script)} sh ")
        assert "cat /proc/uptime\nd=$(mktemp -d " in script
        assert shlex.quote(meter_module.probe_script()) in command
        written = (tmp_path / meter.directory / "metadata_probe.sh").read_text()
        assert written == meter_module.probe_script()
        assert "# stopped" in written     # the probe's own text, not its comments
        assert not any(line.lstrip().startswith("#") for line in written.splitlines())
    finally:
        meter.cleanup()


def test_reading_the_log_keeps_the_closest_clock_reading(tmp_path, shell):
    meter, _ = meter_in(tmp_path, shell)
    started = meter.start()
    try:
        meter.clock = GuestClock(started.offset + 5, error=10.0)   # a poor reading
        assert "# rmd-probe v1" in meter.fetch_log(read_clock=True)
        closer = meter.clock
        assert closer.error < 10.0
        uptime = float(open("/proc/uptime").read().split()[0])
        assert abs(closer.to_host_time(uptime) - time.time()) < 1 + closer.error
        exact = meter.clock = GuestClock(closer.offset, error=0.0)
        meter.fetch_log(read_clock=True)
        assert meter.clock is exact                                 # not replaced
    finally:
        meter.cleanup()


def test_the_start_command_fits_dropbears_command_limit():
    # CirrOS's sshd (dropbear) refuses commands over MAX_CMD_LEN = 9000 bytes.
    limit = probe_config_module.MAX_LENGTH
    longest = ProbeConfig(url="http://169.254.169.254/" + "a" * (limit["url"] - 23),
                          expect="x" * limit["expect"], workdir="/" + "w" * (limit["workdir"] - 1))
    meter = MetadataMeter(lambda: None, longest)
    assert len(meter._start_command().encode()) < 8192
    # Both families: the URL's path travels twice, and the zone's interface once.
    both = dataclasses.replace(longest, families=("ipv4", "ipv6"),
                               ipv6_interface="i" * 15)
    assert len(MetadataMeter(lambda: None, both)._start_command().encode()) < 8800


def test_a_second_probe_in_the_same_guest_is_refused(tmp_path, shell):
    first, _ = meter_in(tmp_path, shell)
    second, _ = meter_in(tmp_path, shell)
    first.start()
    try:
        with pytest.raises(MeterError, match="refused to start a second probe in this "
                                             "guest: a probe already runs in "):
            second.start()
        assert second.directory is None
        assert probe_dirs(tmp_path) == [os.path.basename(first.directory)]
    finally:
        first.cleanup()
    second.start()   # the first is gone: now it may
    second.cleanup()
    assert probe_dirs(tmp_path) == []


def test_an_unwritable_workdir_is_named(tmp_path, shell):
    meter, _ = meter_in(tmp_path / "missing", shell)
    with pytest.raises(MeterError, match=f"workdir '{tmp_path}/missing': cannot create "
                                         "a private directory in the guest"):
        meter.start()
    meter.cleanup()
    assert meter.directory is None


def test_a_probe_that_cannot_start_is_reported_with_its_error_and_removed(tmp_path,
                                                                         shell, monkeypatch):
    monkeypatch.setattr("rally_metadata_downtime.meter.probe_script",
                        lambda: "echo 'probe: cannot run here' >&2; exit 4\n")
    tmp_path = tmp_path / "guest"
    tmp_path.mkdir()
    meter, _ = meter_in(tmp_path, shell)
    started = time.monotonic()
    with pytest.raises(MeterError, match="the probe did not start in .*rmd-probe.*: "
                                         r"probe: cannot run here \(the probe exited "
                                         r"with status 4\)"):
        meter.start()
    # noticed when it exited, not after the launch's 5 s
    assert time.monotonic() - started < 2
    meter.cleanup()
    assert probe_dirs(tmp_path) == []


# Stands in for the probe: a pid file, a log, and a "request" that keeps writing
# into the directory until it is killed, as in-flight requests do when they end.
BUSY_PROBE = """log=$2 pidfile=$4
echo $$ > "$pidfile"
echo '# rmd-probe v1 interval=0.1 timeout=1 mode=hostname started=1' >> "$log"
( while :; do : > "$log.failing"; echo x >> "$log"; done ) &
while :; do sleep 1; done
"""


def group_runs(pgid: int) -> bool:
    """A process of group `pgid` runs (zombies, left for init to reap, do not)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(") ", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] not in "ZX":
            return True
    return False


@pytest.mark.parametrize("stop", ["cleanup", "stop"])
def test_the_probe_and_its_requests_are_gone_before_the_directory_is_removed(
        tmp_path, shell, monkeypatch, stop):
    monkeypatch.setattr("rally_metadata_downtime.meter.probe_script", lambda: BUSY_PROBE)
    meter, _ = meter_in(tmp_path, shell)
    meter.start()
    pid = int(Path(meter.directory, "probe.pid").read_text())
    time.sleep(0.2)
    if stop == "cleanup":
        meter.cleanup()
    else:     # the fake ignores TERM's clean stop: after the grace it is killed
        meter.config = ProbeConfig(url=CLOSED_PORT_URL, timeout=0.1, workdir=str(tmp_path))
        assert "# rmd-probe v1" in meter.stop()
    assert not group_runs(pid)
    assert probe_dirs(tmp_path) == []
    assert meter.directory is None


def test_a_dropped_connection_is_reopened(tmp_path, shell):
    meter, connections = meter_in(tmp_path, shell)
    meter.start()
    try:
        connections[0].fail_next = 1
        assert "# rmd-probe v1" in meter.fetch_log()
        assert len(connections) == 2 and connections[0].closed == 1
    finally:
        meter.cleanup()
    assert probe_dirs(tmp_path) == []


@pytest.mark.parametrize("lost", [1, 2], ids=["read", "remove"])
def test_a_stop_whose_answer_was_lost_is_repeated_without_losing_the_log(tmp_path, shell,
                                                                       lost):
    """CI saw 'the probe log ... is gone' when one round trip read and removed the
    log and the session dropped before its answer came back; the retry found
    nothing. Every step of stop() must survive being run twice."""
    meter, connections = meter_in(tmp_path, shell)
    meter.start()
    directory = meter.directory
    guest, real_execute = connections[0], connections[0].execute

    def lose_one_answer(command, **kwargs):
        # commands so far: start, then stop's read, then its removal
        guest.lose_answer_of_next = int(len(guest.commands) == lost)
        return real_execute(command, **kwargs)
    guest.execute = lose_one_answer
    assert "# rmd-probe v1" in meter.stop()
    assert len(connections) == 2          # one reconnect, after the lost answer
    assert probe_dirs(tmp_path) == [] and meter.directory is None
    assert not Path(directory).exists()


def test_values_reaching_the_shell_stay_inert(tmp_path, shell):
    marker = tmp_path / "pwned"
    meter, connections = meter_in(tmp_path, shell, expect="x")
    meter.config = ProbeConfig(url=CLOSED_PORT_URL + "?a=1#b", interval=0.1, timeout=0.5,
                               workdir=str(tmp_path), expect="x")
    meter.start()
    meter.cleanup()
    assert not marker.exists()
    with pytest.raises(ValueError, match="url"):
        ProbeConfig(url=f"http://x/$(touch {marker})")
    with pytest.raises(ValueError, match="workdir"):
        ProbeConfig(workdir=f"/tmp/x;touch {marker}")


def test_guest_clock_is_the_midpoint_of_the_round_trip():
    clock = meter_module._guest_clock("1000.50 3.00", before=5000.0, after=5000.4)
    assert clock.offset == pytest.approx(5000.2 - 1000.5)
    assert clock.error == pytest.approx(0.2)


@pytest.mark.parametrize("line", ["", "up", "x 1"])
def test_unreadable_uptime_is_a_meter_error(line):
    with pytest.raises(MeterError, match="reading /proc/uptime gave"):
        meter_module._guest_clock(line, before=0.0, after=0.1)


# -- the meter's own edges, against a guest that answers from a script --------------

STARTED = (0, "123.45 6.78\n/tmp/rmd-probe.abc123", "")


class ScriptedGuest:
    """Stands in for rally.utils.sshutils.SSH: each command gets the next answer."""

    def __init__(self, *answers) -> None:
        self.answers = list(answers)
        self.commands: list[str] = []
        self.closed = 0

    def execute(self, command, stdin=None, timeout=None):
        self.commands.append(command)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def close(self):
        self.closed += 1


def scripted_meter(*answers, **options):
    guest = ScriptedGuest(*answers)
    return MetadataMeter(lambda: guest, ProbeConfig(), **options), guest


def test_guest_clock_maps_uptime_to_host_time_and_back():
    clock = GuestClock(offset=4000.0, error=0.1)
    assert clock.to_host_time(12.5) == 4012.5
    assert clock.to_guest_uptime(clock.to_host_time(12.5)) == 12.5


def test_the_probe_ships_in_the_package():
    assert meter_module.probe_script_resource().read_text().startswith("#!/bin/sh\n")


def test_nothing_is_sent_before_start():
    meter = MetadataMeter(lambda: pytest.fail("connected before start()"), ProbeConfig())
    assert not meter.is_running()
    for call in (meter.fetch_log, meter.stop, lambda: meter.wait_until_answering(1)):
        with pytest.raises(MeterError, match=r"not running: call start\(\) first"):
            call()
    with meter:    # leaving with no probe started sends nothing either
        pass


def test_a_second_start_is_refused_before_anything_is_sent():
    meter, guest = scripted_meter(STARTED)
    meter.start()
    with pytest.raises(MeterError, match="already runs in /tmp/rmd-probe.abc123"):
        meter.start()
    assert len(guest.commands) == 1


def test_a_log_gone_from_the_guest_is_said_so_when_read_and_when_stopped():
    meter, _ = scripted_meter(STARTED, (1, "", "cat: probe.log: No such file\n"),
                              (1, "", "cat: probe.log: No such file\n"))
    meter.start()
    with pytest.raises(MeterError, match=r"/tmp/rmd-probe.abc123 is gone \(guest rebooted"):
        meter.fetch_log()
    with pytest.raises(MeterError, match="is gone .*: cat: probe.log: No such file$"):
        meter.stop()
    assert meter.directory == "/tmp/rmd-probe.abc123"   # cleanup() still removes it


def test_a_cleanup_that_fails_in_the_guest_is_logged_not_raised(caplog):
    meter, guest = scripted_meter(STARTED, (2, "", "could not remove it\n"))
    with meter:
        meter.start()
    assert "could not remove the probe from the guest" in caplog.text
    assert "could not remove it" in caplog.text
    assert meter.directory == "/tmp/rmd-probe.abc123" and guest.closed == 1


def test_waiting_for_an_answer_returns_once_one_probe_succeeded_and_keeps_the_clock():
    meter, _ = scripted_meter(STARTED, (0, "100.00 1.00\n" + probe_text("curl=7"), ""),
                              (0, "100.50 1.00\n" + probe_text("curl=7", "OK"), ""))
    meter.start()
    assert meter.wait_until_answering(timeout=10, poll=0) >= 0
    assert meter.clock is not None and meter.clock.error < 1


@pytest.mark.parametrize(("log", "reasons"), [
    (probe_text("curl=7", "http=503"), "curl=7, http=503"),
    ("not a probe log", "none"),
])
def test_metadata_that_never_answers_names_the_last_reasons(log, reasons):
    meter, _ = scripted_meter(STARTED, (0, "100.00 1.00\n" + log, ""))
    meter.start()
    with pytest.raises(MeterError, match=rf"never answered from this VM within 0 s "
                                         rf"\(http://169.254.169.254/.*\); "
                                         rf"last reasons: {reasons}$"):
        meter.wait_until_answering(timeout=0, poll=0)


def test_ssh_that_keeps_failing_is_a_meter_error_naming_the_last_error():
    class Broken(ScriptedGuest):
        def close(self):
            raise EOFError("the transport is gone")   # closing a dead connection may fail
    guest = Broken(rally_exceptions.SSHError("Socket error."))
    meter = MetadataMeter(lambda: guest, ProbeConfig(), retries=0)
    with pytest.raises(MeterError, match="failed 1 times; last error: Socket error."):
        meter.start()
    assert meter.directory is None
