"""Disruptions a Rally hook can run against the running lab (as root, on the Rally
host), through the lab API's /lab/ endpoints on loopback.

    python3 -m tests.lab.disrupt metadata-agent --host lab-compute-1 \\
        --shape refused --seconds 3 [--prefix rmdlab | --lab-url URL]

`metadata-agent` restarts the metadata agent on a host: metadata fails in the
chosen shape (tests.lab.faults.METADATA_SHAPES) for every guest on that host for
`seconds`, then answers again; the command returns when it is back, and prints the
servers it hit and the windows the lab recorded (its ground truth) as a Rally
output chart, which Rally's sys_call hook shows in the report's Hooks tab. The lab
is found by its prefix (/run/rmd-lab-PREFIX.json, written while it runs) unless
its URL is given; only a loopback URL is accepted.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence

from tests.lab.faults import MAX_SECONDS, METADATA_SHAPES
from tests.lab.openstack.config import api_registry

# The API answers when the outage is over; this much longer is a lab that hangs.
_MARGIN = 30.0


class DisruptError(RuntimeError):
    """The lab could not be found or refused the disruption."""


def lab_url(prefix: str, url: str | None = None) -> str:
    """The running lab's API URL: `url` if given, else the one its prefix registered;
    never anything but loopback."""
    if url is None:
        path = api_registry(prefix)
        try:
            registered = json.loads(path.read_text())
            url, pid = registered["url"], int(registered["pid"])
        except FileNotFoundError:
            raise DisruptError(f"no lab with prefix {prefix!r} is running ({path} "
                               f"is missing)") from None
        except (ValueError, KeyError, TypeError) as e:
            raise DisruptError(f"{path} is unreadable: {e}") from None
        if not _alive(pid):
            raise DisruptError(f"no lab with prefix {prefix!r} is running ({path} "
                               f"names process {pid}, which is gone: a crashed lab)")
    parts = urllib.parse.urlsplit(url)
    try:
        loopback = parts.scheme == "http" and ipaddress.ip_address(
            parts.hostname or "").is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise DisruptError(f"lab URL {url!r}: only http on a loopback address")
    return url.rstrip("/")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass   # another user's process: alive
    return True


def restart_metadata_agent(url: str, host: str, shape: str, seconds: float) -> dict:
    """Ask the lab to restart the metadata agent on `host`; its answer, once back."""
    request = urllib.request.Request(
        f"{url}/lab/metadata-agent/restart", method="POST",
        data=json.dumps({"host": host, "shape": shape, "seconds": seconds}).encode(),
        headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=seconds + _MARGIN) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as e:
        raise DisruptError(f"the lab refused: {e.read().decode(errors='replace')}") from e
    except (urllib.error.URLError, TimeoutError, OSError) as e:
        raise DisruptError(f"the lab at {url} did not answer: {e}") from e


def as_output(result: dict) -> dict:
    """The lab's answer as Rally hook output (a Table in the Hooks tab)."""
    rows = [[w["server_id"], w["shape"], round(w["end_boottime"] - w["start_boottime"], 3)]
            for w in result["windows"]]
    return {"complete": [{
        "title": f"Metadata agent restarted on {result['host']}",
        "description": f"Metadata failed ({result['shape']}) for every lab server on "
                       f"{result['host']} for {result['seconds']:g} s: the windows the "
                       f"lab recorded.",
        "chart_plugin": "Table",
        "data": {"cols": ["server", "shape", "seconds"], "rows": rows}}]}


def _seconds(text: str) -> float:
    seconds = float(text)
    if not 0 < seconds <= MAX_SECONDS:
        raise argparse.ArgumentTypeError(f"must be in (0, {MAX_SECONDS:g}]")
    return seconds


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m tests.lab.disrupt",
                                     description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    agent = commands.add_parser("metadata-agent",
                                help="restart the metadata agent on a host")
    agent.add_argument("--host", required=True, help="e.g. lab-compute-1")
    agent.add_argument("--shape", choices=METADATA_SHAPES, default="refused")
    agent.add_argument("--seconds", type=_seconds, required=True)
    agent.add_argument("--prefix", default="rmdlab", help="the lab's name prefix")
    agent.add_argument("--lab-url", help="the lab API's URL (default: found by prefix)")
    args = parser.parse_args(argv)
    try:
        result = restart_metadata_agent(lab_url(args.prefix, args.lab_url), args.host,
                                        args.shape, args.seconds)
    except DisruptError as e:
        print(f"disrupt: {e}", file=sys.stderr)
        return 1
    print(json.dumps(as_output(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
