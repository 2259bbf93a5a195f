"""`GET /api/v1/admin/crl/cache`: the CRL cache of every CRL-capable issuer and its latest builds (admin).

The CRL itself is served by the distribution point (`certctl.crl.endpoint`), not by this router.
"""

from __future__ import annotations

from fastapi import APIRouter

from certctl.api.deps import AdminActor, Context
from certctl.crl.schemas import CRLCacheEntryOut, CRLCacheOut, CRLGenerationEventOut
from certctl.crl.service import CacheStatus

router = APIRouter(prefix="/admin/crl", tags=["admin"])


@router.get("/cache", response_model=CRLCacheOut)
def crl_cache(ctx: Context, actor: AdminActor) -> CRLCacheOut:
    entries = [_entry(status) for status in ctx.crls.cache_status()]
    return CRLCacheOut(issuers=entries, total=len(entries))


def _entry(status: CacheStatus) -> CRLCacheEntryOut:
    meta = status.meta
    events = [
        CRLGenerationEventOut(
            id=event.id,
            trigger=event.trigger,
            started_at=event.started_at,
            duration_ms=event.duration_ms,
            crl_number=event.crl_number,
            revoked_count=event.revoked_count,
            error=event.error,
        )
        for event in status.events
    ]
    if meta is None:
        return CRLCacheEntryOut(issuer_id=status.issuer_id, cache_present=False, is_stale=True, events=events)
    return CRLCacheEntryOut(
        issuer_id=status.issuer_id,
        cache_present=True,
        crl_number=meta.crl_number,
        this_update=meta.this_update,
        next_update=meta.next_update,
        generated_at=meta.generated_at,
        generation_duration_ms=meta.generation_duration_ms,
        revoked_count=meta.revoked_count,
        is_stale=status.is_stale,
        events=events,
    )
