"""Fixtures for CRL and CA-certificate tests: a local CA issuer, leaves it signed, ledger rows."""

from __future__ import annotations

import hashlib
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import update

from certctl.bootstrap import DEFAULT_POLICY_ID
from certctl.certificates.models import CertificateStatus, CertificateVersion, ManagedCertificate
from certctl.clock import FrozenClock
from certctl.context import AppContext
from certctl.issuers.models import Issuer, IssuerType
from certctl.pki.connector import IssueRequest
from certctl.pki.csr import build_csr
from certctl.pki.keys import SigningKey
from certctl.pki.local_ca import LocalCA
from certctl.pki.serials import canonical_serial
from certctl.revocation.models import CertificateRevocation
from tests.conftest import REQUIRE_PEERS
from tests.factories import seed_inventory

ISSUER = "iss-local"


def require_openssl() -> str:
    path = shutil.which("openssl")
    if path is None:
        if REQUIRE_PEERS:
            pytest.fail("openssl required (CERTCTL_REQUIRE_PEERS=1) but not on PATH")
        pytest.skip("openssl not on PATH")
    return path


def local_ca(context: AppContext, issuer_id: str = ISSUER) -> LocalCA:
    connector = context.connectors.get(issuer_id)
    assert isinstance(connector, LocalCA)
    return connector


def issue_leaf(context: AppContext, common_name: str = "www.example.com", issuer_id: str = ISSUER) -> x509.Certificate:
    csr = build_csr(SigningKey.generate(), common_name, [common_name])
    request = IssueRequest(common_name=common_name, sans=(common_name,), csr_pem=csr)
    return local_ca(context, issuer_id).issue(request).certificate()


def add_certificate(context: AppContext, cert_id: str, leaf: x509.Certificate, issuer_id: str = ISSUER) -> str:
    """An Active managed certificate whose newest version is `leaf` (as issuance would leave it)."""
    now = context.clock.now()
    with context.db.begin() as session:
        session.add(
            ManagedCertificate(
                id=cert_id,
                name=cert_id,
                common_name=f"{cert_id}.example.com",
                owner_id="o-alice",
                team_id="t-web",
                issuer_id=issuer_id,
                renewal_policy_id=DEFAULT_POLICY_ID,
                status=CertificateStatus.ACTIVE,
                expires_at=leaf.not_valid_after_utc,
                created_at=now,
                updated_at=now,
            )
        )
        session.flush()
        der = leaf.public_bytes(Encoding.DER)
        session.add(
            CertificateVersion(
                id=f"cv-{cert_id}",
                certificate_id=cert_id,
                serial_number=canonical_serial(leaf.serial_number),
                not_before=leaf.not_valid_before_utc,
                not_after=leaf.not_valid_after_utc,
                fingerprint_sha256=hashlib.sha256(der).hexdigest(),
                pem_chain=leaf.public_bytes(Encoding.PEM).decode(),
                created_at=now,
            )
        )
    return cert_id


@dataclass
class Ledger:
    """Writes revocation rows straight into the ledger and bumps the issuer's revision, as a revocation does."""

    context: AppContext
    issuer_id: str = ISSUER

    def revoke(
        self,
        serial: int | None = None,
        *,
        reason: str = "unspecified",
        revoked_at: datetime | None = None,
        not_after: datetime | None = None,
        short_lived: bool = False,
    ) -> int:
        serial = serial or secrets.randbits(159) | 1
        now = self.context.clock.now()
        with self.context.db.begin() as session:
            session.add(
                CertificateRevocation(
                    id=f"rev-{secrets.token_hex(6)}",
                    issuer_id=self.issuer_id,
                    serial_number=canonical_serial(serial),
                    reason=reason,
                    revoked_by="test",
                    revoked_at=revoked_at or now,
                    not_after=not_after or now + timedelta(days=30),
                    short_lived=short_lived,
                )
            )
            session.execute(
                update(Issuer)
                .where(Issuer.id == self.issuer_id)
                .values(revocation_revision=Issuer.revocation_revision + 1)
            )
        return serial


@pytest.fixture
def clock() -> FrozenClock:
    """Frozen at the real time, so certificates the local CA signs are valid for openssl too."""
    return FrozenClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def context(context_factory: Callable[..., AppContext], clock: FrozenClock) -> AppContext:
    return context_factory(clock)


@pytest.fixture
def seeded(context: AppContext) -> AppContext:
    """The context with team t-web, owner o-alice and the local CA issuer iss-local."""
    seed_inventory(context)
    return context


@pytest.fixture
def ledger(seeded: AppContext) -> Ledger:
    return Ledger(seeded)


def add_foreign_issuer(context: AppContext, issuer_id: str = "iss-acme") -> str:
    """An issuer whose connector is not a local CA (no CRL, no CA certificate from certctl)."""
    now = context.clock.now()
    with context.db.begin() as session:
        session.add(
            Issuer(id=issuer_id, name=issuer_id, type=IssuerType.ACME, config={}, created_at=now, updated_at=now)
        )
    return issuer_id
