"""The delegated responder certificate: profile, storage, rotation, replicas; pkilint on what we sign."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pkilint import loader
from pkilint import pkix as pkilint_pkix
from pkilint.pkix import extension, name
from pkilint.pkix import ocsp as pkilint_ocsp
from sqlalchemy import select

from certctl.clock import FrozenClock
from certctl.context import AppContext
from certctl.ocsp.models import OCSPResponder
from certctl.ocsp.responder import GOOD, IssuerHashes, OCSPQuery, revoked, sign_response
from certctl.ocsp.responders import ResponderCertificates
from certctl.pki.local_ca import LocalCA
from tests.factories import seed_inventory
from tests.ocsp.conftest import ISSUER
from tests.pki.test_interop import assert_clean, lint, lint_chain

VALIDITY, GRACE = timedelta(days=30), timedelta(days=7)


@pytest.fixture
def setup(context_factory: Callable[..., AppContext]) -> tuple[AppContext, FrozenClock, LocalCA]:
    clock = FrozenClock()
    context = context_factory(clock)
    seed_inventory(context)
    ca = context.connectors.get(ISSUER)
    assert isinstance(ca, LocalCA)
    return context, clock, ca


def responders(context: AppContext, clock: FrozenClock) -> ResponderCertificates:
    return ResponderCertificates(context.db, context.cipher, clock, validity=VALIDITY, rotation_grace=GRACE)


def stored(context: AppContext) -> OCSPResponder:
    with context.db.read() as session:
        return session.scalars(select(OCSPResponder)).one()


def test_responder_certificate_profile(setup: tuple[AppContext, FrozenClock, LocalCA]) -> None:
    context, clock, ca = setup
    cert = responders(context, clock).for_ca(ca).certificate
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "OCSP Responder for CertCtl Local CA"
    assert cert.issuer == ca.certificate.subject
    cert.verify_directly_issued_by(ca.certificate)
    extensions = {e.oid: e for e in cert.extensions}
    assert extensions[x509.OCSPNoCheck.oid].value == x509.OCSPNoCheck()
    assert extensions[x509.ExtendedKeyUsage.oid].value == x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING])
    key_usage = extensions[x509.KeyUsage.oid]
    assert key_usage.critical
    assert key_usage.value.digital_signature
    assert not key_usage.value.key_cert_sign
    assert extensions[x509.BasicConstraints.oid].value.ca is False
    assert extensions[x509.AuthorityKeyIdentifier.oid].value.key_identifier == (
        ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    )
    assert x509.SubjectKeyIdentifier.oid in extensions
    assert cert.not_valid_before_utc == clock.now() - timedelta(minutes=5)
    assert cert.not_valid_after_utc == clock.now() + VALIDITY
    assert 0 < cert.serial_number < 2**159
    assert cert.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]

    row = stored(context)
    assert row.cert_serial == format(cert.serial_number, "x")
    assert row.rotated_from is None
    assert row.key_alg == "ECDSA-P256"
    assert b"PRIVATE KEY" not in bytes(row.encrypted_key)
    assert b"PRIVATE KEY" in context.cipher.decrypt(bytes(row.encrypted_key))


def test_rotation_before_expiry_and_reload_by_another_replica(setup: tuple[AppContext, FrozenClock, LocalCA]) -> None:
    context, clock, ca = setup
    first_replica, second_replica = responders(context, clock), responders(context, clock)
    first = first_replica.for_ca(ca).certificate
    assert second_replica.for_ca(ca).certificate == first  # the second replica loads the stored one

    clock.advance(VALIDITY - GRACE - timedelta(seconds=1))
    assert first_replica.for_ca(ca).certificate == first  # more than the grace left
    clock.advance(timedelta(seconds=2))
    rotated = first_replica.for_ca(ca).certificate
    assert rotated.serial_number != first.serial_number
    row = stored(context)
    assert (row.cert_serial, row.rotated_from) == (format(rotated.serial_number, "x"), format(first.serial_number, "x"))
    # The other replica's copy is in its grace too: it finds the rotated row instead of rotating again.
    assert second_replica.for_ca(ca).certificate == rotated


def test_a_responder_that_no_longer_chains_to_the_ca_is_rebuilt(
    setup: tuple[AppContext, FrozenClock, LocalCA],
) -> None:
    context, clock, ca = setup
    old = responders(context, clock).for_ca(ca).certificate
    new_ca = LocalCA.create_self_signed(clock=clock, issuer_id=ISSUER)
    fresh = responders(context, clock).for_ca(new_ca).certificate
    fresh.verify_directly_issued_by(new_ca.certificate)
    assert stored(context).rotated_from == format(old.serial_number, "x")


def _lint_response(der: bytes) -> list[tuple[str, str, str]]:
    # The same container the `lint_ocsp_response` command builds.
    validator = pkilint_ocsp.create_pkix_ocsp_response_validator_container(
        [
            pkilint_ocsp.create_response_decoder(),
            pkilint_pkix.create_attribute_decoder(name.ATTRIBUTE_TYPE_MAPPINGS),
            pkilint_pkix.create_extension_decoder(extension.EXTENSION_MAPPINGS),
        ],
        [],
    )
    document = loader.RFC6960OCSPResponseDocumentLoader().load_der_document(der, "response")
    return [
        (d.finding.severity.name, d.finding.code, d.message or "")
        for result in validator.validate(document.root)
        for d in result.finding_descriptions
    ]


@pytest.mark.parametrize("status", ["good", "revoked"])
def test_pkilint_finds_no_errors_in_responses_and_the_responder(
    setup: tuple[AppContext, FrozenClock, LocalCA], status: str
) -> None:
    context, clock, ca = setup
    credentials = responders(context, clock).for_ca(ca)
    query = OCSPQuery(serial=0xABC, algorithm=hashes.SHA256(), nonce=b"0123456789abcdef")
    cert_status = GOOD if status == "good" else revoked(clock.now(), "keyCompromise")
    der, _ = sign_response(query, IssuerHashes(ca.certificate), cert_status, credentials, clock.now(), echo_nonce=True)
    assert ocsp.load_der_ocsp_response(der).certificate_status.name == status.upper()
    assert_clean(_lint_response(der))
    assert_clean(lint(credentials.certificate))
    assert_clean(lint_chain(ca.certificate, credentials.certificate))
