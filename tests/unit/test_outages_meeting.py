"""The e2e tests' rule for which measured outage is an injected window's
(tests/helpers.outages_meeting), on figures a loaded run measured."""

from types import SimpleNamespace

import pytest

from tests.helpers import (
    explained_by_load,
    injected_bounds,
    lead_of_real_code,
    outage_of_window,
    outages_meeting,
)


def _outage(start, end, **reasons):
    return SimpleNamespace(start=start, end=end, unrecovered=False, reasons=reasons)


def _record(*outages, resolution=0.175):
    return SimpleNamespace(metadata=SimpleNamespace(resolution=resolution,
                                                    outages=outages))


WINDOW = (8200.66, 8210.66)  # 10 s of HTTP 503 (run 24's report-browser test)


def test_a_lone_timeout_just_before_the_window_is_not_the_windows():
    slow = _outage(8200.42, 8200.56, **{"wget=timeout": 1})
    fault = _outage(8200.65, 8210.62, **{"http=503": 161, "wget=timeout": 1})
    assert outages_meeting(_record(slow, fault), *WINDOW) == ([fault], [slow])


def test_a_lone_timeout_just_after_the_window_is_not_the_windows():
    fault = _outage(8200.65, 8210.62, **{"http=503": 161})
    slow = _outage(8210.75, 8210.80, **{"wget=timeout": 1})
    assert outages_meeting(_record(fault, slow), *WINDOW) == ([fault], [slow])


def test_a_split_inside_the_window_is_two_outages_of_it():
    first = _outage(8200.65, 8205.0, **{"wget=timeout": 20})
    second = _outage(8205.2, 8210.62, **{"wget=timeout": 25})
    assert outages_meeting(_record(first, second), *WINDOW) == ([first, second], [])


def test_verdicts_out_of_order_at_the_windows_start_are_not_its_outage():
    # Run 41 (two CPU hogs): a 503 launched before the window and answered in it, a
    # success that ended 0.16 s into it, then the window's outage.
    window = (17077.65, 17087.65)
    flap = _outage(17077.38, 17077.81, **{"http=503": 1, "wget=timeout": 1})
    fault = _outage(17077.99, 17087.62, **{"http=503": 161})
    record = _record(flap, fault, resolution=0.235)
    assert outages_meeting(record, *window) == ([fault], [flap])
    assert explained_by_load(flap, *window)


def test_a_503_far_from_the_window_is_not_explained_by_load():
    window = (17077.65, 17087.65)
    stray = _outage(17070.0, 17070.5, **{"http=503": 5})
    assert not explained_by_load(stray, *window)
    assert explained_by_load(_outage(17070.0, 17071.0, **{"wget=timeout": 1}), *window)
    # In flight at the end: a 503 launched just before the mend, a success after.
    late = _outage(17087.8, 17088.2, **{"http=503": 1})
    assert explained_by_load(late, *window)
    assert not explained_by_load(_outage(17080.0, 17089.0, **{"http=503": 1}), *window)


def test_anything_but_a_timeout_at_an_edge_is_the_windows():
    refused = _outage(8200.42, 8200.56, **{"wget=refused": 1})
    assert outages_meeting(_record(refused), *WINDOW) == ([refused], [])


def test_an_unrecovered_outage_meets_every_later_window():
    down = SimpleNamespace(start=8100.0, end=8101.0, unrecovered=True,
                           reasons={"wget=timeout": 3})
    assert outages_meeting(_record(down), *WINDOW) == ([down], [])


def test_injected_bounds_widen_by_the_time_applying_and_removing_took():
    window = {"start_boottime": 10.0, "end_boottime": 13.0, "applied_within": 0.4,
              "removed_within": 0.1}
    assert injected_bounds(window) == (2.9, 3.4)
    assert injected_bounds({"start_boottime": 10.0, "end_boottime": 13.0}) == (3.0, 3.0)


# A quiet CI run's http_404 window (real path): opened at Nova's post-live-migration,
# 1.05 s after the switchover's own outage began, with no answer between them.
MIGRATION = ((33153.9, 33157.2),)


def test_the_switchovers_own_outage_before_an_identity_window_is_real_codes():
    joined = _outage(33156.045, 33160.28, **{"http=404": 64, "wget=timeout": 2})
    assert round(lead_of_real_code(joined, 33157.098, MIGRATION), 3) == 1.053


def test_an_outage_before_its_window_outside_a_migration_is_not_excused():
    early = _outage(33150.0, 33160.28, **{"http=404": 100})
    assert lead_of_real_code(early, 33157.098, MIGRATION) == 0.0


def test_an_outage_that_starts_in_its_window_has_no_lead():
    inside = _outage(33157.1, 33160.28, **{"http=404": 60})
    assert lead_of_real_code(inside, 33157.098, MIGRATION) == 0.0


def test_real_codes_own_outage_may_begin_in_a_migration_and_outlast_it():
    # The load mix on real services: a 503 launched 0.01 s before the migration's
    # end, answered after it; the window (refused in the guest) came later.
    migration = ((53697.69, 53706.73),)
    window = (53710.0, 53712.0)
    tail = _outage(53706.725, 53707.13, **{"http=503": 1})
    fault = _outage(53710.01, 53711.98, **{"wget=refused": 30})
    assert outage_of_window(_record(tail, fault), *window, migration) is fault
    # One that begins after the migration is nobody's: a measurement error.
    later = _outage(53707.5, 53707.9, **{"http=503": 4})
    with pytest.raises(AssertionError):
        outage_of_window(_record(later, fault), *window, migration)
