"""When renewal opens for a certificate: the policy's days window, its percent window, the earlier wins.

Pure time maths on aware datetimes (core.md §2.8, §7.2); the renewal checker in `renewal.py` applies it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

PERCENT_RANGE = (1, 99)  # renewal_window_percent (core.md §2.8)


class TriggerReason(StrEnum):
    """Which window opened renewal; stored as `renewal_trigger` on the `renewal_job_created` audit row."""

    WINDOW_DAYS = "window_days"
    WINDOW_PERCENT = "window_percent"


@dataclass(frozen=True, slots=True)
class RenewalWindow:
    """A renewal policy's window: `days` before expiry, and optionally `percent` of the version's lifetime.

    Raises ValueError for negative days or a percent outside 1-99.
    """

    days: int
    percent: int | None = None

    def __post_init__(self) -> None:
        if self.days < 0:
            raise ValueError(f"renewal window days must not be negative, got {self.days}")
        low, high = PERCENT_RANGE
        if self.percent is not None and not low <= self.percent <= high:
            raise ValueError(f"renewal window percent must be between {low} and {high}, got {self.percent}")


@dataclass(frozen=True, slots=True)
class RenewalTrigger:
    """The instant renewal opens (aware UTC) and the window that set it."""

    at: datetime
    reason: TriggerReason


def percent_window_start(not_before: datetime, not_after: datetime, percent: int) -> datetime | None:
    """`not_after - percent% * (not_after - not_before)` (aware UTC): when `percent`% of the lifetime remains.

    None for a version whose lifetime is not positive (no share of it can be meant). Raises ValueError
    for naive datetimes or a percent outside 1-99.
    """
    _require_aware(not_before=not_before, not_after=not_after)
    RenewalWindow(0, percent)
    lifetime = not_after - not_before
    if lifetime <= timedelta(0):
        return None
    return (not_after - lifetime * percent / 100).astimezone(UTC)


def renewal_trigger(
    expires_at: datetime,
    window: RenewalWindow,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
) -> RenewalTrigger:
    """The earlier of `expires_at - window.days` and, when the window has a percent and the current
    version's validity is known, its percent window start; a tie counts as the days window.

    Aware UTC, never later than `expires_at`. Raises ValueError for naive datetimes.
    """
    _require_aware(expires_at=expires_at)
    by_days = (expires_at - timedelta(days=window.days)).astimezone(UTC)
    if window.percent is None or not_before is None or not_after is None:
        return RenewalTrigger(by_days, TriggerReason.WINDOW_DAYS)
    by_percent = percent_window_start(not_before, not_after, window.percent)
    if by_percent is None or by_percent >= by_days:
        return RenewalTrigger(by_days, TriggerReason.WINDOW_DAYS)
    return RenewalTrigger(by_percent, TriggerReason.WINDOW_PERCENT)


def renewal_trigger_time(
    expires_at: datetime,
    not_before: datetime | None,
    not_after: datetime | None,
    window_days: int,
    window_percent: int | None,
) -> datetime:
    """When renewal opens: see `renewal_trigger`. Raises ValueError for a bad window or naive datetimes."""
    return renewal_trigger(expires_at, RenewalWindow(window_days, window_percent), not_before, not_after).at


def _require_aware(**values: datetime) -> None:
    for name, value in values.items():
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"{name} must be an aware datetime")
