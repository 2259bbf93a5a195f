"""Real demo certificates from the local CA, with validity periods in the past.

`LocalCA.issue` always starts a certificate now, so the demo builds its leaves here, with the same
extensions, and signs them with the CA's key (held by `SigningKey`, which never leaves memory).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from cryptography import x509

from certctl.pki import extensions as ext
from certctl.pki.connector import IssuedCertificate
from certctl.pki.csr import csr_key_info, csr_subject_alt_names, load_csr
from certctl.pki.extensions import ExtendedKeyUsageName
from certctl.pki.local_ca import LocalCA
from certctl.pki.serials import canonical_serial, random_serial

ORDER_ID_PREFIX = "demo-"


class DemoSigner:
    """Signs leaves for CSRs with any validity period, as the local CA `ca` would sign them today."""

    def __init__(self, ca: LocalCA) -> None:
        self._key = ca.signing_key
        self._chain = ca.get_ca_chain()
        self._urls = ca.distribution_urls

    @property
    def ca_certificate(self) -> x509.Certificate:
        return self._chain[0]

    def sign(
        self, csr_pem: str, not_before: datetime, not_after: datetime, ekus: Sequence[ExtendedKeyUsageName]
    ) -> IssuedCertificate:
        """Raises BadCSR for a CSR that does not parse or verify."""
        csr = load_csr(csr_pem)
        key_info = csr_key_info(csr)
        public_key = csr.public_key()
        issuer = self.ca_certificate
        serial = random_serial()
        eku, eku_critical = ext.extended_key_usage(ekus)
        builder = (
            x509.CertificateBuilder()
            .subject_name(csr.subject)
            .issuer_name(issuer.subject)
            .public_key(public_key)
            .serial_number(serial)
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(ext.leaf_key_usage(key_info.family, ekus), critical=True)
            .add_extension(eku, critical=eku_critical)
            .add_extension(ext.subject_key_identifier(public_key), critical=False)
            .add_extension(ext.authority_key_identifier(issuer), critical=False)
        )
        if sans := csr_subject_alt_names(csr):
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        if (aia := ext.authority_information_access(self._urls)) is not None:
            builder = builder.add_extension(aia, critical=False)
        if (cdp := ext.crl_distribution_points(self._urls)) is not None:
            builder = builder.add_extension(cdp, critical=False)
        certificate = self._key.sign_certificate(builder)
        return IssuedCertificate.from_certificate(
            certificate, self._chain, order_id=f"{ORDER_ID_PREFIX}{canonical_serial(serial)}"
        )
