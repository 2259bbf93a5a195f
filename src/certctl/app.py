"""create_app(): routers, the middleware chain and error handlers, around one AppContext."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from certctl import __version__
from certctl.agents.access import refusal
from certctl.api.errors import install_error_handlers
from certctl.api.middleware import (
    AuditMiddleware,
    AuthMiddleware,
    BodyLimitMiddleware,
    CORSMiddleware,
    RateLimitMiddleware,
    RequestContextMiddleware,
)
from certctl.api.ratelimit import RateLimiter
from certctl.api.schemas import ERROR_RESPONSES
from certctl.context import AppContext
from certctl.distribution.asgi import DistributionMiddleware
from certctl.distribution.handlers import distribution_handlers
from certctl.security.roles import ANONYMOUS_ACTOR
from certctl.worker import Background

DRAIN_TIMEOUT_SECONDS = 30.0


def _routers() -> list[APIRouter]:
    from certctl.agent_groups.api import router as agent_groups
    from certctl.agents.api import certificates_router as certificate_deploys
    from certctl.agents.api import jobs_router as job_verification
    from certctl.agents.api import router as agents
    from certctl.audit.api import router as audit
    from certctl.certificates.api import router as certificates
    from certctl.crl.api import router as crl_admin
    from certctl.intermediates.api import router as intermediates
    from certctl.issuers.api import router as issuers
    from certctl.jobs.api import router as jobs
    from certctl.notifications.api import admin_router as notification_admin
    from certctl.notifications.api import router as notifications
    from certctl.notifications.digest_api import router as digest
    from certctl.org.api import owners, teams
    from certctl.policies.api import router as renewal_policies
    from certctl.profiles.api import router as profiles
    from certctl.revocation.api import router as revocation
    from certctl.scheduler.api import router as scheduler
    from certctl.targets.api import router as targets

    return [
        certificate_deploys,
        revocation,  # before certificates: /certificates/bulk-revoke and /{id}/revoke
        certificates,
        agents,
        job_verification,
        jobs,
        notifications,
        teams,
        owners,
        renewal_policies,
        profiles,
        issuers,
        intermediates,
        targets,
        agent_groups,
        audit,
        scheduler,
        crl_admin,
        notification_admin,
        digest,
    ]


def _add_routes(
    app: FastAPI, router: APIRouter, prefix: str = "", responses: dict[int | str, dict[str, Any]] | None = None
) -> None:
    """The router's routes, added to the app's own router under `prefix` (what `include_router` did before
    FastAPI 0.137). `include_router` now keeps each router as one node and, on every request, walks the
    routes of every node it tries to see whether they changed: 0.1-0.5 ms per request with these routers.
    Ours never change after start. A route already carries its router's prefix, tags, dependencies and
    responses."""
    for route in router.routes:
        if not isinstance(route, APIRoute):
            raise TypeError(f"only API routes are added flat, not {route!r}")
        app.router.add_api_route(
            prefix + route.path,
            route.endpoint,
            response_model=route.response_model,
            status_code=route.status_code,
            tags=list(route.tags),
            dependencies=list(route.dependencies),
            summary=route.summary,
            description=route.description,
            response_description=route.response_description,
            responses={**(responses or {}), **route.responses},
            deprecated=route.deprecated,
            methods=route.methods,
            operation_id=route.operation_id,
            response_model_include=route.response_model_include,
            response_model_exclude=route.response_model_exclude,
            response_model_by_alias=route.response_model_by_alias,
            response_model_exclude_unset=route.response_model_exclude_unset,
            response_model_exclude_defaults=route.response_model_exclude_defaults,
            response_model_exclude_none=route.response_model_exclude_none,
            include_in_schema=route.include_in_schema,
            response_class=route.response_class,
            name=route.name,
            callbacks=route.callbacks,
            openapi_extra=route.openapi_extra,
            generate_unique_id_function=route.generate_unique_id_function,
        )


def create_app(context: AppContext, background: Background | None = None) -> FastAPI:
    """Build the ASGI app. The context is already prepared (migrated, seeded): no I/O happens here.

    With `background`, its scheduler starts with the app and drains (at most 30 s) when the app stops.
    """
    from certctl.stats.api import router as stats
    from certctl.system.api import router as system

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if background is not None:
            await anyio.to_thread.run_sync(background.scheduler.start)
        try:
            yield
        finally:
            if background is not None:
                await anyio.to_thread.run_sync(background.scheduler.stop, DRAIN_TIMEOUT_SECONDS)

    app = FastAPI(
        lifespan=lifespan,
        title="certctl",
        version=__version__,
        description="Certificate lifecycle control plane (REST API compatible with certctl's /api/v1).",
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/v1/openapi.json",
    )
    app.state.context = context
    app.state.background = background
    install_error_handlers(app)
    _add_routes(app, system)
    _add_routes(app, stats)
    for router in _routers():
        _add_routes(app, router, prefix="/api/v1", responses=ERROR_RESPONSES)

    settings = context.settings
    # Added innermost first: the request meets them in the reverse order (see api/middleware.py).
    app.add_middleware(AuditMiddleware, write=context.audit.record_api_call)
    if settings.rate_limit_enabled:
        per_user_rps = settings.rate_limit_per_user_rps or settings.rate_limit_rps
        per_user_burst = settings.rate_limit_per_user_burst or settings.rate_limit_burst
        app.add_middleware(
            RateLimitMiddleware,
            per_key=RateLimiter(per_user_rps, per_user_burst, context.clock.monotonic),
            per_ip=RateLimiter(settings.rate_limit_rps, settings.rate_limit_burst, context.clock.monotonic),
        )
    app.add_middleware(
        AuthMiddleware,
        authenticate=context.authenticate,
        authenticate_in_memory=context.authenticate_in_memory,
        anonymous=ANONYMOUS_ACTOR if context.auth_disabled else None,
        refusal=refusal,
    )
    app.add_middleware(CORSMiddleware, origins=settings.cors_origins)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_size)
    app.add_middleware(RequestContextMiddleware)
    # Outermost: CRL/OCSP/CA certificate requests never meet the API's auth, audit or rate limits.
    app.add_middleware(DistributionMiddleware, handlers=distribution_handlers(context))

    def openapi() -> dict[str, object]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            schema["components"]["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            }
            schema["security"] = [{"bearer": []}, {"apiKey": []}]
            # Validation errors are answered 400 in certctl's error shape, never FastAPI's 422.
            for path in schema.get("paths", {}).values():
                for operation in path.values():
                    operation.get("responses", {}).pop("422", None)
            for name in ("HTTPValidationError", "ValidationError"):
                schema.get("components", {}).get("schemas", {}).pop(name, None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
