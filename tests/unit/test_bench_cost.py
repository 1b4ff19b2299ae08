"""The cost bench's pure parts (tests/bench/cost_figures.py): what it reads from
/proc, the in-flight bound it compares against, and the overlap it counts."""

from __future__ import annotations

import pytest

from tests.bench.cost_figures import (
    count_requests,
    flatness,
    in_flight_bound,
    max_overlap,
    parse_proc_stat,
    probe_spans,
    slope,
    tree_ticks,
)

# A real line (busybox sh in a lab guest), fields 14-17 set to 7 11 13 17.
STAT = ("42 (sh) S 1 42 42 0 -1 4194560 1234 5678 0 0 7 11 13 17 20 0 1 0 "
        "123456 2932736 181 18446744073709551615 1 1 0 0 0 0 0 2 65536 0 0 0 17 1 0 0 0 0 0")


def test_parse_reads_times_by_field_number():
    stat = parse_proc_stat(STAT)
    assert (stat.pid, stat.comm, stat.state, stat.ppid, stat.session) == (42, "sh", "S", 1, 42)
    assert (stat.utime, stat.stime, stat.cutime, stat.cstime) == (7, 11, 13, 17)
    assert stat.own_ticks == 18
    assert stat.total_ticks == 48


def test_parse_comm_with_spaces_and_parentheses():
    stat = parse_proc_stat(STAT.replace("(sh)", "(a) b (c))"))
    assert stat.comm == "a) b (c)"
    assert (stat.utime, stat.cstime) == (7, 17)


@pytest.mark.parametrize("bad", ["", "42 sh S 1", "42 (sh) S 1 42 42"])
def test_parse_refuses_what_is_not_a_stat_line(bad):
    with pytest.raises(ValueError):
        parse_proc_stat(bad)


def test_tree_ticks_adds_own_and_reaped_children():
    parent = parse_proc_stat(STAT)
    child = parse_proc_stat(STAT.replace("42 (sh) S 1", "43 (wget) R 42"))
    assert tree_ticks([parent, child]) == 96
    assert tree_ticks([]) == 0


@pytest.mark.parametrize("timeout, interval, bound", [
    (1.0, 0.1, 11),     # the plugin's defaults
    (1.0, 0.2, 6),
    (1.0, 0.3, 5),      # ceil(3.33) + 1
    (1.1, 0.1, 12),     # 1.1 / 0.1 is 11.000000000000002 in floats: not 13
    (0.7, 0.1, 8),      # 0.7 / 0.1 is 6.999999999999999: not 7
    (0.5, 1.0, 2),
])
def test_in_flight_bound(timeout, interval, bound):
    assert in_flight_bound(timeout, interval) == bound


def test_in_flight_bound_refuses_zero():
    with pytest.raises(ValueError):
        in_flight_bound(1.0, 0)


def test_max_overlap_counts_spans_open_at_once():
    # Launched every 0.1 s, each blackholed for 1 s: 10 overlap (ends meet starts).
    spans = [(round(0.1 * i, 2), round(0.1 * i + 1.0, 2)) for i in range(30)]
    assert max_overlap(spans) == 10
    assert max_overlap([(0, 1), (0.5, 2), (0.6, 0.7)]) == 3
    assert max_overlap([(0, 1), (1, 2)]) == 1
    assert max_overlap([]) == 0


def test_max_overlap_within_a_window_only():
    spans = [(0, 1), (0.5, 1.5), (0.9, 3), (2, 3)]
    assert max_overlap(spans) == 3
    assert max_overlap(spans, within=(1.6, 5)) == 2
    assert max_overlap(spans, within=(10, 11)) == 0


def test_probe_spans_and_request_counts():
    log = ("# rmd-probe v1 interval=0.1 retry=0.05 timeout=1 mode=hostname expect=vm-1 "
           "client=wget started=10.00\n"
           "P 1 10.00 10.01 OK http=200 0.1\n"
           "P 3 10.20 11.20 FAIL wget=timeout 0.1\n"
           "P 2 10.10 11.10 FAIL wget=timeout 0.1\n"
           "P 4 10.3")   # cut inside its last line
    assert probe_spans(log) == [(10.00, 10.01), (10.20, 11.20), (10.10, 11.10)]
    assert count_requests("ours-wget", log) == 4
    assert count_requests("tempest", "PASSED 0.21\nFAILED 0.22\nPASSED\n") == 3
    assert count_requests("tempest", "garbage\n") == 0


def test_flatness_and_slope():
    assert flatness([0.5, 0.55, 0.6]) == pytest.approx(0.2)
    assert flatness([1.0, 1.0]) == 0
    assert slope([1, 10, 50, 100], [2, 2, 2, 2]) == 0
    assert slope([1, 2, 3], [1, 3, 5]) == pytest.approx(2)

