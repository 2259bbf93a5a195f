from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from certctl.errors import ValidationFailed
from certctl.policies import rules


@given(day=st.integers(min_value=-1_000, max_value=1_000))
def test_severity_map_accepts_exactly_the_days_0_to_365(day: int) -> None:
    if 0 <= day <= 365:
        assert rules.alert_severity_map({str(day): "warning"}) == {str(day): "warning"}
    else:
        with pytest.raises(ValidationFailed, match="must be a whole number of days between 0 and 365"):
            rules.alert_severity_map({str(day): "warning"})


@given(key=st.text(max_size=5))
@example(key="7 ")
@example(key="+7")
@example(key="007")
def test_severity_map_keys_are_canonical_day_numbers(key: str) -> None:
    canonical = key.isascii() and key.isdigit() and str(int(key)) == key and int(key) <= 365
    try:
        rules.alert_severity_map({key: "critical"})
    except ValidationFailed:
        assert not canonical
    else:
        assert canonical


@given(days=st.lists(st.integers(min_value=0, max_value=365), min_size=1, max_size=10))
def test_thresholds_in_range_are_kept_as_given(days: list[int]) -> None:
    assert rules.alert_thresholds(days) == days
