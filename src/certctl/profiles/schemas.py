from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    StringConstraints,
)

from certctl.api.schemas import ClientId, Name, StrictIn
from certctl.profiles.models import DEFAULT_KEY_ALGORITHMS, AcmeAuthMode

Pattern = Annotated[str, StringConstraints(max_length=1024)]
Description = Annotated[str, StringConstraints(max_length=4096)]


class KeyAlgorithmIn(StrictIn):
    algorithm: StrictStr = Field(description="RSA, ECDSA or Ed25519")
    min_size: StrictInt | None = Field(
        default=None, description="bits; RSA ≥ 2048, ECDSA 256/384/521, Ed25519 0-256; omitted = the minimum"
    )


class ProfileIn(StrictIn):
    id: ClientId | None = Field(default=None, description="optional; generated as prof-… when omitted")
    name: Name
    description: Description = ""
    allowed_key_algorithms: list[KeyAlgorithmIn] = Field(
        default_factory=lambda: [KeyAlgorithmIn(**rule) for rule in DEFAULT_KEY_ALGORITHMS],
        description="empty = the default [{ECDSA,256},{RSA,2048}]",
    )
    max_ttl_seconds: StrictInt = Field(default=0, description="0 = no cap")
    allowed_ekus: list[StrictStr] = Field(default_factory=lambda: ["serverAuth"], description='empty = ["serverAuth"]')
    required_san_patterns: list[Pattern] = Field(default_factory=list, description="regular expressions")
    spiffe_uri_pattern: Pattern = ""
    allow_short_lived: StrictBool = False
    must_staple: StrictBool = False
    required_csr_attributes: list[StrictStr] = Field(default_factory=list)
    acme_auth_mode: AcmeAuthMode = AcmeAuthMode.TRUST_AUTHENTICATED
    requires_approval: StrictBool = False
    enabled: StrictBool = True


class ProfileUpdate(StrictIn):
    name: Name | None = None
    description: Description | None = None
    allowed_key_algorithms: list[KeyAlgorithmIn] | None = None
    max_ttl_seconds: StrictInt | None = None
    allowed_ekus: list[StrictStr] | None = None
    required_san_patterns: list[Pattern] | None = None
    spiffe_uri_pattern: Pattern | None = None
    allow_short_lived: StrictBool | None = None
    must_staple: StrictBool | None = None
    required_csr_attributes: list[StrictStr] | None = None
    acme_auth_mode: AcmeAuthMode | None = None
    requires_approval: StrictBool | None = None
    enabled: StrictBool | None = None


class KeyAlgorithmOut(BaseModel):
    algorithm: str
    min_size: int


class ProfileOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    description: str
    allowed_key_algorithms: list[KeyAlgorithmOut]
    max_ttl_seconds: int
    allowed_ekus: list[str]
    required_san_patterns: list[str]
    spiffe_uri_pattern: str
    allow_short_lived: bool
    must_staple: bool
    required_csr_attributes: list[str]
    acme_auth_mode: AcmeAuthMode
    requires_approval: bool
    enabled: bool
    created_at: datetime
    updated_at: datetime
