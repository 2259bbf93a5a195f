"""Notification rows and their delivery attempts (notifications.md §1).

`status`, `type` and `channel` are plain TEXT without CHECK constraints, as in the original (legacy rows
may hold other spellings); the enums below are the values this code writes. Status is TEXT rather than
VARCHAR so PostgreSQL renders the retry-sweep predicate as `status = 'failed'` (the seed's catalog test).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from certctl.db.base import Base
from certctl.db.types import UTCDateTime

MAX_ATTEMPTS = 5  # the seed's notifRetryMaxAttempts: the 5th failed attempt makes a row dead
RETRY_SWEEP_PREDICATE = "status = 'failed' AND next_retry_at IS NOT NULL"
PENDING_PREDICATE = "status = 'pending'"


class NotificationStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"  # a retry is scheduled at next_retry_at
    DEAD = "dead"  # the dead-letter queue: every attempt failed, or the channel is not configured
    READ = "read"


class NotificationType(StrEnum):
    EXPIRATION_WARNING = "ExpirationWarning"
    RENEWAL_SUCCESS = "RenewalSuccess"
    RENEWAL_FAILURE = "RenewalFailure"
    DEPLOYMENT_SUCCESS = "DeploymentSuccess"
    DEPLOYMENT_FAILURE = "DeploymentFailure"
    POLICY_VIOLATION = "PolicyViolation"
    REVOCATION = "Revocation"


class AttemptOutcome(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    NOT_CONFIGURED = "not_configured"


class AttemptTrigger(StrEnum):
    IMMEDIATE = "immediate"  # right after the producer committed the row
    PROCESSOR = "processor"  # the pending processor loop
    RETRY = "retry"  # the retry sweep


class NotificationEvent(Base):
    __tablename__ = "notification_events"
    __table_args__ = (
        Index(
            "idx_notification_events_retry_sweep",
            "next_retry_at",
            postgresql_where=text(RETRY_SWEEP_PREDICATE),
            sqlite_where=text(RETRY_SWEEP_PREDICATE),
        ),
        # The pending processor reads only pending rows, oldest first, however many sent rows pile up.
        Index(
            "idx_notification_events_pending",
            "created_at",
            postgresql_where=text(PENDING_PREDICATE),
            sqlite_where=text(PENDING_PREDICATE),
        ),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    type: Mapped[str] = mapped_column(String(255), index=True)
    certificate_id: Mapped[str | None] = mapped_column(
        ForeignKey("managed_certificates.id", ondelete="CASCADE"), nullable=True, index=True
    )
    channel: Mapped[str] = mapped_column(String(255))
    recipient: Mapped[str] = mapped_column(Text)  # an e-mail address, or a webhook URL longer than 255
    message: Mapped[str] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    status: Mapped[str] = mapped_column(
        Text, default=NotificationStatus.PENDING.value, server_default=NotificationStatus.PENDING.value, index=True
    )
    error: Mapped[str | None] = mapped_column(Text, nullable=True)  # mirrors last_error (the runbook reads it)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The seed's retry columns: failed attempts, when the next one is due, the latest error verbatim.
    retry_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Ours (notifications.md §1.7, §2.10)
    attempt_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    claimed_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    claim_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    threshold_days: Mapped[int | None] = mapped_column(Integer, nullable=True)  # expiry alerts: dedup key
    event_action: Mapped[str] = mapped_column(String(16), default="trigger", server_default="trigger")


class NotificationAttempt(Base):
    __tablename__ = "notification_attempts"
    __table_args__ = (Index("ix_notification_attempts_notification_number", "notification_id", "attempt_number"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    notification_id: Mapped[str] = mapped_column(ForeignKey("notification_events.id", ondelete="CASCADE"))
    attempt_number: Mapped[int] = mapped_column(Integer)  # 1-based over the row's whole life (requeue keeps it)
    channel: Mapped[str] = mapped_column(String(255))
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    duration_ms: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    http_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    smtp_reply: Mapped[str | None] = mapped_column(Text, nullable=True)
    trigger: Mapped[str] = mapped_column(String(32))
    worker: Mapped[str] = mapped_column(String(128))
