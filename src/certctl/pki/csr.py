"""Parse and check certificate signing requests (PKCS #10, RFC 2986)."""

from __future__ import annotations

from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from certctl.pki.errors import BadCSR
from certctl.pki.keys import KeyInfo, SigningKey, UnsupportedKey, classify_public_key
from certctl.pki.sans import check_unicode_safety, classify_san

CSR_PEM_LABEL = "CERTIFICATE REQUEST"  # RFC 7468 §7
MAX_COMMON_NAME_LENGTH = 64  # ub-common-name, RFC 5280 Appendix A.1


def load_csr(csr_pem: str) -> x509.CertificateSigningRequest:
    """Parse a PEM CSR and verify its self-signature (pki.md §A1.3 step 1).

    Raises BadCSR when the PEM block is not a `CERTIFICATE REQUEST`, the CSR does not parse, or its
    signature does not verify.
    """
    text = csr_pem.strip()
    if not text.startswith(f"-----BEGIN {CSR_PEM_LABEL}-----"):
        raise BadCSR(f"CSR must be a PEM block of type {CSR_PEM_LABEL!r}")
    try:
        csr = x509.load_pem_x509_csr(text.encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise BadCSR(f"CSR does not parse: {exc}") from exc
    try:
        valid = csr.is_signature_valid
    except (ValueError, TypeError) as exc:  # unsupported key/signature algorithm
        raise BadCSR(f"CSR signature cannot be checked: {exc}") from exc
    if not valid:
        raise BadCSR("CSR signature does not verify (the request was altered or signed with another key)")
    return csr


def csr_key_info(csr: x509.CertificateSigningRequest) -> KeyInfo:
    """The CSR's key classified for profile checks; raises BadCSR for key types certctl does not issue for."""
    try:
        return classify_public_key(csr.public_key())
    except UnsupportedKey as exc:
        raise BadCSR(f"CSR key is not supported: {exc}") from exc


def csr_common_names(csr: x509.CertificateSigningRequest) -> list[str]:
    """The CSR subject's commonName values (usually zero or one), each checked for unicode spoofing."""
    names: list[str] = []
    for attribute in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME):
        value = attribute.value if isinstance(attribute.value, str) else attribute.value.decode("utf-8", "replace")
        try:
            check_unicode_safety(value, what="CSR common name")
        except ValueError as exc:
            raise BadCSR(str(exc)) from exc
        if len(value) > MAX_COMMON_NAME_LENGTH:
            raise BadCSR(
                f"CSR common name is longer than {MAX_COMMON_NAME_LENGTH} characters (RFC 5280 ub-common-name)"
            )
        names.append(value)
    return names


def csr_subject_alt_names(csr: x509.CertificateSigningRequest) -> list[x509.GeneralName]:
    """The SANs the CSR asks for in its extensionRequest attribute, in CSR order (may be empty)."""
    try:
        extension = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return list(extension.value)


def build_csr(key: SigningKey, common_name: str, sans: Sequence[str]) -> str:
    """A PEM CSR for `common_name` and `sans` (classified like request SANs), signed by `key`.

    Raises ValueError for an unusable name.
    """
    check_unicode_safety(common_name, what="common name")
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]) if common_name else x509.Name([])
    )
    names = [classify_san(san) for san in sans]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=not common_name)
    return key.sign_csr(builder).public_bytes(serialization.Encoding.PEM).decode("ascii")
