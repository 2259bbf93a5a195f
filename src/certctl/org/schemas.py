from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from certctl.api.schemas import ClientId, Name, StrictIn

Email = Annotated[str, StringConstraints(strip_whitespace=True, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")]


class TeamIn(StrictIn):
    id: ClientId | None = Field(default=None, description="optional; generated as team-… when omitted")
    name: Name
    description: str = Field(default="", max_length=4096)


class TeamUpdate(StrictIn):
    name: Name | None = None
    description: str | None = Field(default=None, max_length=4096)


class TeamOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    description: str
    created_at: datetime
    updated_at: datetime


class OwnerIn(StrictIn):
    id: ClientId | None = Field(default=None, description="optional; generated as owner-… when omitted")
    name: Name
    email: Email | None = None
    team_id: str | None = None


class OwnerUpdate(StrictIn):
    name: Name | None = None
    email: Email | None = None
    team_id: str | None = None


class OwnerOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    email: str
    team_id: str | None
    created_at: datetime
    updated_at: datetime
