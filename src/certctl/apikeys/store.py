from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select

from certctl.apikeys.models import ApiKey
from certctl.db.store import Store


class ApiKeyStore(Store[ApiKey]):
    model = ApiKey
    kind = "API key"

    def by_hash(self, key_hash: str) -> ApiKey | None:
        return self.session.scalar(select(ApiKey).where(ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None)))

    def by_name(self, name: str) -> ApiKey | None:
        return self.session.scalar(select(ApiKey).where(ApiKey.name == name))

    def all(self) -> Sequence[ApiKey]:
        return self.session.scalars(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)).all()

    def active_count(self) -> int:
        return len(self.session.scalars(select(ApiKey.id).where(ApiKey.revoked_at.is_(None))).all())
