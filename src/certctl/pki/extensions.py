"""X.509 extensions for the certificates the local CA makes: usages, key identifiers, AIA, CDP, TLS feature."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

from certctl.pki.keys import KeyFamily


class ExtendedKeyUsageName(StrEnum):
    """The EKU names profiles and issuance requests use (pki.md §A1.3 step 7)."""

    SERVER_AUTH = "serverAuth"
    CLIENT_AUTH = "clientAuth"
    CODE_SIGNING = "codeSigning"
    EMAIL_PROTECTION = "emailProtection"
    TIME_STAMPING = "timeStamping"

    @property
    def oid(self) -> x509.ObjectIdentifier:
        return _EKU_OIDS[self]

    @classmethod
    def parse(cls, text: str) -> ExtendedKeyUsageName:
        """Case-insensitive ("serverauth", "ServerAuth"); raises ValueError."""
        found = {member.value.lower(): member for member in cls}.get(text.strip().lower())
        if found is None:
            allowed = ", ".join(member.value for member in cls)
            raise ValueError(f"unknown extended key usage {text!r}; expected one of {allowed}")
        return found


_EKU_OIDS: dict[ExtendedKeyUsageName, x509.ObjectIdentifier] = {
    ExtendedKeyUsageName.SERVER_AUTH: ExtendedKeyUsageOID.SERVER_AUTH,
    ExtendedKeyUsageName.CLIENT_AUTH: ExtendedKeyUsageOID.CLIENT_AUTH,
    ExtendedKeyUsageName.CODE_SIGNING: ExtendedKeyUsageOID.CODE_SIGNING,
    ExtendedKeyUsageName.EMAIL_PROTECTION: ExtendedKeyUsageOID.EMAIL_PROTECTION,
    ExtendedKeyUsageName.TIME_STAMPING: ExtendedKeyUsageOID.TIME_STAMPING,
}
DEFAULT_LEAF_EKUS = (ExtendedKeyUsageName.SERVER_AUTH, ExtendedKeyUsageName.CLIENT_AUTH)
"""Stamped when a request names no EKU (pki.md §A1.3 step 7)."""

_KEY_ENCIPHERMENT_EKUS = frozenset(
    {ExtendedKeyUsageName.SERVER_AUTH, ExtendedKeyUsageName.CLIENT_AUTH, ExtendedKeyUsageName.EMAIL_PROTECTION}
)


@dataclass(frozen=True, slots=True)
class DistributionURLs:
    """Where relying parties find revocation data and the issuer certificate; empty = extension left out."""

    ocsp_urls: tuple[str, ...] = ()
    ca_issuers_urls: tuple[str, ...] = ()
    crl_urls: tuple[str, ...] = ()


def leaf_key_usage(key_family: KeyFamily, ekus: Iterable[ExtendedKeyUsageName]) -> x509.KeyUsage:
    """digitalSignature; keyEncipherment only for RSA keys used for TLS or S/MIME (EC keys cannot
    encipher); contentCommitment (nonRepudiation) with emailProtection (pki.md §A1.7)."""
    names = set(ekus)
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=ExtendedKeyUsageName.EMAIL_PROTECTION in names,
        key_encipherment=key_family is KeyFamily.RSA and bool(names & _KEY_ENCIPHERMENT_EKUS),
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def signing_key_usage() -> x509.KeyUsage:
    """digitalSignature alone: certificates that only sign (OCSP responders, the server's TLS certificate)."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def ca_key_usage() -> x509.KeyUsage:
    """keyCertSign and cRLSign, plus digitalSignature so the CA key may sign OCSP responses itself."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


def extended_key_usage(ekus: Sequence[ExtendedKeyUsageName]) -> tuple[x509.ExtendedKeyUsage, bool]:
    """The EKU extension and its criticality: critical only for a pure timeStamping certificate,
    which RFC 3161 §2.3 requires."""
    critical = tuple(ekus) == (ExtendedKeyUsageName.TIME_STAMPING,)
    return x509.ExtendedKeyUsage([name.oid for name in ekus]), critical


def subject_key_identifier(public_key: CertificatePublicKeyTypes) -> x509.SubjectKeyIdentifier:
    """RFC 5280 §4.2.1.2 method 1: SHA-1 over the subjectPublicKey BIT STRING (20 bytes)."""
    return x509.SubjectKeyIdentifier.from_public_key(public_key)


def authority_key_identifier(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    """keyIdentifier = the issuer's SKI, read from its extension when present (pki.md §A1.7)."""
    try:
        ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        ski = x509.SubjectKeyIdentifier.from_public_key(issuer.public_key())
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def authority_information_access(urls: DistributionURLs) -> x509.AuthorityInformationAccess | None:
    descriptions = [
        x509.AccessDescription(AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(url))
        for url in urls.ocsp_urls
    ] + [
        x509.AccessDescription(AuthorityInformationAccessOID.CA_ISSUERS, x509.UniformResourceIdentifier(url))
        for url in urls.ca_issuers_urls
    ]
    return x509.AuthorityInformationAccess(descriptions) if descriptions else None


def crl_distribution_points(urls: DistributionURLs) -> x509.CRLDistributionPoints | None:
    if not urls.crl_urls:
        return None
    # One distribution point listing every URL as alternatives for the same CRL (RFC 5280 §4.2.1.13).
    point = x509.DistributionPoint(
        full_name=[x509.UniformResourceIdentifier(url) for url in urls.crl_urls],
        relative_name=None,
        reasons=None,
        crl_issuer=None,
    )
    return x509.CRLDistributionPoints([point])


MUST_STAPLE = x509.TLSFeature([x509.TLSFeatureType.status_request])
"""RFC 7633 TLS feature status_request (DER 30 03 02 01 05), non-critical."""
