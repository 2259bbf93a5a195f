"""CA keys in a PKCS#11 token (SoftHSM2 + python-pkcs11): keys are made and used in the token, signatures
verify with cryptography and the openssl CLI, and no key byte ever reaches memory, the database or an export.

The SoftHSM session fixtures (`softhsm`, `pin`) live in tests/hsm.py, shared with every test needing a token.
Skips without softhsm2 or python-pkcs11, unless CERTCTL_REQUIRE_PEERS=1 (then fails).
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID
from sqlalchemy import select

from certctl.certificates.processor import IssuanceProcessor, mark_certificate_failed
from certctl.clock import FrozenClock
from certctl.context import AppContext
from certctl.issuers.connectors import ConnectorRegistry
from certctl.issuers.models import IssuerCAMaterial
from certctl.jobs.service import JobQueue
from certctl.pki import pkcs11
from certctl.pki.connector import ConnectorDeps, IssueRequest
from certctl.pki.csr import build_csr
from certctl.pki.errors import InvalidCAMaterial, IssuerConfigError
from certctl.pki.keys import KeyAlgorithm, KeyNotExportable, SigningKey
from certctl.pki.local_ca import LocalCA
from certctl.pki.local_ca_config import LocalCAConfig
from certctl.pki.pkcs11 import Pkcs11Error, Pkcs11Reference, generate_signing_key, load_signing_key
from tests.conftest import client_for
from tests.factories import seed_inventory
from tests.hsm import MODULE, PIN_TOKEN, USER_PIN
from tests.hsm import new_label as _label
from tests.hsm import token_ref as _ref
from tests.pki.factories import NOW, ec_key, name


@pytest.fixture(scope="session")
def token_p256(softhsm: Path) -> str:
    """One P-256 key generated in the token for the session; its reference."""
    ref = _ref("session-p256")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(pkcs11.PIN_ENV, USER_PIN)
        generate_signing_key(ref, KeyAlgorithm.ECDSA_P256)
    return ref


def _openssl_verify(tmp_path: Path, ca_pem: str, cert_pem: str, at: int) -> None:
    (tmp_path / "ca.pem").write_text(ca_pem)
    (tmp_path / "cert.pem").write_text(cert_pem)
    result = subprocess.run(
        ["openssl", "verify", "-attime", str(at), "-CAfile", "ca.pem", "cert.pem"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# -- the reference ------------------------------------------------------------------------------------------


def test_reference_parses_path_and_query_attributes_and_percent_encoding() -> None:
    parsed = Pkcs11Reference.parse(
        "pkcs11:token=My%20Token;object=root%3Bca?module-path=/usr/lib/x.so&pin-source=file:/run/pin"
    )
    assert parsed == Pkcs11Reference(module="/usr/lib/x.so", token="My Token", object="root;ca", pin_file="/run/pin")
    assert Pkcs11Reference.parse(str(parsed)) == parsed
    assert Pkcs11Reference.parse("pkcs11:module=/m.so;token=t;object=o;pin-source=file:///run/pin").pin_file == (
        "/run/pin"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("token=t;object=o", "starts with 'pkcs11:'"),
        ("pkcs11:module=/m.so;token=t", "lacks object"),
        ("pkcs11:module=/m.so;token=t;object=o;pin-value=s3cret", "PIN is never part of the reference"),
        ("pkcs11:module=/m.so;token=t;object=o;slot=1", "unknown PKCS#11 reference attribute 'slot'"),
        ("pkcs11:module=/m.so;token=t;token=u;object=o", "given twice"),
        ("pkcs11:module=/m.so;token=t;object=o;type=public", "type must be 'private'"),
        ("pkcs11:module=/m.so;token=t;object=o;pin-source=/run/pin", "pin-source must be file:<path>"),
    ],
)
def test_bad_references_are_refused_with_the_reason(text: str, expected: str) -> None:
    with pytest.raises(Pkcs11Error) as caught:
        Pkcs11Reference.parse(text)
    assert expected in str(caught.value)
    assert "s3cret" not in str(caught.value)
    assert caught.value.field == "ca_key_pkcs11"


def test_reference_whose_module_is_missing_is_refused() -> None:
    with pytest.raises(Pkcs11Error, match=r"module /nowhere/libp11\.so does not exist"):
        pkcs11.parse_reference("pkcs11:module=/nowhere/libp11.so;token=t;object=o")
    with pytest.raises(Pkcs11Error, match="absolute path"):
        pkcs11.parse_reference("pkcs11:module=libsofthsm2.so;token=t;object=o")


def test_config_takes_a_reference_instead_of_a_key_path(tmp_path: Path) -> None:
    if not Path(MODULE).is_file():
        pytest.skip("needs the SoftHSM module file")
    config = LocalCAConfig.from_mapping({"ca_key_pkcs11": _ref("x"), "ca_cert_path": str(tmp_path / "ca.pem")})
    assert config.sub_ca_mode
    assert not LocalCAConfig.from_mapping({"ca_key_pkcs11": _ref("x")}).sub_ca_mode
    with pytest.raises(IssuerConfigError, match="ca_key_path or ca_key_pkcs11, not both"):
        LocalCAConfig.from_mapping({"ca_key_pkcs11": _ref("x"), "ca_key_path": "/k.pem", "ca_cert_path": "/c.pem"})


# -- keys in the token ------------------------------------------------------------------------------------


def test_generated_p256_key_signs_a_self_signed_ca_that_verifies(token_p256: str, pin: str, tmp_path: Path) -> None:
    key = load_signing_key(token_p256)
    assert (key.algorithm, key.key_reference) == (KeyAlgorithm.ECDSA_P256, token_p256)
    ca = LocalCA.create_self_signed(clock=FrozenClock(NOW), key=key, common_name="HSM Root")
    certificate = ca.certificate
    certificate.verify_directly_issued_by(certificate)
    assert key.matches(certificate.public_key())
    _openssl_verify(tmp_path, ca.ca_chain_pem(), ca.ca_chain_pem(), int(NOW.timestamp()))


def test_private_half_is_sensitive_and_never_extractable(token_p256: str, pin: str) -> None:
    import pkcs11 as p11

    reference = Pkcs11Reference.parse(token_p256)

    def attributes(session: Any) -> tuple[bool, bool]:
        private = session.get_key(object_class=p11.ObjectClass.PRIVATE_KEY, label=reference.object)
        return bool(private[p11.Attribute.SENSITIVE]), bool(private[p11.Attribute.EXTRACTABLE])

    assert pkcs11._session_for(reference).run(attributes) == (True, False)


@pytest.mark.parametrize("algorithm", [KeyAlgorithm.ECDSA_P384, KeyAlgorithm.RSA_2048])
def test_leaf_issued_by_a_token_backed_ca_verifies(algorithm: KeyAlgorithm, pin: str, tmp_path: Path) -> None:
    key = generate_signing_key(_ref(_label()), algorithm)
    clock = FrozenClock(NOW)
    ca = LocalCA.create_self_signed(clock=clock, key=key, key_algorithm=algorithm)
    csr = build_csr(SigningKey.generate(), "web.example.com", ["web.example.com"])
    issued = ca.issue(IssueRequest(csr_pem=csr, common_name="web.example.com", sans=("web.example.com",)))
    leaf = x509.load_pem_x509_certificate(issued.cert_pem.encode())
    leaf.verify_directly_issued_by(ca.certificate)
    assert isinstance(leaf.signature_hash_algorithm, hashes.SHA384 if algorithm.size_bits == 384 else hashes.SHA256)
    _openssl_verify(tmp_path, ca.ca_chain_pem(), issued.cert_pem, int(NOW.timestamp()))


def test_crl_and_ocsp_response_signed_in_the_token_verify(token_p256: str, pin: str, tmp_path: Path) -> None:
    key = load_signing_key(token_p256)
    ca = LocalCA.create_self_signed(clock=FrozenClock(NOW), key=key)
    issuer = ca.certificate
    revoked = x509.RevokedCertificateBuilder().serial_number(42).revocation_date(NOW).build()
    crl = key.sign_crl(
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.subject)
        .last_update(NOW)
        .next_update(NOW + timedelta(days=1))
        .add_revoked_certificate(revoked)
        .add_extension(x509.CRLNumber(1), critical=False)
    )
    assert crl.is_signature_valid(issuer.public_key())
    (tmp_path / "crl.pem").write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "ca.pem").write_text(ca.ca_chain_pem())
    checked = subprocess.run(
        ["openssl", "crl", "-in", "crl.pem", "-CAfile", "ca.pem", "-noout"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert "verify OK" in checked.stdout + checked.stderr

    csr = build_csr(SigningKey.generate(), "ocsp.example.com", ["ocsp.example.com"])
    leaf = x509.load_pem_x509_certificate(
        ca.issue(IssueRequest(csr_pem=csr, common_name="ocsp.example.com", sans=())).cert_pem.encode()
    )
    response = key.sign_ocsp(
        ocsp.OCSPResponseBuilder()
        .add_response(
            cert=leaf,
            issuer=issuer,
            algorithm=hashes.SHA1(),  # noqa: S303 - the CertID hash OCSP clients send (RFC 6960 §4.1.1)
            cert_status=ocsp.OCSPCertStatus.GOOD,
            this_update=NOW,
            next_update=NOW + timedelta(hours=1),
            revocation_time=None,
            revocation_reason=None,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, issuer)
    )
    public = issuer.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(response.signature, response.tbs_response_bytes, ec.ECDSA(hashes.SHA256()))


def test_token_key_cannot_be_exported(token_p256: str, pin: str) -> None:
    key = load_signing_key(token_p256)
    with pytest.raises(KeyNotExportable):
        key.private_key_pem()
    ca = LocalCA.create_self_signed(clock=FrozenClock(NOW), key=key)
    material = ca.export(b"password")
    assert (material.key_pem, material.key_reference) == (b"", token_p256)
    assert "PRIVATE KEY" not in repr(material) + material.cert_pem
    raw = pkcs11.Pkcs11ECPrivateKey(
        Pkcs11Reference.parse(token_p256), pkcs11._session_for(Pkcs11Reference.parse(token_p256)), key.public_key()
    )  # type: ignore[arg-type]
    with pytest.raises(KeyNotExportable):
        raw.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    with pytest.raises(KeyNotExportable):
        raw.private_numbers()


def test_signing_from_many_threads_at_once_gives_valid_signatures(token_p256: str, pin: str) -> None:
    key = load_signing_key(token_p256)
    ca = LocalCA.create_self_signed(clock=FrozenClock(NOW), key=key)
    leaves: list[x509.Certificate] = []
    errors: list[BaseException] = []

    def issue() -> None:
        try:
            for index in range(5):
                csr = build_csr(SigningKey.generate(), f"t{index}.example.com", [])
                pem = ca.issue(IssueRequest(csr_pem=csr, common_name=f"t{index}.example.com", sans=())).cert_pem
                leaves.append(x509.load_pem_x509_certificate(pem.encode()))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=issue) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(leaves) == 40
    for leaf in leaves:
        leaf.verify_directly_issued_by(ca.certificate)


# python-pkcs11 reports the dead handle once more while finalising a search on it; that is the point here.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_lost_session_is_reopened(token_p256: str, pin: str) -> None:
    key = load_signing_key(token_p256)
    session = pkcs11._session_for(Pkcs11Reference.parse(token_p256))
    session.run(lambda s: s.close())  # as if the token dropped it under us
    ca = LocalCA.create_self_signed(clock=FrozenClock(NOW), key=key)
    ca.certificate.verify_directly_issued_by(ca.certificate)


def test_wrong_pin_missing_pin_and_missing_key_are_clear_errors(
    softhsm: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ref = _ref(_label(), token=PIN_TOKEN)
    monkeypatch.delenv(pkcs11.PIN_ENV, raising=False)
    with pytest.raises(Pkcs11Error, match="no PIN for token 'certctl-pin': set CERTCTL_PKCS11_PIN"):
        load_signing_key(ref)
    monkeypatch.setenv(pkcs11.PIN_ENV, "9999")
    with pytest.raises(Pkcs11Error, match="the PIN for token 'certctl-pin' is wrong") as caught:
        generate_signing_key(ref, KeyAlgorithm.ECDSA_P256)
    assert "9999" not in str(caught.value)

    # The right PIN from a pin-source file (the environment's wrong PIN is not used then).
    pin_file = tmp_path / "pin"
    pin_file.write_text(USER_PIN + "\n")
    with_file = ref + f";pin-source=file:{pin_file}"
    with pytest.raises(Pkcs11Error, match="holds no private key labelled"):
        load_signing_key(with_file)
    generate_signing_key(with_file, KeyAlgorithm.ECDSA_P256)
    assert load_signing_key(with_file).algorithm is KeyAlgorithm.ECDSA_P256
    with pytest.raises(Pkcs11Error, match="already holds a key labelled"):
        generate_signing_key(with_file, KeyAlgorithm.ECDSA_P256)
    with pytest.raises(Pkcs11Error, match="no token labelled 'absent'"):
        load_signing_key(_ref("x", token="absent", extra=f";pin-source=file:{pin_file}"))


def test_sub_ca_with_certificate_file_and_key_in_token(pin: str, tmp_path: Path) -> None:
    ref = _ref(_label())
    key = generate_signing_key(ref, KeyAlgorithm.ECDSA_P256)
    root_key = ec_key()
    root = (
        x509.CertificateBuilder()
        .subject_name(name("Software Root"))
        .issuer_name(name("Software Root"))
        .public_key(root_key.public_key())
        .serial_number(1)
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(root_key, hashes.SHA256())
    )
    sub = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "HSM Issuing CA")]))
        .issuer_name(root.subject)
        .public_key(key.public_key())
        .serial_number(2)
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(root_key, hashes.SHA256())
    )
    chain = tmp_path / "sub.pem"
    chain.write_bytes(sub.public_bytes(serialization.Encoding.PEM) + root.public_bytes(serialization.Encoding.PEM))
    deps = ConnectorDeps(clock=FrozenClock(NOW), issuer_id="iss-hsm-sub")
    ca = LocalCA.build({"ca_cert_path": str(chain), "ca_key_pkcs11": ref}, deps)
    issued = ca.issue(
        IssueRequest(
            csr_pem=build_csr(SigningKey.generate(), "a.example.com", []), common_name="a.example.com", sans=()
        )
    )
    (tmp_path / "root.pem").write_bytes(root.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "leaf.pem").write_text(issued.cert_pem + sub.public_bytes(serialization.Encoding.PEM).decode())
    result = subprocess.run(
        [
            "openssl",
            "verify",
            "-attime",
            str(int(NOW.timestamp())),
            "-CAfile",
            "root.pem",
            "-untrusted",
            "leaf.pem",
            "leaf.pem",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr

    other = generate_signing_key(_ref(_label()), KeyAlgorithm.ECDSA_P256)
    assert not other.matches(sub.public_key())
    with pytest.raises(InvalidCAMaterial, match="does not match"):
        LocalCA.build({"ca_cert_path": str(chain), "ca_key_pkcs11": other.key_reference}, deps)


# -- through the API ---------------------------------------------------------------------------------------


@pytest.fixture
def api(context_factory: Any, pin: str) -> Iterator[tuple[Any, AppContext, IssuanceProcessor, FrozenClock]]:
    clock = FrozenClock()
    context: AppContext = context_factory(clock, keygen_mode="server")
    seed_inventory(context)
    registry = ConnectorRegistry(context.db, context.cipher, clock)
    queue = JobQueue(context.db, clock, on_terminal_failure=mark_certificate_failed)
    processor = IssuanceProcessor(context.db, clock, context.cipher, registry, queue, worker_id="w1")
    with client_for(context) as client:
        yield client, context, processor, clock


def test_token_backed_issuer_issues_through_the_api_and_stores_no_key(api: Any, tmp_path: Path) -> None:
    client, context, processor, clock = api
    ref = _ref(_label())
    created = client.post(
        "/api/v1/issuers",
        json={"id": "iss-hsm", "name": "HSM CA", "type": "GenericCA", "config": {"ca_key_pkcs11": ref}},
    )
    assert created.status_code == 201, created.text
    body = {"owner_id": "o-alice", "team_id": "t-web", "issuer_id": "iss-hsm", "renewal_policy_id": "rp-default"}
    cert = client.post("/api/v1/certificates", json={"name": "web", "common_name": "web.example.com"} | body).json()
    summary = processor.run(clock.now())
    assert (summary.claimed, summary.completed) == (1, 1)
    assert client.get(f"/api/v1/certificates/{cert['id']}").json()["status"] == "Active"

    pem = client.get(f"/api/v1/certificates/{cert['id']}/export/pem").json()
    _openssl_verify(tmp_path, pem["chain_pem"], pem["cert_pem"], int(clock.now().timestamp()))
    ca_cert = x509.load_pem_x509_certificate(pem["chain_pem"].encode())
    assert load_signing_key(ref).matches(ca_cert.public_key())  # the key generated in the token signed it

    with context.db.begin() as session:
        row = session.scalars(select(IssuerCAMaterial).where(IssuerCAMaterial.issuer_id == "iss-hsm")).one()
        assert bytes(row.encrypted_key) == b""
        assert "PRIVATE KEY" not in row.cert_pem
        assert x509.load_pem_x509_certificate(row.cert_pem.encode()) == ca_cert
    # Another replica rebuilds the same CA from the stored certificate and the token.
    replica = ConnectorRegistry(context.db, context.cipher, clock).get("iss-hsm")
    assert isinstance(replica, LocalCA)
    assert replica.certificate == ca_cert


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("pkcs11:token=t;object=o", "lacks module"),
        ("pkcs11:module=/nowhere/lib.so;token=t;object=o", "does not exist"),
        ("file:/etc/key.pem", "starts with 'pkcs11:'"),
    ],
)
def test_bad_reference_on_issuer_create_is_a_400(api: Any, reference: str, expected: str) -> None:
    client = api[0]
    response = client.post(
        "/api/v1/issuers", json={"name": "HSM CA", "type": "GenericCA", "config": {"ca_key_pkcs11": reference}}
    )
    assert response.status_code == 400, response.text
    assert expected in response.json()["message"]
    assert response.json()["message"].startswith("config.ca_key_pkcs11: ")
