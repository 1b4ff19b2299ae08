"""The probe's verdict on what the metadata service answered, run for real under
dash and busybox sh against a loopback HTTP server (no root, no lab)."""

from __future__ import annotations

import http.server
import shutil
import signal
import socket
import struct
import subprocess
import threading
from pathlib import Path

import pytest

from rally_metadata_downtime.probe_log import parse_probe_log
from tests.helpers import wait_until

SCRIPT = (Path(__file__).resolve().parents[2] / "rally_metadata_downtime" / "guest"
          / "metadata_probe.sh")
SHELLS = {"dash": ["dash"], "busybox": ["busybox", "sh"]}
ANSWERS = {
    # path: (status, body, verdict when the guest is "vm-ident")
    "plain": (200, "vm-ident", "OK http=200"),
    "newline": (200, "vm-ident\n", "OK http=200"),
    "fqdn-crlf-upper": (200, "VM-Ident.novalocal\r\n", "OK http=200"),
    "blanks": (200, " \tvm-ident \n", "OK http=200"),
    "second-line-ignored": (200, "vm-ident\nvm-other\n", "OK http=200"),
    "other": (200, "vm-identx.novalocal", "FAIL mismatch"),
    "inner-blank": (200, "vm ident", "FAIL mismatch"),
    "empty": (200, "", "FAIL empty"),
    "blank-line": (200, " \r\n", "FAIL empty"),
    "not-found": (404, "vm-ident", "FAIL http=404"),
    "uuid-json": (200, '{"uuid": "0b1c-uuid", "hostname": "x"}', None),
}


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        status, body, _ = ANSWERS[self.path.strip("/")]
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def run_probe(shell, tmp_path, *args, until, env=None) -> str:
    """Run the probe with `args` until its log satisfies `until`; its final log."""
    if not shutil.which(SHELLS[shell][0]):
        pytest.fail(f"{shell} is not installed (tools/bootstrap.sh installs it)")
    log, pid = tmp_path / "probe.log", tmp_path / "probe.pid"
    proc = subprocess.Popen([*SHELLS[shell], str(SCRIPT), "-l", str(log), "-p", str(pid),
                             *args], stdin=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env=env)

    def logged() -> bool:
        if log.exists() and until(log.read_text()):
            return True
        assert proc.poll() is None, proc.stderr.read()
        return False
    try:
        wait_until(logged, "the probe's log")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
    return log.read_text()


def verdicts(shell, tmp_path, url, *args) -> set[str]:
    log = run_probe(shell, tmp_path, "-u", url, "-i", "0.1", "-t", "1", *args,
                    until=lambda text: text.count("\nP ") >= 3)
    return {f"{'OK' if p.ok else 'FAIL'} {p.reason}" for p in parse_probe_log(log).probes}


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("path", [p for p, (_, _, v) in ANSWERS.items() if v])
def test_hostname_answers(server, tmp_path, shell, path):
    assert verdicts(shell, tmp_path, f"{server}/{path}", "-e", "vm-ident") == \
        {ANSWERS[path][2]}


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("expect, path, verdict", [
    ("VM-Ident.novalocal", "plain", "OK http=200"),
    ("VM-Ident", "fqdn-crlf-upper", "OK http=200"),
    ("VM-Identx", "plain", "FAIL mismatch")])
def test_an_upper_case_expected_name_is_compared_lowercased(server, tmp_path, shell,
                                                           expect, path, verdict):
    assert verdicts(shell, tmp_path, f"{server}/{path}", "-e", expect) == {verdict}


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("expect, verdict", [("0b1c-uuid", "OK http=200"),
                                             ("0b1c-other", "FAIL mismatch")])
def test_uuid_answers(server, tmp_path, shell, expect, verdict):
    assert verdicts(shell, tmp_path, f"{server}/uuid-json", "-m", "uuid",
                    "-e", expect) == {verdict}


@pytest.mark.parametrize("shell", SHELLS)
def test_without_fractional_sleep_the_intervals_are_rounded_up(server, tmp_path, shell):
    # A guest whose sleep takes whole seconds only (busybox without FLOAT_DURATION):
    # the probe must sample more slowly than asked, never spin.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_sleep = bin_dir / "sleep"
    fake_sleep.write_text('#!/bin/sh\ncase $1 in *[!0-9]*) echo "sleep: invalid number" >&2;'
                          ' exit 1 ;; esac\nexec /bin/sleep "$1"\n')
    fake_sleep.chmod(0o755)
    log = run_probe(shell, tmp_path, "-u", f"{server}/plain", "-e", "vm-ident",
                    "-i", "0.3", "-r", "2.5", until=lambda text: text.startswith("# rmd-probe"),
                    env={"PATH": f"{bin_dir}:/usr/bin:/bin"})
    header = parse_probe_log(log).header
    assert (header.interval, header.retry) == (1, 3)


@pytest.fixture(scope="module")
def resetting_server():
    """Reads each request, then closes with SO_LINGER 0: a TCP reset where the
    answer should be, what a request in flight sees when the proxy goes away."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    conn.recv(4096)
                except OSError:
                    pass
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                struct.pack("ii", 1, 0))
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/hostname"
    stop.set()
    thread.join(5)
    listener.close()


def busybox_wget_first(tmp_path: Path) -> dict[str, str]:
    """An environment whose `wget` is busybox's, as in CirrOS (this machine's own
    wget is GNU's, which retries a reset until it times out)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "wget").symlink_to(shutil.which("busybox"))
    return {"PATH": f"{bin_dir}:/usr/bin:/bin"}


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("client, reason", [("wget", "wget=reset"), ("curl", "curl=56")])
def test_a_connection_reset_mid_request_is_named_a_reset(resetting_server, tmp_path,
                                                        shell, client, reason):
    log = run_probe(shell, tmp_path, "-u", resetting_server, "-c", client, "-i", "0.1",
                    "-t", "1", "-e", "vm-ident",
                    until=lambda text: text.count("\nP ") >= 3,
                    env=busybox_wget_first(tmp_path))
    assert {f"{'OK' if p.ok else 'FAIL'} {p.reason}"
            for p in parse_probe_log(log).probes} == {f"FAIL {reason}"}


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("message", ["Network is unreachable", "No route to host"])
def test_no_route_to_the_metadata_address_is_named_unreachable(tmp_path, shell, message):
    # busybox wget's words for it (seen when a guest's link went away under a
    # request); a route nobody has cannot be made here without root, so a stand-in
    # says them.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_wget = bin_dir / "wget"
    fake_wget.write_text("#!/bin/sh\necho \"wget: can't connect to remote host "
                         f"(169.254.169.254): {message}\" >&2\nexit 1\n")
    fake_wget.chmod(0o755)
    log = run_probe(shell, tmp_path, "-u", "http://169.254.169.254/latest/meta-data/hostname",
                    "-c", "wget", "-i", "0.1", "-t", "1", "-e", "vm-ident",
                    until=lambda text: text.count("\nP ") >= 3,
                    env={"PATH": f"{bin_dir}:/usr/bin:/bin"})
    assert {p.reason for p in parse_probe_log(log).probes} == {"wget=unreachable"}
