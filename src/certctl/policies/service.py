"""Renewal policies: CRUD with every bound checked on write, including the alert matrix the original
only filtered at dispatch time (core.md §2.8, notifications.md §9.2)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from certctl.clock import Clock
from certctl.db.engine import Database
from certctl.db.store import Page, PageRequest
from certctl.errors import AlreadyExists, Conflict, InUse, ValidationFailed
from certctl.ids import new_id, slug
from certctl.policies import rules
from certctl.policies.models import DEFAULT_ALERT_THRESHOLDS_DAYS, RenewalPolicy
from certctl.policies.store import RenewalPolicyStore

ID_PREFIX = "rp-"
_ID_LENGTH = 64  # renewal_policies.id is VARCHAR(64)


@dataclass(frozen=True, slots=True)
class RenewalPolicySpec:
    name: str
    id: str | None = None
    renewal_window_days: int = 30
    renewal_window_percent: int | None = None
    auto_renew: bool = True
    max_retries: int = 3
    retry_interval_seconds: int = 3600
    alert_thresholds_days: Sequence[int] = tuple(DEFAULT_ALERT_THRESHOLDS_DAYS)
    certificate_profile_id: str | None = None
    alert_channels: Mapping[str, Sequence[str]] = field(default_factory=dict)
    alert_severity_map: Mapping[str, str] = field(default_factory=dict)
    agent_group_id: str | None = None


class RenewalPolicyService:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db, self._clock = db, clock

    def list(self, request: PageRequest) -> Page[RenewalPolicy]:
        with self._db.begin() as session:
            store = RenewalPolicyStore(session)
            return store.paginate(store.listing(), request)

    def get(self, policy_id: str) -> RenewalPolicy:
        with self._db.begin() as session:
            return RenewalPolicyStore(session).get(policy_id)

    def create(self, spec: RenewalPolicySpec) -> RenewalPolicy:
        """Raises ValidationFailed (a bound or a reference), AlreadyExists (name) or Conflict (explicit id)."""
        now = self._clock.now()
        with self._db.begin() as session:
            store = RenewalPolicyStore(session)
            if store.name_taken(spec.name):
                raise AlreadyExists("renewal policy", "name", spec.name)
            if spec.id is not None and store.find(spec.id) is not None:
                raise Conflict(f"renewal policy {spec.id} already exists")
            policy = RenewalPolicy(
                id=spec.id or _free_id(store, spec.name),
                name=spec.name,
                renewal_window_days=spec.renewal_window_days,
                renewal_window_percent=spec.renewal_window_percent,
                auto_renew=spec.auto_renew,
                max_retries=spec.max_retries,
                retry_interval_seconds=spec.retry_interval_seconds,
                alert_thresholds_days=list(spec.alert_thresholds_days),
                certificate_profile_id=spec.certificate_profile_id,
                alert_channels={tier: list(channels) for tier, channels in spec.alert_channels.items()},
                alert_severity_map=dict(spec.alert_severity_map),
                agent_group_id=spec.agent_group_id,
                created_at=now,
                updated_at=now,
            )
            _check(store, policy)
            return store.add(policy)

    def update(self, policy_id: str, changes: Mapping[str, Any]) -> RenewalPolicy:
        """Merge the given fields into the policy; the result is checked as a whole, as on create."""
        with self._db.begin() as session:
            store = RenewalPolicyStore(session)
            policy = store.get(policy_id)
            if "name" in changes and store.name_taken(changes["name"], except_id=policy_id):
                raise AlreadyExists("renewal policy", "name", changes["name"])
            # No autoflush: a dangling reference must fail the check (400), not the FK on an early flush.
            with session.no_autoflush:
                for name, value in changes.items():
                    setattr(policy, name, value)
                _check(store, policy)
            policy.updated_at = self._clock.now()
            store.flush()
            return policy

    def delete(self, policy_id: str) -> None:
        """Raises InUse while managed certificates still point at the policy (FK RESTRICT)."""
        with self._db.begin() as session:
            store = RenewalPolicyStore(session)
            policy = store.get(policy_id)
            if count := store.certificates_using(policy_id):
                raise InUse("renewal policy", policy_id, f"{count} certificate{'s' if count != 1 else ''}")
            store.delete(policy)


def _free_id(store: RenewalPolicyStore, name: str) -> str:
    """`rp-<slug of name>`, or with a random tail when another name already slugs to that id."""
    candidate = ID_PREFIX + slug(name, limit=_ID_LENGTH - len(ID_PREFIX))
    if store.find(candidate) is None:
        return candidate
    # new_id adds "-" and 16 hex digits.
    return new_id(ID_PREFIX + slug(name, limit=_ID_LENGTH - len(ID_PREFIX) - 17))


def _check(store: RenewalPolicyStore, policy: RenewalPolicy) -> None:
    """Validate the policy's final state in place, normalising what the original defaults."""
    rules.check_range("renewal_window_days", policy.renewal_window_days, rules.RENEWAL_WINDOW_DAYS)
    if policy.renewal_window_percent is not None:
        rules.check_range("renewal_window_percent", policy.renewal_window_percent, rules.RENEWAL_WINDOW_PERCENT)
    rules.check_range("max_retries", policy.max_retries, rules.MAX_RETRIES)
    rules.check_range("retry_interval_seconds", policy.retry_interval_seconds, rules.RETRY_INTERVAL_SECONDS)
    policy.alert_thresholds_days = rules.alert_thresholds(policy.alert_thresholds_days)
    policy.alert_channels = rules.alert_channels(policy.alert_channels)
    policy.alert_severity_map = rules.alert_severity_map(policy.alert_severity_map)
    if policy.certificate_profile_id is not None and not store.profile_exists(policy.certificate_profile_id):
        raise ValidationFailed(f"certificate_profile_id {policy.certificate_profile_id!r} does not exist")
    if policy.agent_group_id is not None and not store.agent_group_exists(policy.agent_group_id):
        raise ValidationFailed(f"agent_group_id {policy.agent_group_id!r} does not exist")
