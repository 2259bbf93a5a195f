"""Server-side key generation (`CERTCTL_KEYGEN_MODE=server`, pki.md §A1.5): a fresh key and its CSR."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from certctl.pki.csr import build_csr
from certctl.pki.keys import KeyAlgorithm, SigningKey


@dataclass(frozen=True, slots=True)
class GeneratedKeyAndCSR:
    """A key the server made for a certificate, and the CSR it signed; persist `key` only encrypted."""

    key: SigningKey
    csr_pem: str


def generate_key_and_csr(
    common_name: str, sans: Sequence[str], algorithm: KeyAlgorithm = KeyAlgorithm.ECDSA_P256
) -> GeneratedKeyAndCSR:
    """Generate a key of `algorithm` and a CSR for `common_name` and `sans`; raises ValueError for a bad name."""
    key = SigningKey.generate(algorithm)
    return GeneratedKeyAndCSR(key=key, csr_pem=build_csr(key, common_name, sans))
