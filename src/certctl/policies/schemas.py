from __future__ import annotations

from datetime import datetime

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
)

from certctl.api.schemas import ClientId, Name, StrictIn
from certctl.policies.models import DEFAULT_ALERT_THRESHOLDS_DAYS

# Tier → channel names, e.g. {"critical": ["PagerDuty", "Email"]}; checked by the service.
AlertChannels = dict[StrictStr, list[StrictStr]]
# Threshold day (as a string) → tier, e.g. {"30": "informational", "0": "critical"}.
SeverityMap = dict[StrictStr, StrictStr]


class RenewalPolicyIn(StrictIn):
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


class RenewalPolicyUpdate(StrictIn):
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
