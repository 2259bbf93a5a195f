"""One table from error class to HTTP status, and one JSON error shape for every response."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse
from starlette.routing import Match

from certctl.errors import (
    CertctlError,
    Conflict,
    Forbidden,
    Gone,
    NotFound,
    PreconditionFailed,
    Unauthorized,
    UpstreamFailed,
    ValidationFailed,
)

log = logging.getLogger("certctl.api")

STATUS_FOR: dict[type[CertctlError], int] = {
    ValidationFailed: 400,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    Gone: 410,
    PreconditionFailed: 412,
    UpstreamFailed: 502,
}


# Wire texts clients match on, pinned where Python's phrase differs or has changed (3.13 renamed 413).
_ERROR_TEXT = {413: "Request Entity Too Large"}


def error_body(status: int, message: str, request_id: str, error: str | None = None) -> dict[str, str]:
    text = error or _ERROR_TEXT.get(status) or HTTPStatus(status).phrase
    return {"error": text, "message": message, "request_id": request_id}


def error_response(
    status: int,
    message: str,
    request_id: str,
    *,
    error: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(error_body(status, message, request_id, error), status_code=status, headers=headers)


def request_id_of(request: Request) -> str:
    return str(getattr(request.state, "request_id", ""))


def status_for(exc: CertctlError) -> int:
    return next((STATUS_FOR[c] for c in type(exc).__mro__ if c in STATUS_FOR), 500)


def describe_validation(errors: Any) -> str:
    """Turn pydantic's error list into one sentence a person can act on."""
    parts = []
    for error in errors:
        location = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
        kind = error.get("type", "")
        if kind == "extra_forbidden":
            parts.append(f"unknown field {location!r}")
        elif kind == "missing":
            parts.append(f"{location} is required")
        elif kind == "json_invalid":
            parts.append(f"malformed JSON: {error.get('ctx', {}).get('error', 'invalid JSON')}")
        else:
            message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
            parts.append(f"{location}: {message}" if location else message)
    return "; ".join(parts) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(CertctlError)
    async def _certctl_error(request: Request, exc: CertctlError) -> JSONResponse:
        status = status_for(exc)
        if status >= 500:
            log.error("request.error", extra={"request_id": request_id_of(request), "error": repr(exc)})
        return error_response(status, str(exc), request_id_of(request))

    @app.exception_handler(DataError)
    async def _data_error(request: Request, exc: DataError) -> JSONResponse:
        # The database refused a value the schema let through (e.g. NUL in a query parameter).
        return error_response(400, f"invalid value: {str(exc.orig).splitlines()[0]}", request_id_of(request))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(400, describe_validation(exc.errors()), request_id_of(request))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        if exc.status_code == 404 and message == "Not Found":
            message = f"no route for {request.method} {request.url.path}"
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            message = f"method {request.method} not allowed on {request.url.path}"
            headers["Allow"] = _allowed_methods(request) or headers.get("Allow", "")
        return error_response(exc.status_code, message, request_id_of(request), headers=headers)


def _allowed_methods(request: Request) -> str:
    """Every method the path answers to (RFC 9110 §15.5.6), not only the first matching route's: the router
    raises 405 from the first route whose path matches, so `DELETE /teams` would claim only GET is allowed."""
    allowed = []
    for method in _METHODS:
        probe = {"type": "http", "path": request.scope["path"], "root_path": "", "method": method, "headers": []}
        if any(route.matches(probe)[0] is Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return ", ".join(allowed)


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
