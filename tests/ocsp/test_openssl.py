"""`openssl ocsp` against the responder on a real uvicorn server, on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path

import httpx
from cryptography.x509 import ocsp

from certctl.ocsp.metrics import OCSP_COUNTERS, OCSPEvent
from certctl.ocsp.responder import parse_request
from certctl.ocsp.service import OCSPService
from tests.conftest import API_KEYS
from tests.ocsp.conftest import ISSUER, Leaf, OCSPEnv, require_openssl


def openssl_ocsp(env: OCSPEnv, leaf: Leaf, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [require_openssl(), "ocsp", "-issuer", str(env.ca_path), "-cert", str(leaf.path)]
    command += ["-url", env.url, "-CAfile", str(env.ca_path), "-resp_text", *extra]
    return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)


def status_line(result: subprocess.CompletedProcess[str], leaf: Leaf) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Response verify OK" in result.stderr, result.stderr
    return next(line for line in result.stdout.splitlines() if line.startswith(f"{leaf.path}:"))


def revoke_through_api(env: OCSPEnv, leaf: Leaf, reason: str) -> None:
    response = httpx.post(
        f"{env.base_url}/api/v1/certificates/{leaf.certificate_id}/revoke",
        json={"reason": reason},
        headers={"Authorization": f"Bearer {API_KEYS['admin'][0]}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text


def test_good_then_revoked_with_its_reason_after_a_revoke_through_the_api(ocsp_env: OCSPEnv) -> None:
    leaf = ocsp_env.issue("web")
    assert status_line(openssl_ocsp(ocsp_env, leaf, "-no_nonce"), leaf).endswith(": good")  # now cached
    revoke_through_api(ocsp_env, leaf, "keyCompromise")

    for extra in ((), ("-no_nonce",)):
        result = openssl_ocsp(ocsp_env, leaf, *extra)
        assert status_line(result, leaf).endswith(": revoked")
        assert "Reason: keyCompromise" in result.stdout
        assert "Revocation Time:" in result.stdout


def test_the_nonce_is_echoed_and_never_cached(ocsp_env: OCSPEnv) -> None:
    leaf = ocsp_env.issue("web")
    before = OCSP_COUNTERS.value(OCSPEvent.NONCE_ECHOED), OCSP_COUNTERS.value(OCSPEvent.CACHE_HIT)
    for _ in range(2):
        result = openssl_ocsp(ocsp_env, leaf)  # openssl sends a nonce and checks the echo by default
        assert status_line(result, leaf).endswith(": good")
        assert "OCSP Nonce" in result.stdout
        assert "WARNING" not in result.stderr, result.stderr
    after = OCSP_COUNTERS.value(OCSPEvent.NONCE_ECHOED), OCSP_COUNTERS.value(OCSPEvent.CACHE_HIT)
    assert (after[0] - before[0], after[1] - before[1]) == (2, 0)


def test_no_nonce_answers_come_from_the_cache(ocsp_env: OCSPEnv, tmp_path: Path) -> None:
    leaf = ocsp_env.issue("web")
    hits = OCSP_COUNTERS.value(OCSPEvent.CACHE_HIT)
    for name in ("first.der", "second.der"):
        result = openssl_ocsp(ocsp_env, leaf, "-no_nonce", "-respout", str(tmp_path / name))
        assert status_line(result, leaf).endswith(": good")
    # ECDSA signatures are randomised: identical bytes mean the second answer was not signed again.
    assert (tmp_path / "first.der").read_bytes() == (tmp_path / "second.der").read_bytes()
    assert OCSP_COUNTERS.value(OCSPEvent.CACHE_HIT) - hits == 1


def test_a_replica_notices_a_revocation_within_a_second(ocsp_env: OCSPEnv, tmp_path: Path) -> None:
    """A second service on the same database stands for another replica: it never hears `invalidate`."""
    leaf = ocsp_env.issue("web")
    context = ocsp_env.context
    replica = OCSPService(
        context.db,
        context.connectors,
        context.cipher,
        ocsp_env.clock,
        responder_validity=timedelta(days=30),
        rotation_grace=timedelta(days=7),
        rate_limit_per_ip_min=0,
    )
    subprocess.run(
        [
            require_openssl(),
            "ocsp",
            "-issuer",
            str(ocsp_env.ca_path),
            "-cert",
            str(leaf.path),
            "-no_nonce",
            "-reqout",
            str(tmp_path / "req.der"),
        ],
        check=True,
        capture_output=True,
    )
    query = parse_request((tmp_path / "req.der").read_bytes())
    assert replica.answer(ISSUER, query).status == "good"
    assert replica.cached(ISSUER, query) is not None

    revoke_through_api(ocsp_env, leaf, "superseded")
    ocsp_env.clock.advance(timedelta(milliseconds=999))
    assert replica.cached(ISSUER, query) is not None  # within the second: the old answer may still be served
    ocsp_env.clock.advance(timedelta(milliseconds=1))
    assert replica.cached(ISSUER, query) is None  # the revision must be re-read first
    answer = replica.answer(ISSUER, query)
    response = ocsp.load_der_ocsp_response(answer.der)
    assert (answer.status, response.revocation_reason) == ("revoked", ocsp.x509.ReasonFlags.superseded)
