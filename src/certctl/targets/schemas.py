from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, field_validator

from certctl.api.schemas import ClientId, Name, StrictIn
from certctl.issuers.models import ConfigSource, TestStatus
from certctl.issuers.schemas import ConfigObject
from certctl.security.masking import mask_config
from certctl.targets.models import TargetType

AgentId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]


def _target_type(value: object) -> object:
    if isinstance(value, TargetType) or value is None:
        return value
    if not isinstance(value, str):
        raise ValueError("must be a string naming a target type")
    return TargetType.parse(value)  # ValueError lists the accepted types


TargetTypeIn = Annotated[TargetType, BeforeValidator(_target_type), Field(description="case-insensitive")]


class TargetIn(StrictIn):
    id: ClientId | None = Field(default=None, description="optional; generated as target-… when omitted")
    name: Name
    type: TargetTypeIn
    agent_id: AgentId = Field(description="the agent that deploys to this target; must exist and not be retired")
    config: ConfigObject = Field(
        default_factory=dict,
        description="stored encrypted; secrets come back masked; commands pass the shell-metacharacter "
        "guard and *_path values must be absolute",
    )
    enabled: bool = True


class TargetUpdate(StrictIn):
    name: Name | None = None
    type: TargetTypeIn | None = None
    agent_id: AgentId | None = None
    config: ConfigObject | None = Field(
        default=None, description="replaces the stored config; a '********' value keeps the stored secret"
    )
    enabled: bool | None = None


class TargetOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    type: TargetType
    agent_id: str
    config: dict[str, Any]
    enabled: bool
    last_tested_at: datetime | None
    test_status: TestStatus
    source: ConfigSource
    retired_at: datetime | None
    retired_reason: str | None
    deploy_success_count: int
    deploy_failure_count: int
    last_deploy_at: datetime | None
    last_deploy_status: str | None
    created_at: datetime
    updated_at: datetime

    @field_validator("config")
    @classmethod
    def _masked(cls, value: dict[str, Any]) -> dict[str, Any]:
        # The column already holds the masked shadow; masking again guards rows written elsewhere.
        return mask_config(value)


class TargetCheckOut(BaseModel):
    name: str
    ok: bool
    message: str


class TargetTestOut(BaseModel):
    target_id: str
    job_id: str
    job_status: str = Field(description="Pending/Running while the agent has not answered; Completed or Failed")
    error: str | None
    checks: list[TargetCheckOut]
