"""A revocation through the API reaches relying parties at once: cached OCSP answers are dropped and the CRL
is rebuilt without waiting for the CRL loop."""

from __future__ import annotations

from cryptography import x509

from tests.revocation.conftest import Revocations


def test_a_revocation_drops_cached_ocsp_answers_and_rebuilds_the_crl(rev: Revocations) -> None:
    context = rev.context
    assert context.ocsp.invalidate in context.revocations.listeners
    assert context.crls.after_revocation in context.revocations.listeners
    cert_id = rev.issue("web")
    [version] = rev.client.get(f"/api/v1/certificates/{cert_id}/versions").json()["data"]
    before = context.crls.current("iss-local")
    assert before.revoked_count == 0

    revoked = rev.client.post(f"/api/v1/certificates/{cert_id}/revoke", json={"reason": "superseded"})
    assert revoked.status_code == 200, revoked.text
    context.crls.close()  # waits for the rebuild the revocation queued in the background
    rebuilt = context.crls.peek("iss-local")
    assert rebuilt is not None, "the revocation did not rebuild the CRL"
    assert rebuilt.crl_number > before.crl_number
    entry = x509.load_der_x509_crl(rebuilt.der).get_revoked_certificate_by_serial_number(
        int(version["serial_number"], 16)
    )
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason is x509.ReasonFlags.superseded
