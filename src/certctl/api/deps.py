"""FastAPI dependencies: the app context, the authenticated actor, role gates, page parameters."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request

from certctl.context import AppContext
from certctl.db.store import DEFAULT_PER_PAGE, MAX_PER_PAGE, PageRequest
from certctl.errors import Forbidden, Unauthorized, ValidationFailed
from certctl.security.roles import Actor

# Offsets stay far inside a 64-bit integer on both databases (500 rows x 10^7 pages).
MAX_PAGE = 10_000_000


async def get_context(request: Request) -> AppContext:
    context: AppContext = request.app.state.context
    return context


async def current_actor(request: Request) -> Actor:
    actor: Actor | None = getattr(request.state, "actor", None)
    if actor is None:
        raise Unauthorized("authentication required")
    return actor


async def require_admin(actor: Annotated[Actor, Depends(current_actor)]) -> Actor:
    if not actor.is_admin:
        raise Forbidden("this operation needs an admin API key")
    return actor


async def page_request(
    page: Annotated[int | None, Query(description=f"1-based page number, at most {MAX_PAGE} (default 1)")] = None,
    per_page: Annotated[int | None, Query(description=f"rows per page, 1-{MAX_PER_PAGE} (default 50)")] = None,
    limit: Annotated[int | None, Query(description="alias of per_page")] = None,
) -> PageRequest:
    """The original's lenient paging (0 or negative → defaults) without its silent caps (> 500 → 400)."""
    size = per_page if per_page is not None else limit
    if size is not None and size > MAX_PER_PAGE:
        raise ValidationFailed(f"per_page must be between 1 and {MAX_PER_PAGE}")
    if page is not None and page > MAX_PAGE:
        raise ValidationFailed(f"page must be between 1 and {MAX_PAGE}; use cursor pagination to go deeper")
    return PageRequest(
        page=page if page is not None and page >= 1 else 1,
        per_page=size if size is not None and size >= 1 else DEFAULT_PER_PAGE,
    )


Context = Annotated[AppContext, Depends(get_context)]
CurrentActor = Annotated[Actor, Depends(current_actor)]
AdminActor = Annotated[Actor, Depends(require_admin)]
Paging = Annotated[PageRequest, Depends(page_request)]
