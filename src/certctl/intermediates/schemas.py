"""Wire shapes of /api/v1/issuers/{id}/intermediates and /api/v1/intermediates/{id} (pki.md §A1.6)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, field_validator

from certctl.api.schemas import Name, StrictIn
from certctl.intermediates.key_drivers import mask_driver_id
from certctl.intermediates.models import CAState
from certctl.pki.keys import KeyAlgorithm

MAX_TTL_DAYS = 30 * 366


def _algorithm(value: object) -> object:
    if value is None or isinstance(value, KeyAlgorithm):
        return value
    if not isinstance(value, str):
        raise ValueError("must be a key algorithm name such as ECDSA-P256 or RSA-3072")
    algorithm = KeyAlgorithm.parse(value)  # ValueError lists the accepted names
    if not algorithm.can_sign_certificates:
        raise ValueError(f"{algorithm.value} CA keys are not supported")
    return algorithm


Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Url = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^https?://[^\s]+$", max_length=1024)]


class SubjectIn(StrictIn):
    common_name: Text
    organization: list[Text] = Field(default_factory=list)
    organizational_unit: list[Text] = Field(default_factory=list)
    country: list[Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2}$")]] = Field(default_factory=list)
    locality: list[Text] = Field(default_factory=list)
    province: list[Text] = Field(default_factory=list)


class NameConstraintIn(StrictIn):
    permitted: list[str] = Field(default_factory=list, description="DNS subtrees (corp.example) or IP ranges")
    excluded: list[str] = Field(default_factory=list)


class IntermediateCAIn(StrictIn):
    name: Name | None = Field(default=None, description="unique per issuer; defaults to the subject common name")
    parent_ca_id: str | None = Field(default=None, description="empty: register the issuer's root")
    root_cert_pem: str | None = Field(default=None, description="root only; omitted: the issuer's own CA")
    key_pem: str | None = Field(default=None, description="root only: its private key, stored encrypted")
    key_driver_id: str | None = Field(default=None, description="db (default), issuer, or pkcs11:<uri>")
    subject: SubjectIn | None = None
    algorithm: Annotated[KeyAlgorithm, BeforeValidator(_algorithm)] = KeyAlgorithm.ECDSA_P256
    ttl_days: int | None = Field(default=None, ge=1, le=MAX_TTL_DAYS, description="default 5 years")
    path_len_constraint: int | None = Field(default=None, ge=0, le=32)
    name_constraints: list[NameConstraintIn] | None = Field(
        default=None, description="child only; omitted: inherit the parent's"
    )
    ocsp_responder_url: Url | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("parent_ca_id", "root_cert_pem", "key_pem", "key_driver_id", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value


class RetireIn(StrictIn):
    note: str = Field(default="", max_length=1024)
    confirm: bool = False


class IntermediateCAOut(BaseModel):
    """Never carries a key: `key_driver_id` is a reference, with any PKCS#11 PIN masked."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    owning_issuer_id: str
    parent_ca_id: str | None
    name: str
    subject: str
    state: CAState
    cert_pem: str
    key_driver_id: str
    not_before: datetime
    not_after: datetime
    path_len_constraint: int | None
    name_constraints: list[dict[str, Any]]
    ocsp_responder_url: str | None
    metadata: dict[str, Any] = Field(validation_alias="ca_metadata")
    created_at: datetime
    updated_at: datetime

    @field_validator("key_driver_id")
    @classmethod
    def _masked(cls, value: str) -> str:
        return mask_driver_id(value)


class IntermediateCAList(BaseModel):
    data: list[IntermediateCAOut]
    total: int
