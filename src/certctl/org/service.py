"""Teams and owners: plain CRUD with the guards the original lacked (no cascading team deletes)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from certctl.clock import Clock
from certctl.db.engine import Database
from certctl.db.store import Page, PageRequest
from certctl.errors import AlreadyExists, Conflict, InUse, NotFound, ValidationFailed
from certctl.ids import new_id
from certctl.org.models import Owner, Team
from certctl.org.store import OwnerStore, TeamStore


@dataclass(frozen=True, slots=True)
class TeamSpec:
    name: str
    description: str = ""
    id: str | None = None


@dataclass(frozen=True, slots=True)
class OwnerSpec:
    name: str
    email: str = ""
    team_id: str | None = None
    id: str | None = None


class TeamService:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db, self._clock = db, clock

    def list(self, request: PageRequest) -> Page[Team]:
        with self._db.begin() as session:
            store = TeamStore(session)
            return store.paginate(store.listing(), request)

    def get(self, team_id: str) -> Team:
        with self._db.begin() as session:
            return TeamStore(session).get(team_id)

    def create(self, spec: TeamSpec) -> Team:
        now = self._clock.now()
        with self._db.begin() as session:
            store = TeamStore(session)
            team_id = spec.id or new_id("team")
            if store.find(team_id) is not None:
                raise Conflict(f"team {team_id} already exists")
            if store.name_taken(spec.name):
                raise AlreadyExists("team", "name", spec.name)
            return store.add(
                Team(id=team_id, name=spec.name, description=spec.description, created_at=now, updated_at=now)
            )

    def update(self, team_id: str, changes: Mapping[str, Any]) -> Team:
        with self._db.begin() as session:
            store = TeamStore(session)
            team = store.get(team_id)
            if "name" in changes and store.name_taken(changes["name"], except_id=team_id):
                raise AlreadyExists("team", "name", changes["name"])
            for field, value in changes.items():
                setattr(team, field, value)
            team.updated_at = self._clock.now()
            store.flush()
            return team

    def delete(self, team_id: str) -> None:
        with self._db.begin() as session:
            store = TeamStore(session)
            team = store.get(team_id)
            used_by = store.referenced_by(team_id)
            if used_by is not None:
                raise InUse("team", team_id, used_by)
            store.delete(team)


class OwnerService:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db, self._clock = db, clock

    def list(self, request: PageRequest, team_id: str | None = None) -> Page[Owner]:
        with self._db.begin() as session:
            store = OwnerStore(session)
            return store.paginate(store.listing(team_id), request)

    def get(self, owner_id: str) -> Owner:
        with self._db.begin() as session:
            return OwnerStore(session).get(owner_id)

    def create(self, spec: OwnerSpec) -> Owner:
        now = self._clock.now()
        with self._db.begin() as session:
            store = OwnerStore(session)
            owner_id = spec.id or new_id("owner")
            if store.find(owner_id) is not None:
                raise Conflict(f"owner {owner_id} already exists")
            _check_team(session, spec.team_id)
            return store.add(
                Owner(
                    id=owner_id, name=spec.name, email=spec.email, team_id=spec.team_id, created_at=now, updated_at=now
                )
            )

    def update(self, owner_id: str, changes: Mapping[str, Any]) -> Owner:
        with self._db.begin() as session:
            store = OwnerStore(session)
            owner = store.get(owner_id)
            if "team_id" in changes:
                _check_team(session, changes["team_id"])
            for field, value in changes.items():
                setattr(owner, field, value)
            owner.updated_at = self._clock.now()
            store.flush()
            return owner

    def delete(self, owner_id: str) -> None:
        with self._db.begin() as session:
            store = OwnerStore(session)
            owner = store.get(owner_id)
            if store.referenced(owner_id):
                raise InUse("owner", owner_id, "certificates")
            store.delete(owner)


def _check_team(session: Any, team_id: str | None) -> None:
    if team_id is None:
        return
    try:
        TeamStore(session).get(team_id)
    except NotFound as exc:
        raise ValidationFailed(f"team_id {team_id!r} does not exist") from exc
