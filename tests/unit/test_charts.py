"""charts: what the report shows, checked against Rally's own output validation."""

import dataclasses
import json
import math

import pytest
from rally.task.processing import charts as rally_charts

from rally_metadata_downtime import records
from rally_metadata_downtime.analysis import analyse
from rally_metadata_downtime.plugins import charts
from rally_metadata_downtime.probe_log import parse_probe_log
from rally_metadata_downtime.records import (
    IterationRecord,
    Measurement,
    Migration,
    NovaEvent,
)
from tests.unit.plugin_data import measured, network, outage_log, probe_text

ALLOWED_KEYS = {"title", "description", "chart_plugin", "data", "label", "axis_label"}


def additive(m: Measurement) -> list[dict]:
    return charts.additive_charts(m.record())


def complete(m: Measurement) -> list[dict]:
    return charts.complete_charts(m.record(), m.log)


def summary_rows(m: Measurement) -> dict:
    return dict(map(tuple, charts.summary_table(m.record())["data"]["rows"]))


def timeline(m: Measurement) -> dict | None:
    return charts.timeline_chart(m.log, m.record())


def all_charts(result):
    return ([("additive", c) for c in additive(result)]
            + [("complete", c) for c in complete(result)])


@pytest.mark.parametrize("result", [
    measured(),
    Measurement(error="SSHTimeout: no SSH"),
    Measurement(log=outage_log(), migrations=[Migration(1, 2)], error="MeterError: gone"),
], ids=["measured", "nothing", "log-only"])
def test_every_chart_passes_rallys_validation(result):
    for kind, chart in all_charts(result):
        assert rally_charts.validate_output(kind, chart) is None, chart
        assert set(chart) <= ALLOWED_KEYS


def test_additive_charts_same_titles_and_order_with_or_without_data():
    full = [c["title"] for c in additive(measured())]
    empty = [c["title"] for c in additive(Measurement())]
    assert full == empty == list(charts.ADDITIVE_TITLES) == [
        "Metadata downtime", "Longest metadata outage", "Network downtime",
        "Failed metadata probes", "Downtime by host pair"]
    *trends, pairs = additive(Measurement())
    for chart in trends:
        assert chart["chart_plugin"] == "StackedArea"
        assert chart["data"][0][1] == 0
    assert (pairs["chart_plugin"], pairs["data"]) == ("StatsTable", [])


def test_additive_values():
    # 10 failures at 0.2 s: outage estimate = 10 x 0.2 = 2.0 s; 5 pings lost x 0.2.
    result = measured(failed=10, lost=5)
    values = [c["data"][0][1] for c in additive(result)[:4]]
    assert values == pytest.approx([2.0, 2.0, 1.0, 10])
    assert additive(result)[4]["data"] == [["compute-1 -> compute-2: metadata", 2.0],
                                           ["compute-1 -> compute-2: network", 1.0]]


def test_each_outage_belongs_to_the_last_migration_started_before_it():
    m = measured(failed=10)          # one outage, from about 100.9 to 103.0
    m.migrations = [Migration(99.0, 99.5, "a", "b", 0.2),
                    Migration(100.5, 101.0, "b", "a", 0.4),
                    Migration(104.0, 104.5, "a", "b", None)]
    record = m.record()
    assert [mig.metadata_downtime for mig in record.migrations] == pytest.approx(
        [0.0, 2.0, 0.0])
    rows = charts.host_pair_table(record)["data"]
    assert rows == [["a -> b: metadata", 0.0], ["a -> b: network", 0.2],
                    ["b -> a: metadata", 2.0], ["b -> a: network", 0.4],
                    ["a -> b: metadata", 0.0]]
    assert records.owning_migration((), 100.0) is None
    # before every migration: the first one's
    m.migrations = [Migration(105.0, 106.0, "a", "b")]
    assert m.record().migrations[0].metadata_downtime == pytest.approx(2.0)


def test_network_downtime_sums_every_migration():
    result = Measurement(networks=[network(lost=3), network(lost=2)])
    assert additive(result)[2]["data"][0][1] == pytest.approx(1.0)
    rows = summary_rows(result)
    assert rows[charts.ROW_NETWORK] == pytest.approx(1.0)
    assert rows["pings sent / answered"] == "100 / 95"


def test_summary_rows():
    rows = summary_rows(measured(failed=10))
    assert rows[charts.ROW_MEASURED] == "yes"
    assert rows[charts.ROW_DOWNTIME] == pytest.approx(2.0)
    assert rows["longest metadata outage (s)"] == pytest.approx(2.0)
    assert rows[charts.ROW_RECOVERED] == "yes"
    assert rows[charts.ROW_NETWORK] == 0
    assert rows["metadata's first answer, after the probe started (s; no downtime)"] == 0


def test_summary_without_measurement_names_the_error():
    record = Measurement(error="SSHTimeout: no SSH").record()
    table = charts.summary_table(record)
    assert table["data"]["rows"] == [[charts.ROW_MEASURED, "no: SSHTimeout: no SSH"]]
    nothing = Measurement().record()
    assert charts.complete_charts(nothing, None) == [charts.summary_table(nothing),
                                                     nothing.to_output()]


def test_unrecovered_outage_is_said_so():
    log = outage_log(before=5, failed=10, after=0)
    result = Measurement(log=log, report=analyse(log, recovered_after=101.0),
                         migrations=[Migration(100.9, 101.8)])
    rows = summary_rows(result)
    assert rows[charts.ROW_RECOVERED] == "no"
    outage = charts.outage_table(result.record())["data"]["rows"][0]
    assert outage[2] == "not recovered"
    assert outage[4].endswith("- unbounded")


def test_outage_table_relative_to_migration_start():
    # The analysis places the edges; the table only shifts them by the origin.
    result = measured(migration=(100.5, 101.5))
    (outage,) = result.report.outages
    assert 100.8 <= outage.start <= 101.0 and 102.8 <= outage.end <= 103.01
    table = charts.outage_table(result.record())
    assert table["data"]["rows"] == [
        [1, round(outage.start - 100.5, 2), round(outage.end - 100.5, 2),
         round(outage.duration, 2),
         f"{round(outage.min_duration, 3)} - {round(outage.max_duration, 3)}", 10,
         "curl=28 x10", "unknown"]]


def test_timeline_series_and_origin():
    result = measured(before=2, failed=2, after=2, migration=(100.2, 100.6))
    chart = timeline(result)
    assert chart["chart_plugin"] == "Lines"
    assert [name for name, _ in chart["data"]] == ["probe ok", "live migration",
                                                   "probe failed"]
    series = dict((name, points) for name, points in chart["data"])
    assert series["probe ok"] == [[-0.2, 1], [0.0, 1], [0.2, 0], [0.4, 0], [0.6, 1],
                                  [0.8, 1]]
    assert series["probe failed"] == [[x, 1 - y] for x, y in series["probe ok"]]
    # a box just outside the probe lines' 0 and 1, so it never hides one
    low, high = charts.MIGRATION_LOW, charts.MIGRATION_HIGH
    assert low < 0 and high > 1
    assert series["live migration"] == [[-0.2, low], [0.0, low], [0.0, high], [0.4, high],
                                        [0.4, low], [0.8, low]]


def test_timeline_downsampled_keeps_every_state_change():
    states = (["OK"] * 1000 + ["curl=7"] * 7 + ["OK"] * 1000)
    log = parse_probe_log(probe_text(*states))
    result = Measurement(log=log, migrations=[Migration(100, 101)])
    ok = dict(timeline(result)["data"])["probe ok"]
    assert len(ok) <= charts.MAX_TIMELINE_POINTS + 10
    xs = [x for x, _ in ok]
    assert xs == sorted(xs)
    # both sides of both edges survive: last OK, first/last failure, first OK after
    # (launches 100 + 0.2 k: k = 999, 1000, 1006, 1007; x relative to 100)
    for x in (199.8, 200.0, 201.2, 201.4):
        assert x in xs


def test_no_timeline_without_migration_or_log():
    assert timeline(Measurement(log=outage_log())) is None
    assert timeline(Measurement(migrations=[Migration(1, 2)])) is None


def test_unbounded_is_text_not_infinity():
    assert charts._seconds(math.inf) == "unbounded"


def test_the_record_is_the_last_complete_chart_and_reads_back_whole():
    m = measured(failed=10, lost=5)
    output = {"additive": additive(m), "complete": complete(m)}
    assert output["complete"][-1]["title"] == "Metadata downtime record"
    assert rally_charts.validate_output("complete", output["complete"][-1]) is None
    record = IterationRecord.from_output(output)
    assert record == m.record()
    assert record.metadata.downtime == pytest.approx(2.0)
    assert record.network.downtime == pytest.approx(1.0)
    assert record.migrations[0].destination_host == "compute-2"
    assert record.metadata.outages[0].reasons == {"curl=28": 10}


def test_a_version_2_record_reads_with_its_first_answer_not_recorded():
    """Before version 3 an outage the log began inside (the wait for the first
    answer) was flagged and counted; such records still read, as written."""
    data = json.loads(measured(failed=10).record().to_json())
    data["version"] = 2
    del data["metadata"]["first_answer_after"]
    for outage in data["metadata"]["outages"]:
        outage["began_before_log"] = False
    old = IterationRecord.from_json(json.dumps(data))
    assert old.metadata.first_answer_after is None
    assert old.metadata.downtime == pytest.approx(2.0)
    rows = dict(map(tuple, charts.summary_table(old)["data"]["rows"]))
    assert rows["metadata's first answer, after the probe started (s; no downtime)"] \
        == "not recorded"


def test_novas_events_are_drawn_beside_ours_and_place_each_outage():
    m = measured(migration=(100.5, 101.5))      # outage about 100.9 - 102.9
    m.clock_offset = 1000.0
    events = (NovaEvent("compute_live_migration", 1100.6, 1101.4, "Success"),
              NovaEvent("compute_post_live_migration_at_destination", 1101.4, 1101.9,
                        "Success"))
    m.migrations = [dataclasses.replace(m.migrations[0], nova_events=events)]
    record = m.record()
    series = dict(charts.timeline_chart(m.log, record)["data"])
    low, high = charts.NOVA_LOW, charts.NOVA_HIGH
    assert series["live migration (Nova's events)"][1:5] == [
        [0.1, low], [0.1, high], [1.4, high], [1.4, low]]
    [row] = charts.outage_table(record)["data"]["rows"]
    [outage] = record.metadata.outages
    assert row[-1] == f"{outage.start - 101.9:+.2f} / {outage.end - 101.9:+.2f}"


def test_hidden_nova_events_are_said_so_not_drawn():
    m = measured()
    m.clock_offset = 1000.0
    m.migrations = [dataclasses.replace(
        m.migrations[0], nova_events_note="Nova shows no events for this action "
                                          "(policy hides them)")]
    chart = charts.timeline_chart(m.log, m.record())
    assert [name for name, _ in chart["data"]] == ["probe ok", "live migration",
                                                   "probe failed"]
    assert "Nova's events are not shown: Nova shows no events" in chart["description"]
