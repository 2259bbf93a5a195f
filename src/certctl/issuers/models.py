from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from certctl.db.base import Base
from certctl.db.types import JSONType, StrEnumType, UTCDateTime, json_default


class IssuerType(StrEnum):
    ACME = "ACME"
    GENERIC_CA = "GenericCA"  # the built-in local CA
    STEP_CA = "StepCA"
    OPENSSL = "OpenSSL"
    VAULT_PKI = "VaultPKI"
    DIGICERT = "DigiCert"
    SECTIGO = "Sectigo"
    GOOGLE_CAS = "GoogleCAS"
    AWS_ACM_PCA = "AWSACMPCA"
    ENTRUST = "Entrust"
    GLOBALSIGN = "GlobalSign"
    EJBCA = "EJBCA"

    @classmethod
    def parse(cls, text: str) -> IssuerType:
        """Case-insensitive, with the original's aliases (`local`, `local_ca`); raises ValueError."""
        key = text.strip().lower().replace("-", "_")
        found = _ISSUER_ALIASES.get(key)
        if found is None:
            allowed = ", ".join(member.value for member in cls)
            raise ValueError(f"unknown issuer type {text!r}; expected one of {allowed}")
        return found


_ISSUER_ALIASES: dict[str, IssuerType] = {member.value.lower(): member for member in IssuerType} | {
    "local": IssuerType.GENERIC_CA,
    "local_ca": IssuerType.GENERIC_CA,
    "localca": IssuerType.GENERIC_CA,
    "step_ca": IssuerType.STEP_CA,
    "stepca": IssuerType.STEP_CA,
    "vault": IssuerType.VAULT_PKI,
    "vault_pki": IssuerType.VAULT_PKI,
    "google_cas": IssuerType.GOOGLE_CAS,
    "aws_acm_pca": IssuerType.AWS_ACM_PCA,
    "awspca": IssuerType.AWS_ACM_PCA,
}


class TestStatus(StrEnum):
    __test__ = False  # not a pytest class

    UNTESTED = "untested"
    SUCCESS = "success"
    FAILED = "failed"


class ConfigSource(StrEnum):
    DATABASE = "database"  # created through the API or UI
    ENV = "env"  # seeded from environment variables


class HierarchyMode(StrEnum):
    SINGLE = "single"
    TREE = "tree"


class Issuer(Base):
    __tablename__ = "issuers"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    type: Mapped[IssuerType] = mapped_column(StrEnumType(IssuerType))
    config: Mapped[dict[str, Any]] = mapped_column(
        JSONType, default=dict, server_default=json_default({})
    )  # masked shadow copy
    encrypted_config: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    enabled: Mapped[bool] = mapped_column(default=True, server_default="1")
    last_tested_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    test_status: Mapped[TestStatus] = mapped_column(
        StrEnumType(TestStatus, 16), default=TestStatus.UNTESTED, server_default="untested"
    )
    source: Mapped[ConfigSource] = mapped_column(
        StrEnumType(ConfigSource, 16), default=ConfigSource.DATABASE, server_default="database"
    )
    hierarchy_mode: Mapped[HierarchyMode] = mapped_column(
        StrEnumType(HierarchyMode, 16), default=HierarchyMode.SINGLE, server_default="single"
    )
    revocation_revision: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    """Bumped in every revocation's transaction: caches of CRLs and OCSP answers compare it to know they are stale."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class IssuerCAMaterial(Base):
    """A local CA's own certificate and private key (encrypted, v3 blob), kept across restarts and shared
    by every replica; written once, first writer wins."""

    __tablename__ = "issuer_ca_material"

    issuer_id: Mapped[str] = mapped_column(ForeignKey("issuers.id", ondelete="CASCADE"), primary_key=True)
    cert_pem: Mapped[str] = mapped_column(Text)
    encrypted_key: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
