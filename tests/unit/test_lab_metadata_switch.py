"""The order both labs switch a guest's metadata families in (tests/lab/metadata_switch.py)."""

import pytest

from tests.lab import metadata_switch


@pytest.mark.parametrize("families", [["ipv4", "ipv6"], ["ipv6", "ipv4"]])
def test_ipv6_switches_first_whatever_order_the_families_come_in(families):
    assert metadata_switch.in_switch_order(families) == ["ipv6", "ipv4"]


def test_a_single_family_is_switched_alone():
    assert metadata_switch.in_switch_order(["ipv4"]) == ["ipv4"]
    assert metadata_switch.in_switch_order(("ipv6",)) == ["ipv6"]


def test_an_unknown_ipv6_shape_is_refused_before_anything_runs():
    with pytest.raises(ValueError, match="'http_503'"):
        metadata_switch.switch_ipv6("no-such-netns", "http_503", on=True)
