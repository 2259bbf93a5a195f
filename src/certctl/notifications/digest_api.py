"""/api/v1/digest: preview the digest as HTML, or send it now (notifications.md §10, §10.1).

Both answer 503 while the digest is off (CERTCTL_DIGEST_ENABLED false, or no SMTP host and sender), and a
failure to build or send it is a 500 in the JSON error shape. Any authenticated caller may preview; the
middleware keeps read-only roles (viewer, auditor) from sending.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel

from certctl.api.deps import Context, current_actor
from certctl.api.errors import error_response, request_id_of
from certctl.api.schemas import ErrorOut, Responses
from certctl.notifications.digest import build_digest

router = APIRouter(prefix="/digest", tags=["digest"], dependencies=[Depends(current_actor)])

NOT_CONFIGURED = (
    "digest service not configured: set CERTCTL_DIGEST_ENABLED=true, CERTCTL_SMTP_HOST and CERTCTL_SMTP_FROM_ADDRESS"
)
DIGEST_ERRORS: Responses = {
    500: {"model": ErrorOut, "description": "The digest could not be built or sent"},
    503: {"model": ErrorOut, "description": "The digest is not enabled (CERTCTL_DIGEST_ENABLED, SMTP settings)"},
}

PREVIEW_OK: Responses = {
    200: {
        "description": "The digest as it would be mailed now",
        "content": {"text/html": {"schema": {"type": "string"}}},
    }
}


class DigestSentOut(BaseModel):
    status: Literal["sent"]


def _unavailable(request: Request) -> JSONResponse:
    return error_response(503, NOT_CONFIGURED, request_id_of(request))


@router.get(
    "/preview",
    # A class without a media type: the 200 is documented as text/html only, the errors as JSON.
    response_class=Response,
    response_model=None,
    responses=PREVIEW_OK | DIGEST_ERRORS,
)
def preview_digest(request: Request, ctx: Context) -> Response:
    """The digest HTML (`text/html; charset=utf-8`); needs no working SMTP server."""
    service = build_digest(ctx)
    if service is None:
        return _unavailable(request)
    return HTMLResponse(service.preview())


@router.post("/send", response_model=DigestSentOut, responses=DIGEST_ERRORS)
def send_digest(request: Request, ctx: Context) -> DigestSentOut | JSONResponse:
    """Send the digest now to every recipient (one e-mail each); 500 names how many sends failed."""
    service = build_digest(ctx)
    if service is None:
        return _unavailable(request)
    service.send()
    return DigestSentOut(status="sent")
