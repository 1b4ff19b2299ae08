"""The labs' profile cycle: one workload's servers take the variants in turn."""

from __future__ import annotations

import pytest

from tests.lab.faults import BootCounts, FaultProfile, cycle_variant, with_variant

CYCLE = {"lab_profile_cycle": "healthy, refused,drop_ssh", "lab_metadata_outage": "2"}


def test_servers_booted_with_the_same_metadata_take_the_variants_in_turn():
    counts = BootCounts()
    turns = [cycle_variant(CYCLE, counts) for _ in range(7)]
    assert turns == ["healthy", "refused", "drop_ssh"] * 2 + ["healthy"]
    # Another workload's metadata starts its own turn; no cycle, no variant.
    assert cycle_variant({**CYCLE, "lab_metadata_outage": "3"}, counts) == "healthy"
    assert cycle_variant({"lab_metadata_outage": "2"}, counts) is None


def test_the_cycle_has_its_own_count_beside_lab_faulty_servers():
    counts = BootCounts()
    meta = {**CYCLE, "lab_faulty_servers": "1"}
    assert [(counts.beyond_faulty_servers(meta), cycle_variant(meta, counts))
            for _ in range(3)] == [(False, "healthy"), (True, "refused"),
                                   (True, "drop_ssh")]


def test_an_unknown_variant_is_named():
    with pytest.raises(ValueError, match="lab_profile_cycle: 'slow' is none of healthy"):
        cycle_variant({"lab_profile_cycle": "healthy,slow"}, BootCounts())


def test_each_variant_changes_one_field_of_the_profile():
    profile = FaultProfile(metadata_outage=2.0, metadata_shape="refused")
    assert with_variant(profile, None) == profile
    assert with_variant(profile, "healthy").metadata_outage == 0
    assert with_variant(profile, "timeout") == FaultProfile(metadata_outage=2.0,
                                                           metadata_shape="timeout")
    dropped = with_variant(profile, "drop_ssh")
    assert (dropped.guest_event, dropped.metadata_shape) == ("drop_ssh", "refused")
