"""pkilint (DigiCert's RFC 5280 linter) for CRLs, the same validators `lint_crl -t CRL -p PKIX` builds."""

from __future__ import annotations

from pkilint import loader, pkix
from pkilint.pkix import crl, extension, name

Finding = tuple[str, str, str]  # severity, code, message

_CRL_VALIDATOR = crl.create_pkix_crl_validator_container(
    [
        pkix.create_attribute_decoder(name.ATTRIBUTE_TYPE_MAPPINGS),
        pkix.create_extension_decoder(extension.EXTENSION_MAPPINGS),
    ],
    [
        crl.create_issuer_validator_container([]),
        crl.create_validity_validator_container([]),
        crl.create_extensions_validator_container([]),
    ],
)


def lint_crl(der: bytes) -> list[Finding]:
    document = loader.RFC5280CertificateListDocumentLoader().load_der_document(der, "crl")
    return [
        (d.finding.severity.name, d.finding.code, d.message or "")
        for result in _CRL_VALIDATOR.validate(document.root)
        for d in result.finding_descriptions
    ]


def errors(findings: list[Finding]) -> list[Finding]:
    """FATAL and ERROR findings (violations of a MUST)."""
    return [finding for finding in findings if finding[0] in ("FATAL", "ERROR")]
