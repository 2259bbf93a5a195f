"""The renewal check's rules, free of the database: when renewal opens (the policy's days window or its
percent window, the earlier wins) and what the checker does with a certificate (core.md §2.8, §3.1, §7.2).

Aware datetimes only; `renewal.py` reads the rows, applies the decisions and owns the transactions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from certctl.certificates.models import CertificateStatus

S = CertificateStatus
# The checker looks at these; RenewalInProgress waits for its job, Expired/Revoked/Archived are done (§7.2).
CHECKED_STATUSES: frozenset[CertificateStatus] = frozenset({S.PENDING, S.ACTIVE, S.EXPIRING, S.FAILED})
# expires_at passed → Expired (§3.1); Pending has no such transition and keeps its status.
EXPIRABLE_STATUSES: frozenset[CertificateStatus] = frozenset({S.ACTIVE, S.EXPIRING, S.FAILED})
# Failed certificates wait for an operator (§3.1); Expired ones are renewed only by manual or bulk renew.
AUTO_RENEWABLE_STATUSES: frozenset[CertificateStatus] = frozenset({S.PENDING, S.ACTIVE, S.EXPIRING})
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


class Hold(StrEnum):
    """Why a certificate inside its renewal window gets no automatic job."""

    FAILED = "failed"  # an operator must act (core.md §3.1)
    AUTO_RENEW_OFF = "auto_renew_off"


@dataclass(frozen=True, slots=True)
class RenewalDecision:
    """What the renewal check does with one certificate. `renew` still depends on the issuer having a
    connector and on no Issuance/Renewal job being open, which only the caller can know."""

    new_status: CertificateStatus | None = None  # Expiring or Expired
    renew: bool = False
    hold: Hold | None = None

    @property
    def acts(self) -> bool:
        return self.new_status is not None or self.renew


def decide(
    status: CertificateStatus, expires_at: datetime, trigger_at: datetime, now: datetime, *, auto_renew: bool
) -> RenewalDecision:
    """The rules of core.md §3.1 and §7.2 for a certificate the checker looks at.

    Past expiry (`expires_at <= now`): Active, Expiring and Failed become Expired, and nothing is renewed,
    not even in the run that finds the expiry: renewing an expired certificate is an operator's call.
    From `trigger_at` on: Active becomes Expiring, and Pending/Active/Expiring are renewed when
    `auto_renew` is set (Failed ones are held). Statuses outside CHECKED_STATUSES are left alone.
    """
    if status not in CHECKED_STATUSES:
        return RenewalDecision()
    if expires_at <= now:
        return RenewalDecision(new_status=S.EXPIRED if status in EXPIRABLE_STATUSES else None)
    if now < trigger_at:
        return RenewalDecision()
    expiring = S.EXPIRING if status is S.ACTIVE else None
    if status not in AUTO_RENEWABLE_STATUSES:
        return RenewalDecision(new_status=expiring, hold=Hold.FAILED)
    if not auto_renew:
        return RenewalDecision(new_status=expiring, hold=Hold.AUTO_RENEW_OFF)
    return RenewalDecision(new_status=expiring, renew=True)
