"""The intermediate CA hierarchy (pki.md §A1.6): register a root, sign children, list, retire (drain first).

Signing and key generation happen before the writing transaction; every change bumps the owning issuer's
`updated_at`, so cached issuer connectors (which may sign with one of these CAs) are rebuilt.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from sqlalchemy.exc import IntegrityError

from certctl.audit.service import AuditRecorder
from certctl.clock import Clock
from certctl.db.engine import Database
from certctl.errors import AlreadyExists, Conflict, NotFound, ValidationFailed
from certctl.ids import new_id
from certctl.intermediates import key_drivers
from certctl.intermediates.metrics import HIERARCHY_COUNTERS
from certctl.intermediates.models import CAState, IntermediateCA
from certctl.intermediates.store import IntermediateCAStore
from certctl.intermediates.template import ChildTemplate, SubjectSpec, build_child_certificate
from certctl.issuers.ca_store import DatabaseCAStore
from certctl.issuers.models import HierarchyMode, Issuer, IssuerType
from certctl.issuers.sealing import ConfigSealer
from certctl.pki.connector import ConnectorDeps
from certctl.pki.errors import IssuerError
from certctl.pki.keys import KeyAlgorithm, SigningKey, UnsupportedKey
from certctl.pki.local_ca import LocalCA
from certctl.pki.local_ca_config import LocalCAConfig
from certctl.pki.name_constraints import NameConstraintSet
from certctl.security.encryption import ConfigCipher
from certctl.security.roles import Actor

DEFAULT_CHILD_TTL = timedelta(days=5 * 365)
"""A child CA lives five years unless asked otherwise, and never past its parent (pki.md §A1.6)."""


@dataclass(frozen=True, slots=True)
class CASpec:
    """One create request; `parent_ca_id` None registers a root."""

    name: str | None = None
    parent_ca_id: str | None = None
    root_cert_pem: str | None = None
    key_pem: str | None = field(default=None, repr=False)
    key_driver_id: str | None = None
    subject: SubjectSpec | None = None
    algorithm: KeyAlgorithm = KeyAlgorithm.ECDSA_P256
    ttl_days: int | None = None
    path_len_constraint: int | None = None
    name_constraints: NameConstraintSet | None = None
    """None: a child inherits its parent's constraints; a root reads its own from the certificate."""
    ocsp_responder_url: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Root:
    certificate: x509.Certificate
    driver_id: str
    encrypted_key: bytes | None


class IntermediateCAService:
    def __init__(self, db: Database, clock: Clock, cipher: ConfigCipher, public_url: str | None = None) -> None:
        self._db, self._clock, self._cipher, self._public_url = db, clock, cipher, public_url

    # -- reads --------------------------------------------------------------------------------------------

    def list(self, issuer_id: str) -> list[IntermediateCA]:
        """Raises NotFound for an unknown issuer."""
        with self._db.read() as session:
            if session.get(Issuer, issuer_id) is None:
                raise NotFound("issuer", issuer_id)
            return IntermediateCAStore(session).for_issuer(issuer_id)

    def get(self, ca_id: str) -> IntermediateCA:
        with self._db.read() as session:
            return IntermediateCAStore(session).get(ca_id)

    # -- create -------------------------------------------------------------------------------------------

    def create(self, issuer_id: str, spec: CASpec, actor: Actor) -> IntermediateCA:
        """Register a root (no parent) or sign a child. Raises NotFound (issuer), ValidationFailed (400:
        bad certificate, key, path length or name constraints), Conflict (409: a second active root, a
        parent that is not active, a taken name)."""
        issuer = self._issuer(issuer_id)
        if spec.parent_ca_id:
            return self._create_child(issuer, spec, actor)
        return self._create_root(issuer, spec, actor)

    def _create_root(self, issuer: Issuer, spec: CASpec, actor: Actor) -> IntermediateCA:
        if spec.path_len_constraint is not None or spec.name_constraints is not None:
            raise ValidationFailed(
                "a root's path_len_constraint and name_constraints are read from its certificate; leave them out"
            )
        if spec.subject is not None or spec.ttl_days is not None:
            raise ValidationFailed("subject and ttl_days apply to child CAs; a root is registered as it is")
        root = self._supplied_root(issuer, spec) if spec.root_cert_pem else self._own_root(issuer, spec)
        certificate = root.certificate
        now = self._clock.now()
        if not certificate.not_valid_before_utc <= now < certificate.not_valid_after_utc:
            raise ValidationFailed(
                f"the root certificate is not valid now (valid {certificate.not_valid_before_utc.isoformat()} "
                f"to {certificate.not_valid_after_utc.isoformat()})"
            )
        row = IntermediateCA(
            id=new_id("ica"),
            owning_issuer_id=issuer.id,
            parent_ca_id=None,
            name=spec.name or _common_name(certificate) or certificate.subject.rfc4514_string(),
            subject=certificate.subject.rfc4514_string(),
            state=CAState.ACTIVE,
            cert_pem=_pem(certificate),
            key_driver_id=root.driver_id,
            encrypted_key=root.encrypted_key,
            not_before=certificate.not_valid_before_utc,
            not_after=certificate.not_valid_after_utc,
            path_len_constraint=_basic_constraints(certificate).path_length,
            name_constraints=NameConstraintSet.from_certificate(certificate).to_json(),
            ocsp_responder_url=spec.ocsp_responder_url,
            ca_metadata=dict(spec.metadata),
            created_at=now,
            updated_at=now,
        )

        def checks(store: IntermediateCAStore) -> None:
            if (existing := store.active_root(issuer.id)) is not None:
                raise Conflict(
                    f"issuer {issuer.id} already has an active root CA {existing.id} ({existing.name!r}); "
                    "retire it first"
                )

        saved = self._insert(row, checks, actor, "intermediate_ca_root_created")
        HIERARCHY_COUNTERS.record(issuer.id, "create_root")
        return saved

    def _supplied_root(self, issuer: Issuer, spec: CASpec) -> _Root:
        try:
            certificate = x509.load_pem_x509_certificate((spec.root_cert_pem or "").encode("utf-8"))
        except ValueError as exc:
            raise ValidationFailed(f"root_cert_pem is not a PEM certificate: {exc}") from exc
        if not _basic_constraints(certificate).ca:
            raise ValidationFailed("root_cert_pem is not a CA certificate (BasicConstraints CA:TRUE missing)")
        try:
            certificate.verify_directly_issued_by(certificate)
        except (ValueError, TypeError, InvalidSignature) as exc:
            raise ValidationFailed(
                "root_cert_pem is not self-signed (RFC 5280 §3.2): register the top of the hierarchy as the root"
            ) from exc
        if spec.key_pem:
            if spec.key_driver_id not in (None, key_drivers.DB_DRIVER):
                raise ValidationFailed("give key_pem or a key_driver_id, not both")
            try:
                key = SigningKey.from_pem(spec.key_pem)
            except UnsupportedKey as exc:
                raise ValidationFailed(f"key_pem: {exc}") from exc
            driver, encrypted = key_drivers.DB_DRIVER, key_drivers.store_key(key, cipher=self._cipher)
        elif spec.key_driver_id:
            driver, encrypted = spec.key_driver_id, None
            key = key_drivers.load_signing_key(
                driver, None, cipher=self._cipher, own_ca_key=lambda: self._own_ca(issuer).signing_key
            )
        else:
            raise ValidationFailed("a root needs its key: key_pem, or key_driver_id 'pkcs11:…' for a token-held key")
        if not key.matches(certificate.public_key()):
            raise ValidationFailed("the key does not match the root certificate's public key")
        if not key.algorithm.can_sign_certificates:
            raise ValidationFailed(f"{key.algorithm.value} CA keys are not supported")
        return _Root(certificate, driver, encrypted)

    def _own_root(self, issuer: Issuer, spec: CASpec) -> _Root:
        if spec.key_pem or spec.key_driver_id not in (None, key_drivers.ISSUER_DRIVER):
            raise ValidationFailed(
                "without root_cert_pem the issuer's own CA is registered with its own key; "
                "leave key_pem and key_driver_id out"
            )
        chain = self._own_ca(issuer).get_ca_chain()
        if len(chain) != 1:
            raise ValidationFailed(
                f"issuer {issuer.id}'s own CA is a sub-CA (ca_cert_path), not self-signed; "
                "register its root with root_cert_pem"
            )
        return _Root(chain[0], key_drivers.ISSUER_DRIVER, None)

    def _create_child(self, issuer: Issuer, spec: CASpec, actor: Actor) -> IntermediateCA:
        if spec.root_cert_pem or spec.key_pem:
            raise ValidationFailed("root_cert_pem and key_pem register a root; leave parent_ca_id out for that")
        with self._db.read() as session:
            parent = IntermediateCAStore(session).find(spec.parent_ca_id or "")
        if parent is None or parent.owning_issuer_id != issuer.id:
            raise ValidationFailed(f"parent_ca_id {spec.parent_ca_id}: no such CA in issuer {issuer.id}'s hierarchy")
        if parent.state is not CAState.ACTIVE:
            raise Conflict(f"parent CA {parent.id} ({parent.name!r}) is {parent.state.value}; only active CAs sign")
        path_len = _child_path_length(parent, spec.path_len_constraint)
        constraints = _child_name_constraints(parent, spec.name_constraints)
        driver_id = spec.key_driver_id or key_drivers.DB_DRIVER
        parent_cert = x509.load_pem_x509_certificate(parent.cert_pem.encode("ascii"))
        now = self._clock.now().replace(microsecond=0)
        not_after = min(now + _ttl(spec.ttl_days), parent_cert.not_valid_after_utc)
        if not_after <= now:
            raise ValidationFailed(f"parent CA {parent.id} has expired; it cannot sign a child")
        subject = spec.subject or SubjectSpec(common_name=spec.name or "")
        parent_key = key_drivers.load_signing_key(
            parent.key_driver_id,
            parent.encrypted_key,
            cipher=self._cipher,
            own_ca_key=lambda: self._own_ca(issuer).signing_key,
        )
        key, encrypted = key_drivers.generate_signing_key(driver_id, spec.algorithm, cipher=self._cipher)
        certificate = build_child_certificate(
            ChildTemplate(
                subject=subject,
                public_key=key.public_key(),
                not_before=now,
                not_after=not_after,
                path_length=path_len,
                name_constraints=constraints,
                ocsp_responder_url=spec.ocsp_responder_url,
            ),
            parent_cert,
            parent_key,
        )
        row = IntermediateCA(
            id=new_id("ica"),
            owning_issuer_id=issuer.id,
            parent_ca_id=parent.id,
            name=spec.name or subject.common_name,
            subject=certificate.subject.rfc4514_string(),
            state=CAState.ACTIVE,
            cert_pem=_pem(certificate),
            key_driver_id=driver_id,
            encrypted_key=encrypted,
            not_before=certificate.not_valid_before_utc,
            not_after=certificate.not_valid_after_utc,
            path_len_constraint=path_len,
            name_constraints=constraints.to_json(),
            ocsp_responder_url=spec.ocsp_responder_url,
            ca_metadata=dict(spec.metadata),
            created_at=now,
            updated_at=now,
        )

        def checks(store: IntermediateCAStore) -> None:
            current = store.get(parent.id, for_update=True)  # retired meanwhile? refuse, as above
            if current.state is not CAState.ACTIVE:
                raise Conflict(f"parent CA {parent.id} is {current.state.value}; only active CAs sign")

        saved = self._insert(row, checks, actor, "intermediate_ca_child_created")
        HIERARCHY_COUNTERS.record(issuer.id, "create_child")
        return saved

    def _insert(self, row: IntermediateCA, checks: Any, actor: Actor, action: str) -> IntermediateCA:
        try:
            with self._db.begin() as session:
                store = IntermediateCAStore(session)
                checks(store)
                if store.name_taken(row.owning_issuer_id, row.name):
                    raise AlreadyExists("intermediate CA", "name", row.name)
                session.add(row)
                _touch_issuer(session, row.owning_issuer_id, row.created_at)
                AuditRecorder(session, self._clock).record(
                    actor,
                    action,
                    "intermediate_ca",
                    row.id,
                    {
                        "issuer_id": row.owning_issuer_id,
                        "parent_ca_id": row.parent_ca_id,
                        "name": row.name,
                        "subject": row.subject,
                        "key_driver_id": key_drivers.mask_driver_id(row.key_driver_id),
                        "path_len_constraint": row.path_len_constraint,
                        "not_after": row.not_after.isoformat(),
                    },
                )
        except IntegrityError as exc:  # a concurrent root or name won the race (unique indexes)
            raise Conflict(
                f"issuer {row.owning_issuer_id} already has an active root or a CA named {row.name!r}"
            ) from exc
        return row

    # -- retire -------------------------------------------------------------------------------------------

    def retire(self, ca_id: str, *, note: str, confirm: bool, actor: Actor) -> IntermediateCA:
        """active → retiring; retiring → retired with confirm once nothing depends on the CA (drain first).

        Raises NotFound, ValidationFailed (confirm missing), Conflict (already retired; active children,
        the issuer's issuing CA, or live certificates under it)."""
        now = self._clock.now()
        with self._db.begin() as session:
            store = IntermediateCAStore(session)
            ca = store.get(ca_id, for_update=True)
            details: dict[str, Any] = {"issuer_id": ca.owning_issuer_id, "note": note, "from_state": ca.state.value}
            if ca.state is CAState.RETIRED:
                raise Conflict(f"intermediate CA {ca_id} is already retired")
            if ca.state is CAState.ACTIVE:
                ca.state, action, kind = CAState.RETIRING, "intermediate_ca_retiring", "retire_retiring"
            else:
                if not confirm:
                    raise ValidationFailed(
                        f"intermediate CA {ca_id} is retiring; retire it for good with confirm=true once drained"
                    )
                self._check_drained(session, store, ca, now)
                ca.state, action, kind = CAState.RETIRED, "intermediate_ca_retired", "retire_retired"
            ca.updated_at = now
            _touch_issuer(session, ca.owning_issuer_id, now)
            AuditRecorder(session, self._clock).record(actor, action, "intermediate_ca", ca.id, details)
            issuer_id = ca.owning_issuer_id
        HIERARCHY_COUNTERS.record(issuer_id, kind)
        return ca

    def _check_drained(self, session: Any, store: IntermediateCAStore, ca: IntermediateCA, now: datetime) -> None:
        if children := store.active_children(ca.id):
            raise Conflict(
                f"intermediate CA {ca.id} still has {children} active child CA{'s' if children != 1 else ''}; "
                "retire them first"
            )
        issuer = session.get(Issuer, ca.owning_issuer_id)
        if issuer is not None and issuer.hierarchy_mode is HierarchyMode.TREE:
            config = ConfigSealer(self._cipher).unseal(issuer.encrypted_config, issuer.config, f"issuer {issuer.id}")
            if config.get("issuing_ca_id") == ca.id:
                raise Conflict(
                    f"intermediate CA {ca.id} is issuer {issuer.id}'s issuing CA (issuing_ca_id); "
                    "point the issuer at another CA first"
                )
        if live := store.live_certificates_under(ca.owning_issuer_id, ca.cert_pem, now):
            raise Conflict(
                f"intermediate CA {ca.id} still has {live} unexpired, unrevoked certificate version"
                f"{'s' if live != 1 else ''} under it; revoke them or wait until they expire"
            )

    # -- helpers ------------------------------------------------------------------------------------------

    def _issuer(self, issuer_id: str) -> Issuer:
        with self._db.read() as session:
            issuer = session.get(Issuer, issuer_id)
            if issuer is None:
                raise NotFound("issuer", issuer_id)
            if issuer.type is not IssuerType.GENERIC_CA:
                raise ValidationFailed(
                    f"issuer {issuer_id} is a {issuer.type.value} issuer; intermediate CAs need a local CA"
                )
            session.expunge(issuer)
            return issuer

    def _own_ca(self, issuer: Issuer) -> LocalCA:
        """The issuer's own (single-mode) CA: its persisted self-signed root, made on first use, or its
        configured sub-CA files."""
        config = ConfigSealer(self._cipher).unseal(issuer.encrypted_config, issuer.config, f"issuer {issuer.id}")
        deps = ConnectorDeps(
            clock=self._clock,
            issuer_id=issuer.id,
            public_url=self._public_url,
            ca_store=DatabaseCAStore(self._db, self._cipher, self._clock),
        )
        try:
            LocalCAConfig.from_mapping(config)
            return LocalCA.build(config, deps)
        except IssuerError as exc:
            raise ValidationFailed(f"issuer {issuer.id}'s own CA is unusable: {exc}") from exc


def _child_path_length(parent: IntermediateCA, requested: int | None) -> int | None:
    """Strictly below the parent's when it has one; default parent - 1 (pki.md §A1.6)."""
    if requested is not None and requested < 0:
        raise ValidationFailed("path_len_constraint must be 0 or more")
    limit = parent.path_len_constraint
    if limit is None:
        return requested
    if limit == 0:
        raise ValidationFailed(
            f"parent CA {parent.id} has path length constraint 0: it may sign leaves only, not CA certificates"
        )
    if requested is None:
        return max(limit - 1, 0)
    if requested >= limit:
        raise ValidationFailed(
            f"path_len_constraint {requested} must be smaller than the parent CA's path length constraint {limit}"
        )
    return requested


def _child_name_constraints(parent: IntermediateCA, requested: NameConstraintSet | None) -> NameConstraintSet:
    inherited = NameConstraintSet.from_json(parent.name_constraints)
    if requested is None:
        return inherited
    try:
        requested.check_subset_of(inherited)
    except ValueError as exc:
        raise ValidationFailed(f"name_constraints exceed parent CA {parent.id}'s: {exc}") from exc
    return requested


def _ttl(ttl_days: int | None) -> timedelta:
    if ttl_days is None:
        return DEFAULT_CHILD_TTL
    if ttl_days < 1:
        raise ValidationFailed("ttl_days must be at least 1")
    return timedelta(days=ttl_days)


def _touch_issuer(session: Any, issuer_id: str, now: datetime) -> None:
    """Move the issuer's updated_at so every replica's cached connector is rebuilt with the new tree."""
    issuer = session.get(Issuer, issuer_id)
    if issuer is not None:
        issuer.updated_at = max(now, issuer.updated_at + timedelta(microseconds=1))


def _basic_constraints(certificate: x509.Certificate) -> x509.BasicConstraints:
    try:
        return certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return x509.BasicConstraints(ca=False, path_length=None)


def _common_name(certificate: x509.Certificate) -> str | None:
    names = certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    value = names[0].value if names else None
    return value if isinstance(value, str) else None


def _pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")
