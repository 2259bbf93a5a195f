"""`GET /.well-known/pki/crl/{issuer_id}`: the issuer's CRL, unauthenticated (pki.md §A2.3).

A fresh in-process copy is answered straight from the event loop; otherwise the database check (and a
rebuild, when stale) runs in a worker thread so a large CRL never blocks other requests.
"""

from __future__ import annotations

from datetime import datetime
from email.utils import format_datetime

import anyio.to_thread

from certctl.crl._http import (
    PEM_CONTENT_TYPE,
    bad_format,
    etag_matches,
    method_not_allowed,
    pem_encode,
    wants_pem,
)
from certctl.crl.service import CRLGenerationFailed, CRLService, CRLSnapshot, CRLUnsupported
from certctl.distribution.asgi import Handler, PKIRequest, PKIResponse, text_response
from certctl.errors import NotFound, ValidationFailed

CRL_CONTENT_TYPE = "application/pkix-crl"  # RFC 5280 §4.2.1.13
MAX_AGE_SECONDS = 3600
"""pki.md §A2.3; lowered when the CRL's nextUpdate comes sooner, so no cache keeps an expired CRL."""


def crl_handler(crls: CRLService) -> Handler:
    pem_copies: dict[str, tuple[str, bytes]] = {}  # issuer → (DER ETag, PEM body): encode once per CRL

    async def handle(request: PKIRequest) -> PKIResponse:
        refused = method_not_allowed(request) or bad_format(request)
        if refused is not None:
            return refused
        if request.rest:
            return text_response(404, "not found: expected /.well-known/pki/crl/{issuer_id}")
        snapshot = crls.peek(request.issuer_id)
        if snapshot is None:
            try:
                snapshot = await anyio.to_thread.run_sync(crls.current, request.issuer_id)
            except NotFound:
                return text_response(404, f"issuer {request.issuer_id} not found")
            except ValidationFailed as exc:  # a disabled issuer without a current CRL
                return text_response(404, str(exc))
            except CRLUnsupported as exc:
                return text_response(501, str(exc))
            except CRLGenerationFailed:
                return PKIResponse(
                    503, b"the CRL could not be generated; try again later\n", headers=(("retry-after", "60"),)
                )
        pem = wants_pem(request)
        etag = snapshot.etag[:-1] + '-pem"' if pem else snapshot.etag  # one validator per representation
        headers = _cache_headers(snapshot, etag, now=crls.clock.now())
        if etag_matches(request.headers, etag):
            return PKIResponse(304, headers=headers)
        if not pem:
            return PKIResponse(200, snapshot.der, CRL_CONTENT_TYPE, headers)
        cached = pem_copies.get(snapshot.issuer_id)
        if cached is None or cached[0] != snapshot.etag:
            cached = pem_copies[snapshot.issuer_id] = (snapshot.etag, pem_encode(snapshot.der, "X509 CRL"))
        return PKIResponse(200, cached[1], PEM_CONTENT_TYPE, headers)

    return handle


def _cache_headers(snapshot: CRLSnapshot, etag: str, *, now: datetime) -> tuple[tuple[str, str], ...]:
    remaining = int((snapshot.next_update - now).total_seconds())
    max_age = max(0, min(MAX_AGE_SECONDS, remaining))
    return (
        ("etag", etag),
        ("cache-control", f"public, max-age={max_age}, must-revalidate"),
        ("last-modified", format_datetime(snapshot.this_update, usegmt=True)),
        ("vary", "Accept"),
    )
