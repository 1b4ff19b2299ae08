"""The in-guest probe's life over SSH: upload, start, read, stop, clean up (I/O)."""

from __future__ import annotations

import dataclasses
import functools
import importlib.resources
import importlib.resources.abc
import logging
import math
import re
import shlex
import socket
import time
import typing
from collections.abc import Callable

import paramiko
from rally import exceptions as rally_exceptions

from rally_metadata_downtime.probe_config import ProbeConfig
from rally_metadata_downtime.probe_log import ProbeLogError, parse_probe_log

LOG = logging.getLogger(__name__)

SCRIPT_NAME = "metadata_probe.sh"
DIRECTORY_PREFIX = "rmd-probe."
# guest/meter_start.sh's exit statuses.
_EXIT_RUNNING = 10
_EXIT_NO_DIRECTORY = 11
# A clean stop waits this much longer than the probe's timeout for it to exit.
_STOP_MARGIN = 3.0
# What mktemp may print: a directory name we then trust in every command.
_MKTEMP_DIRECTORY = re.compile(rf"/[A-Za-z0-9._/-]*/{re.escape(DIRECTORY_PREFIX)}[A-Za-z0-9]+")
T = typing.TypeVar("T")
_CONNECTION_ERRORS = (rally_exceptions.SSHError, rally_exceptions.SSHTimeout,
                      paramiko.SSHException, socket.error, EOFError)


class MeterError(RuntimeError):
    """The probe could not be started, read or stopped in the guest."""


@dataclasses.dataclass(frozen=True)
class GuestClock:
    """Maps guest uptime to the Rally host's clock: host ~= uptime + offset (+-error)."""

    offset: float
    error: float

    def to_host_time(self, uptime: float) -> float:
        return uptime + self.offset

    def to_guest_uptime(self, host_time: float) -> float:
        return host_time - self.offset


def guest_script_resource(name: str) -> importlib.resources.abc.Traversable:
    """A guest-side shell program (guest/<name>), as shipped in the package."""
    return importlib.resources.files("rally_metadata_downtime") / "guest" / name


def probe_script_resource() -> importlib.resources.abc.Traversable:
    """The probe's source, as shipped in the package."""
    return guest_script_resource(SCRIPT_NAME)


@functools.cache
def guest_script(name: str) -> str:
    """A guest-side program as sent to the guest: its source without comment lines,
    blank lines and indentation, so that the start command, which carries the probe,
    fits in dropbear's 9000-byte command limit (none of these scripts has a
    multi-line string or here-document in which that would change data)."""
    lines = (line.strip() for line in guest_script_resource(name).read_text().splitlines())
    return "\n".join(line for line in lines if line and not line.startswith("#")) + "\n"


def probe_script() -> str:
    """The probe as written into the guest."""
    return guest_script(SCRIPT_NAME)


def guest_command(name: str, *args: str) -> str:
    """The command that runs guest/<name> with `args`: static shell text, given as
    `sh -c SCRIPT sh ARG...`; the only shell text Python makes is quoting."""
    return " ".join(["sh", "-c", shlex.quote(guest_script(name)), "sh",
                     *(shlex.quote(arg) for arg in args)])


def _guest_clock(uptime_line: str, before: float, after: float) -> GuestClock:
    """The guest clock from /proc/uptime read between host times before and after."""
    try:
        uptime = float(uptime_line.split()[0])
    except (IndexError, ValueError):
        raise MeterError(f"reading /proc/uptime gave {uptime_line!r}") from None
    return GuestClock(offset=(before + after) / 2 - uptime, error=(after - before) / 2)


class MetadataMeter:
    """Runs the metadata probe in one guest.

    `connect` returns a new rally.utils.sshutils.SSH to the guest; it is called
    again whenever the connection drops, so the meter survives a migration that
    breaks TCP sessions. Every value that reaches the guest's shell comes from a
    validated ProbeConfig and is quoted with shlex.quote.
    """

    def __init__(self, connect: Callable[[], object], config: ProbeConfig,
                 retries: int = 4, command_timeout: float = 60,
                 connection: object | None = None) -> None:
        self.config = config
        self.directory: str | None = None
        self.clock: GuestClock | None = None
        self._connect = connect
        # An open connection to start with (the one that waited for SSH): a key
        # exchange per VM fewer, which is what start() costs on a loaded host.
        self._ssh = connection
        self._retries = retries
        self._command_timeout = command_timeout

    # -- paths and commands: static scripts from guest/, values quoted ---------------
    def _path(self, name: str) -> str:
        return f"{self.directory}/{name}"

    def _probe_options(self) -> list[str]:
        """The probe's options; guest/meter_start.sh adds its log and pid file."""
        c = self.config
        options = ["-u", c.url, "-i", f"{c.interval:g}", "-r", f"{c.retry_interval:g}",
                   "-t", f"{c.timeout:g}", "-m", c.mode]
        if c.expect:
            options += ["-e", c.expect]
        if c.families != ("ipv4",):
            options += ["-f", ",".join(f for f in ("ipv4", "ipv6") if f in c.families),
                        "-U", c.url6]
        return options

    def _start_args(self) -> list[str]:
        """guest/meter_start.sh's arguments: the probe's text travels among them."""
        return [self.config.workdir, DIRECTORY_PREFIX, probe_script(),
                *self._probe_options()]

    def _start_command(self) -> str:
        return guest_command("meter_start.sh", *self._start_args())

    def _stop_args(self, grace: float, print_log: bool) -> list[str]:
        """guest/meter_stop.sh's arguments: the wait for a clean stop in tenths."""
        return [self.directory, str(math.ceil(grace * 10)), *(["log"] if print_log else [])]

    # -- SSH with reconnect --------------------------------------------------------
    def _run(self, name: str, *args: str) -> tuple[int, str, str]:
        """Run guest/<name> with `args` in the guest: (exit status, stdout, stderr)."""
        LOG.debug("guest: %s %s", name, " ".join(
            shlex.quote(a) if len(a) < 200 else f"<{len(a)} characters>" for a in args))
        command = guest_command(name, *args)
        return self._with_connection(
            lambda ssh: ssh.execute(command, timeout=self._command_timeout))

    def _with_connection(self, call: Callable[[object], T]) -> T:
        """call(ssh), on a new connection when the last one dropped."""
        for attempt in range(self._retries + 1):
            try:
                if self._ssh is None:
                    self._ssh = self._connect()
                return call(self._ssh)
            except _CONNECTION_ERRORS as e:
                self._drop_connection()
                if attempt == self._retries:
                    raise MeterError(f"SSH to the guest failed {attempt + 1} times; "
                                     f"last error: {e}") from e
                LOG.info("SSH to the guest dropped (%s); reconnecting", e)
                time.sleep(min(0.5 * 2 ** attempt, 4))
        raise AssertionError("unreachable")

    def _drop_connection(self) -> None:
        ssh, self._ssh = self._ssh, None
        if ssh is not None:
            try:
                ssh.close()
            except Exception:  # a broken transport may fail to close; it is gone anyway
                LOG.debug("closing a dropped SSH connection failed", exc_info=True)

    def close(self) -> None:
        """Close the SSH connection (the probe keeps running in the guest)."""
        self._drop_connection()

    # -- the probe's life ----------------------------------------------------------
    def start(self) -> GuestClock:
        """Write and start the probe in a private directory, in one SSH round trip;
        read the guest clock on the way.

        That reading's error is half the whole round trip, launch included;
        wait_until_answering() reads the clock again with every poll and keeps
        the closest reading.
        """
        if self.directory is not None:
            raise MeterError(f"the probe already runs in {self.directory}")
        before = time.time()
        status, out, err = self._run("meter_start.sh", *self._start_args())
        after = time.time()
        uptime, _, directory = out.strip().partition("\n")
        if status == _EXIT_RUNNING:
            raise MeterError(f"refused to start a second probe in this guest: {err.strip()}")
        if status == _EXIT_NO_DIRECTORY or not _MKTEMP_DIRECTORY.fullmatch(directory):
            raise MeterError(f"workdir {self.config.workdir!r}: cannot create a private "
                             f"directory in the guest: {err.strip() or directory}")
        self.directory = directory   # from here on cleanup() removes it
        # The probe's own message (its exit status 5 is folded into meter_start's).
        if status != 0 and "no IPv6 link-local address" in err:
            raise MeterError(f"metadata_families asks for ipv6 and the guest has no "
                             f"IPv6 link-local address on any interface: "
                             f"{' '.join(err.split())}")
        if status != 0:
            raise MeterError(f"the probe did not start in {directory}: "
                             f"{' '.join(err.split()) or 'no error output'}")
        self.clock = _guest_clock(uptime, before, after)
        return self.clock

    def is_running(self) -> bool:
        if self.directory is None:
            return False
        status, _, _ = self._run("meter_running.sh", self._path("probe.pid"))
        return status == 0

    def fetch_log(self, read_clock: bool = False) -> str:
        """The probe's log as it is now (the probe may still be writing it).

        With read_clock, the guest clock is read in the same round trip and kept
        when it is closer than the one the meter has.
        """
        self._require_started()
        before = time.time()
        status, out, err = self._run("meter_log.sh", self._path("probe.log"),
                                     *(["clock"] if read_clock else []))
        after = time.time()
        if status != 0:
            raise self._log_gone(err)
        if not read_clock:
            return out
        uptime, _, log = out.partition("\n")
        clock = _guest_clock(uptime, before, after)
        if self.clock is None or clock.error < self.clock.error:
            self.clock = clock
        return log

    def wait_until_answering(self, timeout: float, poll: float = 0.5) -> float:
        """Wait until one probe succeeded; return seconds waited. Every poll also
        reads the guest clock (see start())."""
        self._require_started()
        started = time.monotonic()
        reasons: dict[str, list[str]] = {}
        while True:
            try:
                probes = parse_probe_log(self.fetch_log(read_clock=True)).probes
            except ProbeLogError:
                probes = ()
            silent = [f for f in self.config.families
                      if not any(p.ok for p in probes if p.family == f)]
            if not silent:
                return time.monotonic() - started
            for family in silent:
                reasons[family] = [p.reason for p in probes
                                   if p.family == family][-5:] or reasons.get(family, [])
            if time.monotonic() - started >= timeout:
                raise MeterError(self._never_answered(timeout, silent, reasons))
            time.sleep(poll)

    def _never_answered(self, timeout: float, silent: list[str],
                        reasons: dict[str, list[str]]) -> str:
        parts = []
        for family in silent:
            url = self.config.url if family == "ipv4" else self.config.url6
            said = reasons.get(family, [])
            part = f"({url}); last reasons: {', '.join(said) or 'none'}"
            if self.config.families != ("ipv4",):
                part = f"over {family} {part}"
            if "wget=noipv6" in said:
                part += (" - this guest's wget cannot fetch an IPv6 URL (a busybox "
                         "built without IPv6): install curl in the image")
            parts.append(part)
        return (f"metadata never answered from this VM within {timeout:g} s "
                + "; ".join(parts))

    def stop(self) -> str:
        """Stop the probe, return its final log, and remove its directory.

        Two round trips (TERM, wait for the requests in flight, read; then remove),
        each safe to repeat: a command whose answer a dropped SSH session lost is
        sent again, and a log removed in the same command would be lost with it.
        """
        self._require_started()
        status, out, err = self._run(
            "meter_stop.sh", *self._stop_args(grace=self.config.timeout + _STOP_MARGIN,
                                              print_log=True))
        if status != 0:
            raise self._log_gone(err)
        self._remove()
        return out

    def _remove(self) -> None:
        """Kill what is left of the probe and remove its directory (idempotent)."""
        status, _, err = self._run("meter_stop.sh", *self._stop_args(grace=0,
                                                                     print_log=False))
        if status != 0:
            raise MeterError(f"could not remove {self.directory} from the guest: "
                             f"{err.strip() or f'exit status {status}'}")
        self.directory = None

    def cleanup(self) -> None:
        """Kill the probe and its requests in flight, wait until they are gone
        (bounded), and remove its files, whatever state things are in."""
        if self.directory is not None:
            try:
                self._remove()
            except MeterError:
                LOG.warning("could not remove the probe from the guest (%s)",
                            self.directory, exc_info=True)
        self.close()

    def _log_gone(self, err: str) -> MeterError:
        return MeterError(f"the probe log in {self.directory} is gone (guest rebooted "
                          f"or /tmp cleared?): {err.strip()}")

    def _require_started(self) -> None:
        if self.directory is None:
            raise MeterError("the probe is not running: call start() first")

    def __enter__(self) -> MetadataMeter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cleanup()
