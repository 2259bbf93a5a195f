from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from certctl.db.base import Base
from certctl.db.types import JSONType, StrEnumType, UTCDateTime, json_default
from certctl.issuers.models import ConfigSource, TestStatus


class TargetType(StrEnum):
    NGINX = "NGINX"
    APACHE = "Apache"
    HAPROXY = "HAProxy"
    F5 = "F5"
    IIS = "IIS"
    TRAEFIK = "Traefik"
    CADDY = "Caddy"
    ENVOY = "Envoy"
    POSTFIX = "Postfix"
    DOVECOT = "Dovecot"
    SSH = "SSH"
    WIN_CERT_STORE = "WinCertStore"
    JAVA_KEYSTORE = "JavaKeystore"
    KUBERNETES_SECRETS = "KubernetesSecrets"
    AWS_ACM = "AWSACM"
    AZURE_KEY_VAULT = "AzureKeyVault"

    @classmethod
    def parse(cls, text: str) -> TargetType:
        """Case-insensitive; raises ValueError listing the accepted types."""
        lowered = text.strip().lower()
        for member in cls:
            if member.value.lower() == lowered:
                return member
        raise ValueError(f"unknown target type {text!r}; expected one of {', '.join(m.value for m in cls)}")


class DeploymentTarget(Base):
    __tablename__ = "deployment_targets"
    __table_args__ = (UniqueConstraint("agent_id", "name"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    type: Mapped[TargetType] = mapped_column(StrEnumType(TargetType))
    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id", ondelete="RESTRICT"), index=True)
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
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    retired_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    deploy_success_count: Mapped[int] = mapped_column(default=0, server_default="0")
    deploy_failure_count: Mapped[int] = mapped_column(default=0, server_default="0")
    last_deploy_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_deploy_status: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
