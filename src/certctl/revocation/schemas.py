"""Wire shapes of the revocation endpoints (the original's field names)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from certctl.api.schemas import StrictIn
from certctl.certificates.schemas import BulkCriteria, BulkError
from certctl.revocation.reasons import REASON_CODES

REASON_HELP = f"RFC 5280 reason name: {', '.join(REASON_CODES)}"


class RevokeIn(StrictIn):
    """Read only when Content-Type is application/json; without it the reason is unspecified."""

    reason: str | None = Field(default=None, max_length=64, description=f"{REASON_HELP}; empty = unspecified")


class RevokeOut(BaseModel):
    status: Literal["revoked"] = "revoked"


class BulkRevokeIn(BulkCriteria):
    reason: str = Field(min_length=1, max_length=64, description=REASON_HELP)


class BulkRevokeOut(BaseModel):
    total_matched: int
    total_revoked: int
    total_skipped: int
    total_failed: int
    errors: list[BulkError]
