"""Wire shapes of the CRL admin view (`GET /api/v1/admin/crl/cache`)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class CRLGenerationEventOut(BaseModel):
    id: str
    trigger: str
    """scheduled, revocation, read or admin."""
    started_at: datetime
    duration_ms: int
    crl_number: int | None = None
    revoked_count: int
    error: str | None = None
    """Set when the build failed; the previous CRL stays cached."""


class CRLCacheEntryOut(BaseModel):
    issuer_id: str
    cache_present: bool
    crl_number: int | None = None
    this_update: datetime | None = None
    next_update: datetime | None = None
    generated_at: datetime | None = None
    generation_duration_ms: int | None = None
    revoked_count: int | None = None
    is_stale: bool
    events: list[CRLGenerationEventOut]
    """Latest first."""


class CRLCacheOut(BaseModel):
    issuers: list[CRLCacheEntryOut]
    total: int
