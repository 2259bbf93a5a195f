from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from certctl.db.base import Base
from certctl.db.types import JSONType, UTCDateTime, json_default

DEFAULT_ALERT_THRESHOLDS_DAYS = [30, 14, 7, 0]


class SeverityTier(StrEnum):
    INFORMATIONAL = "informational"
    WARNING = "warning"
    CRITICAL = "critical"


class RenewalPolicy(Base):
    __tablename__ = "renewal_policies"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    renewal_window_days: Mapped[int] = mapped_column(default=30, server_default="30")
    renewal_window_percent: Mapped[int | None] = mapped_column(nullable=True)
    auto_renew: Mapped[bool] = mapped_column(default=True, server_default="1")
    max_retries: Mapped[int] = mapped_column(default=3, server_default="3")
    retry_interval_seconds: Mapped[int] = mapped_column(default=3600, server_default="3600")
    alert_thresholds_days: Mapped[list[int]] = mapped_column(
        JSONType,
        default=lambda: list(DEFAULT_ALERT_THRESHOLDS_DAYS),
        server_default=json_default(DEFAULT_ALERT_THRESHOLDS_DAYS),
    )
    certificate_profile_id: Mapped[str | None] = mapped_column(
        ForeignKey("certificate_profiles.id", ondelete="SET NULL"), nullable=True
    )
    alert_channels: Mapped[dict[str, list[str]]] = mapped_column(
        JSONType, default=dict, server_default=json_default({})
    )
    alert_severity_map: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict, server_default=json_default({}))
    agent_group_id: Mapped[str | None] = mapped_column(
        ForeignKey("agent_groups.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
