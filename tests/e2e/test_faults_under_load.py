"""Faults under load, through the real `rally` command (root): one workload at
concurrency 10 whose servers take, in turn, a healthy migration, refused
connections, blackholed metadata, HTTP 503, another instance's answers and a
dropped SSH session. Each iteration's verdict and figures must match its own
server's injected windows, and no fault may leak into a neighbour (it did: a
guest holding the metadata address for `refused` answered its neighbours' ARP
for it, until the lab's guests answered ARP only for their own link's
addresses)."""

from __future__ import annotations

import pytest

from tests.helpers import RESET_REASONS, TIMEOUT_REASONS, lab_workload, write_task
from tests.lab.demo import iteration_records, lab_with_rally
from tests.lab.faults import downtime_per_server

CYCLE = ("healthy", "refused", "timeout", "http_503", "wrong_instance", "drop_ssh")
OUTAGE = 2.0
# Each variant's failed-probe reasons (busybox wget in the lab's guests), and the
# ones its first request may have besides.
REASONS = {"refused": {"wget=refused"}, "timeout": {"wget=timeout"},
           "http_503": {"http=503"},
           "wrong_instance": {"mismatch"}, "drop_ssh": {"wget=refused"}}
AT_THE_START = {"refused": RESET_REASONS, "drop_ssh": RESET_REASONS}
TIMES, CONCURRENCY = 2 * len(CYCLE), 10


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("under-load")
    with lab_with_rally(root) as (lab, rally):
        task = write_task(root / "task.json", "faults under load", {"mixed": lab_workload(
            {"settle": 2, "recovery_timeout": 30, "probe_interval": 0.2},
            {"lab_profile_cycle": ",".join(CYCLE), "lab_metadata_outage": str(OUTAGE),
             "lab_metadata_shape": "refused", "lab_network_blackout": "0",
             "lab_migration_duration": "1"},
            times=TIMES, concurrency=CONCURRENCY,
            sla={"failure_rate": {"max": 0},
                 "metadata_downtime": {"allowed_metadata_downtime": 6}})})
        _, uuid = rally.start_task(task, "lab")
        [workload] = rally.json_report(uuid)["tasks"][0]["subtasks"][0]["workloads"]
        yield workload, lab.injected_windows(), lab.leftovers()


def _variant(windows: list[dict], server_id: str) -> str:
    """What the lab did to this server's migration, from its own windows."""
    mine = [w for w in windows if w["server_id"] == server_id]
    if any(w["kind"] == "guest" and w["shape"] == "drop_ssh" for w in mine):
        return "drop_ssh"          # with the base profile's refused metadata
    shapes = {w["shape"] for w in mine if w["kind"] == "metadata"}
    assert len(shapes) <= 1, mine
    return shapes.pop() if shapes else "healthy"


def test_every_iteration_passes_and_each_variant_ran_twice(run):
    workload, windows, leftovers = run
    assert [it["error"] for it in workload["data"]] == [[]] * TIMES
    assert workload["pass_sla"] is True
    variants = sorted(_variant(windows, r.server_id)
                      for r in iteration_records(workload))
    assert variants == sorted(CYCLE * 2)
    assert leftovers == {}


def test_each_iteration_measures_its_own_fault_and_nothing_else(run):
    workload, windows, _ = run
    truth = downtime_per_server(windows)
    for record in iteration_records(workload):
        variant = _variant(windows, record.server_id)
        figures = record.metadata
        expected = truth.get(record.server_id, 0.0)
        reasons = {r for o in figures.outages for r in o.reasons}
        if variant == "healthy":
            # Nothing injected, nothing failed but (on a loaded machine) a request
            # the lab's service answered later than the probe's timeout.
            assert expected == 0.0 and reasons <= TIMEOUT_REASONS, (
                record.server_id, figures)
            continue
        assert expected >= OUTAGE
        # Concurrency 10 on two cores: the guests' requests queue, so one more
        # probe interval of slack than the single-VM tests allow.
        assert abs(figures.downtime - expected) <= figures.resolution + 0.3, (
            variant, figures.downtime, expected)
        also = AT_THE_START.get(variant, frozenset())
        assert REASONS[variant] <= reasons <= REASONS[variant] | also, (variant, reasons)
        assert sum(n for o in figures.outages for r, n in o.reasons.items()
                   if r in also) <= 1, (variant, figures.outages)
