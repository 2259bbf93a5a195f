"""The Python pre-check run before any file is written (agent-targets-discovery.md §A2.1, decision p).

The one hard rule: when the certificate and the key both parse, the key must be the certificate's —
`apache2 -t` does not notice a mismatch and a graceful reload with one takes Apache down (stack.md
§C.7). Everything else is a warning. Material that does not parse is left to the server's validate
command, so the primitive stays usable for formats we do not read.
"""

from __future__ import annotations

from datetime import datetime

from cryptography import x509

from certctl.deploy.errors import ValidateFailed
from certctl.pki.keys import SigningKey, UnsupportedKey


def precheck(cert_pem: str, chain_pem: str, key_pem: str | None, *, now: datetime) -> tuple[str, ...]:
    """Warnings about the material; raises ValidateFailed for an empty certificate or a key that does not match."""
    if not cert_pem.strip():
        raise ValidateFailed("the certificate PEM is empty")
    warnings: list[str] = []
    try:
        leaf = x509.load_pem_x509_certificate(cert_pem.encode("ascii", errors="replace"))
    except ValueError as exc:
        return (f"certificate not checked: it does not parse ({exc})",)
    if key_pem:
        try:
            key = SigningKey.from_pem(key_pem)
        except UnsupportedKey as exc:
            warnings.append(f"key not checked against the certificate: {exc}")
        else:
            if not key.matches(leaf.public_key()):
                raise ValidateFailed(
                    f"the private key does not match the certificate (subject {leaf.subject.rfc4514_string()}, "
                    f"serial {leaf.serial_number:x})"
                )
    if now < leaf.not_valid_before_utc:
        warnings.append(f"certificate is not valid before {leaf.not_valid_before_utc.isoformat()}")
    if now > leaf.not_valid_after_utc:
        warnings.append(f"certificate expired at {leaf.not_valid_after_utc.isoformat()}")
    warnings.extend(_chain_warnings(leaf, chain_pem))
    return tuple(warnings)


def _chain_warnings(leaf: x509.Certificate, chain_pem: str) -> list[str]:
    if not chain_pem.strip():
        return []
    try:
        chain = x509.load_pem_x509_certificates(chain_pem.encode("ascii", errors="replace"))
    except ValueError as exc:
        return [f"chain not checked: it does not parse ({exc})"]
    warnings = []
    for child, parent in zip([leaf, *chain], chain, strict=False):
        if child.issuer != parent.subject:
            warnings.append(
                f"chain out of order: {child.subject.rfc4514_string()} was not issued by the next certificate "
                f"({parent.subject.rfc4514_string()})"
            )
    return warnings
