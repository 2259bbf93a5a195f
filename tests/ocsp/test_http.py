"""The OCSP endpoints over HTTP: POST and both GET forms, statuses, nonces, errors and the rate limit."""

from __future__ import annotations

import base64
import os
from datetime import timedelta
from urllib.parse import quote

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from certctl.issuers.models import Issuer, IssuerType
from certctl.ocsp.metrics import OCSP_COUNTERS, OCSPEvent
from certctl.pki.local_ca import LocalCA
from certctl.revocation.models import CertificateRevocation
from tests.ocsp.conftest import ISSUER, OCSPEnv

SHA1 = hashes.SHA1()  # noqa: S303 - CertID hash, as clients send it


def request_der(
    env: OCSPEnv,
    cert: x509.Certificate,
    *,
    algorithm: hashes.HashAlgorithm = SHA1,
    nonce: bytes | None = None,
    issuer: x509.Certificate | None = None,
) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer or env.ca.certificate, algorithm)
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def post(
    http: httpx.Client, env: OCSPEnv, der: bytes, content_type: str = "application/ocsp-request"
) -> httpx.Response:
    headers = {"content-type": content_type} if content_type else {}
    return http.post(env.url, content=der, headers=headers)


def answer(response: httpx.Response) -> ocsp.OCSPResponse:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/ocsp-response"
    return ocsp.load_der_ocsp_response(response.content)


def single_status(response: httpx.Response) -> ocsp.OCSPCertStatus:
    parsed = answer(response)
    assert parsed.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    return parsed.certificate_status


def revoke_in_ledger(env: OCSPEnv, serial: str, reason: str = "keyCompromise", *, short_lived: bool = False) -> None:
    """The ledger row and revision bump a revocation commits, then the local invalidation."""
    now = env.clock.now()
    with env.context.db.begin() as session:
        session.add(
            CertificateRevocation(
                id=f"rev-{serial}",
                issuer_id=ISSUER,
                serial_number=serial,
                reason=reason,
                revoked_by="test",
                revoked_at=now,
                not_after=now + timedelta(days=30),
                short_lived=short_lived,
            )
        )
        session.get(Issuer, ISSUER).revocation_revision += 1
    env.context.ocsp.invalidate(ISSUER)


def test_post_answers_good_with_cache_headers_and_a_delegated_responder(ocsp_env: OCSPEnv, http: httpx.Client) -> None:
    leaf = ocsp_env.issue("web")
    response = post(http, ocsp_env, request_der(ocsp_env, leaf.certificate))
    parsed = answer(response)
    assert parsed.certificate_status is ocsp.OCSPCertStatus.GOOD
    assert parsed.serial_number == leaf.certificate.serial_number
    assert parsed.next_update_utc - parsed.this_update_utc == timedelta(hours=1)
    assert parsed.responder_key_hash is not None
    assert parsed.responder_name is None
    [responder] = parsed.certificates
    assert parsed.responder_key_hash == x509.SubjectKeyIdentifier.from_public_key(responder.public_key()).digest
    responder.verify_directly_issued_by(ocsp_env.ca.certificate)
    assert response.headers["cache-control"].startswith("max-age=3600")
    assert post(http, ocsp_env, request_der(ocsp_env, leaf.certificate), content_type="").status_code == 200


def test_sha256_cert_ids_are_answered_in_kind(ocsp_env: OCSPEnv, http: httpx.Client) -> None:
    leaf = ocsp_env.issue("web")
    parsed = answer(post(http, ocsp_env, request_der(ocsp_env, leaf.certificate, algorithm=hashes.SHA256())))
    assert parsed.certificate_status is ocsp.OCSPCertStatus.GOOD
    assert isinstance(parsed.hash_algorithm, hashes.SHA256)


def test_rfc_get_form_with_percent_encoded_slash_plus_and_equals(ocsp_env: OCSPEnv, http: httpx.Client) -> None:
    leaf = ocsp_env.issue("web")
    # Vary the nonce until the base64 holds every character that needs care in a path.
    while True:
        nonce = os.urandom(16)
        encoded = base64.b64encode(request_der(ocsp_env, leaf.certificate, nonce=nonce)).decode()
        if "/" in encoded and "+" in encoded and encoded.endswith("="):
            break
    for segment in (quote(encoded, safe=""), encoded):  # fully escaped, and raw as some clients send it
        response = http.get(f"{ocsp_env.url}/{segment}")
        parsed = answer(response)
        assert parsed.certificate_status is ocsp.OCSPCertStatus.GOOD
        assert parsed.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == nonce
        assert response.headers["cache-control"] == "no-cache"


def test_hex_get_form_and_a_serial_with_leading_zero_nibbles_in_every_form(
    ocsp_env: OCSPEnv, http: httpx.Client
) -> None:
    leaf = ocsp_env.issue("small", serial=0x0ABC)
    assert leaf.serial == "abc"
    rfc_get = quote(base64.b64encode(request_der(ocsp_env, leaf.certificate)).decode(), safe="")
    forms = {
        "post": lambda: post(http, ocsp_env, request_der(ocsp_env, leaf.certificate)),
        "get-rfc": lambda: http.get(f"{ocsp_env.url}/{rfc_get}"),
        "get-hex": lambda: http.get(f"{ocsp_env.url}/abc"),
        "get-hex-padded": lambda: http.get(f"{ocsp_env.url}/00000ABC"),
    }
    assert {name: single_status(send()) for name, send in forms.items()} == dict.fromkeys(
        forms, ocsp.OCSPCertStatus.GOOD
    )
    hex_answer = answer(http.get(f"{ocsp_env.url}/0abc"))
    assert isinstance(hex_answer.hash_algorithm, hashes.SHA1)
    assert (hex_answer.issuer_name_hash, hex_answer.issuer_key_hash) == (
        ocsp.load_der_ocsp_request(request_der(ocsp_env, leaf.certificate)).issuer_name_hash,
        ocsp.load_der_ocsp_request(request_der(ocsp_env, leaf.certificate)).issuer_key_hash,
    )

    revoke_in_ledger(ocsp_env, leaf.serial)
    assert {name: single_status(send()) for name, send in forms.items()} == dict.fromkeys(
        forms, ocsp.OCSPCertStatus.REVOKED
    )


def test_unknown_serial_and_another_issuers_cert_id_are_unknown(ocsp_env: OCSPEnv, http: httpx.Client) -> None:
    leaf = ocsp_env.issue("web")
    other_ca = LocalCA.create_self_signed(clock=ocsp_env.clock, issuer_id="iss-other")
    assert single_status(http.get(f"{ocsp_env.url}/1234567890abcdef")) is ocsp.OCSPCertStatus.UNKNOWN
    hits = OCSP_COUNTERS.value(OCSPEvent.CACHE_HIT)
    foreign = request_der(ocsp_env, leaf.certificate, issuer=other_ca.certificate)
    for _ in range(2):
        parsed = answer(post(http, ocsp_env, foreign))
        assert parsed.certificate_status is ocsp.OCSPCertStatus.UNKNOWN
        assert parsed.issuer_key_hash == ocsp.load_der_ocsp_request(foreign).issuer_key_hash  # CertID echoed
    assert OCSP_COUNTERS.value(OCSPEvent.CACHE_HIT) == hits  # mismatches are never served from the cache


def test_short_lived_revoked_certificates_stay_good(ocsp_env: OCSPEnv, http: httpx.Client) -> None:
    leaf = ocsp_env.issue("short")
    revoke_in_ledger(ocsp_env, leaf.serial, short_lived=True)
    assert single_status(post(http, ocsp_env, request_der(ocsp_env, leaf.certificate))) is ocsp.OCSPCertStatus.GOOD


def test_unspecified_reason_is_left_out(ocsp_env: OCSPEnv, http: httpx.Client) -> None:
    leaf = ocsp_env.issue("web")
    revoke_in_ledger(ocsp_env, leaf.serial, reason="unspecified")
    parsed = answer(post(http, ocsp_env, request_der(ocsp_env, leaf.certificate)))
    assert (parsed.certificate_status, parsed.revocation_reason) == (ocsp.OCSPCertStatus.REVOKED, None)
    assert parsed.revocation_time_utc == ocsp_env.clock.now()


@pytest.mark.parametrize("body", [b"", b"not an ocsp request", b"\x30\x03\x02\x01\x01"])
def test_malformed_requests_get_the_ocsp_malformed_status_not_an_http_error(
    ocsp_env: OCSPEnv, http: httpx.Client, body: bytes
) -> None:
    parsed = answer(post(http, ocsp_env, body))
    assert parsed.response_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    assert answer(http.get(f"{ocsp_env.url}/%%%not-base64")).response_status is (
        ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    )


@pytest.mark.parametrize(("nonce", "expected"), [(b"", "unauthorized"), (b"n" * 33, "unauthorized"), (b"n" * 32, "ok")])
def test_nonce_length_rules(ocsp_env: OCSPEnv, http: httpx.Client, nonce: bytes, expected: str) -> None:
    leaf = ocsp_env.issue("web")
    parsed = answer(post(http, ocsp_env, request_der(ocsp_env, leaf.certificate, nonce=nonce)))
    if expected == "unauthorized":
        assert parsed.response_status is ocsp.OCSPResponseStatus.UNAUTHORIZED
    else:
        assert parsed.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == nonce


def test_http_errors_for_the_url_itself(ocsp_env: OCSPEnv, http: httpx.Client) -> None:
    leaf = ocsp_env.issue("web")
    der = request_der(ocsp_env, leaf.certificate)
    wrong_type = post(http, ocsp_env, der, content_type="application/json")
    assert wrong_type.status_code == 415
    assert "application/ocsp-request" in wrong_type.text
    missing = http.post(f"{ocsp_env.base_url}/.well-known/pki/ocsp/iss-nope", content=der)
    assert missing.status_code == 404
    now = ocsp_env.clock.now()
    with ocsp_env.context.db.begin() as session:
        session.add(Issuer(id="iss-acme", name="ACME", type=IssuerType.ACME, config={}, created_at=now, updated_at=now))
    unsupported = http.post(f"{ocsp_env.base_url}/.well-known/pki/ocsp/iss-acme", content=der)
    assert unsupported.status_code == 501
    assert "only local CA" in unsupported.text
    assert http.get(ocsp_env.url).status_code == 400


def test_rate_limit_answers_unauthorized_with_retry_after(ocsp_env_factory, http: httpx.Client) -> None:  # type: ignore[no-untyped-def]
    env: OCSPEnv = ocsp_env_factory(ocsp_rate_limit_per_ip_min=2)
    leaf = env.issue("web")
    der = request_der(env, leaf.certificate)
    assert [post(http, env, der, "").status_code for _ in range(2)] == [200, 200]
    # X-Forwarded-For is ignored: the socket's address counts.
    limited = http.post(env.url, content=der, headers={"x-forwarded-for": "10.9.8.7"})
    assert answer(limited).response_status is ocsp.OCSPResponseStatus.UNAUTHORIZED
    assert limited.headers["retry-after"] == "60"
    env.clock.advance(timedelta(seconds=30))  # one token back (2 per minute)
    assert single_status(post(http, env, der)) is ocsp.OCSPCertStatus.GOOD
