"""Issuers: CRUD with configs encrypted at rest and masked everywhere else (core.md §2.3, §13.2)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from certctl.clock import Clock
from certctl.db.engine import Database
from certctl.db.store import Page, PageRequest
from certctl.errors import AlreadyExists, Conflict, InUse, ValidationFailed
from certctl.ids import new_id
from certctl.issuers.models import ConfigSource, HierarchyMode, Issuer, IssuerType, TestStatus
from certctl.issuers.sealing import ConfigSealer
from certctl.issuers.store import IssuerStore
from certctl.pki.errors import IssuerConfigError, UnknownIssuerType
from certctl.pki.registry import validate_issuer_config
from certctl.security.encryption import ConfigCipher


@dataclass(frozen=True, slots=True)
class IssuerSpec:
    name: str
    type: IssuerType
    config: Mapping[str, Any] = field(default_factory=dict)
    enabled: bool = True
    hierarchy_mode: HierarchyMode = HierarchyMode.SINGLE
    source: ConfigSource = ConfigSource.DATABASE
    id: str | None = None


def check_connector_config(kind: IssuerType, config: Mapping[str, Any]) -> None:
    """Refuse a config the type's connector cannot use (ValidationFailed, a 400); a type without a
    connector yet is stored as given."""
    try:
        validate_issuer_config(kind, config)
    except UnknownIssuerType:
        return
    except IssuerConfigError as exc:
        raise ValidationFailed(f"config.{exc.field}: {exc}" if exc.field else f"config: {exc}") from exc


class IssuerService:
    def __init__(self, db: Database, clock: Clock, cipher: ConfigCipher) -> None:
        self._db, self._clock = db, clock
        self._sealer = ConfigSealer(cipher)

    def list(self, request: PageRequest) -> Page[Issuer]:
        with self._db.begin() as session:
            store = IssuerStore(session)
            return store.paginate(store.listing(), request)

    def get(self, issuer_id: str) -> Issuer:
        with self._db.begin() as session:
            return IssuerStore(session).get(issuer_id)

    def create(self, spec: IssuerSpec) -> Issuer:
        """Raises ValidationFailed for a `********` value (nothing stored to keep), AlreadyExists for a
        taken name. Issuers created with source `database` always start enabled (core.md §2.3)."""
        issuer_id = spec.id or new_id("issuer")
        owner = f"issuer {issuer_id}"
        config = self._sealer.resolve(spec.config, owner)
        check_connector_config(spec.type, config)
        sealed = self._sealer.seal(config)  # slow: before the transaction
        now = self._clock.now()
        with self._db.begin() as session:
            store = IssuerStore(session)
            if store.find(issuer_id) is not None:
                raise Conflict(f"issuer {issuer_id} already exists")
            if store.name_taken(spec.name):
                raise AlreadyExists("issuer", "name", spec.name)
            return store.add(
                Issuer(
                    id=issuer_id,
                    name=spec.name,
                    type=spec.type,
                    config=sealed.shadow,
                    encrypted_config=sealed.encrypted,
                    enabled=True if spec.source is ConfigSource.DATABASE else spec.enabled,
                    test_status=TestStatus.UNTESTED,
                    source=spec.source,
                    hierarchy_mode=spec.hierarchy_mode,
                    created_at=now,
                    updated_at=now,
                )
            )

    def update(self, issuer_id: str, changes: Mapping[str, Any]) -> Issuer:
        """Partial update; a `config` replaces the stored one, `********` values keeping stored secrets.

        Raises NotFound, ValidationFailed (placeholder without a stored value), AlreadyExists (name),
        Conflict when the config changed concurrently or the stored one does not decrypt.
        """
        changes = dict(changes)
        replacement = None
        if "config" in changes:
            current = self.get(issuer_id)
            kind = changes.get("type") or current.type
            replacement = self._sealer.replacement(
                changes.pop("config"),
                current,
                f"issuer {issuer_id}",
                lambda config: check_connector_config(kind, config),
            )
        with self._db.begin() as session:
            store = IssuerStore(session)
            issuer = store.get(issuer_id)
            if "name" in changes and store.name_taken(changes["name"], except_id=issuer_id):
                raise AlreadyExists("issuer", "name", changes["name"])
            if replacement is not None:
                replacement.apply(issuer)
            for attribute, value in changes.items():
                setattr(issuer, attribute, value)
            issuer.updated_at = self._clock.now()
            store.flush()
            return issuer

    def record_test(self, issuer_id: str, *, ok: bool) -> None:
        """Store a test outcome; `updated_at` stays, so the cached connector is not rebuilt for it."""
        with self._db.begin() as session:
            issuer = IssuerStore(session).get(issuer_id)
            issuer.test_status = TestStatus.SUCCESS if ok else TestStatus.FAILED
            issuer.last_tested_at = self._clock.now()

    def delete(self, issuer_id: str) -> None:
        """Raises NotFound, or InUse while managed certificates still reference the issuer."""
        with self._db.begin() as session:
            store = IssuerStore(session)
            issuer = store.get(issuer_id)
            count = store.certificate_count(issuer_id)
            if count:
                raise InUse("issuer", issuer_id, f"{count} managed certificate{'s' if count != 1 else ''}")
            store.delete(issuer)
