"""Accuracy benchmark: this plugin's meter and Tempest's, side by side, against the
lab's injected metadata outages (root; prints a table, asserts nothing).

    python -m tests.bench accuracy [--repeats N] [--lengths 0,0.5,2,6,20,60]
                                   [--families ipv4,ipv6]

For every outage shape and length, `repeats` lab guests run both meters at the same
time: ours (MetadataMeter over SSH, the packaged probe) and Tempest's script as the
Tempest change ships it (bare curl, FAILED-seconds sum; its lost URL restored). The
lab then breaks metadata for exactly that long (tests/lab/faults.py) and records the
window on the guests' clock. One shape's rows run at a time (each guest runs two
probes, and Tempest's forks six processes per request: more at once would load the
two cores enough to stretch both probes' spacing). Each row's outage begins after
its own random delay of up to one Tempest period, so that the repeats fall at
independent phases of both probes' sampling and their spread means something.

IPv6 rows (metadata_families ["ipv6"]): the same shapes and lengths, our probe
polling http://[fe80::a9fe:a9fe%eth0]/... while the lab breaks IPv6 metadata alone;
Tempest has no IPv6 meter, so those rows have no Tempest columns.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import io
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import paramiko
from rally.utils import sshutils

from rally_metadata_downtime.analysis import analyse
from rally_metadata_downtime.meter import MetadataMeter
from rally_metadata_downtime.probe_config import ProbeConfig
from rally_metadata_downtime.probe_log import parse_probe_log
from tests.bench.tempest import TEMPEST_PERIOD, TEMPEST_SCRIPT, tempest_downtime, tempest_resolution
from tests.lab.fabric import Fabric
from tests.lab.faults import FaultProfile

SHAPES = ("refused", "timeout", "http_503", "wrong_instance")
LENGTHS = (0.0, 0.5, 2.0, 6.0, 20.0, 60.0)
INTERVAL = ProbeConfig().interval   # the plugin's default
SETTLE = 3.0
SHAPES_AT_ONCE = 1
FAMILIES = ("ipv4", "ipv6")
class Row:
    """One guest measuring one injected outage with both meters."""

    def __init__(self, fabric: Fabric, index: int, shape: str, length: float,
                 key: paramiko.RSAKey, pem: str, family: str = "ipv4") -> None:
        self.fabric, self.shape, self.length = fabric, shape, length
        self.family = family
        self.server_id = f"acc-{index}"
        self.fixed_ip = f"198.51.100.{10 + index % 100}"
        fabric.create_guest(self.server_id, self.server_id, self.server_id, self.fixed_ip,
                            f"{key.get_name()} {key.get_base64()}")
        self.meter = MetadataMeter(
            lambda: sshutils.SSH("root", self.fixed_ip, pkey=pem),
            ProbeConfig(interval=INTERVAL, timeout=1.0, families=(family,)))

    def start(self) -> None:
        self.meter.start()
        self.meter.wait_until_answering(30)
        if self.family != "ipv4":   # Tempest's meter polls 169.254.169.254 only
            time.sleep(1.0)
            return
        self.fabric.guest_exec(self.server_id, ["sh", "-c", "cat > /tmp/tempest_meter.sh"],
                               input=TEMPEST_SCRIPT)
        self.fabric.guest_exec(self.server_id, ["sh", "-c",
                               "setsid sh /tmp/tempest_meter.sh </dev/null "
                               ">/tmp/metadata_meter.log 2>&1 &"])
        time.sleep(1.0)  # both meters have a baseline of successes

    async def inject(self) -> None:
        await asyncio.sleep(random.uniform(0, TEMPEST_PERIOD + 0.05))
        await self.fabric.migrate(self.server_id, FaultProfile(
            duration=0.1, network_blackout=0.0, metadata_outage=self.length,
            metadata_shape=self.shape, metadata_families=self.family))

    def collect(self) -> dict:
        time.sleep(SETTLE)
        tempest_log = None
        if self.family == "ipv4":
            tempest_log = self.fabric.guest_exec(
                self.server_id, ["cat", "/tmp/metadata_meter.log"]).stdout
            self.fabric.guest_exec(self.server_id, ["sh", "-c",
                                                    "kill $(cat /tmp/metadata_meter.pid)"])
        self.log = self.meter.stop()
        report = analyse(parse_probe_log(self.log).family(self.family))
        self.meter.close()
        windows = [w for w in self.fabric.injected_windows(self.server_id)
                   if w.kind == "metadata" and w.hits(self.family)]
        injected = sum(w.end_boottime - w.start_boottime for w in windows)
        if abs(report.total_downtime - injected) > INTERVAL + 0.1:
            failed = [line for line in self.log.splitlines() if "FAIL" in line]
            print(f"outlier {self.server_id} {self.family} {self.shape} {self.length}: "
                  f"injected "
                  f"{[(w.start_boottime, w.end_boottime) for w in windows]}, failed "
                  f"probes {failed}", file=sys.stderr)
        return {"family": self.family, "shape": self.shape, "length": self.length,
                "injected": injected,
                "ours": report.total_downtime, "resolution": report.resolution,
                "tempest": tempest_downtime(tempest_log) if tempest_log is not None
                else None,
                "tempest_resolution": tempest_resolution(tempest_log)
                if tempest_log is not None else None}


def run_length(fabric: Fabric, length: float, shapes, repeats: int, key, pem,
               first_index: int, pool: concurrent.futures.Executor,
               family: str = "ipv4") -> list[dict]:
    specs = [(shape, r) for shape in shapes for r in range(repeats)]
    rows = list(pool.map(lambda i_spec: Row(fabric, first_index + i_spec[0], i_spec[1][0],
                                            length, key, pem, family), enumerate(specs)))
    list(pool.map(Row.start, rows))

    async def inject_all():
        await asyncio.gather(*(row.inject() for row in rows))
    asyncio.run(inject_all())
    results = list(pool.map(Row.collect, rows))
    for row in rows:
        fabric.delete_guest(row.server_id)
    return results


def summarise(results: list[dict]) -> list[dict]:
    table = []
    for family, shape in ((f, s) for f in FAMILIES for s in SHAPES):
        for length in sorted({r["length"] for r in results}):
            rows = [r for r in results if r["shape"] == shape and r["length"] == length
                    and r.get("family", "ipv4") == family]
            if not rows:
                continue
            ours_err = [abs(r["ours"] - r["injected"]) for r in rows]
            base = {"family": family, "shape": shape, "length": length, "n": len(rows),
                    "ours_mean_err": statistics.mean(ours_err),
                    "injected": statistics.mean(r["injected"] for r in rows),
                    "ours": statistics.mean(r["ours"] for r in rows),
                    "ours_spread": max(r["ours"] for r in rows)
                    - min(r["ours"] for r in rows),
                    "ours_max_err": max(ours_err),
                    "resolution": max(r["resolution"] for r in rows),
                    "target": max(ours_err) <= INTERVAL + 0.1}
            if any(r["tempest"] is None for r in rows):
                table.append({**base, "tempest": None})
                continue
            tempest_err = [abs(r["tempest"] - r["injected"]) for r in rows]
            table.append({
                "family": family, "shape": shape, "length": length, "n": len(rows),
                "ours_mean_err": statistics.mean(ours_err),
                "tempest_mean_err": statistics.mean(tempest_err),
                "injected": statistics.mean(r["injected"] for r in rows),
                "ours": statistics.mean(r["ours"] for r in rows),
                "ours_spread": max(r["ours"] for r in rows) - min(r["ours"] for r in rows),
                "ours_max_err": max(ours_err),
                "resolution": max(r["resolution"] for r in rows),
                "tempest": statistics.mean(r["tempest"] for r in rows),
                "tempest_max_err": max(tempest_err),
                "tempest_resolution": statistics.median(r["tempest_resolution"] for r in rows),
                "target": max(ours_err) <= INTERVAL + 0.1,
                "no_worse": max(ours_err) <= max(tempest_err) + 1e-9})
    return table


def print_table(table: list[dict]) -> None:
    print(f"{'family':<7}{'shape':<15}{'length':>7}{'n':>3}{'injected':>10}{'ours':>8}{'spread':>8}"
          f"{'err mean':>9}{'err max':>9}{'res.':>7}{'tempest':>9}{'t.err mean':>11}"
          f"{'t.err max':>10}{'t.res.':>7}  target  vs tempest")
    for r in table:
        if r["tempest"] is None:
            print(f"{r['family']:<7}{r['shape']:<15}{r['length']:>7.1f}{r['n']:>3}"
                  f"{r['injected']:>10.2f}{r['ours']:>8.2f}{r['ours_spread']:>8.2f}"
                  f"{r['ours_mean_err']:>9.2f}{r['ours_max_err']:>9.2f}"
                  f"{r['resolution']:>7.2f}{'-':>9}{'-':>11}{'-':>10}{'-':>7}"
                  f"  {'met' if r['target'] else 'MISSED':<6}  (no Tempest meter)")
            continue
        print(f"{r['family']:<7}{r['shape']:<15}{r['length']:>7.1f}{r['n']:>3}{r['injected']:>10.2f}"
              f"{r['ours']:>8.2f}{r['ours_spread']:>8.2f}{r['ours_mean_err']:>9.2f}"
              f"{r['ours_max_err']:>9.2f}{r['resolution']:>7.2f}{r['tempest']:>9.2f}"
              f"{r['tempest_mean_err']:>11.2f}{r['tempest_max_err']:>10.2f}"
              f"{r['tempest_resolution']:>7.2f}"
              f"  {'met' if r['target'] else 'MISSED':<6}  "
              f"{'no worse' if r['no_worse'] else 'WORSE'}")
    met = sum(r["target"] for r in table)
    compared = [r for r in table if r["tempest"] is not None]
    print(f"\ntarget (error <= probe interval {INTERVAL} s + 0.1 s): {met}/{len(table)} rows; "
          f"no worse than Tempest: {sum(r['no_worse'] for r in compared)}/{len(compared)} "
          f"rows")
    for family in FAMILIES:
        rows = [r for r in table if r["family"] == family]
        if rows:
            print(f"{family}: target met on {sum(r['target'] for r in rows)}/{len(rows)} "
                  f"rows, largest error {max(r['ours_max_err'] for r in rows):.2f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench accuracy")
    parser.add_argument("--repeats", type=int, default=12)
    parser.add_argument("--lengths", default=",".join(f"{x:g}" for x in LENGTHS))
    parser.add_argument("--shapes", default=",".join(SHAPES))
    parser.add_argument("--families", default=",".join(FAMILIES),
                        help="ipv4 rows, ipv6 rows (metadata_families [ipv6]), or both")
    parser.add_argument("--raw", action="store_true", help="print every measurement")
    args = parser.parse_args(argv)
    lengths = [float(x) for x in args.lengths.split(",")]
    key = paramiko.RSAKey.generate(2048)
    pem = io.StringIO()
    key.write_private_key(pem)
    results = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="rmdbench") as state, \
            Fabric(Path(state), prefix="rmdbench") as fabric, \
            concurrent.futures.ThreadPoolExecutor(32) as pool:
        shapes = args.shapes.split(",")
        for family in args.families.split(","):
            for length in lengths:
                for first in range(0, len(shapes), SHAPES_AT_ONCE):
                    # fresh server ids per run: a guest's injected windows are its own
                    results += run_length(fabric, length,
                                          shapes[first:first + SHAPES_AT_ONCE],
                                          args.repeats, key, pem.getvalue(), len(results),
                                          pool, family)
                print(f"{family} length {length:g} s done "
                      f"({time.monotonic() - started:.0f} s)", file=sys.stderr)
    if args.raw:
        for r in results:
            print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()})
    print_table(summarise(results))
    within = sum(abs(r["ours"] - r["injected"]) <= r["resolution"] for r in results)
    tempest_closer = sum(abs(r["tempest"] - r["injected"]) < abs(r["ours"] - r["injected"])
                         for r in results if r["tempest"] is not None)
    print(f"within the resolution it stated: {within}/{len(results)} measurements; "
          f"Tempest's figure closer: {tempest_closer}/{len(results)}")
    print(f"\n{len(results)} measurements in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
