"""Thin helpers over iproute2 and setns(2) for the lab's network namespaces.

Everything here blocks (subprocess or a short thread); callers on an event loop run it
in an executor.
"""

from __future__ import annotations

import ctypes
import os
import socket
import subprocess
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

CLONE_NEWNET = 0x40000000
NETNS_DIR = "/run/netns"
# Linux's IFNAMSIZ is 16 including the terminating NUL.
MAX_IFNAME = 15
T = TypeVar("T")

_libc = ctypes.CDLL(None, use_errno=True)


class IpError(RuntimeError):
    """An `ip` command failed; the message carries the command and its stderr."""

    def __init__(self, argv: Sequence[str], stderr: str) -> None:
        super().__init__(f"{' '.join(argv)}: {stderr.strip()}")
        self.stderr = stderr


def ip(*args: str, netns: str | None = None, check: bool = True) -> str:
    """Run `ip [-n NETNS] ARGS...` and return its stdout.

    With check=False a failure returns "" instead of raising (for idempotent removal).
    """
    argv = ["ip"] + (["-n", netns] if netns else []) + list(args)
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    if proc.returncode != 0:
        if check:
            raise IpError(argv, proc.stderr)
        return ""
    return proc.stdout


def netns_exists(name: str) -> bool:
    """Whether a named network namespace (ip netns add) exists."""
    return os.path.exists(os.path.join(NETNS_DIR, name))


def link_exists(name: str, netns: str | None = None) -> bool:
    """Whether a network interface exists (in the root or a named namespace)."""
    if netns is None:
        return os.path.exists(f"/sys/class/net/{name}")
    return bool(ip("link", "show", "dev", name, netns=netns, check=False))


def delete_netns(name: str) -> None:
    """Delete a named network namespace if it exists."""
    if netns_exists(name):
        ip("netns", "delete", name, check=False)


def delete_link(name: str) -> None:
    """Delete a root-namespace interface if it exists (a veth takes its peer along)."""
    if link_exists(name):
        ip("link", "delete", "dev", name, check=False)


def run_in_netns(netns: str, work: Callable[[], T]) -> T:
    """work() in a short-lived thread that entered the named namespace; its result.

    setns(2) only moves the calling thread, and a socket keeps the namespace it was
    created in: sockets made by work() serve from any thread afterwards.
    """
    outcome: dict[str, Any] = {}

    def enter_and_work() -> None:
        try:
            fd = os.open(os.path.join(NETNS_DIR, netns), os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns({netns}): {os.strerror(err)}")
            finally:
                os.close(fd)
            outcome["result"] = work()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread
            outcome["error"] = exc

    thread = threading.Thread(target=enter_and_work, name=f"setns-{netns}")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def listening_socket_in_netns(netns: str, address: str, port: int,
                              backlog: int = 128) -> socket.socket:
    """A non-blocking TCP socket bound and listening inside a named namespace.
    An IPv6 link-local address carries its zone: fe80::a9fe:a9fe%eth0 (the
    namespace's own interface)."""
    def create() -> socket.socket:
        # Resolved in the namespace: the zone's interface index is its own.
        family, _, _, _, bound = socket.getaddrinfo(
            address, port, type=socket.SOCK_STREAM,
            flags=socket.AI_NUMERICHOST)[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(bound)
            sock.listen(backlog)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return sock

    return run_in_netns(netns, create)
