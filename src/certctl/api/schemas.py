"""Wire shapes shared by every endpoint: the error body and the list envelope."""

from __future__ import annotations

from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, StringConstraints, model_validator

from certctl.db.store import Page
from certctl.errors import ValidationFailed
from certctl.ids import CLIENT_ID_PATTERN

T = TypeVar("T")


# Wire types every resource uses: a display name, and a client-chosen ID (seed data uses readable ones).
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
ClientId = Annotated[str, StringConstraints(pattern=CLIENT_ID_PATTERN)]


class ErrorOut(BaseModel):
    """certctl's one error shape (core.md §4.3), also used by middleware errors."""

    error: str
    message: str
    request_id: str


class PageOut(BaseModel, Generic[T]):
    data: list[T]
    total: int
    page: int
    per_page: int


class StrictIn(BaseModel):
    """Request bodies: unknown fields are refused with a 400 naming them; NUL characters, which
    PostgreSQL cannot store in text, are refused anywhere in the body."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        if (where := _nul_at(data, "")) is not None:
            raise ValueError(f"{where or 'body'} must not contain NUL characters")
        return data


def _nul_at(value: Any, where: str) -> str | None:
    """Where a NUL character hides in a decoded JSON body (keys included), or None."""
    if isinstance(value, str):
        return where if "\x00" in value else None
    items: list[tuple[Any, str]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{where}.{key}" if where else str(key)
            if isinstance(key, str) and "\x00" in key:
                return here
            items.append((item, here))
    elif isinstance(value, list):
        items = [(item, f"{where}[{index}]") for index, item in enumerate(value)]
    return next((found for item, here in items if (found := _nul_at(item, here)) is not None), None)


Responses = dict[int | str, dict[str, Any]]

ERROR_RESPONSES: Responses = {
    status: {"model": ErrorOut, "description": description}
    for status, description in (
        (400, "Bad request: malformed JSON, unknown or wrong-typed fields, invalid values"),
        (401, "Missing or invalid API key"),
        (403, "The API key's role does not allow this"),
        (413, "Request body larger than CERTCTL_MAX_BODY_SIZE"),
        (429, "Rate limit exceeded; see Retry-After"),
    )
}
NOT_FOUND: Responses = {404: {"model": ErrorOut, "description": "No such resource"}}
CONFLICT: Responses = {409: {"model": ErrorOut, "description": "Duplicate name or resource still in use"}}


def changes_of(body: BaseModel, nullable: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The fields a PUT/PATCH body actually sets; an explicit null is refused unless the field allows it."""
    changes = body.model_dump(exclude_unset=True)
    for field, value in changes.items():
        if value is None and field not in nullable:
            raise ValidationFailed(f"{field} may not be null")
    return changes


S = TypeVar("S", bound=BaseModel)


def page_out(page: Page[Any], schema: type[S]) -> PageOut[S]:
    """The list envelope `{data, total, page, per_page}` for one page of rows."""
    return PageOut[S](
        data=[schema.model_validate(row) for row in page.items],
        total=page.total,
        page=page.page,
        per_page=page.per_page,
    )
