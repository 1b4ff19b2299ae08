"""Cost benchmark: what one measurement costs the guest, the metadata service and the
Rally host, side by side with Tempest's meter (root; prints tables, asserts nothing).

    python -m tests.bench cost [--requests 200] [--guests 3] [--blackhole 5]
                               [--concurrency 1,10,50,100] [--probe-interval 1]

1. In-guest CPU per request. Each of `guests` lab guests runs, one after another,
   our probe with busybox wget, our probe with curl (the packaged script, the
   plugin's default interval and timeout) and Tempest's script (tests/bench/
   tempest.py). Over a window of `requests` logged requests the guest's CPU is read
   from the host through the guest's own /proc (its PID namespace, seen through its
   PID 1's root): user + system of every guest process, alive or reaped, so also
   the orphans its init reaps (busybox `timeout` leaves a watcher per request). The
   share of one CPU is that cost at each meter's default rate (ours 1/0.1 s; Tempest's
   sleep loop, 0.2 s plus its own run time: its measured period is printed).
2. The metadata service's CPU per request: the user + system time of the thread
   that serves it (aiohttp, in this process) over all of part 1, divided by every
   request the guests logged in it. The kernel's TCP work on the veth pairs is
   charged partly to the guests (their system time), partly to this thread.
3. During a blackhole (the lab's `timeout` fault, bounded), the most requests in
   flight (from the probe's log, and client processes seen in the guest's /proc) and
   the most processes alive in the guest, against ceil(timeout/interval)+1.
4. The Rally host, from tests/bench/scale.py's run of the sample task at each
   concurrency (times = 2 x C, --probe-interval 1 s by default, like scale's): CPU
   seconds of the rally process tree while the iterations ran (from the first
   iteration's start to the last one's end, sampled from /proc) per iteration, the
   part of it spent by the main threads of the engine and runner processes, which
   only poll (every 10 ms and every 1 ms while a task runs: a cost per second,
   not per iteration), and the rest (the iterations' threads and children); with
   --runner-alone also Rally's runner with Dummy.dummy as long as our iterations
   lasted (nothing of ours: its iteration threads cost next to nothing); the
   whole task's CPU; peak memory (the largest process, and the tree's
   proportional set size). Flat within 20 % is the target for the cost per
   iteration from c=1 to c=100. This part runs the main lab (its addresses): it
   waits while another main lab runs.

CPU time, not wall time, throughout: the machine is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import paramiko

from rally_metadata_downtime.meter import probe_script
from rally_metadata_downtime.probe_config import ProbeConfig
from tests.bench import scale
from tests.bench.cost_figures import (
    ProcStat,
    count_requests,
    flatness,
    in_flight_bound,
    max_overlap,
    parse_proc_stat,
    probe_spans,
    slope,
    spread,
    tree_ticks,
)
from tests.bench.tempest import PIDFILE as TEMPEST_PIDFILE
from tests.bench.tempest import TEMPEST_PERIOD, TEMPEST_SCRIPT
from tests.lab.fabric import Fabric
from tests.lab.faults import FaultProfile
from tests.lab.harness import LabError
from tests.lab.rally_cli import RallyHome

CLK_TCK = os.sysconf("SC_CLK_TCK")
DEFAULT = ProbeConfig()                  # the plugin's defaults: 0.1 s interval, 1 s timeout
VARIANTS = ("ours-wget", "ours-curl", "tempest")
CLIENTS = ("wget", "curl")
WARMUP_LINES = 5                         # requests logged before a window opens
SAMPLE_EVERY = 0.05                      # seconds between looks at a guest's /proc
RALLY_SAMPLE_EVERY = 0.25
# Its own addresses (tests/lab/addressing.py), so that it runs beside a main lab.
FIXED_GATEWAY, FLOATING_GATEWAY = "198.51.100.113/28", "203.0.113.113/28"
FIRST_GUEST = 114                        # guests 198.51.100.114-.126
MAIN_LAB_BRIDGE = Path("/sys/class/net/rmdlabbr0")   # the Rally part needs its addresses
LAB_ATTEMPTS = 3                         # a main lab started by someone else in between


# --- a guest seen from the host ---------------------------------------------------

class GuestView:
    """A lab guest read from the host through its PID 1's /proc/<pid>/root: no
    process is started in the guest to look at it (that would be counted)."""

    def __init__(self, fabric: Fabric, server_id: str) -> None:
        self.fabric, self.server_id = fabric, server_id
        self.root = Path(f"/proc/{fabric.guest(server_id).sshd_pid}/root")

    def stats(self) -> list[ProcStat]:
        """Every process of the guest's PID namespace (its own /proc mount)."""
        found = []
        for entry in (self.root / "proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                found.append(parse_proc_stat((entry / "stat").read_text()))
            except (OSError, ValueError):
                continue   # it ended while we looked
        return found

    def read(self, path: str) -> str:
        try:
            return (self.root / path.lstrip("/")).read_text()
        except OSError:
            return ""

    def sh(self, command: str, *args: str, input: str | None = None) -> str:
        done = self.fabric.guest_exec(self.server_id, ["sh", "-c", command, "sh", *args],
                                      timeout=30, input=input)
        if done.returncode != 0:
            raise RuntimeError(f"{self.server_id}: {command!r} exited {done.returncode}: "
                               f"{done.stderr.strip()}")
        return done.stdout


class Meter:
    """One of the three meters in one guest: start, its log, stop by PID."""

    def __init__(self, view: GuestView, variant: str) -> None:
        self.view, self.variant = view, variant
        self.dir = f"/tmp/cost-{variant}"
        self.log = f"{self.dir}/log"
        self.pidfile = TEMPEST_PIDFILE if variant == "tempest" else f"{self.dir}/pid"

    def start(self) -> None:
        """Detached (setsid, std fds redirected): the launcher exits and the guest's
        init adopts the meter, so all it costs stays in the guest's accounting."""
        if self.variant == "tempest":
            script, argv = TEMPEST_SCRIPT, []
        else:
            script = probe_script()
            argv = ["-i", f"{DEFAULT.interval:g}", "-r", f"{DEFAULT.retry_interval:g}",
                    "-t", f"{DEFAULT.timeout:g}", "-c", self.variant.split("-")[1],
                    "-l", self.log, "-p", self.pidfile]
        self.view.sh('mkdir -p "$1" && rm -f "$1"/* "$2" && cat > "$1/meter.sh"',
                     self.dir, TEMPEST_PIDFILE, input=script)
        self.view.sh('d=$1; shift; setsid sh "$d/meter.sh" "$@" </dev/null >"$d/log" '
                     '2>"$d/err" &', self.dir, *argv)
        deadline = time.monotonic() + 30
        while self.requests() < WARMUP_LINES:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.view.server_id} {self.variant}: no requests "
                                   f"logged: {self.view.read(self.dir + '/err')!r}")
            time.sleep(0.1)

    def text(self) -> str:
        return self.view.read(self.log)

    def requests(self) -> int:
        return count_requests(self.variant, self.text())

    def stop(self) -> None:
        pid = self.view.read(self.pidfile).strip()
        if pid.isdigit():
            self.view.sh('kill -TERM "$1" 2>/dev/null; true', pid)
        deadline = time.monotonic() + DEFAULT.timeout + 5   # ours waits for its requests
        while time.monotonic() < deadline and len(self.view.stats()) > 1:
            time.sleep(0.1)


# --- 1 and 2: CPU per request -----------------------------------------------------

def metadata_thread_ticks(fabric: Fabric) -> int:
    """User + system ticks of the thread that runs the lab's metadata service."""
    thread = next(t for t in threading.enumerate() if t.name == f"{fabric.prefix}-metadata")
    text = Path(f"/proc/self/task/{thread.native_id}/stat").read_text()
    return parse_proc_stat(text).own_ticks


def measure_window(meter: Meter, requests: int) -> dict:
    """CPU of the guest over `requests` requests of one meter."""
    view = meter.view
    lines0, ticks0 = meter.requests(), tree_ticks(view.stats())
    wall0 = time.monotonic()
    # Tempest's period is about 0.25 s; under load either may be slower.
    deadline = wall0 + requests * 0.25 * 4 + 30
    while (lines := meter.requests()) < lines0 + requests and time.monotonic() < deadline:
        time.sleep(0.1)
    ticks1, wall1 = tree_ticks(view.stats()), time.monotonic()
    done = lines - lines0
    return {"variant": meter.variant, "guest": view.server_id, "requests": done,
            "cpu_ms": 1000 * (ticks1 - ticks0) / CLK_TCK / max(1, done),
            "wall_s": wall1 - wall0,
            "rate": done / (wall1 - wall0)}


def run_cpu(fabric: Fabric, views: list[GuestView], requests: int) -> list[dict]:
    """Every guest runs the three meters one after another (all guests at once,
    each starting with a different one); one window each. Then the metadata
    service's CPU over all of it, per request every guest logged."""
    results: list[dict] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def guest_run(index: int, view: GuestView) -> None:
        try:
            for variant in VARIANTS[index % 3:] + VARIANTS[:index % 3]:
                meter = Meter(view, variant)
                meter.start()
                try:
                    row = measure_window(meter, requests)
                finally:
                    meter.stop()
                with lock:
                    results.append(row)
        except BaseException as exc:   # reported by the caller
            errors.append(exc)

    service0 = metadata_thread_ticks(fabric)
    threads = [threading.Thread(target=guest_run, args=(i, v)) for i, v in enumerate(views)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(3 * (requests + 120))
    service = metadata_thread_ticks(fabric) - service0
    if errors:
        raise errors[0]
    logged = sum(count_requests(v, view.read(f"/tmp/cost-{v}/log"))
                 for view in views for v in VARIANTS)
    results.append({"variant": "service", "requests": logged,
                    "cpu_ms": 1000 * service / CLK_TCK / max(1, logged)})
    return results


FLOOR_COMMANDS = {
    "wget": 'wget -q -O - -- "$2" </dev/null',
    "curl": 'curl -sS -- "$2"',
}


def run_floors(view: GuestView, requests: int) -> dict[str, float]:
    """The client alone: CPU ms per request of a shell loop that only runs it
    (what no probe built on that client can go below). The loop's shell reads its
    own reaped children's CPU from its /proc/<pid>/stat."""
    url = DEFAULT.url
    floors = {}
    for client, command in FLOOR_COMMANDS.items():
        out = view.sh('i=0; while [ "$i" -lt "$1" ]; do i=$((i + 1)); '
                      f'{command} >/dev/null 2>&1; done; '
                      'read -r s < /proc/$$/stat; echo "$s"', str(requests), url)
        stat = parse_proc_stat(out.strip())
        floors[client] = 1000 * (stat.cutime + stat.cstime) / CLK_TCK / requests
    return floors


# --- 3: a blackhole ---------------------------------------------------------------

def run_blackhole(fabric: Fabric, views: list[GuestView], seconds: float) -> list[dict]:
    """Each guest runs one meter (ours-wget, ours-curl, Tempest's) through a
    `seconds` blackhole; the guest's /proc is sampled throughout."""
    pairs = list(zip(views, VARIANTS))
    meters = [Meter(view, variant) for view, variant in pairs]
    for meter in meters:
        meter.start()
    samples: dict[str, list[tuple[float, int, int]]] = {m.variant: [] for m in meters}
    stop = threading.Event()

    def sample() -> None:
        end = time.monotonic() + seconds + 30
        while not stop.is_set() and time.monotonic() < end:
            now = time.clock_gettime(time.CLOCK_BOOTTIME)
            for meter in meters:
                alive = [s for s in meter.view.stats() if s.pid != 1 and s.state != "Z"]
                clients = sum(s.comm in CLIENTS for s in alive)
                samples[meter.variant].append((now, len(alive), clients))
            time.sleep(SAMPLE_EVERY)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        time.sleep(1.0)

        async def blackholes():
            await asyncio.gather(*(fabric.migrate(m.view.server_id, FaultProfile(
                duration=0.1, network_blackout=0.0, metadata_outage=seconds,
                metadata_shape="timeout")) for m in meters))
        asyncio.run(asyncio.wait_for(blackholes(), seconds + 30))
        time.sleep(DEFAULT.timeout + 0.5)   # the last blackholed requests end
    finally:
        stop.set()
        sampler.join(60)
        logs = {m.variant: m.text() for m in meters}
        for meter in meters:
            meter.stop()
    rows = []
    for meter in meters:
        window = next(w for w in fabric.injected_windows(meter.view.server_id)
                      if w.kind == "metadata")
        inside = [(n, c) for t, n, c in samples[meter.variant]
                  if window.start_boottime <= t <= window.end_boottime]
        healthy = [n for t, n, _ in samples[meter.variant] if t < window.start_boottime]
        spans = probe_spans(logs[meter.variant])
        rows.append({
            "variant": meter.variant,
            "blackhole_s": window.end_boottime - window.start_boottime,
            "in_flight_log": (max_overlap(spans, (window.start_boottime,
                                                  window.end_boottime))
                              if meter.variant != "tempest" else None),
            "in_flight_seen": max((c for _, c in inside), default=0),
            "processes": max((n for n, _ in inside), default=0),
            "processes_median": statistics.median(n for n, _ in inside) if inside else 0,
            "samples": len(inside),
            "healthy_processes": max(healthy, default=0),
            "bound": (in_flight_bound(DEFAULT.timeout, DEFAULT.interval)
                      if meter.variant != "tempest" else 1)})
    return rows


# --- 4: the Rally host ------------------------------------------------------------

def _children(pid: int) -> list[int]:
    try:
        return [int(c) for t in Path(f"/proc/{pid}/task").iterdir()
                for c in (t / "children").read_text().split()]
    except OSError:
        return []


def _memory_kib(pid: int, path: str, field: str) -> int:
    """A "Field:   N kB" line of /proc/<pid>/<path>; 0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/{path}").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


class RallyTreeSampler(threading.Thread):
    """Samples the `rally task start` process tree (a child of this process) every
    RALLY_SAMPLE_EVERY s: (epoch, CPU ticks of the tree incl. what it reaped, CPU
    ticks of its processes' main threads alone). In Rally's constant runner the
    main threads only poll (the engine every 10 ms, each worker process its
    threads every 1 ms, a cost per second); the iterations run in other threads."""

    def __init__(self, limit_s: float) -> None:
        super().__init__(daemon=True)
        self.samples: list[tuple[float, int, int]] = []
        self.peak_pss_kib = 0
        self.peak_process_kib = 0   # the largest process's own peak (VmHWM)
        self._stop_event = threading.Event()
        self._limit = limit_s

    def rally_roots(self) -> list[int]:
        roots = []
        for pid in _children(os.getpid()):
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if len(argv) > 1 and argv[1].endswith(b"/rally") and b"start" in argv:
                roots.append(pid)
        return roots

    def run(self) -> None:
        end = time.monotonic() + self._limit
        while not self._stop_event.is_set() and time.monotonic() < end:
            pending, stats, main_ticks, pss = self.rally_roots(), [], 0, 0
            for _ in range(10000):   # bounded walk of the tree
                if not pending:
                    break
                pid = pending.pop()
                try:
                    stats.append(parse_proc_stat(Path(f"/proc/{pid}/stat").read_text()))
                    main_ticks += parse_proc_stat(
                        Path(f"/proc/{pid}/task/{pid}/stat").read_text()).own_ticks
                except (OSError, ValueError):
                    continue
                pss += _memory_kib(pid, "smaps_rollup", "Pss:")
                self.peak_process_kib = max(self.peak_process_kib,
                                            _memory_kib(pid, "status", "VmHWM:"))
                pending += _children(pid)
            if stats:
                self.samples.append((time.time(), tree_ticks(stats), main_ticks))
                self.peak_pss_kib = max(self.peak_pss_kib, pss)
            self._stop_event.wait(RALLY_SAMPLE_EVERY)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(30)

    def at(self, when: float) -> tuple[float, float]:
        """(tree ticks, main-thread ticks) at `when`, interpolated between samples."""
        before = [s for s in self.samples if s[0] <= when]
        after = [s for s in self.samples if s[0] >= when]
        if not before or not after:
            raise ValueError("no samples around that time")
        (t0, *v0), (t1, *v1) = before[-1], after[0]
        share = 0.0 if t1 == t0 else (when - t0) / (t1 - t0)
        return tuple(a + (b - a) * share for a, b in zip(v0, v1))


def wait_for_main_lab(limit_s: float = 900) -> None:
    """The Rally part runs the main lab (its addresses, its bridge): wait, bounded,
    while another main lab (a test, the demo) holds them."""
    deadline = time.monotonic() + limit_s
    while MAIN_LAB_BRIDGE.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"a main lab ({MAIN_LAB_BRIDGE.name}) ran for {limit_s:g} s")
        time.sleep(2)


def iteration_window(sampler: RallyTreeSampler,
                     data: list[dict]) -> tuple[float, float, float]:
    """(seconds, CPU seconds of the rally tree, of which its main threads' polling)
    from the first iteration's start to the last one's end: the task's own set-up
    and clean-up left out."""
    first = min(it["timestamp"] for it in data)
    last = max(it["timestamp"] + it["duration"] + it.get("idle_duration", 0) for it in data)
    (tree0, main0), (tree1, main1) = sampler.at(first), sampler.at(last)
    return last - first, (tree1 - tree0) / CLK_TCK, (main1 - main0) / CLK_TCK


def run_runner_only(concurrency: int, sleep_s: float, root: Path) -> dict:
    """Rally's constant runner with nothing to do: Dummy.dummy sleeping as long as
    our iterations lasted, same times and concurrency, no cloud. What the runner
    itself costs per second of a task (its worker processes poll their threads
    every millisecond), apart from any scenario."""
    rally = RallyHome(root / "runner")
    rally.create_env("empty", {})
    task = root / "runner.json"
    task.write_text(json.dumps({"version": 2, "title": "runner only", "subtasks": [{
        "title": "runner only", "workloads": [{
            "scenario": {"Dummy.dummy": {"sleep": round(sleep_s, 1)}},
            "runner": {"constant": {"times": 2 * concurrency,
                                    "concurrency": concurrency}}}]}]}))
    sampler = RallyTreeSampler(limit_s=3600)
    sampler.start()
    try:
        _, uuid = rally.start_task(task, "empty")
    finally:
        sampler.stop()
    data = scale._workload(rally.json_report(uuid))["data"]
    window_s, window_cpu, polling = iteration_window(sampler, data)
    return {"window_s": window_s, "iter_cpu_s": window_cpu / len(data),
            "threads_cpu_s": (window_cpu - polling) / len(data)}


def run_rally(concurrency: int, probe_interval: float, runner_alone: bool) -> dict:
    root = Path(tempfile.mkdtemp(prefix="rmdcost"))
    try:
        return _run_rally(concurrency, probe_interval, runner_alone, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _run_rally(concurrency: int, probe_interval: float, runner_alone: bool,
               root: Path) -> dict:
    for attempt in range(1, LAB_ATTEMPTS + 1):
        wait_for_main_lab()
        sampler = RallyTreeSampler(limit_s=3600)
        sampler.start()
        try:
            row = scale.measure(concurrency, probe_interval, False, root, name="cost")
            break
        except LabError as exc:   # its addresses were taken as it started
            if attempt == LAB_ATTEMPTS:
                raise
            print(f"(c={concurrency}: the lab did not start ({exc}); again)", file=sys.stderr)
            for part in ("lab", "rally"):
                shutil.rmtree(root / part, ignore_errors=True)
            time.sleep(10)
        finally:
            sampler.stop()
    workload = json.loads((scale.REPORTS_DIR / f"cost-c{concurrency}.json").read_text())
    data = workload["data"]
    window_s, window_cpu, polling = iteration_window(sampler, data)
    runner = (run_runner_only(concurrency, statistics.mean(it["duration"] for it in data),
                              root) if runner_alone else None)
    n = len(data)
    return {"concurrency": concurrency, "times": row["times"],
            "succeeded": row["succeeded"], "window_s": window_s, "iterations": n,
            "iter_cpu_s": window_cpu / n, "polling_cpu_s": polling / n,
            "threads_cpu_s": (window_cpu - polling) / n, "runner_alone": runner,
            "task_cpu_s": row["rally_cpu_s"],
            "fixed_cpu_s": row["rally_cpu_s"] - window_cpu,
            "peak_process_mib": sampler.peak_process_kib / 1024,
            "peak_tree_pss_mib": sampler.peak_pss_kib / 1024,
            "lab_cpu_s": row["lab_cpu_s"], "machine_busy": row["machine_busy"]}


# --- the tables -------------------------------------------------------------------

def print_cpu(rows: list[dict], floors: dict[str, float]) -> dict:
    print(f"\n== in-guest CPU per request ({DEFAULT.interval:g} s interval, "
          f"{DEFAULT.timeout:g} s timeout; Tempest: curl, grep, hostname, cut, awk, "
          f"sleep {TEMPEST_PERIOD:g}) ==")
    print(f"{'meter':<11}{'windows':>8}{'requests':>9}{'CPU ms/request, median (min-max)':>36}"
          f"{'rate/s':>8}{'default rate/s':>16}{'share of one CPU':>18}")
    medians = {}
    for variant in VARIANTS:
        mine = [r for r in rows if r["variant"] == variant]
        cpu = [r["cpu_ms"] for r in mine]
        rate = statistics.median(r["rate"] for r in mine)
        default_rate = (1 / DEFAULT.interval if variant != "tempest"
                        else 1 / (TEMPEST_PERIOD + statistics.median(
                            max(0.0, 1 / r["rate"] - TEMPEST_PERIOD) for r in mine)))
        medians[variant] = statistics.median(cpu)
        share = medians[variant] / 1000 * default_rate
        print(f"{variant:<11}{len(mine):>8}{sum(r['requests'] for r in mine):>9}"
              f"{spread(cpu):>36}{rate:>8.1f}{default_rate:>16.1f}{100 * share:>17.1f}%")
    print("the client alone (a shell loop running only it): " + ", ".join(
        f"{client} {ms:.2f} ms" for client, ms in floors.items()))
    service = next(r for r in rows if r["variant"] == "service")
    print(f"metadata service (lab, aiohttp): {service['cpu_ms']:.2f} ms CPU per request "
          f"over {service['requests']} requests")
    for variant in ("ours-wget", "ours-curl"):
        ratio = medians[variant] / medians["tempest"]
        print(f"{variant} / tempest: {ratio:.2f}  target <= 0.50: "
              f"{'met' if ratio <= 0.5 else 'MISSED'}")
    return medians


def print_blackhole(rows: list[dict]) -> None:
    print("\n== during a blackhole (metadata packets dropped) ==")
    print(f"{'meter':<11}{'seconds':>8}{'in flight (log)':>16}{'in flight (seen)':>17}"
          f"{'processes max':>14}{'median':>8}{'healthy max':>12}{'bound':>7}  target")
    for r in rows:
        most = max(x for x in (r["in_flight_log"], r["in_flight_seen"]) if x is not None)
        target = "met" if most <= r["bound"] else "MISSED"
        log = "-" if r["in_flight_log"] is None else str(r["in_flight_log"])
        print(f"{r['variant']:<11}{r['blackhole_s']:>8.1f}{log:>16}{r['in_flight_seen']:>17}"
              f"{r['processes']:>14}{r['processes_median']:>8.0f}"
              f"{r['healthy_processes']:>12}{r['bound']:>7}  "
              f"{target if r['variant'] != 'tempest' else '(one blocking request)'}")


def print_rally(rows: list[dict]) -> None:
    print("\n== Rally host per iteration (the sample task as the scale bench runs it, "
          "times = 2 x C; CPU while the iterations ran) ==")
    print(f"{'C':>4}{'ok':>9}{'CPU s/iteration':>16}{'polling':>9}{'iterations':>11}"
          f"{'task CPU s':>11}{'set-up s':>9}{'peak process MiB':>17}"
          f"{'peak tree PSS MiB':>18}{'runner alone':>14}")
    for r in rows:
        alone = r["runner_alone"]
        print(f"{r['concurrency']:>4}{r['succeeded']:>5}/{r['times']:<3}"
              f"{r['iter_cpu_s']:>16.3f}{r['polling_cpu_s']:>9.3f}{r['threads_cpu_s']:>11.3f}"
              f"{r['task_cpu_s']:>11.1f}{r['fixed_cpu_s']:>9.1f}"
              f"{r['peak_process_mib']:>17.0f}{r['peak_tree_pss_mib']:>18.0f}"
              + (f"{alone['iter_cpu_s']:>8.3f} /{alone['threads_cpu_s']:.3f}" if alone else ""))
    print("(polling: the main threads of Rally's engine and runner processes, which poll "
          "every 10 ms / 1 ms while a task runs; iterations: every other thread and "
          "child process: the scenario, ours, and Rally's per-iteration bookkeeping)")
    if any(r["runner_alone"] for r in rows):
        print("(runner alone: Dummy.dummy sleeping as long as our iterations lasted, same "
              "times and concurrency: all / iterations' threads)")
    if len(rows) < 2:
        return
    cs = [r["concurrency"] for r in rows]
    for label, values in (("all of it", [r["iter_cpu_s"] for r in rows]),
                          ("iterations' threads", [r["threads_cpu_s"] for r in rows])):
        print(f"CPU per iteration, {label}: c={cs[0]} {values[0]:.3f} s, c={cs[-1]} "
              f"{values[-1]:.3f} s ({100 * (values[-1] / values[0] - 1):+.0f}%); the "
              f"highest {100 * flatness(values):.0f}% above the lowest; flat within 20%: "
              f"{'met' if flatness(values) <= 0.2 else 'MISSED'}")
    mem = [r["peak_tree_pss_mib"] for r in rows]
    print(f"peak memory of the rally tree: {slope(cs, mem):.1f} MiB per concurrent "
          "iteration (slope of the PSS)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench cost")
    parser.add_argument("--requests", type=int, default=200,
                        help="requests per CPU window (default 200)")
    parser.add_argument("--guests", type=int, default=3,
                        help="guests that each run all three meters (default 3)")
    parser.add_argument("--blackhole", type=float, default=5.0,
                        help="seconds of blackholed metadata (default 5)")
    parser.add_argument("--concurrency", default="1,10,50,100",
                        help="Rally host part; empty to skip it")
    parser.add_argument("--probe-interval", type=float, default=1.0,
                        help="the Rally part's probe interval (scale's default, 1 s)")
    parser.add_argument("--runner-alone", action="store_true",
                        help="also run Rally's runner with Dummy.dummy at each concurrency")
    args = parser.parse_args(argv)
    if not 1 <= args.guests <= 12 or not 10 <= args.requests <= 5000:
        parser.error("--guests 1-12, --requests 10-5000")
    if not 0 < args.blackhole <= 60:
        parser.error("--blackhole in (0, 60]")
    started = time.monotonic()
    key = paramiko.RSAKey.generate(2048)
    public = f"{key.get_name()} {key.get_base64()}"
    pem = io.StringIO()
    key.write_private_key(pem)
    with tempfile.TemporaryDirectory(prefix="rmdcost") as state, \
            Fabric(Path(state), prefix="rmdcost", fixed_gateway=FIXED_GATEWAY,
                   floating_gateway=FLOATING_GATEWAY) as fabric:
        views = []
        for i in range(max(args.guests, len(VARIANTS))):
            server_id = f"cost-{i}"
            fabric.create_guest(server_id, server_id, server_id, f"198.51.100.{FIRST_GUEST + i}",
                                public)
            views.append(GuestView(fabric, server_id))
        cpu_rows = run_cpu(fabric, views[:args.guests], args.requests)
        floors = run_floors(views[0], min(args.requests, 100))
        print_cpu(cpu_rows, floors)
        sys.stdout.flush()
        blackhole_rows = run_blackhole(fabric, views[:len(VARIANTS)], args.blackhole)
        print_blackhole(blackhole_rows)
        sys.stdout.flush()
    print(f"(guest parts took {time.monotonic() - started:.0f} s)", file=sys.stderr)
    rally_rows = []
    for concurrency in (int(c) for c in args.concurrency.split(",") if c.strip()):
        rally_rows.append(run_rally(concurrency, args.probe_interval, args.runner_alone))
        print(f"(c={concurrency} done, {time.monotonic() - started:.0f} s)", file=sys.stderr)
    if rally_rows:
        print_rally(rally_rows)
    print(f"\ncost bench: {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
