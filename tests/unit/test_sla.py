"""SLA metadata_downtime fed with the iteration dicts the scenario's output makes."""

import jsonschema
import pytest
from rally.task import sla as rally_sla

from rally_metadata_downtime.analysis import analyse
from rally_metadata_downtime.plugins.sla import MetadataDowntime
from rally_metadata_downtime.records import Measurement, Migration, Watch
from tests.unit.plugin_data import iteration, measured, network, outage_log


def run_sla(config, *results):
    checker = MetadataDowntime(config)
    for result in results:
        checker.add_iteration(iteration(result) if isinstance(result, Measurement)
                              else result)
    return checker


def not_recovered():
    log = outage_log(before=5, failed=10, after=0)
    return Measurement(log=log, report=analyse(log, recovered_after=101.0),
                       migrations=[Migration(100.9, 101.8)])


def test_registered_under_its_name():
    assert rally_sla.SLA.get("metadata_downtime") is MetadataDowntime


def test_passes_within_limit():
    # 10 failed probes x 0.2 s = 2 s of downtime each
    checker = run_sla({"allowed_metadata_downtime": 6}, measured(), measured())
    assert checker.success
    assert checker.result()["success"] is True
    assert checker.details() == ("worst metadata downtime 2.00 s (iteration 1), "
                                 "allowed 6 s; worst host pair compute-1 -> compute-2 "
                                 "(2.00 s, 2 migrations) - Passed")


def test_fails_over_limit_and_names_worst_iteration():
    checker = run_sla({"allowed_metadata_downtime": 3}, measured(failed=10),
                      measured(failed=20), measured(failed=5))
    assert not checker.success
    assert checker.details() == ("worst metadata downtime 4.00 s (iteration 2), "
                                 "allowed 3 s; worst host pair compute-1 -> compute-2 "
                                 "(4.00 s, 3 migrations) - Failed")


def started_at(timestamp, result):
    return dict(iteration(result), timestamp=timestamp)


def test_names_iterations_in_the_reports_order_not_the_order_they_finished():
    # Concurrency 2: Rally hands the SLA the iteration started second first, as it
    # finished first; its report lists iterations by start time.
    checker = run_sla({"allowed_metadata_downtime": 3},
                      started_at(1001.0, measured(failed=20)),
                      started_at(1000.0, measured(failed=10)),
                      started_at(1013.0, not_recovered()),
                      started_at(1012.0, measured(failed=5)))
    assert checker.details() == (
        "worst metadata downtime 4.00 s (iteration 2), allowed 3 s; "
        "worst host pair compute-1 -> compute-2 (4.00 s, 3 migrations); "
        "iteration 4: metadata did not recover after the migration - Failed")


def test_merge_numbers_by_start_time_too():
    config = {"allowed_metadata_downtime": 6}
    first = run_sla(config, started_at(20.0, measured(failed=15)))
    second = run_sla(config, started_at(10.0, measured()))
    first.merge(second)
    assert "worst metadata downtime 3.00 s (iteration 2)" in first.details()


def test_zero_allowed_fails_any_outage_and_passes_none():
    assert not run_sla({"allowed_metadata_downtime": 0}, measured(failed=1)).success
    assert run_sla({"allowed_metadata_downtime": 0}, measured(failed=0)).success


def test_no_successful_probe_fails():
    result = Measurement(
        log=outage_log(before=0, failed=10, after=0),
        error="MetadataNotMeasured: the probe log gives no figure: metadata never "
              "answered correctly in 10 probes")
    checker = run_sla({"allowed_metadata_downtime": 6}, measured(), result)
    assert not checker.success
    assert "iteration 2: metadata not measured (no: MetadataNotMeasured" in checker.details()


def test_iteration_without_output_fails():
    bare = {"duration": 1, "idle_duration": 0, "timestamp": 0, "atomic_actions": [],
            "error": ["SSHTimeout", "no SSH", "traceback"],
            "output": {"additive": [], "complete": []}}
    checker = run_sla({"allowed_metadata_downtime": 6}, bare)
    assert not checker.success
    assert "iteration 1: metadata not measured (no figures in its output: SSHTimeout)" \
        in checker.details()


def test_unrecovered_fails_even_with_small_downtime():
    checker = run_sla({"allowed_metadata_downtime": 600}, not_recovered())
    assert not checker.success
    assert "iteration 1: metadata did not recover after the migration" in checker.details()


def test_network_limit():
    over = measured(lost=40)  # 40 x 0.2 = 8 s
    assert run_sla({"allowed_metadata_downtime": 6}, over).success
    checker = run_sla({"allowed_metadata_downtime": 6, "allowed_network_downtime": 7},
                      measured(lost=5), over)
    assert not checker.success
    assert ("worst network downtime 8.00 s (iteration 2), allowed 7 s"
            in checker.details())
    assert run_sla({"allowed_metadata_downtime": 6, "allowed_network_downtime": 8},
                   over).success


def test_network_limit_ignores_iterations_without_ping():
    no_ping = Measurement(log=measured().log, report=measured().report,
                          migrations=measured().migrations)
    assert run_sla({"allowed_metadata_downtime": 6, "allowed_network_downtime": 0},
                   no_ping).success


def test_merge_keeps_worst_and_renumbers():
    config = {"allowed_metadata_downtime": 3, "allowed_network_downtime": 7}
    first = run_sla(config, measured(failed=5), measured(failed=10))
    second = run_sla(config, measured(failed=20, lost=40), not_recovered())
    assert first.success and not second.success
    assert first.merge(second) is False
    assert first.iterations == 4
    details = first.details()
    assert "worst metadata downtime 4.00 s (iteration 3)" in details
    assert "worst network downtime 8.00 s (iteration 3)" in details
    assert "iteration 4: metadata did not recover" in details


def test_merge_of_passing_parts_passes():
    config = {"allowed_metadata_downtime": 6}
    first, second = run_sla(config, measured()), run_sla(config, measured(failed=15))
    assert first.merge(second) is True
    assert first.details().startswith("worst metadata downtime 3.00 s (iteration 2)")


def test_the_median_limit_is_not_decided_by_one_slow_iteration():
    # Downtimes 1, 1 and 4 s (0.2 s per failed probe): median 1 s.
    config = {"allowed_metadata_downtime": 5, "allowed_median_metadata_downtime": 1.5}
    slow_one = run_sla(config, measured(failed=5), measured(failed=20), measured(failed=5))
    assert slow_one.success
    assert "median metadata downtime 1.00 s over 3 iterations, allowed 1.5 s" \
        in slow_one.details()
    typical = run_sla(config, measured(failed=10), measured(failed=10),
                      measured(failed=10))
    assert not typical.success      # median 2 s, each within the 5 s limit
    # Merged parts judge the median of all their iterations: 1 1 2 2 2 4.
    assert slow_one.merge(typical) is False
    assert "median metadata downtime 2.00 s over 6 iterations" in slow_one.details()


def test_details_before_any_iteration():
    assert MetadataDowntime({"allowed_metadata_downtime": 6}).details() == \
        "no iteration measured yet - Passed"


def test_details_lists_at_most_three_problems():
    checker = run_sla({"allowed_metadata_downtime": 6}, *[not_recovered()] * 5)
    assert checker.details().endswith("2 more iterations not measured or not "
                                      "recovered - Failed")


@pytest.mark.parametrize("config", [
    {},
    {"allowed_metadata_downtime": -1},
    {"allowed_metadata_downtime": "6"},
    {"allowed_metadata_downtime": 6, "allowed_network_downtime": -0.5},
    {"allowed_metadata_downtime": 6, "max_downtime": 1},
    {"allowed_metadata_downtime": 6, "allowed_median_metadata_downtime": -1},
])
def test_schema_rejects(config):
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(config, MetadataDowntime.CONFIG_SCHEMA)
    assert rally_sla.SLA.validate("metadata_downtime", {}, {}, config)


@pytest.mark.parametrize("config", [
    {"allowed_metadata_downtime": 0},
    {"allowed_metadata_downtime": 6.5, "allowed_network_downtime": 7},
    {"allowed_metadata_downtime": 6.5, "allowed_median_metadata_downtime": 1},
])
def test_schema_accepts(config):
    jsonschema.validate(config, MetadataDowntime.CONFIG_SCHEMA)
    assert rally_sla.SLA.validate("metadata_downtime", {}, {}, config) == []


def test_network_helper_is_what_the_tests_think():
    assert network(lost=40).total_downtime == pytest.approx(8.0)


def test_an_unreadable_record_fails_naming_it():
    broken = iteration(measured())
    broken["output"]["complete"][-1]["data"] = ['{"version": 99}']
    checker = run_sla({"allowed_metadata_downtime": 6}, broken)
    assert not checker.success
    assert "metadata not measured (unreadable Metadata downtime record: record " \
           "version 99, this plugin reads 1, 2, 3)" in checker.details()


def test_the_human_table_is_not_what_the_sla_reads():
    # Renaming every row of the summary table changes nothing in the verdict.
    result = iteration(measured(failed=40))  # 8 s
    for row in result["output"]["complete"][0]["data"]["rows"]:
        row[0] = "renamed " + row[0]
    checker = run_sla({"allowed_metadata_downtime": 6}, result)
    assert not checker.success and "worst metadata downtime 8.00 s" in checker.details()


def test_the_worst_host_pair_is_named_across_merges():
    into_b = measured(failed=20)                 # 4 s into host b
    into_b.migrations = [Migration(100.9, 101.8, "a", "b")]
    into_a = measured(failed=5)
    into_a.migrations = [Migration(100.9, 101.8, "b", "a")]
    first = run_sla({"allowed_metadata_downtime": 6}, into_a, into_b)
    second = run_sla({"allowed_metadata_downtime": 6}, into_a, into_a)
    second.merge(first)
    assert "worst host pair a -> b (4.00 s, 1 migration)" in second.details()
    assert second.pairs["b -> a"] == (pytest.approx(1.0), 3)


def watched_on(host, failed):
    watched = measured(failed=failed)
    watched.migrations = []
    watched.watch = Watch(100.0, 130.0, host)
    return watched


def test_the_worst_watched_host_is_named_when_the_vms_ran_on_several():
    # boot_and_watch while a hook restarts one host's metadata agent.
    restarted, other = watched_on("compute-1", failed=40), watched_on("compute-2", 2)
    checker = run_sla({"allowed_metadata_downtime": 1}, other, restarted,
                      watched_on("compute-1", failed=1))
    assert not checker.success
    assert checker.details() == ("worst metadata downtime 8.00 s (iteration 2), "
                                 "allowed 1 s; worst watched host compute-1 "
                                 "(8.00 s, 2 VMs) - Failed")
    merged = run_sla({"allowed_metadata_downtime": 1}, watched_on("compute-2", 50))
    merged.merge(checker)
    assert "worst watched host compute-2 (10.00 s, 2 VMs)" in merged.details()
    # All on one host: nothing to tell apart.
    alone = run_sla({"allowed_metadata_downtime": 1}, restarted)
    assert "watched host" not in alone.details()
