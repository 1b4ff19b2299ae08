"""The downtime as atomic actions: where trends, exporters and per-atomic SLAs look."""

import pytest
from rally.task import atomic

from rally_metadata_downtime.plugins import atomics
from rally_metadata_downtime.records import Measurement, Migration
from tests.unit.plugin_data import measured

OFFSET = 1_700_000_000.0   # host time = guest uptime + OFFSET


def actions(m: Measurement) -> dict:
    m.clock_offset = OFFSET
    return {a["name"]: a for a in atomics.downtime_actions(m.record())}


def duration(action: dict) -> float:
    return action["finished_at"] - action["started_at"]


def test_metadata_downtime_lasts_the_downtime_and_its_outages_keep_their_windows():
    m = measured(failed=10, lost=5)
    found = actions(m)
    root = found["metadata.downtime"]
    assert duration(root) == pytest.approx(2.0)
    [outage] = root["children"]
    [truth] = m.report.outages
    assert outage["name"] == "metadata.outage"
    assert outage["started_at"] == pytest.approx(truth.start + OFFSET)
    assert outage["finished_at"] == pytest.approx(truth.end + OFFSET)
    assert root["started_at"] == outage["started_at"]
    assert "failed" not in root
    network = found["network.downtime"]
    assert duration(network) == pytest.approx(1.0)
    assert [duration(c) for c in network["children"]] == pytest.approx([1.0])


def test_two_outages_sum_and_rally_merges_nothing_per_iteration():
    m = measured(failed=10)
    two = measured(before=5, failed=5, after=5)
    m.report = type(m.report)(**{**m.report.__dict__,
                                 "outages": m.report.outages + two.report.outages,
                                 "total_downtime": 3.0})
    root = actions(m)["metadata.downtime"]
    assert duration(root) == pytest.approx(3.0)
    assert len(root["children"]) == 2
    merged = atomic.merge_atomic_actions([root])
    assert merged["metadata.downtime"]["count"] == 1
    assert merged["metadata.downtime"]["duration"] == pytest.approx(3.0)


def test_no_outage_is_a_zero_downtime_at_the_migrations_end():
    m = measured(failed=0)
    root = actions(m)["metadata.downtime"]
    assert duration(root) == 0
    assert root["started_at"] == pytest.approx(m.migrations[-1].end + OFFSET)


def test_unrecovered_is_failed_and_nothing_without_a_measurement():
    m = measured(before=5, failed=10, after=0)
    assert actions(m)["metadata.downtime"]["failed"] is True
    assert actions(Measurement(error="SSHTimeout")) == {}
    no_clock = measured()
    assert "metadata.downtime" not in {a["name"] for a in
                                       atomics.downtime_actions(no_clock.record())}


def test_the_migration_record_keeps_hosts():
    m = measured()
    assert m.record().migrations[0] == Migration(100.9, 101.8, "compute-1", "compute-2",
                                                 0.0, pytest.approx(2.0))


def test_ping_outages_without_an_answer_before_end_at_the_next_answer():
    from rally_metadata_downtime.ping_log import NetworkDowntime, NetworkOutage
    from rally_metadata_downtime.records import NetworkFigures
    runs = (NetworkDowntime(interval=0.2, sent=20, received=15, outages=(
        NetworkOutage(1, 3, None, 1000.6),            # began before the first answer
        NetworkOutage(10, 2, 1001.8, 1002.4),
        NetworkOutage(19, 2, None, None))),)           # no answer at all: no window
    figures = NetworkFigures.from_runs(runs)
    assert [w for window in figures.outages for w in window] == pytest.approx(
        [1000.0, 1000.6, 1002.0, 1002.4])


def test_without_migrations_or_outages_there_is_no_metadata_point():
    m = measured(failed=0)
    m.migrations = []
    assert "metadata.downtime" not in actions(m)
