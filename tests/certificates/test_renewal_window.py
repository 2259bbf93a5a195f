from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from certctl.certificates.models import CertificateStatus
from certctl.certificates.renewal_window import (
    CHECKED_STATUSES,
    Hold,
    RenewalDecision,
    RenewalWindow,
    TriggerReason,
    decide,
    percent_window_start,
    renewal_trigger,
    renewal_trigger_time,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)

instants = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)  # aware UTC
lifetimes = st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(days=3650))
days = st.integers(min_value=0, max_value=365)
percents = st.integers(min_value=1, max_value=99)


def test_percent_33_on_a_90_day_certificate_renews_at_about_two_thirds_of_its_life() -> None:
    not_after = T0 + timedelta(days=90)
    at = renewal_trigger_time(not_after, T0, not_after, window_days=7, window_percent=33)
    assert at == T0 + timedelta(days=60, hours=7, minutes=12)  # 90 d - 29.7 d
    assert renewal_trigger(not_after, RenewalWindow(7, 33), T0, not_after).reason is TriggerReason.WINDOW_PERCENT


def test_days_window_wins_when_it_opens_first() -> None:
    not_after = T0 + timedelta(days=90)
    trigger = renewal_trigger(not_after, RenewalWindow(30, 10), T0, not_after)
    assert (trigger.at, trigger.reason) == (not_after - timedelta(days=30), TriggerReason.WINDOW_DAYS)


def test_without_a_version_only_the_days_window_counts() -> None:
    expires_at = T0 + timedelta(days=90)
    assert renewal_trigger_time(expires_at, None, None, 30, 99) == expires_at - timedelta(days=30)


def test_a_tie_counts_as_the_days_window() -> None:
    not_after = T0 + timedelta(days=100)
    trigger = renewal_trigger(not_after, RenewalWindow(50, 50), T0, not_after)
    assert (trigger.at, trigger.reason) == (T0 + timedelta(days=50), TriggerReason.WINDOW_DAYS)


def test_a_version_without_a_positive_lifetime_has_no_percent_window() -> None:
    assert percent_window_start(T0, T0, 50) is None
    assert percent_window_start(T0, T0 - timedelta(days=1), 50) is None
    assert renewal_trigger(T0, RenewalWindow(1, 50), T0, T0 - timedelta(days=1)).reason is TriggerReason.WINDOW_DAYS


@pytest.mark.parametrize(("window_days", "percent"), [(-1, None), (30, 0), (30, 100), (30, -5)])
def test_invalid_windows_are_refused(window_days: int, percent: int | None) -> None:
    with pytest.raises(ValueError, match="renewal window"):
        RenewalWindow(window_days, percent)
    with pytest.raises(ValueError, match="renewal window"):
        renewal_trigger_time(T0, T0 - timedelta(days=1), T0, window_days, percent)


def test_naive_datetimes_are_refused() -> None:
    naive = datetime(2026, 1, 1)
    with pytest.raises(ValueError, match="aware"):
        renewal_trigger_time(naive, None, None, 30, None)
    with pytest.raises(ValueError, match="aware"):
        renewal_trigger_time(T0, naive, naive + timedelta(days=1), 30, 33)


def test_other_offsets_give_the_same_instant_in_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    local_expiry = (T0 + timedelta(days=90)).astimezone(plus_two)
    at = renewal_trigger_time(local_expiry, T0.astimezone(plus_two), local_expiry, 30, 50)
    assert at == T0 + timedelta(days=45)
    assert at.utcoffset() == timedelta(0)


@given(not_before=instants, lifetime=lifetimes, window_days=days, percent=st.none() | percents)
@example(not_before=T0, lifetime=timedelta(days=90), window_days=1, percent=99)
def test_renewal_never_opens_after_expiry_and_never_after_the_days_window(
    not_before: datetime, lifetime: timedelta, window_days: int, percent: int | None
) -> None:
    not_after = not_before + lifetime
    at = renewal_trigger_time(not_after, not_before, not_after, window_days, percent)
    assert at <= not_after
    assert at <= not_after - timedelta(days=window_days)
    assert at.utcoffset() == timedelta(0)


@given(not_before=instants, lifetime=lifetimes, window_days=days, percent=percents)
def test_the_trigger_is_the_earlier_of_both_windows(
    not_before: datetime, lifetime: timedelta, window_days: int, percent: int
) -> None:
    not_after = not_before + lifetime
    by_percent = percent_window_start(not_before, not_after, percent)
    assert by_percent is not None
    assert not_before <= by_percent <= not_after
    trigger = renewal_trigger(not_after, RenewalWindow(window_days, percent), not_before, not_after)
    assert trigger.at == min(by_percent, not_after - timedelta(days=window_days))
    assert (trigger.reason is TriggerReason.WINDOW_PERCENT) == (by_percent < not_after - timedelta(days=window_days))


@given(not_before=instants, lifetime=lifetimes, window_days=days, percent=st.integers(min_value=1, max_value=98))
def test_a_larger_percent_never_opens_renewal_later(
    not_before: datetime, lifetime: timedelta, window_days: int, percent: int
) -> None:
    not_after = not_before + lifetime
    smaller = renewal_trigger_time(not_after, not_before, not_after, window_days, percent)
    larger = renewal_trigger_time(not_after, not_before, not_after, window_days, percent + 1)
    assert larger <= smaller


@given(expires_at=instants, window_days=st.integers(min_value=0, max_value=364), percent=st.none() | percents)
def test_a_wider_days_window_never_opens_renewal_later(
    expires_at: datetime, window_days: int, percent: int | None
) -> None:
    not_before = expires_at - timedelta(days=90)
    narrow = renewal_trigger_time(expires_at, not_before, expires_at, window_days, percent)
    wide = renewal_trigger_time(expires_at, not_before, expires_at, window_days + 1, percent)
    assert wide <= narrow


@given(not_before=instants, lifetime=lifetimes, percent=percents)
def test_the_percent_window_leaves_that_share_of_the_lifetime(
    not_before: datetime, lifetime: timedelta, percent: int
) -> None:
    not_after = not_before + lifetime
    start = percent_window_start(not_before, not_after, percent)
    assert start is not None
    remaining = not_after - start
    # timedelta division rounds to the microsecond
    assert abs(remaining - lifetime * percent / 100) <= timedelta(microseconds=1)


S = CertificateStatus
EXPIRY = T0 + timedelta(days=30)
OPEN = T0 + timedelta(days=10)  # the trigger


@pytest.mark.parametrize(
    ("status", "now", "auto_renew", "expected"),
    [
        (S.ACTIVE, OPEN - timedelta(microseconds=1), True, RenewalDecision()),
        (S.ACTIVE, OPEN, True, RenewalDecision(new_status=S.EXPIRING, renew=True)),
        (S.ACTIVE, OPEN, False, RenewalDecision(new_status=S.EXPIRING, hold=Hold.AUTO_RENEW_OFF)),
        (S.EXPIRING, OPEN, True, RenewalDecision(renew=True)),
        (S.PENDING, OPEN, True, RenewalDecision(renew=True)),
        (S.FAILED, OPEN, True, RenewalDecision(hold=Hold.FAILED)),
        (S.ACTIVE, EXPIRY, True, RenewalDecision(new_status=S.EXPIRED)),
        (S.EXPIRING, EXPIRY, True, RenewalDecision(new_status=S.EXPIRED)),
        (S.FAILED, EXPIRY, True, RenewalDecision(new_status=S.EXPIRED)),
        (S.PENDING, EXPIRY, True, RenewalDecision()),
        (S.RENEWAL_IN_PROGRESS, EXPIRY, True, RenewalDecision()),
        (S.EXPIRED, OPEN, True, RenewalDecision()),
        (S.REVOKED, OPEN, True, RenewalDecision()),
        (S.ARCHIVED, EXPIRY, True, RenewalDecision()),
    ],
)
def test_decisions_follow_the_certificate_state_machine(
    status: CertificateStatus, now: datetime, auto_renew: bool, expected: RenewalDecision
) -> None:
    assert decide(status, EXPIRY, OPEN, now, auto_renew=auto_renew) == expected


@given(
    status=st.sampled_from(CertificateStatus),
    offset=st.timedeltas(min_value=timedelta(days=-60), max_value=timedelta(days=60)),
    auto_renew=st.booleans(),
)
def test_nothing_past_expiry_or_outside_the_checked_statuses_is_ever_renewed(
    status: CertificateStatus, offset: timedelta, auto_renew: bool
) -> None:
    decision = decide(status, EXPIRY, OPEN, OPEN + offset, auto_renew=auto_renew)
    if OPEN + offset >= EXPIRY or status not in CHECKED_STATUSES or status is S.FAILED:
        assert not decision.renew
    if decision.new_status is not None:
        assert decision.new_status in (S.EXPIRING, S.EXPIRED)
        assert status in CHECKED_STATUSES
