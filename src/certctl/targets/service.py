"""Deployment targets: CRUD bound to a live agent, configs validated, encrypted at rest and masked
(core.md §2.4, §13.2, §13.6)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from certctl.clock import Clock
from certctl.db.engine import Database
from certctl.db.store import Page, PageRequest
from certctl.errors import AlreadyExists, Conflict, ValidationFailed
from certctl.ids import new_id
from certctl.issuers.models import ConfigSource, TestStatus
from certctl.issuers.sealing import ConfigSealer
from certctl.jobs.models import Job
from certctl.jobs.store import JobStore
from certctl.security.encryption import ConfigCipher
from certctl.targets.config import validate_target_config
from certctl.targets.models import DeploymentTarget, TargetType
from certctl.targets.store import TargetStore


@dataclass(frozen=True, slots=True)
class TargetSpec:
    name: str
    type: TargetType
    agent_id: str
    config: Mapping[str, Any] = field(default_factory=dict)
    enabled: bool = True
    source: ConfigSource = ConfigSource.DATABASE
    id: str | None = None


class TargetService:
    def __init__(self, db: Database, clock: Clock, cipher: ConfigCipher) -> None:
        self._db, self._clock = db, clock
        self._sealer = ConfigSealer(cipher)

    def list(
        self, request: PageRequest, agent_id: str | None = None, target_type: TargetType | None = None
    ) -> Page[DeploymentTarget]:
        with self._db.begin() as session:
            store = TargetStore(session)
            return store.paginate(store.listing(agent_id, target_type), request)

    def get(self, target_id: str) -> DeploymentTarget:
        with self._db.begin() as session:
            return TargetStore(session).get(target_id)

    def create(self, spec: TargetSpec) -> DeploymentTarget:
        """Raises ValidationFailed (bad config, unknown or retired agent), AlreadyExists (name taken on
        that agent) or Conflict (id taken)."""
        target_id = spec.id or new_id("target")
        full = self._sealer.resolve(spec.config, f"target {target_id}")
        validate_target_config(full, spec.type.value)
        sealed = self._sealer.seal(full)  # slow: before the transaction
        now = self._clock.now()
        with self._db.begin() as session:
            store = TargetStore(session)
            if store.find(target_id) is not None:
                raise Conflict(f"target {target_id} already exists")
            _check_agent(store, spec.agent_id)
            if store.name_taken(spec.agent_id, spec.name):
                raise AlreadyExists(f"target on agent {spec.agent_id}", "name", spec.name)
            return store.add(
                DeploymentTarget(
                    id=target_id,
                    name=spec.name,
                    type=spec.type,
                    agent_id=spec.agent_id,
                    config=sealed.shadow,
                    encrypted_config=sealed.encrypted,
                    enabled=spec.enabled,
                    test_status=TestStatus.UNTESTED,
                    source=spec.source,
                    created_at=now,
                    updated_at=now,
                )
            )

    def update(self, target_id: str, changes: Mapping[str, Any]) -> DeploymentTarget:
        """Partial update; a `config` replaces the stored one, `********` values keeping stored secrets.

        Raises NotFound, ValidationFailed (bad config, placeholder without a stored value, unknown or
        retired agent), AlreadyExists (name taken on the agent), Conflict (config changed concurrently
        or the stored one does not decrypt).
        """
        changes = dict(changes)
        replacement = None
        if "config" in changes:
            current = self.get(target_id)
            target_type = changes.get("type", current.type).value

            def check(config: dict[str, Any]) -> None:
                validate_target_config(config, target_type)

            replacement = self._sealer.replacement(changes.pop("config"), current, f"target {target_id}", check=check)
        with self._db.begin() as session:
            store = TargetStore(session)
            target = store.get(target_id)
            agent_id = changes.get("agent_id", target.agent_id)
            name = changes.get("name", target.name)
            if "agent_id" in changes:
                _check_agent(store, agent_id)
            if ("agent_id" in changes or "name" in changes) and store.name_taken(agent_id, name, except_id=target_id):
                raise AlreadyExists(f"target on agent {agent_id}", "name", name)
            if replacement is not None:
                replacement.apply(target)
            for attribute, value in changes.items():
                setattr(target, attribute, value)
            target.updated_at = self._clock.now()
            store.flush()
            return target

    def delete(self, target_id: str) -> None:
        """Hard delete: certificate mappings go with it, jobs keep their history with no target; its
        deployments and tests still open are cancelled (nothing is left to deploy to)."""
        with self._db.begin() as session:
            store = TargetStore(session)
            target = store.get(target_id)
            JobStore(session).cancel_open(
                Job.target_id == target.id, self._clock.now(), f"target {target.id} was deleted"
            )
            store.delete(target)


def _check_agent(store: TargetStore, agent_id: str) -> None:
    agent = store.agent(agent_id)
    if agent is None:
        raise ValidationFailed(f"agent_id {agent_id!r} does not exist; register the agent first")
    if agent.retired_at is not None:
        raise ValidationFailed(f"agent {agent_id} is retired; choose an active agent")
