"""The fast CRL builder: the same CRL cryptography's per-entry builder makes, accepted by openssl and pkilint."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from certctl.clock import FrozenClock
from certctl.crl.builder import CRLEntry, LedgerRow, RevokedEntries, build_crl
from certctl.pki.keys import KeyAlgorithm
from certctl.pki.local_ca import LocalCA
from tests.crl.conftest import require_openssl
from tests.crl.lint import errors, lint_crl

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
FLAGS = {
    1: x509.ReasonFlags.key_compromise,
    2: x509.ReasonFlags.ca_compromise,
    3: x509.ReasonFlags.affiliation_changed,
    4: x509.ReasonFlags.superseded,
    5: x509.ReasonFlags.cessation_of_operation,
    6: x509.ReasonFlags.certificate_hold,
    8: x509.ReasonFlags.remove_from_crl,
    9: x509.ReasonFlags.privilege_withdrawn,
    10: x509.ReasonFlags.aa_compromise,
}
EDGE_ENTRIES = [
    CRLEntry(1, NOW, 0),
    CRLEntry(0x7F, NOW - timedelta(seconds=1, microseconds=999_999), 1),  # microseconds are dropped
    CRLEntry(0x80, NOW, 2),  # needs a leading zero octet
    CRLEntry(0xFF, NOW, 3),
    CRLEntry(0x100, NOW, 4),
    CRLEntry(0x00FF_FFFF_FFFF, NOW, 5),
    CRLEntry(2**159 - 1, NOW, 6),
    CRLEntry(2**152, NOW, 8),
    CRLEntry(12345, NOW.astimezone(timezone(timedelta(hours=-5))), 9),  # another zone, same instant
    CRLEntry(67890, datetime(2051, 6, 1, tzinfo=UTC), 10),  # GeneralizedTime from 2050 on
]


@pytest.fixture(scope="module", params=[KeyAlgorithm.ECDSA_P256, KeyAlgorithm.RSA_2048])
def ca(request: pytest.FixtureRequest) -> LocalCA:
    return LocalCA.create_self_signed(clock=FrozenClock(NOW - timedelta(days=1)), key_algorithm=request.param)


def reference_crl(ca: LocalCA, entries: list[CRLEntry], crl_number: int) -> x509.CertificateRevocationList:
    """The same CRL made entry by entry with cryptography's public builders."""
    revoked = []
    for serial, revoked_at, code in entries:
        builder = (
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(revoked_at.replace(microsecond=0))
        )
        if code:
            builder = builder.add_extension(x509.CRLReason(FLAGS[code]), critical=False)
        revoked.append(builder.build())
    builder = x509.CertificateRevocationListBuilder().issuer_name(ca.certificate.subject).last_update(NOW)
    builder = builder.next_update(NOW + timedelta(hours=24)).add_extension(x509.CRLNumber(crl_number), critical=False)
    ski = ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
    for entry in revoked:
        builder = builder.add_revoked_certificate(entry)
    return ca.signing_key.sign_crl(builder)


def make(ca: LocalCA, entries: list[CRLEntry], crl_number: int = 7) -> x509.CertificateRevocationList:
    return build_crl(
        ca.certificate,
        ca.signing_key,
        RevokedEntries.from_entries(entries),
        crl_number=crl_number,
        this_update=NOW,
        next_update=NOW + timedelta(hours=24),
    )


def test_the_fast_path_signs_exactly_what_the_per_entry_builder_would(ca: LocalCA) -> None:
    crl = make(ca, EDGE_ENTRIES)
    assert crl.tbs_certlist_bytes == reference_crl(ca, EDGE_ENTRIES, 7).tbs_certlist_bytes
    assert crl.is_signature_valid(ca.certificate.public_key())  # type: ignore[arg-type]


def test_the_crl_carries_version_2_number_times_aki_and_entries(ca: LocalCA) -> None:
    crl = x509.load_der_x509_crl(make(ca, EDGE_ENTRIES, crl_number=42).public_bytes(Encoding.DER))
    assert crl.issuer == ca.certificate.subject
    assert crl.last_update_utc == NOW
    assert crl.next_update_utc == NOW + timedelta(hours=24)
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 42
    aki = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    by_serial = {entry.serial_number: entry for entry in crl}
    assert len(by_serial) == len(EDGE_ENTRIES)
    assert by_serial[12345].revocation_date_utc == NOW
    assert by_serial[67890].revocation_date_utc == datetime(2051, 6, 1, tzinfo=UTC)
    assert by_serial[0x7F].revocation_date_utc == NOW - timedelta(seconds=2)
    assert list(by_serial[1].extensions) == []  # unspecified: no reasonCode extension (RFC 5280 §5.3.1)
    assert by_serial[2**159 - 1].extensions.get_extension_for_class(x509.CRLReason).value.reason is FLAGS[6]


def ledger_row(entry: CRLEntry) -> LedgerRow:
    name = {code: flag.value for code, flag in FLAGS.items()} | {0: "unspecified"}
    return (
        format(entry.serial, "x"),
        entry.revoked_at.astimezone(UTC).strftime("%Y%m%d%H%M%S"),
        name[entry.reason_code],
    )


def test_ledger_rows_encode_exactly_like_entries() -> None:
    codes = {flag.value: code for code, flag in FLAGS.items()} | {"unspecified": 0}
    entries = [*EDGE_ENTRIES, CRLEntry(2**200 + 5, NOW, 1), CRLEntry(0xABC, datetime(1999, 12, 31, tzinfo=UTC), 0)]
    from_ledger = RevokedEntries.from_ledger([ledger_row(entry) for entry in entries], codes.__getitem__)
    assert from_ledger == RevokedEntries.from_entries(entries)


def test_a_ledger_serial_that_is_not_hex_names_itself() -> None:
    with pytest.raises(ValueError, match="'xyz'"):
        RevokedEntries.from_ledger([("xyz", "20260101000000", "unspecified")], lambda name: 0)


def test_serials_longer_than_20_octets_still_round_trip(ca: LocalCA) -> None:
    crl = make(ca, [CRLEntry(2**200 + 5, NOW, 1)])
    assert [entry.serial_number for entry in crl] == [2**200 + 5]


def test_an_empty_crl_has_no_entries(ca: LocalCA) -> None:
    crl = make(ca, [])
    assert len(crl) == 0
    assert crl.tbs_certlist_bytes == reference_crl(ca, [], 7).tbs_certlist_bytes


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        (CRLEntry(0, NOW, 0), "not a positive integer"),
        (CRLEntry(5, NOW, 7), "not an RFC 5280 CRLReason code"),
        (CRLEntry(5, NOW.replace(tzinfo=None), 0), "naive datetime"),
    ],
)
def test_entries_rfc_5280_cannot_express_are_refused(ca: LocalCA, entry: CRLEntry, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        make(ca, [entry])


def test_pkilint_finds_no_errors_in_the_crl(ca: LocalCA) -> None:
    findings = lint_crl(make(ca, EDGE_ENTRIES[:8]).public_bytes(Encoding.DER))
    assert errors(findings) == [], findings


def test_openssl_reads_entries_reasons_and_the_number(ca: LocalCA, tmp_path: Path) -> None:
    openssl = require_openssl()
    path = tmp_path / "crl.der"
    path.write_bytes(make(ca, EDGE_ENTRIES, crl_number=4242).public_bytes(Encoding.DER))
    text = subprocess.run(
        [openssl, "crl", "-inform", "DER", "-in", str(path), "-noout", "-text"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "Version 2 (0x1)" in text
    assert "X509v3 CRL Number: \n                4242" in text
    assert "X509v3 Authority Key Identifier" in text
    assert "Serial Number: 0100" in text
    assert "Serial Number: 7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF" in text
    for reason in ("Key Compromise", "CA Compromise", "Certificate Hold", "Privilege Withdrawn", "AA Compromise"):
        assert reason in text
