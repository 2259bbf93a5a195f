"""Building a stored certificate version from what a CA issued."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from certctl.pki.connector import IssuedCertificate


def version_row(
    issued: IssuedCertificate,
    *,
    version_id: str,
    certificate_id: str,
    csr_pem: str,
    encrypted_private_key: bytes | None,
    created_at: datetime,
) -> dict[str, Any]:
    """The certificate_versions row for what a CA issued: leaf then chain PEM, canonical serial, key shape;
    the key only ever encrypted. `CertificateVersion(**row)` for the ORM, or inserted as it is in bulk."""
    return {
        "id": version_id,
        "certificate_id": certificate_id,
        "serial_number": issued.serial,
        "not_before": issued.not_before,
        "not_after": issued.not_after,
        "fingerprint_sha256": issued.fingerprint_sha256,
        "pem_chain": issued.cert_pem + issued.chain_pem,
        "csr_pem": csr_pem,
        "key_algorithm": issued.key_algorithm.value,
        "key_size": issued.key_size,
        "encrypted_private_key": encrypted_private_key,
        "created_at": created_at,
    }
