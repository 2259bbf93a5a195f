"""API keys: named keys from the environment plus keys created with `certctl apikey create`.

Only SHA-256 hashes are stored; presented keys are hashed and compared in constant time.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass

from certctl.apikeys.models import ApiKey
from certctl.apikeys.store import ApiKeyStore
from certctl.audit.service import AuditRecorder
from certctl.clock import Clock
from certctl.db.engine import Database
from certctl.errors import AlreadyExists, NotFound, ValidationFailed
from certctl.ids import new_id
from certctl.security.apikeys import KEY_NAME_PATTERN, KEY_PREFIX, ApiKeyEntry, generate_key, hash_key, match_key
from certctl.security.roles import SYSTEM_ACTOR, Actor, Role


@dataclass(frozen=True, slots=True)
class CreatedKey:
    key: ApiKey
    plaintext: str  # shown once, never stored


class ApiKeyService:
    def __init__(self, db: Database, clock: Clock, env_keys: Sequence[ApiKeyEntry] = ()) -> None:
        self._db, self._clock = db, clock
        self._env_keys = tuple(env_keys)

    @property
    def env_keys(self) -> tuple[ApiKeyEntry, ...]:
        return self._env_keys

    def authenticate_env(self, presented: str) -> Actor | None:
        """Keys from CERTCTL_API_KEYS_NAMED / CERTCTL_AUTH_SECRET only (no database)."""
        entry = match_key(presented, self._env_keys)
        return Actor(name=entry.name, role=entry.role) if entry is not None else None

    def authenticate(self, presented: str) -> Actor | None:
        actor = self.authenticate_env(presented)
        if actor is not None or not presented.startswith(KEY_PREFIX):
            return actor  # keys stored in the database are all made by generate_key(), with its prefix
        digest = hash_key(presented)
        with self._db.read() as session:
            row = ApiKeyStore(session).by_hash(digest)
            # The index look-up is by a hash of the secret; compare again in constant time anyway.
            if row is None or not hmac.compare_digest(row.key_hash, digest):
                return None
            return Actor(name=row.name, role=row.role)

    def create(self, name: str, role: Role, actor: Actor = SYSTEM_ACTOR) -> CreatedKey:
        if not KEY_NAME_PATTERN.fullmatch(name) or len(name) > 128:
            raise ValidationFailed("key name must be 1-128 characters of [A-Za-z0-9_-]")
        if any(entry.name == name for entry in self._env_keys):
            raise AlreadyExists("API key", "name", name)
        plaintext = generate_key()
        with self._db.begin() as session:
            store = ApiKeyStore(session)
            if store.by_name(name) is not None:
                raise AlreadyExists("API key", "name", name)
            row = store.add(
                ApiKey(
                    id=new_id("key"), name=name, key_hash=hash_key(plaintext), role=role, created_at=self._clock.now()
                )
            )
            AuditRecorder(session, self._clock).record(
                actor, "api_key_created", "api_key", row.id, {"key_name": name, "role": role.value}
            )
        return CreatedKey(key=row, plaintext=plaintext)

    def list(self) -> Sequence[ApiKey]:
        with self._db.begin() as session:
            return ApiKeyStore(session).all()

    def revoke(self, name: str, actor: Actor = SYSTEM_ACTOR) -> ApiKey:
        with self._db.begin() as session:
            store = ApiKeyStore(session)
            row = store.by_name(name)
            if row is None:
                raise NotFound("API key", name)
            if row.revoked_at is None:
                row.revoked_at = self._clock.now()
                store.flush()
                AuditRecorder(session, self._clock).record(
                    actor, "api_key_revoked", "api_key", row.id, {"key_name": name}
                )
            return row

    def has_any_key(self) -> bool:
        if self._env_keys:
            return True
        with self._db.begin() as session:
            return ApiKeyStore(session).active_count() > 0
