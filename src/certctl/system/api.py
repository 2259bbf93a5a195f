from __future__ import annotations

import platform
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from certctl import __version__
from certctl.api.deps import Context, CurrentActor

router = APIRouter(tags=["system"])
_ping_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="ready-ping")


class HealthOut(BaseModel):
    status: str


class ReadyOut(BaseModel):
    status: str
    db: str | None = None
    error: str | None = None


class VersionOut(BaseModel):
    version: str
    commit: str
    modified: bool
    build_time: str
    go_version: str  # the original's field name; carries the Python version here


class AuthInfoOut(BaseModel):
    auth_type: str
    required: bool


class AuthCheckOut(BaseModel):
    status: str
    user: str
    admin: bool
    role: str


@router.head("/health", include_in_schema=False)  # load-balancer probes
@router.get("/health", response_model=HealthOut)
def health() -> HealthOut:
    return HealthOut(status="healthy")


@router.get("/ready", response_model=ReadyOut, response_model_exclude_none=True, responses={503: {"model": ReadyOut}})
def ready(ctx: Context) -> ReadyOut | JSONResponse:
    future = _ping_pool.submit(ctx.db.ping)
    try:
        future.result(timeout=ctx.settings.ready_timeout.total_seconds())
    except FutureTimeout:
        return JSONResponse({"status": "db_unavailable", "error": "database ping timed out"}, status_code=503)
    except Exception as exc:  # any driver error means "not ready"; the message helps the operator
        return JSONResponse({"status": "db_unavailable", "error": str(exc).splitlines()[0]}, status_code=503)
    return ReadyOut(status="ready", db="reachable")


@router.get("/api/v1/version", response_model=VersionOut)
def version() -> VersionOut:
    return VersionOut(
        version=__version__, commit="", modified=False, build_time="", go_version=f"python{platform.python_version()}"
    )


@router.get("/api/v1/auth/info", response_model=AuthInfoOut)
def auth_info(ctx: Context) -> AuthInfoOut:
    return AuthInfoOut(auth_type=ctx.settings.auth_type.value, required=not ctx.auth_disabled)


@router.get("/api/v1/auth/check", response_model=AuthCheckOut)
def auth_check(actor: CurrentActor) -> AuthCheckOut:
    return AuthCheckOut(status="authenticated", user=actor.name, admin=actor.is_admin, role=actor.role.value)
