"""The real probe over IPv6 link-local metadata (metadata_families), in two network
namespaces of its own: a guest, and a metadata server on fe80::a9fe:a9fe across a
veth pair, as Neutron serves it on the guest's link. Needs root.

Both families in one probe run, each client (busybox wget, curl) and shell (busybox
sh, dash); an IPv6-only outage shows in the ipv6 lines and not the ipv4 ones; the
interface is found in the guest; a guest without IPv6 is refused at the start.
Traffic stays inside the two namespaces (link-local and 169.254.169.254 only).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest

from rally_metadata_downtime.analysis import analyse
from rally_metadata_downtime.meter import probe_script
from rally_metadata_downtime.probe_log import parse_probe_log
from tests.helpers import wait_until
from tests.lab.guest_os import BUSYBOX

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="namespaces need root")

TAG = f"rmd6{os.getpid() % 10000}"
GUEST, SERVER = f"{TAG}g", f"{TAG}s"
GUEST_IF, SERVER_IF = f"{TAG}gi", f"{TAG}si"
SHELLS = {"busybox": [BUSYBOX, "sh"], "dash": [shutil.which("dash") or "/usr/bin/dash"]}
INTERVAL, RETRY, TIMEOUT = 0.1, 0.05, 1.0
OUTAGE = 1.5
WAIT = 10.0
# Answers `vm-6` to any path on both families, 503 while the flag file exists.
SERVER_CODE = """
import http.server, os, socket, sys
flag = sys.argv[1]
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        down = os.path.exists(flag)
        body = b"" if down else b"vm-6\\n"
        self.send_response(503 if down else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
class Server(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6
    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()
Server(("::", 80), Handler).serve_forever()
"""


def run(*command: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, check=check, capture_output=True, text=True,
                          timeout=WAIT, **kwargs)


def in_guest(*command: str, **kwargs) -> subprocess.CompletedProcess:
    return run("ip", "netns", "exec", GUEST, *command, **kwargs)


def uptime() -> float:
    with open("/proc/uptime") as f:
        return float(f.read().split()[0])


@pytest.fixture(scope="module")
def link(tmp_path_factory):
    """The two namespaces, the server running; yields (work dir, 503 flag)."""
    work = tmp_path_factory.mktemp("probe-ipv6")
    flag = work / "down"
    server = None
    try:
        for ns in (GUEST, SERVER):
            run("ip", "netns", "add", ns)
            run("ip", "-n", ns, "link", "set", "lo", "up")
        run("ip", "link", "add", GUEST_IF, "netns", GUEST, "type", "veth",
            "peer", "name", SERVER_IF, "netns", SERVER)
        run("ip", "-n", SERVER, "addr", "add", "fe80::a9fe:a9fe/64", "dev", SERVER_IF,
            "nodad")
        run("ip", "-n", SERVER, "addr", "add", "169.254.169.254/16", "dev", SERVER_IF)
        run("ip", "-n", GUEST, "addr", "add", "169.254.1.2/16", "dev", GUEST_IF)
        for ns, interface in ((GUEST, GUEST_IF), (SERVER, SERVER_IF)):
            run("ip", "-n", ns, "link", "set", interface, "up")
        # The guest's own link-local address (DAD done) before anyone polls.
        wait_until(lambda: "scope link" in run("ip", "-n", GUEST, "-6", "addr", "show",
                                               "dev", GUEST_IF).stdout
                   and "tentative" not in run("ip", "-n", GUEST, "-6", "addr", "show",
                                              "dev", GUEST_IF).stdout,
                   "the guest's link-local address", timeout=WAIT)
        server = subprocess.Popen(["ip", "netns", "exec", SERVER, sys.executable, "-c",
                                   SERVER_CODE, str(flag)])
        # busybox's wget first in PATH: "-c wget" must be the one CirrOS has.
        bin_dir = work / "bin"
        bin_dir.mkdir()
        (bin_dir / "wget").symlink_to(BUSYBOX)
        (work / "metadata_probe.sh").write_text(probe_script())
        wait_until(lambda: in_guest("curl", "-gsf", "--max-time", "1",
                                    f"http://[fe80::a9fe:a9fe%{GUEST_IF}]/",
                                    check=False).returncode == 0,
                   "the metadata server", timeout=WAIT)
        yield work, flag
    finally:
        if server is not None:
            server.kill()
            server.wait(timeout=WAIT)
        for ns in (GUEST, SERVER):
            run("ip", "netns", "del", ns, check=False)


class Probe:
    """One probe run in the guest namespace, detached like the meter's."""

    def __init__(self, work, name: str, shell: str, *args: str) -> None:
        self.log, self.pidfile = work / f"{name}.log", work / f"{name}.pid"
        env = {**os.environ, "PATH": f"{work / 'bin'}:{os.environ['PATH']}"}
        self.process = subprocess.Popen(
            ["ip", "netns", "exec", GUEST, *SHELLS[shell], str(work / "metadata_probe.sh"),
             "-i", str(INTERVAL), "-r", str(RETRY), "-t", str(TIMEOUT), "-e", "vm-6",
             "-l", str(self.log), "-p", str(self.pidfile), *args],
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True)

    def text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def stop(self) -> str:
        self.process.terminate()
        self.process.wait(timeout=WAIT)
        return self.text()


@pytest.mark.parametrize("client", ["wget", "curl"])
@pytest.mark.parametrize("shell", SHELLS)
def test_an_ipv6_only_outage_shows_on_ipv6_and_not_on_ipv4(link, shell, client):
    work, flag = link
    probe = Probe(work, f"{shell}-{client}", shell, "-c", client, "-f", "ipv4,ipv6")
    try:
        wait_until(lambda: probe.text().count(" OK ") >= 10, "answers on both families")
        flag.touch()
        began = uptime()
        time.sleep(OUTAGE)
        flag.unlink()
        ended = uptime()
        time.sleep(1.0)
    finally:
        flag.unlink(missing_ok=True)
        text = probe.stop()
    log = parse_probe_log(text)
    assert (log.header.families, log.header.interface) == (("ipv4", "ipv6"), GUEST_IF)
    assert log.header.client == client
    assert (log.garbage_lines, log.clock_reset, log.stopped) == (0, False, True)
    # The 503 flag is shared: both families see this outage...
    for family in ("ipv4", "ipv6"):
        report = analyse(log.family(family), recovered_after=ended)
        (outage,) = report.outages
        assert outage.reasons == {"http=503": outage.failed_probes}
        assert abs(outage.duration - (ended - began)) <= report.resolution + 0.05, (
            family, outage, ended - began)


def test_an_outage_of_ipv6_alone(link):
    """The IPv6 listener goes (its address removed): ipv6 fails, ipv4 answers."""
    work, _ = link
    probe = Probe(work, "v6-alone", "busybox", "-c", "curl", "-f", "ipv4,ipv6")
    try:
        wait_until(lambda: probe.text().count(" OK ") >= 10, "answers on both families")
        run("ip", "-n", SERVER, "addr", "del", "fe80::a9fe:a9fe/64", "dev", SERVER_IF)
        began = uptime()
        time.sleep(OUTAGE)
        run("ip", "-n", SERVER, "addr", "add", "fe80::a9fe:a9fe/64", "dev", SERVER_IF,
            "nodad")
        ended = uptime()
        time.sleep(TIMEOUT + 1.0)
    finally:
        run("ip", "-n", SERVER, "addr", "replace", "fe80::a9fe:a9fe/64", "dev", SERVER_IF,
            "nodad", check=False)
        text = probe.stop()
    log = parse_probe_log(text)
    assert analyse(log.family("ipv4"), recovered_after=ended).outages == ()
    report = analyse(log.family("ipv6"), recovered_after=ended)
    (outage,) = report.outages
    assert report.recovered
    # Its requests wait for neighbour discovery and time out, or are refused: a
    # recovery edge timed by a blackholed request may lag by up to the timeout.
    assert began - 0.2 <= outage.start <= began + 0.5, (outage, began)
    assert ended - 0.2 <= outage.end <= ended + TIMEOUT + 0.3, (outage, ended)


def test_ipv6_alone_with_the_interface_given(link):
    work, _ = link
    probe = Probe(work, "v6-only", "dash", "-c", "wget", "-f", "ipv6", "-I", GUEST_IF,
                  "-U", "http://[fe80::a9fe:a9fe]/openstack/latest/meta-data/hostname")
    try:
        wait_until(lambda: probe.text().count(" OK ") >= 3, "answers over IPv6")
    finally:
        text = probe.stop()
    log = parse_probe_log(text)
    assert log.families == ("ipv6",)
    assert {p.family for p in log.probes} == {"ipv6"}


def test_a_guest_without_ipv6_is_refused_before_anything_is_logged(link):
    work, _ = link
    in_guest("sysctl", "-qw", f"net.ipv6.conf.{GUEST_IF}.disable_ipv6=1")
    try:
        probe = Probe(work, "no-ipv6", "busybox", "-f", "ipv4,ipv6")
        probe.process.wait(timeout=WAIT)
        assert probe.process.returncode == 5
        assert "no IPv6 link-local address on any interface" in probe.process.stderr.read()
        assert probe.text() == ""
    finally:
        in_guest("sysctl", "-qw", f"net.ipv6.conf.{GUEST_IF}.disable_ipv6=0")
        # Its link-local address back before the next test.
        wait_until(lambda: "scope link" in run("ip", "-n", GUEST, "-6", "addr", "show",
                                               "dev", GUEST_IF).stdout, "IPv6 back")
