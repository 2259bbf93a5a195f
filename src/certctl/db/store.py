"""The base every feature store builds on: look-ups that raise typed errors, counted pages, flushes
that turn constraint violations into 409s. Stores never commit; the service owns the transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from certctl.db.base import Base
from certctl.errors import Conflict, NotFound

M = TypeVar("M", bound=Base)
T = TypeVar("T")

DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 500


@dataclass(frozen=True, slots=True)
class PageRequest:
    page: int = 1
    per_page: int = DEFAULT_PER_PAGE

    def __post_init__(self) -> None:
        if self.page < 1 or not 1 <= self.per_page <= MAX_PER_PAGE:
            raise ValueError("page must be ≥ 1 and per_page between 1 and 500")

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: Sequence[T]
    total: int
    page: int
    per_page: int


class Store(Generic[M]):
    model: ClassVar[type[Any]]
    kind: ClassVar[str]

    def __init__(self, session: Session) -> None:
        self.session = session

    def find(self, ident: str) -> M | None:
        row: M | None = self.session.get(self.model, ident)
        return row

    def get(self, ident: str) -> M:
        row = self.find(ident)
        if row is None:
            raise NotFound(self.kind, ident)
        return row

    def add(self, row: M) -> M:
        self.session.add(row)
        self.flush()
        return row

    def delete(self, row: M) -> None:
        self.session.delete(row)
        self.flush()

    def flush(self) -> None:
        try:
            self.session.flush()
        except IntegrityError as exc:
            # Services check the rules first; this is the race where two requests collide.
            raise Conflict(f"{self.kind} conflicts with existing data: {exc.orig}") from exc

    def paginate(self, stmt: Select[T], request: PageRequest) -> Page[T]:
        total = self.session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
        items = self.session.scalars(stmt.offset(request.offset).limit(request.per_page)).all()
        return Page(items=items, total=total, page=request.page, per_page=request.per_page)

    def any(self, stmt: Select[Any]) -> bool:
        return self.session.scalar(select(stmt.limit(1).exists())) or False
