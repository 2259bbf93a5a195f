"""The rules a new certificate must pass, checked in one query: for one create, or for a batch of them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, exists, literal, select, union_all
from sqlalchemy.orm import Session

from certctl.certificates.models import ManagedCertificate
from certctl.errors import AlreadyExists, Conflict, ValidationFailed
from certctl.issuers.models import Issuer
from certctl.org.models import Owner, Team
from certctl.policies.models import RenewalPolicy
from certctl.profiles.models import CertificateProfile

if TYPE_CHECKING:
    from certctl.certificates.service import CertificateSpec


def check_new_certificate(
    session: Session, spec: CertificateSpec, cert_id: str
) -> tuple[RenewalPolicy, CertificateProfile | None]:
    """The ID and name are free and every reference exists, in one round trip that also loads the policy and
    profile (issuance reads them next, from the session's identity map: hold on to them, it keeps objects
    weakly). Raises the first rule broken, in the order `_diagnose` checks them."""
    flags = (
        exists().where(ManagedCertificate.id == cert_id) if spec.id is not None else literal(False),
        exists().where(ManagedCertificate.name == spec.name),
        exists().where(Owner.id == spec.owner_id),
        exists().where(Team.id == spec.team_id),
        exists().where(Issuer.id == spec.issuer_id),
    )
    policy_id, profile_id = spec.renewal_policy_id, spec.certificate_profile_id
    stmt: Select[*tuple[Any, ...]] = select(RenewalPolicy, *flags).where(RenewalPolicy.id == policy_id)
    if profile_id is not None:
        stmt = stmt.add_columns(CertificateProfile).outerjoin(CertificateProfile, CertificateProfile.id == profile_id)
    row = session.execute(stmt).first()
    profile: CertificateProfile | None = row[6] if row is not None and profile_id is not None else None
    if row is None or (profile_id is not None and profile is None):
        raise _diagnose(session, spec, cert_id)
    policy, id_taken, name_taken, owner, team, issuer = row[:6]
    _check_flags(spec, cert_id, id_taken=id_taken, name_taken=name_taken, owner=owner, team=team, issuer=issuer)
    return policy, profile


def _diagnose(session: Session, spec: CertificateSpec, cert_id: str) -> Exception:
    """The error for a create whose policy or profile is missing: an earlier rule's, if one is broken too."""
    id_taken, name_taken, owner, team, issuer, policy = session.execute(
        select(
            exists().where(ManagedCertificate.id == cert_id) if spec.id is not None else literal(False),
            exists().where(ManagedCertificate.name == spec.name),
            exists().where(Owner.id == spec.owner_id),
            exists().where(Team.id == spec.team_id),
            exists().where(Issuer.id == spec.issuer_id),
            exists().where(RenewalPolicy.id == spec.renewal_policy_id),
        )
    ).one()
    _check_flags(spec, cert_id, id_taken=id_taken, name_taken=name_taken, owner=owner, team=team, issuer=issuer)
    if not policy:
        return ValidationFailed(f"renewal_policy_id {spec.renewal_policy_id!r} does not exist")
    return ValidationFailed(f"certificate_profile_id {spec.certificate_profile_id!r} does not exist")


def _check_flags(
    spec: CertificateSpec, cert_id: str, *, id_taken: bool, name_taken: bool, owner: bool, team: bool, issuer: bool
) -> None:
    if id_taken:
        raise Conflict(f"certificate {cert_id} already exists")
    if name_taken:
        raise AlreadyExists("certificate", "name", spec.name)
    for found, field_name, value in (
        (owner, "owner_id", spec.owner_id),
        (team, "team_id", spec.team_id),
        (issuer, "issuer_id", spec.issuer_id),
    ):
        if not found:
            raise ValidationFailed(f"{field_name} {value!r} does not exist")


@dataclass(slots=True)
class BatchReferences:
    """What a batch of creates refers to, read in two or three queries; `check` then applies the rules of
    `check_new_certificate` to each create in turn, and `claim` makes a create's ID and name taken for the
    creates after it, so the batch answers as the same creates made one after another would."""

    found: set[tuple[str, str]]
    policies: dict[str, RenewalPolicy]  # held: issuance reads them from the identity map
    profiles: dict[str, CertificateProfile]

    @classmethod
    def load(cls, session: Session, specs: Sequence[CertificateSpec], ids: Sequence[str]) -> BatchReferences:
        m = ManagedCertificate
        parts = [
            select(literal("name").label("kind"), m.name.label("value")).where(m.name.in_({s.name for s in specs})),
            select(literal("owner"), Owner.id).where(Owner.id.in_({s.owner_id for s in specs})),
            select(literal("team"), Team.id).where(Team.id.in_({s.team_id for s in specs})),
            select(literal("issuer"), Issuer.id).where(Issuer.id.in_({s.issuer_id for s in specs})),
        ]
        client_ids = {cert_id for spec, cert_id in zip(specs, ids, strict=True) if spec.id is not None}
        if client_ids:
            parts.append(select(literal("id"), m.id).where(m.id.in_(client_ids)))
        found = {(kind, value) for kind, value in session.execute(union_all(*parts))}
        policies = session.scalars(
            select(RenewalPolicy).where(RenewalPolicy.id.in_({s.renewal_policy_id for s in specs}))
        )
        profile_ids = {s.certificate_profile_id for s in specs if s.certificate_profile_id is not None}
        profiles = (
            session.scalars(select(CertificateProfile).where(CertificateProfile.id.in_(profile_ids)))
            if profile_ids
            else ()
        )
        return cls(found, {p.id: p for p in policies}, {p.id: p for p in profiles})

    def check(self, spec: CertificateSpec, cert_id: str) -> None:
        _check_flags(
            spec,
            cert_id,
            id_taken=spec.id is not None and ("id", cert_id) in self.found,
            name_taken=("name", spec.name) in self.found,
            owner=("owner", spec.owner_id) in self.found,
            team=("team", spec.team_id) in self.found,
            issuer=("issuer", spec.issuer_id) in self.found,
        )
        if spec.renewal_policy_id not in self.policies:
            raise ValidationFailed(f"renewal_policy_id {spec.renewal_policy_id!r} does not exist")
        if spec.certificate_profile_id is not None and spec.certificate_profile_id not in self.profiles:
            raise ValidationFailed(f"certificate_profile_id {spec.certificate_profile_id!r} does not exist")

    def claim(self, spec: CertificateSpec, cert_id: str) -> None:
        self.found |= {("id", cert_id), ("name", spec.name)}
