"""Certificate list queries: the original's filters and sort whitelist, offset pages and keyset cursors.

Keyset order is (sort key, id) in the requested direction; `expires_at` is the one nullable key and
sorts NULLS LAST ascending / NULLS FIRST descending, which is what a (expires_at, id) index scans.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, literal, or_, select, tuple_
from sqlalchemy.orm import InstrumentedAttribute

from certctl.certificates.models import CertificateStatus, CertificateTargetMapping, ManagedCertificate
from certctl.errors import ValidationFailed
from certctl.targets.models import DeploymentTarget

# Wire names of the original's whitelist (camelCase as the UI sends them, plus our snake_case).
SORT_KEYS: dict[str, InstrumentedAttribute[Any]] = {
    "notAfter": ManagedCertificate.expires_at,
    "expiresAt": ManagedCertificate.expires_at,
    "expires_at": ManagedCertificate.expires_at,
    "createdAt": ManagedCertificate.created_at,
    "created_at": ManagedCertificate.created_at,
    "updatedAt": ManagedCertificate.updated_at,
    "updated_at": ManagedCertificate.updated_at,
    "commonName": ManagedCertificate.common_name,
    "common_name": ManagedCertificate.common_name,
    "name": ManagedCertificate.name,
    "status": ManagedCertificate.status,
    "environment": ManagedCertificate.environment,
}
DEFAULT_SORT = ManagedCertificate.created_at
_TIME_KEYS = frozenset({"expires_at", "created_at", "updated_at"})


@dataclass(frozen=True, slots=True)
class CertificateFilter:
    status: CertificateStatus | None = None
    environment: str | None = None
    owner_id: str | None = None
    team_id: str | None = None
    issuer_id: str | None = None
    agent_id: str | None = None
    profile_id: str | None = None
    ids: tuple[str, ...] = ()
    expires_before: datetime | None = None
    expires_after: datetime | None = None
    created_after: datetime | None = None
    updated_after: datetime | None = None

    def is_empty(self) -> bool:
        return self == CertificateFilter()

    def status_only(self) -> bool:
        """Nothing but (at most) a status: the match count is one of the counts kept on write."""
        return replace(self, status=None).is_empty()


@dataclass(frozen=True, slots=True)
class Sort:
    column: InstrumentedAttribute[Any] = field(default=DEFAULT_SORT)
    descending: bool = False

    @classmethod
    def parse(cls, sort: str | None, sort_desc: bool = False) -> Sort:
        """`sort=name`, `sort=-name` or `sort_desc=true`; unknown keys fall back to created_at (original)."""
        text = (sort or "").strip()
        descending = sort_desc or text.startswith("-")
        column = SORT_KEYS.get(text.lstrip("-+"), DEFAULT_SORT)
        return cls(column=column, descending=descending)


def filtered(flt: CertificateFilter) -> Select[ManagedCertificate]:
    m = ManagedCertificate
    stmt = select(m)
    for column, value in (
        (m.status, flt.status),
        (m.environment, flt.environment),
        (m.owner_id, flt.owner_id),
        (m.team_id, flt.team_id),
        (m.issuer_id, flt.issuer_id),
        (m.certificate_profile_id, flt.profile_id),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    if flt.ids:
        stmt = stmt.where(m.id.in_(flt.ids))
    if flt.agent_id is not None:
        on_agent = (
            select(CertificateTargetMapping.certificate_id)
            .join(DeploymentTarget, DeploymentTarget.id == CertificateTargetMapping.target_id)
            .where(DeploymentTarget.agent_id == flt.agent_id)
        )
        stmt = stmt.where(m.id.in_(on_agent))
    if flt.expires_before is not None:
        stmt = stmt.where(m.expires_at < flt.expires_before)
    if flt.expires_after is not None:
        stmt = stmt.where(m.expires_at > flt.expires_after)
    if flt.created_after is not None:
        stmt = stmt.where(m.created_at > flt.created_after)
    if flt.updated_after is not None:
        stmt = stmt.where(m.updated_at > flt.updated_after)
    return stmt


def ordered(stmt: Select[ManagedCertificate], sort: Sort) -> Select[ManagedCertificate]:
    column, ident = sort.column, ManagedCertificate.id
    if sort.descending:
        key = column.desc().nulls_first() if _nullable(sort) else column.desc()
        return stmt.order_by(key, ident.desc())
    key = column.asc().nulls_last() if _nullable(sort) else column.asc()
    return stmt.order_by(key, ident.asc())


def after(stmt: Select[ManagedCertificate], sort: Sort, position: Position) -> Select[ManagedCertificate]:
    """Rows strictly after `position` in the (sort key, id) order of `sort` (SQL comparisons skip NULLs)."""
    column, ident = sort.column, ManagedCertificate.id
    value, last_id = position.value, position.id
    condition: ColumnElement[bool]
    if sort.descending:
        if value is None:  # NULL keys come first descending: the rest of them, then every non-NULL key
            condition = or_(and_(column.is_(None), ident < last_id), column.is_not(None))
        else:
            condition = tuple_(column, ident) < tuple_(literal(value, column.type), literal(last_id))
    elif value is None:  # NULL keys come last ascending: only the rest of them remain
        condition = and_(column.is_(None), ident > last_id)
    else:
        # A row-value comparison, not `key > v OR (key = v AND id > i)`: PostgreSQL makes it the bound of
        # the (key, id) index scan, where the OR form is a filter over every row before the position.
        condition = tuple_(column, ident) > tuple_(literal(value, column.type), literal(last_id))
        if _nullable(sort):
            condition = or_(condition, column.is_(None))
    return stmt.where(condition)


def _nullable(sort: Sort) -> bool:
    return sort.column is ManagedCertificate.expires_at


@dataclass(frozen=True, slots=True)
class Position:
    """Where a cursor page ended: the last row's sort value and id."""

    value: Any
    id: str

    @classmethod
    def of_row(cls, row: Mapping[Any, Any], sort: Sort) -> Position:
        return cls(value=row[sort.column.key], id=row["id"])

    def encode(self, sort: Sort) -> str:
        value = self.value.isoformat() if isinstance(self.value, datetime) else self.value
        raw = json.dumps([sort.column.key, value, self.id], separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, cursor: str, sort: Sort) -> Position:
        try:
            raw = base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode())
            key, value, ident = json.loads(raw)
            if key != sort.column.key or not isinstance(ident, str):
                raise ValueError("cursor from another sort order")
            if value is not None and key in _TIME_KEYS:
                value = datetime.fromisoformat(value)
        except (ValueError, TypeError, binascii.Error, UnicodeDecodeError, NotImplementedError) as exc:
            raise ValidationFailed("cursor is not a cursor this server returned for this sort order") from exc
        return cls(value=value, id=ident)
