"""What a renewal policy may hold (core.md §2.8, notifications.md §9.2): bounds, alert matrix, severity map.

Each check raises ValidationFailed naming the field, the allowed values and what was sent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from certctl.errors import ValidationFailed
from certctl.policies.models import DEFAULT_ALERT_THRESHOLDS_DAYS, SeverityTier

RENEWAL_WINDOW_DAYS = (1, 365)
RENEWAL_WINDOW_PERCENT = (1, 99)  # ours: share of the current version's lifetime
MAX_RETRIES = (0, 10)
RETRY_INTERVAL_SECONDS = (60, 86_400)
ALERT_THRESHOLD_DAYS = (0, 365)

# notifications.md §9.2: the six channel names, spelt exactly as the original's constants.
ALERT_CHANNELS = ("Email", "Webhook", "Slack", "Teams", "PagerDuty", "OpsGenie")
_TIERS = tuple(tier.value for tier in SeverityTier)
# JSON object keys are strings; a threshold day is written without sign, spaces or leading zeros.
_DAY_KEY = re.compile(r"0|[1-9][0-9]{0,2}")


def check_range(field: str, value: int, bounds: tuple[int, int]) -> None:
    low, high = bounds
    if not low <= value <= high:
        raise ValidationFailed(f"{field} must be between {low} and {high}, got {value}")


def alert_thresholds(days: Sequence[int]) -> list[int]:
    """The thresholds to store: the default `[30, 14, 7, 0]` when none are given (as the original)."""
    if not days:
        return list(DEFAULT_ALERT_THRESHOLDS_DAYS)
    low, high = ALERT_THRESHOLD_DAYS
    for index, day in enumerate(days):
        if not low <= day <= high:
            raise ValidationFailed(f"alert_thresholds_days[{index}] must be between {low} and {high}, got {day}")
    return list(days)


def alert_channels(matrix: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """A tier → channels matrix; an empty list is the documented opt-out for that tier."""
    for tier, channels in matrix.items():
        if tier not in _TIERS:
            raise ValidationFailed(f"alert_channels: unknown severity tier {tier!r} (allowed: {', '.join(_TIERS)})")
        for channel in channels:
            if channel not in ALERT_CHANNELS:
                raise ValidationFailed(
                    f"alert_channels.{tier}: unknown channel {channel!r} (allowed: {', '.join(ALERT_CHANNELS)})"
                )
    return {tier: list(channels) for tier, channels in matrix.items()}


def alert_severity_map(mapping: Mapping[str, str]) -> dict[str, str]:
    """A threshold-day → tier map; keys are day counts written as strings ("30", "0")."""
    low, high = ALERT_THRESHOLD_DAYS
    for day, tier in mapping.items():
        if _DAY_KEY.fullmatch(day) is None or not low <= int(day) <= high:
            raise ValidationFailed(
                f"alert_severity_map: key {day!r} must be a whole number of days between {low} and {high}"
            )
        if tier not in _TIERS:
            raise ValidationFailed(
                f"alert_severity_map.{day}: unknown severity tier {tier!r} (allowed: {', '.join(_TIERS)})"
            )
    return dict(mapping)
