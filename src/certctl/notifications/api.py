"""/api/v1/notifications and the admin test send (notifications.md §5, §5.1)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from certctl.api.deps import AdminActor, Context, CurrentActor, Paging
from certctl.api.schemas import CONFLICT, NOT_FOUND
from certctl.notifications.models import AttemptOutcome, NotificationStatus
from certctl.notifications.schemas import (
    AttemptOut,
    AttemptsOut,
    BulkRequeueIn,
    BulkRequeueOut,
    NotificationOut,
    NotificationPageOut,
    StatusOut,
    TestNotificationIn,
    TestNotificationOut,
)
from certctl.notifications.service import NotificationService
from certctl.notifications.store import NotificationFilter

router = APIRouter(prefix="/notifications", tags=["notifications"])
admin_router = APIRouter(prefix="/admin/notifications", tags=["admin"])
_TEST_STATUS: dict[AttemptOutcome, Literal["sent", "failed", "not_configured"]] = {
    AttemptOutcome.SUCCESS: "sent",
    AttemptOutcome.FAILURE: "failed",
    AttemptOutcome.NOT_CONFIGURED: "not_configured",
}


def _service(ctx: Context) -> NotificationService:
    return ctx.notification_service


@router.get("", response_model=NotificationPageOut, response_model_exclude_none=True)
def list_notifications(
    ctx: Context,
    paging: Paging,
    status: Annotated[str | None, Query(max_length=50, description="pending, sent, failed, dead or read")] = None,
    channel: Annotated[str | None, Query(max_length=255)] = None,
    notification_type: Annotated[str | None, Query(alias="type", max_length=255)] = None,
    certificate_id: Annotated[str | None, Query(max_length=64)] = None,
) -> NotificationPageOut:
    """Newest first; `total` counts every matching row."""
    flt = NotificationFilter(
        status=status or None, channel=channel or None, type=notification_type or None, certificate_id=certificate_id
    )
    page = _service(ctx).page(flt, paging)
    return NotificationPageOut(
        data=[NotificationOut.model_validate(row) for row in page.items],
        total=page.total,
        page=page.page,
        per_page=page.per_page,
    )


@router.post("/bulk-requeue", response_model=BulkRequeueOut, responses=NOT_FOUND)
def bulk_requeue(ctx: Context, actor: AdminActor, body: BulkRequeueIn) -> BulkRequeueOut:
    """Requeue failed/dead rows by filter (admin); with no filter, the whole dead-letter queue."""
    filters = body.model_dump(exclude_none=True)
    flt = NotificationFilter(
        status=body.status.value if body.status else (None if filters else NotificationStatus.DEAD.value),
        channel=body.channel,
        type=body.type,
        certificate_id=body.certificate_id,
        ids=body.ids,
    )
    ids = _service(ctx).requeue_matching(flt, actor)
    return BulkRequeueOut(requeued=len(ids), ids=ids)


@router.get("/{notification_id}", response_model=NotificationOut, response_model_exclude_none=True, responses=NOT_FOUND)
def get_notification(ctx: Context, notification_id: str) -> NotificationOut:
    return NotificationOut.model_validate(_service(ctx).get(notification_id))


@router.get(
    "/{notification_id}/attempts", response_model=AttemptsOut, response_model_exclude_none=True, responses=NOT_FOUND
)
def list_attempts(ctx: Context, notification_id: str) -> AttemptsOut:
    """Every delivery attempt of the row, first to last."""
    attempts = _service(ctx).attempts(notification_id)
    return AttemptsOut(data=[AttemptOut.model_validate(a) for a in attempts], total=len(attempts))


@router.post("/{notification_id}/read", response_model=StatusOut, responses=NOT_FOUND)
def mark_read(ctx: Context, actor: CurrentActor, notification_id: str) -> StatusOut:
    """A delivered row becomes `read`; an undelivered one is flagged read and still delivered."""
    _service(ctx).mark_read(notification_id)
    return StatusOut(status="marked_as_read")


@router.post("/{notification_id}/requeue", response_model=StatusOut, responses=NOT_FOUND | CONFLICT)
def requeue(ctx: Context, actor: CurrentActor, notification_id: str) -> StatusOut:
    """A failed or dead row back to pending with a fresh 5-attempt budget; anything else is a 409."""
    _service(ctx).requeue(notification_id, actor)
    return StatusOut(status="requeued")


@admin_router.post("/test", response_model=TestNotificationOut, response_model_exclude_none=True, responses=NOT_FOUND)
def send_test(ctx: Context, actor: AdminActor, body: TestNotificationIn) -> TestNotificationOut:
    """One synchronous delivery through a channel, prefixed [TEST]; no notification row is stored."""
    done = _service(ctx).send_test(
        body.channel.value,
        actor,
        certificate_id=body.certificate_id,
        threshold_days=body.threshold_days,
        recipient=body.recipient,
    )
    result = done.result
    return TestNotificationOut(
        status=_TEST_STATUS[result.outcome],
        channel=done.channel,
        duration_ms=round(result.seconds * 1000),
        error=result.error,
        http_status=result.http_status,
        smtp_reply=result.smtp_reply,
    )
