"""Ping a VM from the Rally host during a migration (I/O: one child process)."""

from __future__ import annotations

import ipaddress
import signal
import subprocess

from rally_metadata_downtime.ping_log import NetworkDowntime, parse_ping_output


class PingMeter:
    """`ping` from the Rally host, like Tempest's NetDowntimeMeter, with timestamps.

    The host-side view matters: a guest paused for the final copy of a migration
    does not see its own clock stop, but its pings go unanswered.
    """

    def __init__(self, address: str, interval: float = 0.2, timeout: float = 1.0,
                 max_duration: int = 900) -> None:
        self.address = str(ipaddress.ip_address(address))
        if not 0.002 <= interval <= 60:
            raise ValueError(f"ping_interval: must be between 0.002 and 60 s, got {interval}")
        self.interval = interval
        self.timeout = timeout
        self.max_duration = max_duration
        self._proc: subprocess.Popen | None = None

    def start(self) -> None:
        self._proc = subprocess.Popen(
            ["ping", "-D", "-O", "-n", "-i", f"{self.interval:g}",
             "-W", f"{self.timeout:g}", "-w", str(self.max_duration), self.address],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def stop(self) -> NetworkDowntime:
        """Interrupt ping (it then prints its summary) and measure."""
        proc, self._proc = self._proc, None
        if proc is None:
            raise RuntimeError("PingMeter.stop() before start()")
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        return parse_ping_output(out, self.interval)

    def kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def __enter__(self) -> PingMeter:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.kill()
