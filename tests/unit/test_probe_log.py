"""parse_probe_log on hand-made logs: every number below was worked out by hand."""

import pytest

from rally_metadata_downtime.probe_log import Probe, ProbeHeader, ProbeLogError, parse_probe_log

HEADER = ("# rmd-probe v1 interval=0.2 timeout=1 mode=hostname expect=vm-1 client=wget "
          "started=100.00\n")


def test_header_probes_and_stop_are_read():
    log = parse_probe_log(HEADER
                          + "P 1 100.00 100.02 OK http=200\n"
                          + "P 2 100.20 100.21 FAIL curl=7\n"
                          + "# stopped 100.40\n")
    assert log.header == ProbeHeader(interval=0.2, timeout=1.0, mode="hostname",
                                     expect="vm-1", started=100.0, client="wget")
    assert log.probes == (Probe(1, 100.0, 100.02, True, "http=200"),
                          Probe(2, 100.2, 100.21, False, "curl=7"))
    assert (log.stopped, log.stopped_at) == (True, 100.4)
    assert (log.garbage_lines, log.truncated_last_line, log.clock_reset) == (0, False, False)


def test_each_launch_records_the_pause_the_probe_chose_after_it():
    log = parse_probe_log(HEADER.replace("interval=0.2", "interval=0.2 retry=0.05")
                          + "P 1 100.00 100.02 FAIL curl=7 0.2\n"
                          + "P 2 100.20 100.21 FAIL http=503 0.05\n"
                          + "P 3 100.25 100.26 OK http=200 0.05\n")
    assert [(p.seq, p.pause) for p in log.probes] == [(1, 0.2), (2, 0.05), (3, 0.05)]
    assert log.header.retry == 0.05
    assert log.garbage_lines == 0


def test_records_from_before_the_pause_field_still_parse():
    log = parse_probe_log(HEADER + "P 1 100.00 100.02 OK http=200\n"
                          + "P 2 100.20 100.21 FAIL curl=7 0.2\n")
    assert [(p.seq, p.ok, p.pause) for p in log.probes] == [(1, True, None),
                                                            (2, False, 0.2)]
    assert log.garbage_lines == 0


@pytest.mark.parametrize("line", ["P 1 100.00 100.02 OK http=200 0.2 x",
                                  "P 1 100.00 100.02 OK http=200 -1",
                                  "P 1 100.00 100.02 OK http=200 nan",
                                  "P 1 100.00 100.02 OK http=200  0.2"])
def test_a_malformed_pause_makes_the_record_unreadable(line):
    log = parse_probe_log(f"P 2 100.20 100.21 OK http=200 0.2\n{line}\n")
    assert [p.seq for p in log.probes] == [2]
    assert log.garbage_lines == 1


def test_overlapping_requests_are_sorted_by_start_not_by_line_order():
    # seq 1 was blackholed for 1 s, so its line comes after seq 2..5's.
    text = (HEADER
            + "P 2 100.20 100.22 OK http=200\n"
            + "P 3 100.40 100.42 OK http=200\n"
            + "P 1 100.00 101.00 FAIL curl=28\n")
    log = parse_probe_log(text)
    assert [p.seq for p in log.probes] == [1, 2, 3]
    assert log.clock_reset is False


def test_equal_starts_are_ordered_by_seq():
    log = parse_probe_log("P 7 5.00 5.10 OK http=200\nP 6 5.00 5.30 FAIL curl=7\n")
    assert [p.seq for p in log.probes] == [6, 7]


def test_missing_header_and_stop_are_tolerated():
    log = parse_probe_log("P 1 3.00 3.01 OK http=200\n")
    assert log.header is None
    assert (log.stopped, log.stopped_at) == (False, None)


def test_truncated_last_line_is_flagged_not_fatal():
    log = parse_probe_log(HEADER + "P 1 100.00 100.02 OK http=200\nP 2 100.2")
    assert len(log.probes) == 1
    assert log.truncated_last_line is True
    assert log.garbage_lines == 0


def test_complete_last_line_without_newline_is_kept_but_flagged():
    # Cut right before its newline: the record reads whole, but the log was cut.
    log = parse_probe_log("P 1 100.00 100.02 OK http=200\nP 2 100.20 100.21 FAIL curl=7")
    assert [p.seq for p in log.probes] == [1, 2]
    assert log.truncated_last_line is True
    assert log.garbage_lines == 0


@pytest.mark.parametrize("bad", [
    "hello world",
    "P 1 100.00 100.02 MAYBE http=200",      # verdict
    "P x 100.00 100.02 OK http=200",         # seq
    "P 0 100.00 100.02 OK http=200",         # seq starts at 1
    "P 1 100.00 99.00 OK http=200",          # ends before it starts
    "P 1 100.00 100.02 OK",                  # no reason
    "P 1 100.00 100.02 OK http=200 extra",   # too many fields
    "P 1 nan 100.02 OK http=200",            # not a time
    "# rmd-probe v1 interval=zero timeout=1 mode=hostname expect= started=1",
    "# stopped soon",
])
def test_garbage_lines_are_counted(bad):
    log = parse_probe_log(f"P 1 1.00 1.01 OK http=200\n{bad}\nP 2 1.20 1.21 OK http=200\n")
    assert log.garbage_lines == 1
    assert [p.seq for p in log.probes] == [1, 2]


def test_blank_lines_are_not_garbage():
    log = parse_probe_log("\nP 1 1.00 1.01 OK http=200\n\n")
    assert log.garbage_lines == 0


@pytest.mark.parametrize("text", ["", "\n", "   \n\n"])
def test_empty_log_is_an_error(text):
    with pytest.raises(ProbeLogError, match="empty"):
        parse_probe_log(text)


def test_log_without_any_probe_is_an_error():
    with pytest.raises(ProbeLogError, match="no readable probe"):
        parse_probe_log(HEADER + "garbage\n# stopped 101.00\n")


def test_probe_log_error_is_a_value_error():
    assert issubclass(ProbeLogError, ValueError)


def test_uptime_going_back_is_a_clock_reset():
    # The guest rebooted: a later launch has an earlier uptime.
    log = parse_probe_log("P 1 500.00 500.01 OK http=200\n"
                          "P 2 500.20 500.21 OK http=200\n"
                          "P 3 4.10 4.11 OK http=200\n")
    assert log.clock_reset is True


def test_a_restarted_probe_appending_to_the_same_log_is_a_clock_reset():
    # Same seq twice: two runs share the log, and their timelines cannot be merged.
    log = parse_probe_log("P 1 500.00 500.01 OK http=200\n"
                          "P 1 9.00 9.01 OK http=200\n")
    assert log.clock_reset is True


def test_small_reordering_is_not_a_clock_reset():
    log = parse_probe_log("P 1 10.00 10.50 FAIL curl=28\nP 2 9.99 10.00 OK http=200\n")
    assert log.clock_reset is False
