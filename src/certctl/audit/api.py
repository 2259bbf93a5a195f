"""/api/v1/audit: the trail, filtered, by offset page or by keyset cursor (newest first)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from certctl.api.deps import Context, Paging
from certctl.api.params import decode_cursor, encode_cursor, parse_time_filter
from certctl.api.schemas import NOT_FOUND
from certctl.audit.schemas import AuditEventOut, AuditPageOut
from certctl.audit.store import AuditFilter
from certctl.db.store import MAX_PER_PAGE
from certctl.errors import ValidationFailed
from certctl.security.roles import ActorType

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("", response_model=AuditPageOut, response_model_exclude_none=True)
def list_audit_events(
    ctx: Context,
    paging: Paging,
    actor: Annotated[str | None, Query()] = None,
    actor_type: Annotated[ActorType | None, Query()] = None,
    action: Annotated[str | None, Query()] = None,
    resource_type: Annotated[str | None, Query()] = None,
    resource_id: Annotated[str | None, Query()] = None,
    since: Annotated[str | None, Query(description="RFC 3339 time or YYYY-MM-DD")] = None,
    until: Annotated[str | None, Query(description="RFC 3339 time or YYYY-MM-DD")] = None,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    page_size: Annotated[int | None, Query(description=f"cursor page size, 1-{MAX_PER_PAGE}")] = None,
) -> AuditPageOut:
    flt = AuditFilter(
        actor=actor,
        actor_type=actor_type,
        action=action,
        resource_type=resource_type,
        resource_id=resource_id,
        since=parse_time_filter("since", since),
        until=parse_time_filter("until", until),
    )
    if cursor is None and page_size is None:
        page = ctx.audit.list_page(flt, paging)
        return AuditPageOut(
            data=[AuditEventOut.model_validate(e) for e in page.items],
            total=page.total,
            page=page.page,
            per_page=page.per_page,
        )
    size = page_size if page_size is not None and page_size >= 1 else paging.per_page
    if size > MAX_PER_PAGE:
        raise ValidationFailed(f"page_size must be between 1 and {MAX_PER_PAGE}")
    position = decode_cursor(cursor) if cursor else None
    rows, total = ctx.audit.list_after(flt, position, size + 1)
    has_more = len(rows) > size
    rows = rows[:size]
    next_cursor = encode_cursor(rows[-1].timestamp, rows[-1].id) if has_more and rows else None
    return AuditPageOut(
        data=[AuditEventOut.model_validate(e) for e in rows], total=total, page_size=size, next_cursor=next_cursor
    )


@router.get("/{event_id}", response_model=AuditEventOut, responses=NOT_FOUND)
def get_audit_event(ctx: Context, event_id: str) -> AuditEventOut:
    return AuditEventOut.model_validate(ctx.audit.get(event_id))
