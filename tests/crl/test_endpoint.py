"""The CRL and CA certificate distribution points through the real app (SQLite and PostgreSQL), checked
with openssl and pkilint: what a relying party fetches, and what it concludes from it."""

from __future__ import annotations

import re
import subprocess
from datetime import timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from fastapi.testclient import TestClient

from certctl.clock import FrozenClock
from certctl.context import AppContext
from tests.conftest import client_for
from tests.crl.conftest import (
    ISSUER,
    Ledger,
    add_certificate,
    add_foreign_issuer,
    issue_leaf,
    local_ca,
    require_openssl,
)
from tests.crl.lint import errors, lint_crl
from tests.pki.test_interop import assert_clean, lint

CRL_URL = f"/.well-known/pki/crl/{ISSUER}"
CA_URL = f"/.well-known/pki/ca/{ISSUER}"
WEAK_ETAG = re.compile(r'W/"[0-9a-f]{32}"')


def openssl_serial(certificate: x509.Certificate) -> str:
    """How `openssl crl -text` prints a serial: upper-case hex in whole octets."""
    digits = f"{certificate.serial_number:X}"
    return digits.zfill(len(digits) + len(digits) % 2)


def test_the_crl_is_der_with_a_weak_etag_and_cache_headers(seeded: AppContext, client: TestClient) -> None:
    response = client.get(CRL_URL)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pkix-crl"
    assert WEAK_ETAG.fullmatch(response.headers["etag"])
    assert response.headers["cache-control"] == "public, max-age=3600, must-revalidate"
    crl = x509.load_der_x509_crl(response.content)
    assert crl.is_signature_valid(local_ca(seeded).certificate.public_key())  # type: ignore[arg-type]


def test_a_matching_if_none_match_gets_304_and_another_gets_the_crl(seeded: AppContext, client: TestClient) -> None:
    etag = client.get(CRL_URL).headers["etag"]
    not_modified = client.get(CRL_URL, headers={"If-None-Match": etag})
    assert (not_modified.status_code, not_modified.content, not_modified.headers["etag"]) == (304, b"", etag)
    assert client.get(CRL_URL, headers={"If-None-Match": 'W/"00"'}).status_code == 200
    assert client.get(CRL_URL, headers={"If-None-Match": f'W/"00", {etag}'}).status_code == 304


def test_pem_on_request_by_query_or_accept(seeded: AppContext, client: TestClient) -> None:
    der = client.get(CRL_URL).content
    for response in (
        client.get(f"{CRL_URL}?format=pem"),
        client.get(CRL_URL, headers={"Accept": "application/x-pem-file"}),
    ):
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/x-pem-file"
        assert response.text.startswith("-----BEGIN X509 CRL-----\n")
        assert x509.load_pem_x509_crl(response.content).public_bytes(Encoding.DER) == der
        assert response.headers["etag"] != client.get(CRL_URL).headers["etag"]  # one validator per representation
    assert client.get(f"{CRL_URL}?format=der").content == der
    bad = client.get(f"{CRL_URL}?format=xml")
    assert bad.status_code == 400
    assert "format=pem" in bad.text


def test_unknown_issuers_get_404_and_issuers_without_crls_get_501(seeded: AppContext, client: TestClient) -> None:
    add_foreign_issuer(seeded)
    assert client.get("/.well-known/pki/crl/iss-nope").status_code == 404
    assert client.get("/.well-known/pki/crl/iss-acme").status_code == 501
    assert client.get("/.well-known/pki/ca/iss-nope").status_code == 404
    assert client.get("/.well-known/pki/ca/iss-acme").status_code == 501
    assert client.post(CRL_URL, content=b"x").status_code == 405
    assert client.get(f"{CRL_URL}/extra").status_code == 404


def test_head_answers_like_get_without_a_body(seeded: AppContext, client: TestClient) -> None:
    response = client.head(CRL_URL)
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["etag"] == client.get(CRL_URL).headers["etag"]


def test_a_revocation_reaches_readers_within_a_second(
    seeded: AppContext, ledger: Ledger, client: TestClient, clock: FrozenClock
) -> None:
    before = x509.load_der_x509_crl(client.get(CRL_URL).content)
    serial = ledger.revoke(reason="cessationOfOperation")
    clock.advance(timedelta(seconds=1))
    after = x509.load_der_x509_crl(client.get(CRL_URL).content)
    number = after.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert number == before.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number + 1
    assert [entry.serial_number for entry in after] == [serial]


def test_the_ca_certificate_as_der_pem_and_chain(seeded: AppContext, client: TestClient) -> None:
    certificate = local_ca(seeded).certificate
    der = client.get(CA_URL)
    assert (der.status_code, der.headers["content-type"]) == (200, "application/pkix-cert")
    assert der.content == certificate.public_bytes(Encoding.DER)
    assert "public" in der.headers["cache-control"]
    assert client.get(CA_URL, headers={"If-None-Match": der.headers["etag"]}).status_code == 304
    pem = client.get(f"{CA_URL}?format=pem")
    assert (pem.headers["content-type"], pem.content) == (
        "application/x-pem-file",
        certificate.public_bytes(Encoding.PEM),
    )
    chain = client.get(f"{CA_URL}/chain")
    assert chain.status_code == 200
    assert x509.load_pem_x509_certificates(chain.content)[0] == certificate


def test_openssl_refuses_a_revoked_leaf_and_accepts_the_others(
    seeded: AppContext, client: TestClient, tmp_path: Path
) -> None:
    openssl = require_openssl()
    revoked_leaf, good_leaf = issue_leaf(seeded, "revoked.example.com"), issue_leaf(seeded, "good.example.com")
    add_certificate(seeded, "mc-revoked", revoked_leaf)
    add_certificate(seeded, "mc-good", good_leaf)
    answer = client.post("/api/v1/certificates/mc-revoked/revoke", json={"reason": "keyCompromise"})
    assert answer.status_code == 200, answer.text

    files = {
        "ca.pem": client.get(f"{CA_URL}?format=pem").content,
        "crl.pem": client.get(f"{CRL_URL}?format=pem").content,
        "crl.der": client.get(CRL_URL).content,
        "revoked.pem": revoked_leaf.public_bytes(Encoding.PEM),
        "good.pem": good_leaf.public_bytes(Encoding.PEM),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([openssl, *args], capture_output=True, text=True, cwd=tmp_path)

    text = run("crl", "-inform", "DER", "-in", "crl.der", "-text", "-noout").stdout
    assert f"Serial Number: {openssl_serial(revoked_leaf)}" in text
    assert "Key Compromise" in text
    assert re.search(r"X509v3 CRL Number: \n\s+\d+", text)
    assert openssl_serial(good_leaf) not in text

    verify = ("verify", "-crl_check", "-CAfile", "ca.pem", "-CRLfile", "crl.pem")
    refused = run(*verify, "revoked.pem")
    assert refused.returncode != 0
    assert "certificate revoked" in refused.stdout + refused.stderr
    accepted = run(*verify, "good.pem")
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr


def test_pkilint_finds_no_errors_in_the_served_crl_and_ca_certificate(
    seeded: AppContext, ledger: Ledger, client: TestClient
) -> None:
    ledger.revoke(reason="keyCompromise")
    ledger.revoke()
    assert errors(lint_crl(client.get(CRL_URL).content)) == []
    assert_clean(lint(x509.load_der_x509_certificate(client.get(CA_URL).content)))


def test_the_admin_view_shows_each_local_ca_cache_and_its_builds(seeded: AppContext, client: TestClient) -> None:
    add_foreign_issuer(seeded)
    empty = client.get("/api/v1/admin/crl/cache").json()
    assert empty["total"] == 1
    assert empty["issuers"][0] | {"events": []} == {
        "issuer_id": ISSUER,
        "cache_present": False,
        "crl_number": None,
        "this_update": None,
        "next_update": None,
        "generated_at": None,
        "generation_duration_ms": None,
        "revoked_count": None,
        "is_stale": True,
        "events": [],
    }
    client.get(CRL_URL)
    entry = client.get("/api/v1/admin/crl/cache").json()["issuers"][0]
    assert entry["cache_present"] is True
    assert entry["is_stale"] is False
    assert (entry["crl_number"], entry["revoked_count"]) == (1, 0)
    assert set(entry) >= {"this_update", "next_update", "generated_at", "generation_duration_ms"}
    assert [(event["trigger"], event["crl_number"], event["error"]) for event in entry["events"]] == [("read", 1, None)]


def test_the_admin_view_is_for_admins_only(seeded: AppContext) -> None:
    with client_for(seeded, "operator") as operator:
        assert operator.get("/api/v1/admin/crl/cache").status_code == 403
    with client_for(seeded, None) as anonymous:
        assert anonymous.get("/api/v1/admin/crl/cache").status_code == 401
        assert anonymous.get(CRL_URL).status_code == 200  # the distribution point needs no credentials
