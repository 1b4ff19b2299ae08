"""analyse() on hand-made logs; each expected figure is worked out in a comment."""

import json
import math

import hypothesis
import hypothesis.strategies as st
import pytest

from rally_metadata_downtime.analysis import AnalysisError, NoSuccessfulProbe, Outage, analyse
from rally_metadata_downtime.probe_log import parse_probe_log

HEADER = "# rmd-probe v1 interval=0.2 timeout=1 mode=hostname expect=vm-1 started=0.50\n"


def make_log(*samples, header=HEADER, stopped=None):
    """samples: (sample time, "OK" | reason of a failure); seq follows the given order.

    The sample time is what analyse() reads: a success answered then (launched 0.01 s
    before), a failure was launched then (and gave up 0.01 s later).
    """
    lines = [header] if header else []
    for seq, (at, state) in enumerate(samples, start=1):
        if state == "OK":
            lines.append(f"P {seq} {at - 0.01:.2f} {at:.2f} OK http=200\n")
        else:
            lines.append(f"P {seq} {at:.2f} {at + 0.01:.2f} FAIL {state}\n")
    if stopped is not None:
        lines.append(f"# stopped {stopped:.2f}\n")
    return parse_probe_log("".join(lines))


approx = pytest.approx


def test_outage_in_the_middle():
    # Launches 10.0 10.2 | 10.5 10.7 failed | 11.1 11.3.
    # Began in (10.2, 10.5] -> 10.35; ended in (10.7, 11.1] -> 10.9; estimate 0.55.
    # Bounds: 10.7 - 10.5 = 0.2 and 11.1 - 10.2 = 0.9.
    report = analyse(make_log((10.0, "OK"), (10.2, "OK"), (10.5, "curl=7"),
                              (10.7, "curl=7"), (11.1, "OK"), (11.3, "OK"), stopped=11.5))
    (outage,) = report.outages
    assert (outage.earliest_start, outage.latest_start) == (10.2, 10.5)
    assert (outage.earliest_end, outage.latest_end) == (10.7, 11.1)
    assert outage.start == approx(10.35)
    assert outage.end == approx(10.9)
    assert outage.estimate == approx(0.55)
    assert outage.bounds == (approx(0.2), approx(0.9))
    assert outage.failed_probes == 2
    assert outage.reasons == {"curl=7": 2}
    assert outage.unrecovered is False
    assert report.first_answer_after == 0.0
    assert (report.probes, report.successes, report.failures) == (6, 4, 2)
    assert report.total_downtime == approx(0.55)
    assert report.longest_outage == approx(0.55)
    assert report.outage_count == 1
    # Tempest books each failed line with the time since the previous launch:
    # (10.5 - 10.2) + (10.7 - 10.5) = 0.5.
    assert report.tempest_style_downtime == approx(0.5)
    # Edge widths 10.5 - 10.2 = 0.3 and 11.1 - 10.7 = 0.4: each midpoint is off by at
    # most half its width, the duration by at most (0.3 + 0.4) / 2.
    assert report.resolution == approx(0.35)
    assert (report.first_probe_at, report.last_probe_at) == (10.0, 11.3)
    assert (report.recovered, report.recovered_at) == (True, 11.1)
    assert report.settled_for == approx(0.2)
    assert report.unrecovered_downtime == 0.0
    assert report.stopped is True


def test_failures_before_the_first_answer_are_the_wait_for_it_not_downtime():
    # 1.0 1.2 failed | 1.4 1.6 | 1.8 failed | 2.0: metadata had not answered this VM
    # yet (no baseline), so 1.0-1.2 is the wait for the first answer (1.4), not an
    # outage; the outage is 1.8's alone.
    report = analyse(make_log((1.0, "http=503"), (1.2, "http=404"), (1.4, "OK"),
                              (1.6, "OK"), (1.8, "curl=28"), (2.0, "OK")))
    (outage,) = report.outages
    assert outage.reasons == {"curl=28": 1}
    assert outage.earliest_start == approx(1.6)
    assert report.first_answer_after == approx(0.4)
    assert report.total_downtime == approx(outage.duration)
    # Every request counts as sent, the waiting ones too.
    assert (report.probes, report.successes, report.failures) == (6, 3, 3)
    assert report.first_probe_at == approx(1.0)
    # Tempest's figure from the first answer on, as the downtime.
    assert report.tempest_style_downtime == approx(1.8 - 1.6)
    assert (report.recovered, report.recovered_at) == (True, approx(2.0))


def test_outage_still_going_when_the_log_ended_is_unrecovered_not_small():
    # 1.0 1.2 | 1.4 1.7 failed: began at (1.2 + 1.4) / 2 = 1.3, seen until 1.7.
    report = analyse(make_log((1.0, "OK"), (1.2, "OK"), (1.4, "curl=28"), (1.7, "curl=28")))
    (outage,) = report.outages
    assert outage.unrecovered is True
    assert outage.latest_end is None
    assert outage.bounds == (approx(0.3), math.inf)
    assert report.recovered is False
    assert report.recovered_at is None
    assert report.settled_for == 0.0
    assert report.unrecovered_downtime == approx(0.4)
    assert report.total_downtime == approx(0.4)
    assert report.resolution == approx(0.1)  # only the start edge: (1.4 - 1.2) / 2


def test_flapping_gives_separate_outages():
    # 10 ok, 11 fail, 12 ok, 13 14 fail, 15 ok: outages 10.5..11.5 (1 s), 12.5..14.5 (2 s).
    report = analyse(make_log((10, "OK"), (11, "mismatch"), (12, "OK"), (13, "empty"),
                              (14, "mismatch"), (15, "OK")))
    assert [(o.start, o.end) for o in report.outages] == [(10.5, 11.5), (12.5, 14.5)]
    assert report.outages[1].reasons == {"empty": 1, "mismatch": 1}
    assert report.total_downtime == approx(3.0)
    assert report.longest_outage == approx(2.0)
    assert report.outage_count == 2
    assert report.tempest_style_downtime == approx(3.0)
    assert report.resolution == approx(1.0)


def test_out_of_order_lines_are_analysed_in_launch_order():
    # seq 2 was blackholed and wrote its line last. Samples: ok 2.01 (answer), fail
    # 2.10 (launch), ok 2.21, ok 2.41: began (2.01 + 2.10) / 2, ended (2.10 + 2.21) / 2.
    text = (HEADER
            + "P 1 2.00 2.01 OK http=200\n"
            + "P 3 2.20 2.21 OK http=200\n"
            + "P 4 2.40 2.41 OK http=200\n"
            + "P 2 2.10 3.10 FAIL curl=28\n")
    report = analyse(parse_probe_log(text))
    (outage,) = report.outages
    assert (outage.start, outage.end) == (approx(2.055), approx(2.155))
    assert (report.recovered, report.recovered_at) == (True, 2.21)


def test_no_outage():
    # Spacings 0.2 0.3 0.2: the median, 0.2, is the resolution.
    report = analyse(make_log((1.0, "OK"), (1.2, "OK"), (1.5, "OK"), (1.7, "OK")))
    assert report.outages == ()
    assert (report.total_downtime, report.longest_outage) == (0.0, 0.0)
    assert report.tempest_style_downtime == 0.0
    assert report.resolution == approx(0.2)
    assert (report.recovered, report.recovered_at) == (True, 1.0)
    assert report.settled_for == approx(0.7)


def test_a_single_probe_states_the_configured_interval_as_resolution():
    assert analyse(make_log((3.0, "OK"))).resolution == 0.2
    assert analyse(make_log((3.0, "OK"), header=None)).resolution == 0.0


FLAPPING_THEN_STEADY = ((10, "OK"), (11, "curl=7"), (12, "OK"), (13, "curl=7"),
                        (14, "curl=7"), (15, "OK"), (16, "OK"), (17, "OK"))


@pytest.mark.parametrize("after, recovered_at", [
    (None, 15.0),   # the run after the last outage
    (10.5, 15.0),   # before every outage: still the run after the last one
    (14.5, 15.0),   # inside the last outage
    (15.0, 15.0),   # exactly at an answer: at/after counts
    (15.5, 16.0),   # inside the final run: its first answer at/after the instant
    (17.0, 17.0),
])
def test_recovered_after(after, recovered_at):
    report = analyse(make_log(*FLAPPING_THEN_STEADY), recovered_after=after)
    assert (report.recovered, report.recovered_at) == (True, recovered_at)
    assert report.settled_for == approx(17.0 - recovered_at)


def test_no_probe_after_the_instant_means_not_recovered():
    report = analyse(make_log(*FLAPPING_THEN_STEADY), recovered_after=17.5)
    assert (report.recovered, report.recovered_at) == (False, None)


def test_recovered_after_does_not_hide_an_outage_before_it():
    # A burst before the migration is still an outage, reported with its times.
    report = analyse(make_log(*FLAPPING_THEN_STEADY), recovered_after=16.0)
    assert report.outage_count == 2
    assert report.total_downtime == approx(3.0)


def test_failures_after_the_instant_are_not_recovered():
    report = analyse(make_log((0, "OK"), (1, "OK"), (2, "http=404")), recovered_after=0.5)
    assert report.recovered is False


SETTLED_THEN_FAILED = ((10, "OK"), (11, "curl=7"), (12, "OK"), (13, "OK"), (14, "OK"),
                       (15, "OK"), (16, "wget=timeout"))


@pytest.mark.parametrize("settle, recovered", [
    (math.inf, False),  # default: only a run that ends the log is a recovery
    (3.0, True),        # answered 12..15: settled for 3 s
    (3.5, False),       # not long enough
])
def test_a_failure_after_a_settled_recovery_does_not_undo_it(settle, recovered):
    report = analyse(make_log(*SETTLED_THEN_FAILED), recovered_after=11.5, settle=settle)
    assert report.recovered is recovered
    if recovered:
        assert (report.recovered_at, report.settled_for) == (12.0, approx(3.0))
    # The late failure is an outage of its own either way, still open at the end.
    assert report.outage_count == 2 and report.outages[-1].unrecovered
    assert report.unrecovered_downtime == approx(0.5)


def test_a_settled_run_before_the_instant_is_not_a_recovery():
    report = analyse(make_log(*SETTLED_THEN_FAILED), recovered_after=15.5, settle=0.0)
    assert report.recovered is False


def test_no_success_at_all_is_an_error():
    with pytest.raises(NoSuccessfulProbe, match="curl=7 x2"):
        analyse(make_log((0, "curl=7"), (1, "curl=7"), (2, "http=503")))
    assert issubclass(NoSuccessfulProbe, AnalysisError)
    assert issubclass(AnalysisError, ValueError)


def test_clock_reset_is_reported_and_never_counts_as_recovered():
    text = ("P 1 500.00 500.01 OK http=200\n"
            "P 2 500.20 500.21 OK http=200\n"
            "P 3 4.00 4.01 OK http=200\n")
    report = analyse(parse_probe_log(text))
    assert report.clock_reset is True
    assert report.recovered is False


def test_log_quality_is_carried_through():
    text = HEADER + "P 1 1.00 1.01 OK http=200\nnoise\nP 2 1.20 1.21 OK http=200\nP 3 1.4"
    report = analyse(parse_probe_log(text))
    assert (report.garbage_lines, report.truncated_last_line) == (1, True)
    assert (report.stopped, report.clock_reset) == (False, False)


def test_to_dict_is_plain_json():
    report = analyse(make_log((1.0, "curl=7"), (1.2, "OK"), (1.4, "OK"), (1.6, "curl=28")))
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["outage_count"] == 1
    assert data["recovered"] is False
    assert data["first_answer_after"] == approx(0.2)
    [last] = data["outages"]
    assert last["unrecovered"] is True and last["latest_end"] is None
    assert last["min_duration"] == 0.0
    assert data["unrecovered_downtime"] == approx(0.1)  # 1.6 - (1.4 + 1.6) / 2
    assert {"probes", "successes", "failures", "total_downtime", "tempest_style_downtime",
            "longest_outage", "first_probe_at", "last_probe_at", "recovered_at",
            "resolution", "garbage_lines", "truncated_last_line", "stopped",
            "clock_reset"} <= set(data)


def test_outage_is_frozen():
    outage = Outage(1.0, 2.0, 3.0, 4.0, 2, {"curl=7": 2})
    with pytest.raises(AttributeError):
        outage.failed_probes = 3


@hypothesis.settings(max_examples=200, deadline=None)
@hypothesis.given(states=st.lists(st.booleans(), min_size=1, max_size=40).filter(any),
                  gaps=st.lists(st.integers(1, 50), min_size=40, max_size=40))
def test_outages_are_the_failed_runs_and_estimates_sit_within_their_bounds(states, gaps):
    starts = [100 + sum(gaps[:i]) / 100 for i in range(len(states))]
    report = analyse(make_log(*((s, "OK" if ok else "curl=7")
                                for s, ok in zip(starts, states))))
    # The failures before the first success are the wait for it, no outage.
    waiting = states.index(True)
    runs = "".join("x" if ok else "f" for ok in states[waiting:]).split("x")
    assert [o.failed_probes for o in report.outages] == [len(r) for r in runs if r]
    assert report.failures == sum(not ok for ok in states)
    assert report.first_answer_after == approx(starts[waiting] - starts[0])
    for outage in report.outages:
        low, high = outage.bounds
        assert low - 1e-9 <= outage.estimate <= high + 1e-9
        assert outage.estimate - low <= report.resolution + 1e-9
        if not math.isinf(high):
            assert high - outage.estimate <= report.resolution + 1e-9
    assert report.recovered == states[-1]
    assert report.total_downtime == approx(sum(o.estimate for o in report.outages))


def test_a_success_counts_at_its_answer_not_at_its_launch():
    # Launched at 5.0 into a 0.6 s blackout, answered at 5.9 when the path came back:
    # it proves the service up at 5.9 only. Samples: ok 4.81, fail 5.0, ok 5.9.
    text = (HEADER
            + "P 1 4.80 4.81 OK http=200\n"
            + "P 2 5.00 6.00 FAIL curl=28\n"
            + "P 3 5.20 5.90 OK http=200\n")
    (outage,) = analyse(parse_probe_log(text)).outages
    assert (outage.start, outage.end) == (approx(4.905), approx(5.45))
