"""Small HTTP pieces shared by the CRL and CA certificate distribution handlers."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from urllib.parse import parse_qs

from certctl.distribution.asgi import PKIRequest, PKIResponse, text_response

PEM_CONTENT_TYPE = "application/x-pem-file"
PEM_LINE_CHARS = 64  # RFC 7468 §2


def wants_pem(request: PKIRequest) -> bool:
    """`?format=pem`, or an Accept header naming the PEM type (DER is the default, as relying parties expect)."""
    query = parse_qs(request.query)
    requested = (query.get("format") or [""])[0].lower()
    if requested:
        return requested == "pem"
    return PEM_CONTENT_TYPE in request.headers.get("accept", "").lower()


def bad_format(request: PKIRequest) -> PKIResponse | None:
    requested = (parse_qs(request.query).get("format") or [""])[0].lower()
    if requested and requested not in ("der", "pem"):
        return text_response(400, f"unknown format {requested!r}: use format=der (default) or format=pem")
    return None


def method_not_allowed(request: PKIRequest) -> PKIResponse | None:
    if request.method in ("GET", "HEAD"):
        return None
    return PKIResponse(405, b"method not allowed: use GET\n", headers=(("allow", "GET, HEAD"),))


def etag_matches(headers: Mapping[str, str], etag: str) -> bool:
    """An exact match in If-None-Match (a list is allowed; `*` matches anything), RFC 9110 §13.1.2."""
    header = headers.get("if-none-match")
    if not header:
        return False
    candidates = {candidate.strip() for candidate in header.split(",")}
    return "*" in candidates or etag in candidates


def pem_encode(der: bytes, label: str) -> bytes:
    """RFC 7468 textual encoding: 64-character base64 lines between BEGIN/END `label` lines."""
    encoded = base64.b64encode(der)
    lines = [encoded[i : i + PEM_LINE_CHARS] for i in range(0, len(encoded), PEM_LINE_CHARS)]
    return b"".join((f"-----BEGIN {label}-----\n".encode(), b"\n".join(lines), f"\n-----END {label}-----\n".encode()))
