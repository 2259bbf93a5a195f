"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import JSON, DateTime, Dialect, String, TextClause, TypeDecorator, text
from sqlalchemy.dialects.postgresql import JSONB


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out; naive values are refused.

    SQLite returns naive values for timezone-aware columns, so results are tagged as UTC here.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused: certctl stores aware UTC instants only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# JSONB on PostgreSQL (indexable, as in the original schema), JSON1 text on SQLite.
JSONType = JSON().with_variant(JSONB(), "postgresql")


E = TypeVar("E", bound=StrEnum)


class StrEnumType(TypeDecorator[E]):
    """Stores a StrEnum's value ("Active"), not its member name, without a native enum type."""

    impl = String(32)
    cache_ok = True

    def __init__(self, enum: type[E], length: int = 32) -> None:
        super().__init__(length)
        self._enum = enum
        self._members: dict[str, E] = {member.value: member for member in enum}  # a lookup, not Enum's call

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else self._enum(value).value

    def process_result_value(self, value: str | None, dialect: Dialect) -> E | None:
        if value is None:
            return None
        member = self._members.get(value)
        return member if member is not None else self._enum(value)  # raises for a value it does not know


def json_default(value: Any) -> TextClause:
    """A JSON literal usable as a server default on both databases (PostgreSQL casts it to jsonb)."""
    # ": " keeps a colon from ever being read as a bind parameter by text().
    return text("'" + json.dumps(value, separators=(", ", ": ")).replace("'", "''") + "'")
