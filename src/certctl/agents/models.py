from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from certctl.db.base import Base
from certctl.db.types import StrEnumType, UTCDateTime


class AgentStatus(StrEnum):
    ONLINE = "Online"
    OFFLINE = "Offline"
    DEGRADED = "Degraded"


class Agent(Base):
    __tablename__ = "agents"
    __table_args__ = (
        Index(
            "ix_agents_online",
            "status",
            postgresql_where=text("status = 'Online'"),
            sqlite_where=text("status = 'Online'"),
        ),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    hostname: Mapped[str] = mapped_column(String(255))
    status: Mapped[AgentStatus] = mapped_column(
        StrEnumType(AgentStatus, 16), default=AgentStatus.OFFLINE, server_default="Offline"
    )
    last_heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    os: Mapped[str] = mapped_column(String(64), default="", server_default="")
    architecture: Mapped[str] = mapped_column(String(64), default="", server_default="")
    ip_address: Mapped[str] = mapped_column(String(64), default="", server_default="")
    version: Mapped[str] = mapped_column(String(64), default="", server_default="")
    api_key_hash: Mapped[str] = mapped_column(String(64), index=True)  # per-agent credential, never serialised
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    retired_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class AgentGroup(Base):
    __tablename__ = "agent_groups"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    match_os: Mapped[str] = mapped_column(String(64), default="", server_default="")
    match_architecture: Mapped[str] = mapped_column(String(64), default="", server_default="")
    match_ip_cidr: Mapped[str] = mapped_column(String(64), default="", server_default="")
    match_version: Mapped[str] = mapped_column(String(64), default="", server_default="")
    enabled: Mapped[bool] = mapped_column(default=True, server_default="1")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AgentGroupMember(Base):
    __tablename__ = "agent_group_members"

    agent_group_id: Mapped[str] = mapped_column(ForeignKey("agent_groups.id", ondelete="CASCADE"), primary_key=True)
    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True)
    membership_type: Mapped[str] = mapped_column(String(16), default="include", server_default="include")
