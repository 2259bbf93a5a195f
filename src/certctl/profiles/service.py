"""Certificate profiles: CRUD with the original's validation plus regex and SPIFFE checks (core.md §2.9).

Deleting a profile is allowed while certificates or renewal policies use it: their
certificate_profile_id is set to NULL by the foreign key, as in the original.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from certctl.clock import Clock
from certctl.db.engine import Database
from certctl.db.store import Page, PageRequest
from certctl.errors import AlreadyExists, Conflict
from certctl.ids import new_id
from certctl.profiles import rules
from certctl.profiles.models import DEFAULT_KEY_ALGORITHMS, AcmeAuthMode, CertificateProfile
from certctl.profiles.store import ProfileStore


@dataclass(frozen=True, slots=True)
class ProfileSpec:
    name: str
    id: str | None = None
    description: str = ""
    # [{"algorithm": "RSA", "min_size": 2048}, …]; a missing min_size is the algorithm's floor.
    allowed_key_algorithms: Sequence[Mapping[str, Any]] = tuple(DEFAULT_KEY_ALGORITHMS)
    max_ttl_seconds: int = 0
    allowed_ekus: Sequence[str] = (rules.ExtendedKeyUsage.SERVER_AUTH.value,)
    required_san_patterns: Sequence[str] = ()
    spiffe_uri_pattern: str = ""
    allow_short_lived: bool = False
    must_staple: bool = False
    required_csr_attributes: Sequence[str] = ()
    acme_auth_mode: AcmeAuthMode = AcmeAuthMode.TRUST_AUTHENTICATED
    requires_approval: bool = False
    enabled: bool = True


class ProfileService:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db, self._clock = db, clock

    def list(self, request: PageRequest) -> Page[CertificateProfile]:
        with self._db.begin() as session:
            store = ProfileStore(session)
            return store.paginate(store.listing(), request)

    def get(self, profile_id: str) -> CertificateProfile:
        with self._db.begin() as session:
            return ProfileStore(session).get(profile_id)

    def create(self, spec: ProfileSpec) -> CertificateProfile:
        """Raises ValidationFailed, AlreadyExists (name) or Conflict (explicit id already used)."""
        now = self._clock.now()
        with self._db.begin() as session:
            store = ProfileStore(session)
            profile_id = spec.id or new_id("prof")
            if store.find(profile_id) is not None:
                raise Conflict(f"certificate profile {profile_id} already exists")
            if store.name_taken(spec.name):
                raise AlreadyExists("certificate profile", "name", spec.name)
            profile = CertificateProfile(
                id=profile_id,
                name=spec.name,
                description=spec.description,
                allowed_key_algorithms=[dict(rule) for rule in spec.allowed_key_algorithms],
                max_ttl_seconds=spec.max_ttl_seconds,
                allowed_ekus=list(spec.allowed_ekus),
                required_san_patterns=list(spec.required_san_patterns),
                spiffe_uri_pattern=spec.spiffe_uri_pattern,
                allow_short_lived=spec.allow_short_lived,
                must_staple=spec.must_staple,
                required_csr_attributes=list(spec.required_csr_attributes),
                acme_auth_mode=spec.acme_auth_mode,
                requires_approval=spec.requires_approval,
                enabled=spec.enabled,
                created_at=now,
                updated_at=now,
            )
            _check(profile)
            return store.add(profile)

    def update(self, profile_id: str, changes: Mapping[str, Any]) -> CertificateProfile:
        """Merge the given fields; the merged profile is checked as a whole (e.g. short-lived vs TTL)."""
        with self._db.begin() as session:
            store = ProfileStore(session)
            profile = store.get(profile_id)
            if "name" in changes and store.name_taken(changes["name"], except_id=profile_id):
                raise AlreadyExists("certificate profile", "name", changes["name"])
            for name, value in changes.items():
                setattr(profile, name, value)
            _check(profile)
            profile.updated_at = self._clock.now()
            store.flush()
            return profile

    def delete(self, profile_id: str) -> None:
        with self._db.begin() as session:
            store = ProfileStore(session)
            store.delete(store.get(profile_id))


def _check(profile: CertificateProfile) -> None:
    """Validate the profile's final state in place, normalising empty lists to the original's defaults."""
    profile.allowed_key_algorithms = rules.key_algorithms(profile.allowed_key_algorithms)
    profile.allowed_ekus = rules.extended_key_usages(profile.allowed_ekus)
    profile.required_san_patterns = rules.san_patterns(profile.required_san_patterns)
    profile.required_csr_attributes = rules.csr_attributes(profile.required_csr_attributes)
    rules.check_spiffe_pattern(profile.spiffe_uri_pattern)
    rules.check_ttl(profile.max_ttl_seconds, profile.allow_short_lived)
