from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from certctl.jobs.queue import retry_delay

bases = st.integers(min_value=1, max_value=86_400).map(lambda s: timedelta(seconds=s))
caps = st.integers(min_value=0, max_value=7 * 86_400).map(lambda s: timedelta(seconds=s))
attempts = st.integers(min_value=-5, max_value=10_000)


@given(attempt=attempts, base=bases, cap=caps)
@example(attempt=10_000, base=timedelta(seconds=86_400), cap=timedelta(days=7))
def test_backoff_never_shrinks_and_never_passes_the_cap(attempt: int, base: timedelta, cap: timedelta) -> None:
    delay = retry_delay(attempt, base, cap)
    assert timedelta(0) <= delay <= cap
    assert retry_delay(attempt + 1, base, cap) >= delay


@given(attempt=st.integers(min_value=1, max_value=25), base=bases)
def test_backoff_doubles_from_the_base_until_the_cap(attempt: int, base: timedelta) -> None:
    cap = timedelta(hours=24)
    assert retry_delay(attempt, base, cap) == min(base * 2 ** (attempt - 1), cap)


def test_the_first_retry_waits_the_base_interval() -> None:
    assert retry_delay(1, timedelta(seconds=300), timedelta(hours=24)) == timedelta(seconds=300)
    assert retry_delay(0, timedelta(seconds=300), timedelta(hours=24)) == timedelta(seconds=300)
    assert retry_delay(4, timedelta(seconds=3600), timedelta(hours=24)) == timedelta(hours=8)
    assert retry_delay(6, timedelta(seconds=3600), timedelta(hours=24)) == timedelta(hours=24)


def test_a_base_that_is_not_positive_is_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        retry_delay(1, timedelta(0), timedelta(hours=1))
