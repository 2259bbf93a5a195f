from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from certctl.api.schemas import ClientId, Name, StrictIn
from certctl.issuers.models import ConfigSource, HierarchyMode, IssuerType, TestStatus
from certctl.security.masking import mask_config


def _json_object(value: object) -> object:
    if value is not None and not isinstance(value, dict):
        raise ValueError(f"must be a JSON object, not {type(value).__name__}")
    return value


def _issuer_type(value: object) -> object:
    if isinstance(value, IssuerType) or value is None:
        return value
    if not isinstance(value, str):
        raise ValueError("must be a string naming an issuer type")
    return IssuerType.parse(value)  # ValueError lists the accepted types


# A connector config: a JSON object whose secrets are masked in every response (targets use it too).
ConfigObject = Annotated[dict[str, Any], BeforeValidator(_json_object)]
IssuerTypeIn = Annotated[
    IssuerType,
    BeforeValidator(_issuer_type),
    Field(description="case-insensitive; aliases local and local_ca mean GenericCA"),
]


class IssuerIn(StrictIn):
    id: ClientId | None = Field(default=None, description="optional; generated as issuer-… when omitted")
    name: Name
    type: IssuerTypeIn
    config: ConfigObject = Field(default_factory=dict, description="stored encrypted; secrets come back masked")
    enabled: bool = Field(
        default=True,
        description="accepted for compatibility: issuers created through the API always start enabled; "
        "disable one with PUT",
    )
    hierarchy_mode: HierarchyMode = HierarchyMode.SINGLE


class IssuerUpdate(StrictIn):
    name: Name | None = None
    type: IssuerTypeIn | None = None
    config: ConfigObject | None = Field(
        default=None, description="replaces the stored config; a '********' value keeps the stored secret"
    )
    enabled: bool | None = None
    hierarchy_mode: HierarchyMode | None = None


class IssuerOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    type: IssuerType
    config: dict[str, Any]
    enabled: bool
    last_tested_at: datetime | None
    test_status: TestStatus
    source: ConfigSource
    hierarchy_mode: HierarchyMode
    created_at: datetime
    updated_at: datetime

    @field_validator("config")
    @classmethod
    def _masked(cls, value: dict[str, Any]) -> dict[str, Any]:
        # The column already holds the masked shadow; masking again guards rows written elsewhere.
        return mask_config(value)


class IssuerTestOut(BaseModel):
    status: str  # success | failed
    message: str
