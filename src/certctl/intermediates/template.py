"""The child CA certificate template (pki.md §A1.6): what a parent signs for a new intermediate."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

from certctl.errors import ValidationFailed
from certctl.pki import extensions as ext
from certctl.pki.keys import PublicKey, SigningKey
from certctl.pki.name_constraints import NameConstraintSet
from certctl.pki.serials import random_serial


@dataclass(frozen=True, slots=True)
class SubjectSpec:
    """The subject DN of a new CA, as the API takes it."""

    common_name: str
    organization: tuple[str, ...] = ()
    organizational_unit: tuple[str, ...] = ()
    country: tuple[str, ...] = ()
    locality: tuple[str, ...] = ()
    province: tuple[str, ...] = ()

    def name(self) -> x509.Name:
        """C, ST, L, O, OU, CN (most general first). Raises ValidationFailed for an unusable value."""
        if not self.common_name:
            raise ValidationFailed("subject.common_name (or name) is required for a child CA")
        attributes: list[tuple[x509.ObjectIdentifier, tuple[str, ...]]] = [
            (NameOID.COUNTRY_NAME, self.country),
            (NameOID.STATE_OR_PROVINCE_NAME, self.province),
            (NameOID.LOCALITY_NAME, self.locality),
            (NameOID.ORGANIZATION_NAME, self.organization),
            (NameOID.ORGANIZATIONAL_UNIT_NAME, self.organizational_unit),
            (NameOID.COMMON_NAME, (self.common_name,)),
        ]
        try:
            return x509.Name([x509.NameAttribute(oid, value) for oid, values in attributes for value in values])
        except ValueError as exc:  # e.g. a country that is not two letters, a CN over 64 characters
            raise ValidationFailed(f"subject: {exc}") from exc


@dataclass(frozen=True, slots=True)
class ChildTemplate:
    subject: SubjectSpec
    public_key: PublicKey
    not_before: datetime
    not_after: datetime
    path_length: int | None
    name_constraints: NameConstraintSet
    ocsp_responder_url: str | None = None


def build_child_certificate(
    template: ChildTemplate, parent: x509.Certificate, parent_key: SigningKey
) -> x509.Certificate:
    """Sign the child: random serial, KU keyCertSign|cRLSign|digitalSignature and BasicConstraints CA:TRUE
    (both critical), SKI/AKI, critical NameConstraints when there are any, AIA OCSP when given."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(template.subject.name())
        .issuer_name(parent.subject)
        .public_key(template.public_key)
        .serial_number(random_serial())
        .not_valid_before(template.not_before)
        .not_valid_after(template.not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=template.path_length), critical=True)
        .add_extension(ext.ca_key_usage(), critical=True)
        .add_extension(ext.subject_key_identifier(template.public_key), critical=False)
        .add_extension(ext.authority_key_identifier(parent), critical=False)
    )
    if (constraints := template.name_constraints.extension()) is not None:
        builder = builder.add_extension(constraints, critical=True)
    if template.ocsp_responder_url:
        access = x509.AccessDescription(
            AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(template.ocsp_responder_url)
        )
        builder = builder.add_extension(x509.AuthorityInformationAccess([access]), critical=False)
    return parent_key.sign_certificate(builder)
