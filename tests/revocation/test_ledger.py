"""Reason names and the ledger queries CRL and OCSP builders use."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography import x509
from sqlalchemy import update

from certctl.errors import ValidationFailed
from certctl.profiles.models import CertificateProfile
from certctl.revocation.models import ReasonCode
from certctl.revocation.reasons import REASON_CODES, parse_reason, reason_code, reason_flag
from certctl.revocation.store import RevocationStore
from tests.factories import add_profile
from tests.revocation.conftest import Revocations


def test_every_accepted_name_maps_to_its_rfc_5280_code_and_flag() -> None:
    assert {name: int(code) for name, code in REASON_CODES.items()} == {
        "unspecified": 0,
        "keyCompromise": 1,
        "caCompromise": 2,
        "affiliationChanged": 3,
        "superseded": 4,
        "cessationOfOperation": 5,
        "certificateHold": 6,
        "privilegeWithdrawn": 9,
    }
    assert reason_flag("keyCompromise") is x509.ReasonFlags.key_compromise
    assert reason_flag("privilegeWithdrawn") is x509.ReasonFlags.privilege_withdrawn
    assert reason_code("") is ReasonCode.UNSPECIFIED
    assert {reason_flag(name) for name in REASON_CODES} == set(x509.ReasonFlags) - {
        x509.ReasonFlags.remove_from_crl,
        x509.ReasonFlags.aa_compromise,
    }


@pytest.mark.parametrize("name", ["removeFromCRL", "aACompromise", "key_compromise", "8", "compromised"])
def test_names_outside_the_list_are_refused(name: str) -> None:
    with pytest.raises(ValidationFailed, match="invalid revocation reason"):
        parse_reason(name)


def test_crl_entries_leave_out_expired_and_short_lived_certificates(rev: Revocations) -> None:
    add_profile(rev.context, "prof-short")
    with rev.context.db.begin() as session:
        session.execute(
            update(CertificateProfile)
            .where(CertificateProfile.id == "prof-short")
            .values(allow_short_lived=True, max_ttl_seconds=1800)
        )
    long_lived = rev.issue("long")
    short = rev.issue("short", certificate_profile_id="prof-short")
    for cert_id in (long_lived, short):
        rev.client.post(f"/api/v1/certificates/{cert_id}/revoke", json={"reason": "keyCompromise"})
    now = rev.clock.now()

    with rev.context.db.read() as session:
        store = RevocationStore(session)
        entries = store.entries_for_crl("iss-local", now)
        row = store.find("iss-local", "0x" + entries[0][0].upper())
        short_row = store.latest_for_certificate(short)
        long_not_after = row.not_after if row is not None else now
        assert store.entries_for_crl("iss-local", long_not_after) == []  # expired: dropped off
        assert store.entries_for_crl("iss-other", now) == []

    assert [(reason, revoked_at) for _, revoked_at, reason in entries] == [("keyCompromise", now)]
    assert row is not None
    assert row.certificate_id == long_lived
    assert short_row is not None
    assert short_row.short_lived is True
    assert long_not_after - now > timedelta(days=1)
