"""Delegated OCSP responder certificates (RFC 6960 §4.2.2.2): one per issuer, signed by its CA, rotated
before expiry, shared by every replica through `ocsp_responders` (first writer wins, the others reload).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from certctl.clock import Clock
from certctl.db.engine import Database
from certctl.ocsp.models import OCSPResponder
from certctl.ocsp.responder import ResponderCredentials
from certctl.pki import extensions as ext
from certctl.pki.keys import KeyAlgorithm, SigningKey, UnsupportedKey
from certctl.pki.local_ca import LocalCA
from certctl.pki.serials import canonical_serial, random_serial
from certctl.security.encryption import ConfigCipher

BACKDATE = timedelta(minutes=5)
"""notBefore = now - 5 min, so relying parties with a slightly slow clock accept it (pki.md §A2.4)."""
KEY_ALGORITHM = KeyAlgorithm.ECDSA_P256
MAX_STORE_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class _Loaded:
    credentials: ResponderCredentials
    ca_der: bytes
    """The CA certificate it was checked against: a new CA makes it unusable."""
    ca_not_after: datetime


def build_responder_certificate(ca: LocalCA, key: SigningKey, now: datetime, validity: timedelta) -> x509.Certificate:
    """CN "OCSP Responder for <CA CN>", KU digitalSignature, EKU OCSPSigning, ocsp-nocheck, CA:FALSE."""
    ca_cert = ca.certificate
    not_before = (now - BACKDATE).replace(microsecond=0)
    not_after = min((now + validity).replace(microsecond=0), ca_cert.not_valid_after_utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"OCSP Responder for {_ca_name(ca_cert)}")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(random_serial())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            ext.signing_key_usage(),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
        .add_extension(x509.OCSPNoCheck(), critical=False)
        .add_extension(ext.subject_key_identifier(key.public_key()), critical=False)
        .add_extension(ext.authority_key_identifier(ca_cert), critical=False)
    )
    return ca.signing_key.sign_certificate(builder)


class ResponderCertificates:
    """The current responder of each issuer; `for_ca` bootstraps, reloads or rotates it as needed."""

    def __init__(
        self, db: Database, cipher: ConfigCipher, clock: Clock, *, validity: timedelta, rotation_grace: timedelta
    ) -> None:
        self._db, self._cipher, self._clock = db, cipher, clock
        self._validity = validity
        # A grace as long as the validity would rotate on every answer.
        self._grace = min(rotation_grace, validity / 2)
        self._current: dict[str, _Loaded] = {}
        self._lock = threading.Lock()

    def for_ca(self, ca: LocalCA) -> ResponderCredentials:
        """A responder valid now, outside its rotation grace, issued by this CA."""
        ca_der = ca.certificate.public_bytes(serialization.Encoding.DER)
        loaded = self._current.get(ca.issuer_id)
        if loaded is not None and self._usable(loaded, ca_der):
            return loaded.credentials
        with self._lock:
            for _ in range(MAX_STORE_ATTEMPTS):
                row = self._read(ca.issuer_id)
                stored = self._load_row(row, ca) if row is not None else None
                if stored is not None and self._usable(stored, ca_der):
                    self._current[ca.issuer_id] = stored
                    return stored.credentials
                fresh = self._make(ca, ca_der)
                if self._store(ca.issuer_id, fresh, replaces=row.cert_serial if row is not None else None):
                    self._current[ca.issuer_id] = fresh
                    return fresh.credentials
                # Another replica stored or rotated first: read its row on the next pass.
        raise RuntimeError(f"could not store an OCSP responder for issuer {ca.issuer_id}")

    def _usable(self, loaded: _Loaded, ca_der: bytes) -> bool:
        cert = loaded.credentials.certificate
        now = self._clock.now()
        capped = cert.not_valid_after_utc >= loaded.ca_not_after  # a new one could not outlive it either
        return (
            loaded.ca_der == ca_der
            and cert.not_valid_before_utc <= now < cert.not_valid_after_utc
            and (cert.not_valid_after_utc - now >= self._grace or capped)
        )

    def _read(self, issuer_id: str) -> OCSPResponder | None:
        with self._db.read() as session:
            return session.get(OCSPResponder, issuer_id)

    def _load_row(self, row: OCSPResponder, ca: LocalCA) -> _Loaded | None:
        """The stored responder when it parses, matches its key and chains to this CA; else None (rebuild)."""
        try:
            cert = x509.load_pem_x509_certificate(row.cert_pem.encode("ascii"))
            key = SigningKey.from_pem(self._cipher.decrypt(bytes(row.encrypted_key)))
            cert.verify_directly_issued_by(ca.certificate)
        except (ValueError, TypeError, UnsupportedKey, InvalidSignature):
            return None
        if not key.matches(cert.public_key()):
            return None
        ca_der = ca.certificate.public_bytes(serialization.Encoding.DER)
        return _Loaded(ResponderCredentials(cert, key), ca_der, ca.certificate.not_valid_after_utc)

    def _make(self, ca: LocalCA, ca_der: bytes) -> _Loaded:
        key = SigningKey.generate(KEY_ALGORITHM)
        cert = build_responder_certificate(ca, key, self._clock.now(), self._validity)
        return _Loaded(ResponderCredentials(cert, key), ca_der, ca.certificate.not_valid_after_utc)

    def _store(self, issuer_id: str, fresh: _Loaded, *, replaces: str | None) -> bool:
        """Insert, or replace the row still holding `replaces`; False when another writer got there first."""
        cert = fresh.credentials.certificate
        values = {
            "cert_pem": cert.public_bytes(serialization.Encoding.PEM).decode("ascii"),
            "cert_serial": canonical_serial(cert.serial_number),
            "encrypted_key": self._cipher.encrypt(fresh.credentials.key.private_key_pem()),
            "key_alg": KEY_ALGORITHM.value,
            "not_before": cert.not_valid_before_utc,
            "not_after": cert.not_valid_after_utc,
            "rotated_from": replaces,
            "created_at": self._clock.now(),
        }
        try:
            with self._db.begin() as session:
                if replaces is None:
                    session.add(OCSPResponder(issuer_id=issuer_id, **values))
                    return True
                swapped = session.execute(
                    update(OCSPResponder)
                    .where(OCSPResponder.issuer_id == issuer_id, OCSPResponder.cert_serial == replaces)
                    .values(**values)
                )
                return bool(getattr(swapped, "rowcount", 0))
        except IntegrityError:
            return False


def _ca_name(ca_cert: x509.Certificate) -> str:
    names = ca_cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if names:
        value = names[0].value
        return value if isinstance(value, str) else value.decode("utf-8", "replace")
    return ca_cert.subject.rfc4514_string()
