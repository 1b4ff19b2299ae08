"""The scale bench's table row from one run's workload (tests/bench/scale.py,
pure: what it writes to disk is keep_run's)."""

import math

import pytest

from tests.bench.scale import table_row


def _iteration(duration, error=(), steps=None):
    steps = steps or {}
    return {"duration": duration, "error": list(error), "output": {"complete": []},
            "atomic_actions": [{"name": name, "started_at": 100.0,
                                "finished_at": 100.0 + seconds}
                               for name, seconds in steps.items()]}


def test_a_row_counts_successes_by_kind_of_error_and_times_the_meters_steps():
    workload = {"data": [
        _iteration(10.0, steps={"metadata_meter.start": 0.1,
                                "metadata_meter.wait_recovery": 2.0}),
        _iteration(14.0, steps={"metadata_meter.start": 0.3,
                                "metadata_meter.wait_recovery": 4.0}),
        _iteration(30.0, error=["SSHTimeout", "Timeout waiting for '198.51.100.10'"]),
        _iteration(20.0, error=["MetadataNotMeasured", "no probe log"]),
    ]}
    row = table_row(workload, {"wall_s": 40.0}, concurrency=2, probe_interval=1.0)
    assert (row["concurrency"], row["times"], row["wall_s"]) == (2, 4, 40.0)
    assert row["succeeded"] == 2
    assert row["ssh_errors"] == 1 and row["lost_logs"] == 1
    assert row["other_errors"] == ["MetadataNotMeasured", "SSHTimeout"]
    assert row["metadata_meter.start p95"] == pytest.approx(0.3)
    # Only the iterations that succeeded make the mean and the recovery wait.
    assert row["ours_mean_s"] == 12.0
    assert row["recovery_wait_mean_s"] == pytest.approx(3.0)


def test_a_run_where_nothing_succeeded_has_no_mean_rather_than_zero():
    workload = {"data": [_iteration(5.0, error=["SSHTimeout", "x"])]}
    row = table_row(workload, {}, concurrency=1, probe_interval=0.1)
    assert row["succeeded"] == 0
    assert math.isnan(row["ours_mean_s"]) and math.isnan(row["metadata_meter.start p50"])
