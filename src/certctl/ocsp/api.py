"""HTTP for the OCSP responder on the distribution front (pki.md §A2.4-5):

* `POST /.well-known/pki/ocsp/{issuer_id}`: body = DER OCSPRequest; Content-Type must contain
  `ocsp-request` or be absent, else 415.
* `GET /.well-known/pki/ocsp/{issuer_id}/{segment}`: RFC 6960 Appendix A (URL-encoded base64 of the DER
  request, which may contain `/`, `+`, `=`), or the original's hex serial. A segment is read as a serial
  only when it is pure hex *and* does not decode to an OCSPRequest; since DER requests start with 0x30,
  their base64 starts with `M` and is never pure hex, so in practice the two forms never collide.

Cache hits are answered on the event loop (a parse, a dict lookup); misses go to a worker thread.
OCSP-level failures are HTTP 200 with an OCSP error status (malformedRequest, unauthorized, internalError),
as RFC 6960 clients expect; HTTP errors are kept for the URL itself (404, 415, 501).
"""

from __future__ import annotations

import base64
import binascii
import re
from urllib.parse import unquote

import anyio.to_thread

from certctl.distribution.asgi import Handler, PKIRequest, PKIResponse, text_response
from certctl.errors import NotFound
from certctl.ocsp.metrics import OCSPEvent
from certctl.ocsp.responder import (
    MALFORMED_REQUEST,
    UNAUTHORIZED,
    MalformedRequest,
    OCSPQuery,
    parse_request,
    serial_query,
)
from certctl.ocsp.service import IssuerUnavailable, OCSPNotSupported, OCSPService

OCSP_RESPONSE = "application/ocsp-response"
RETRY_AFTER_SECONDS = "60"
MAX_SERIAL_HEX = 64
"""20-octet serials are 40 hex digits; some leading zeros are tolerated, megabytes of them are not."""
_HEX = re.compile(r"[0-9a-fA-F]+")
_NO_CACHE = (("cache-control", "no-cache"),)


def ocsp_handler(service: OCSPService) -> Handler:
    counters = service.counters

    async def handle(request: PKIRequest) -> PKIResponse:
        if not service.limiter.allow(request.client_ip):
            counters.add(OCSPEvent.RATE_LIMITED)
            return PKIResponse(200, UNAUTHORIZED, OCSP_RESPONSE, (*_NO_CACHE, ("retry-after", RETRY_AFTER_SECONDS)))
        if request.method == "POST":
            content_type = request.headers.get("content-type", "")
            if content_type and "ocsp-request" not in content_type.lower():
                return text_response(415, "send the DER OCSP request with Content-Type: application/ocsp-request")
        elif not request.rest:
            return text_response(
                400, "GET needs /{base64 OCSP request} or /{hex serial} after the issuer; or POST the DER request"
            )
        try:
            query = parse_request(request.body) if request.method == "POST" else query_from_segment(request.rest)
        except MalformedRequest:
            counters.add(OCSPEvent.MALFORMED)
            return PKIResponse(200, MALFORMED_REQUEST, OCSP_RESPONSE, _NO_CACHE)
        if query.nonce_malformed:
            counters.add(OCSPEvent.NONCE_MALFORMED)
            return PKIResponse(200, UNAUTHORIZED, OCSP_RESPONSE, _NO_CACHE)

        hit = service.cached(request.issuer_id, query)
        if hit is not None:  # the hot path: no thread, no database
            counters.add(OCSPEvent.CACHE_HIT)
            counters.add(OCSPEvent(hit.status))
            return PKIResponse(200, hit.der, OCSP_RESPONSE, _cache_control(service.max_age(hit)))
        try:
            answer = await anyio.to_thread.run_sync(service.answer, request.issuer_id, query)
        except NotFound:
            return text_response(404, f"issuer {request.issuer_id} not found")
        except OCSPNotSupported as exc:
            return text_response(501, str(exc))
        except IssuerUnavailable as exc:
            return text_response(503, str(exc))
        return PKIResponse(200, answer.der, OCSP_RESPONSE, _cache_control(answer.max_age))

    return handle


def query_from_segment(rest: str) -> OCSPQuery:
    """The GET path segment as a query; raises MalformedRequest."""
    segment = unquote(rest).replace(" ", "+")  # a `+` some proxy turned into a space
    if _HEX.fullmatch(segment):
        der = _base64(segment)
        if der is not None:
            try:
                return parse_request(der)
            except MalformedRequest:
                pass
        if len(segment) > MAX_SERIAL_HEX:
            raise MalformedRequest(f"a hex serial has at most {MAX_SERIAL_HEX} digits")
        return serial_query(int(segment, 16))
    der = _base64(segment)
    if der is None:
        raise MalformedRequest("the GET segment is neither base64 nor a hex serial")
    return parse_request(der)


def _base64(text: str) -> bytes | None:
    """Standard or URL-safe alphabet, padding optional."""
    text = text.strip().replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def _cache_control(max_age: int) -> tuple[tuple[str, str], ...]:
    if max_age <= 0:
        return _NO_CACHE
    return (("cache-control", f"max-age={max_age}, public, no-transform, must-revalidate"),)
