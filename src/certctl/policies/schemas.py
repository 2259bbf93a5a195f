from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    StringConstraints,
    model_validator,
)

from certctl.api.schemas import StrictIn
from certctl.ids import CLIENT_ID_PATTERN
from certctl.policies.models import DEFAULT_ALERT_THRESHOLDS_DAYS

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
ClientId = Annotated[str, StringConstraints(pattern=CLIENT_ID_PATTERN)]
# Tier → channel names, e.g. {"critical": ["PagerDuty", "Email"]}; checked by the service.
AlertChannels = dict[StrictStr, list[StrictStr]]
# Threshold day (as a string) → tier, e.g. {"30": "informational", "0": "critical"}.
SeverityMap = dict[StrictStr, StrictStr]


def _refuse_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _nul_at(value: object, where: str) -> str | None:
    """Where a NUL character hides in a decoded JSON body (keys included), or None."""
    if isinstance(value, str):
        return where if "\x00" in value else None
    items: list[tuple[object, str]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{where}.{key}" if where else str(key)
            if isinstance(key, str) and "\x00" in key:
                return here
            items.append((item, here))
    elif isinstance(value, list):
        items = [(item, f"{where}[{index}]") for index, item in enumerate(value)]
    return next((found for item, here in items if (found := _nul_at(item, here)) is not None), None)


# PostgreSQL text and JSONB cannot hold NUL characters: refuse them here (400), not in the driver (500).
PathId = Annotated[str, AfterValidator(_refuse_nul)]


class _In(StrictIn):
    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        if (where := _nul_at(data, "")) is not None:
            raise ValueError(f"{where} must not contain NUL characters")
        return data


class RenewalPolicyIn(_In):
    id: ClientId | None = Field(default=None, description="optional; rp-<slug of name> when omitted")
    name: Name
    renewal_window_days: StrictInt = Field(default=30, description="1-365")
    renewal_window_percent: StrictInt | None = Field(default=None, description="1-99; null = days only")
    auto_renew: StrictBool = True
    max_retries: StrictInt = Field(default=3, description="0-10")
    retry_interval_seconds: StrictInt = Field(default=3600, description="60-86400")
    alert_thresholds_days: list[StrictInt] = Field(
        default_factory=lambda: list(DEFAULT_ALERT_THRESHOLDS_DAYS), description="each 0-365; empty = default"
    )
    certificate_profile_id: StrictStr | None = None
    alert_channels: AlertChannels = Field(default_factory=dict)
    alert_severity_map: SeverityMap = Field(default_factory=dict)
    agent_group_id: StrictStr | None = None


class RenewalPolicyUpdate(_In):
    name: Name | None = None
    renewal_window_days: StrictInt | None = None
    renewal_window_percent: StrictInt | None = None
    auto_renew: StrictBool | None = None
    max_retries: StrictInt | None = None
    retry_interval_seconds: StrictInt | None = None
    alert_thresholds_days: list[StrictInt] | None = None
    certificate_profile_id: StrictStr | None = None
    alert_channels: AlertChannels | None = None
    alert_severity_map: SeverityMap | None = None
    agent_group_id: StrictStr | None = None


NULLABLE = frozenset({"renewal_window_percent", "certificate_profile_id", "agent_group_id"})


class RenewalPolicyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    renewal_window_days: int
    renewal_window_percent: int | None
    auto_renew: bool
    max_retries: int
    retry_interval_seconds: int
    alert_thresholds_days: list[int]
    certificate_profile_id: str | None
    alert_channels: dict[str, list[str]]
    alert_severity_map: dict[str, str]
    agent_group_id: str | None
    created_at: datetime
    updated_at: datetime
