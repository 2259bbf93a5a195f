from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class AuditEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    actor: str
    actor_type: str
    action: str
    resource_type: str
    resource_id: str
    details: dict[str, Any]
    timestamp: datetime


class AuditPageOut(BaseModel):
    """Offset pages carry `page`/`per_page`; cursor pages carry `page_size` and, unless last, `next_cursor`."""

    data: list[AuditEventOut]
    total: int
    page: int | None = None
    per_page: int | None = None
    page_size: int | None = None
    next_cursor: str | None = None
