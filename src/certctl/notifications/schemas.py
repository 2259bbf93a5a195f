"""Wire shapes: the original's NotificationEvent (nulls omitted, retry_count always present) plus ours."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from certctl.api.schemas import StrictIn
from certctl.notifications.channels.base import ChannelName
from certctl.notifications.models import NotificationStatus


class NotificationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    type: str
    certificate_id: str | None = None
    channel: str
    recipient: str
    message: str
    sent_at: datetime | None = None
    status: str
    error: str | None = None
    retry_count: int
    next_retry_at: datetime | None = None
    last_error: str | None = None
    created_at: datetime
    attempt_count: int  # ours: every attempt, the first send included
    read_at: datetime | None = None  # ours
    threshold_days: int | None = None  # ours: expiry alerts


class NotificationPageOut(BaseModel):
    data: list[NotificationOut]
    total: int
    page: int
    per_page: int


class AttemptOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    notification_id: str
    attempt_number: int
    channel: str
    attempted_at: datetime
    duration_ms: int
    outcome: str
    error: str | None = None
    http_status: int | None = None
    smtp_reply: str | None = None
    trigger: str


class AttemptsOut(BaseModel):
    data: list[AttemptOut]
    total: int


class StatusOut(BaseModel):
    status: str


class BulkRequeueIn(StrictIn):
    """Which failed/dead rows to requeue; with no field at all, the whole dead-letter queue."""

    status: Literal[NotificationStatus.DEAD, NotificationStatus.FAILED] | None = None
    channel: str | None = Field(default=None, max_length=255)
    type: str | None = Field(default=None, max_length=255)
    certificate_id: str | None = Field(default=None, max_length=64)
    ids: list[str] | None = Field(default=None, max_length=10_000)


class BulkRequeueOut(BaseModel):
    requeued: int
    ids: list[str]


class TestNotificationIn(StrictIn):
    channel: ChannelName
    certificate_id: str | None = Field(default=None, max_length=64)
    threshold_days: int | None = Field(default=None, ge=0, le=365)
    recipient: str | None = Field(default=None, max_length=2048, description="ours: override the recipient")


class TestNotificationOut(BaseModel):
    status: Literal["sent", "failed", "not_configured"]
    channel: str
    duration_ms: int
    error: str | None = None
    http_status: int | None = None
    smtp_reply: str | None = None
