"""Message bodies per notification type, word for word as the original (notifications.md §8.8).

Every value interpolated into a body (names, errors, reasons) goes through `sanitize_text`: control,
bidi-override and zero-width characters cannot forge lines or disguise text in an alert.
"""

from __future__ import annotations

from datetime import datetime

from certctl.notifications.channels.sanitize import sanitize_text as _clean

THRESHOLD_TAG = "[threshold:{days}]"  # kept in expiry bodies for the runbook's SQL recipes
TEST_PREFIX = "[TEST] "


def _day(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d") if at is not None else "unknown date"


def expiry_body(
    common_name: str, expires_at: datetime | None, days_left: int, threshold: int, *, tag: bool = True
) -> str:
    """The expired wording is chosen by the threshold (≤ 0), not by the days left, as the original."""
    if threshold <= 0:
        text = (
            f"[EXPIRED] The certificate for {_clean(common_name)} has expired ({_day(expires_at)}).\n\n"
            "Immediate action required."
        )
    else:
        text = (
            f"The certificate for {_clean(common_name)} will expire in {days_left} days ({_day(expires_at)}).\n\n"
            "Please schedule renewal."
        )
    return f"{text}\n\n{THRESHOLD_TAG.format(days=threshold)}" if tag else text


def renewal_success_body(common_name: str, new_expiry: datetime | None) -> str:
    return f"The certificate for {_clean(common_name)} has been successfully renewed.\n\nNew expiry: {_day(new_expiry)}"


def renewal_failure_body(common_name: str, error: str) -> str:
    return (
        f"The certificate for {_clean(common_name)} failed to renew.\n\nError: {_clean(error)}\n\nPlease investigate."
    )


def deployment_success_body(common_name: str, target_name: str) -> str:
    return f"The certificate for {_clean(common_name)} has been successfully deployed to {_clean(target_name)}."


def deployment_failure_body(common_name: str, target_name: str, error: str) -> str:
    return (
        f"The certificate for {_clean(common_name)} failed to deploy to {_clean(target_name)}.\n\n"
        f"Error: {_clean(error)}\n\nPlease investigate."
    )


def revocation_body(common_name: str, reason: str) -> str:
    return (
        f"[REVOKED] The certificate for {_clean(common_name)} has been revoked.\n\nReason: {_clean(reason)}\n\n"
        "This certificate is no longer valid."
    )


def test_body(text: str) -> str:
    return TEST_PREFIX + text
