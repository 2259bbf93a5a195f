"""Persistence of local CA material in the database, its private key encrypted at rest.

A CA whose key is held in a PKCS#11 token stores its certificate only: `encrypted_key` is empty (no key
bytes, encrypted or not) and the key is found again through the issuer's `ca_key_pkcs11` reference.
"""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from certctl.clock import Clock
from certctl.db.engine import Database
from certctl.issuers.models import IssuerCAMaterial
from certctl.pki.keys import CAMaterial
from certctl.security.encryption import ConfigCipher


class DatabaseCAStore:
    """`CAMaterialStore` over `issuer_ca_material`. `save` never replaces an existing CA."""

    def __init__(self, db: Database, cipher: ConfigCipher, clock: Clock) -> None:
        self._db, self._cipher, self._clock = db, cipher, clock

    def load(self, issuer_id: str) -> CAMaterial | None:
        with self._db.read() as session:
            row = session.get(IssuerCAMaterial, issuer_id)
            if row is None:
                return None
            if not row.encrypted_key:
                return CAMaterial(cert_pem=row.cert_pem, key_pem=b"")  # the key is in a token
            return CAMaterial(cert_pem=row.cert_pem, key_pem=self._cipher.decrypt(bytes(row.encrypted_key)))

    def save(self, issuer_id: str, material: CAMaterial) -> None:
        encrypted = b"" if material.key_reference else self._cipher.encrypt(material.key_pem)
        try:
            with self._db.begin() as session:
                if session.get(IssuerCAMaterial, issuer_id) is not None:
                    return
                session.add(
                    IssuerCAMaterial(
                        issuer_id=issuer_id,
                        cert_pem=material.cert_pem,
                        encrypted_key=encrypted,
                        created_at=self._clock.now(),
                    )
                )
        except IntegrityError:
            return  # another replica stored its CA first; callers reload and use that one
