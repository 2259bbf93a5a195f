"""The agent's key layer: key dir rules, key files, key generation, CSRs, key selection (§A1.5-§A1.7,
A4 cases 14, 19, 27, 73, 74)."""

from __future__ import annotations

import ipaddress
import os
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from certctl.agent.keys import (
    KeyDirError,
    KeyFiles,
    KeyMismatch,
    KeyNotFound,
    csr_pem,
    ensure_key_dir_secure,
    generate_private_key,
    key_info,
    marshal_key_and_zeroize,
    private_key_pem,
)
from certctl.pki.keys import KeyAlgorithm, KeyFamily
from tests.agent.fakes import SmallCA


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- ensure_key_dir_secure (§A1.6, A4 case 27) -------------------------------------------------------------


@pytest.mark.parametrize("bad", ["", ".", "/", "./", "//"])
def test_empty_or_root_dirs_are_refused(bad: str) -> None:
    with pytest.raises(KeyDirError, match="refuse empty/root dir"):
        ensure_key_dir_secure(bad)


def test_a_missing_dir_is_created_0700(tmp_path: Path) -> None:
    target = tmp_path / "a" / "keys"
    old_umask = os.umask(0o022)
    try:
        ensure_key_dir_secure(f"{target}/")
    finally:
        os.umask(old_umask)
    assert mode_of(target) == 0o700


@pytest.mark.parametrize(("before", "after"), [(0o700, 0o700), (0o500, 0o500), (0o400, 0o400), (0o755, 0o700)])
@pytest.mark.parametrize("spelling", ["plain", "trailing-slash"])
def test_existing_dir_modes(tmp_path: Path, before: int, after: int, spelling: str) -> None:
    target = tmp_path / "keys"
    target.mkdir()
    os.chmod(target, before)
    ensure_key_dir_secure(str(target) + ("/" if spelling == "trailing-slash" else ""))
    assert mode_of(target) == after
    os.chmod(target, 0o700)


def test_group_or_other_bits_are_tightened(tmp_path: Path) -> None:
    for mode in (0o750, 0o701, 0o770, 0o777):
        target = tmp_path / f"keys-{mode:o}"
        target.mkdir()
        os.chmod(target, mode)
        ensure_key_dir_secure(target)
        assert mode_of(target) == 0o700


def test_a_relative_dot_slash_path_is_cleaned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    ensure_key_dir_secure("./keys")
    assert mode_of(tmp_path / "keys") == 0o700


def test_quirk_a_regular_file_is_chmodded_without_error(tmp_path: Path) -> None:
    target = tmp_path / "not-a-dir"
    target.write_text("x")
    os.chmod(target, 0o644)
    ensure_key_dir_secure(target)
    assert mode_of(target) == 0o700


def test_a_mkdir_failure_mentions_create_agent_key_dir() -> None:
    # procfs refuses new directories, even to root
    with pytest.raises(KeyDirError, match="create agent key dir /proc/certctl-test-keys"):
        ensure_key_dir_secure("/proc/certctl-test-keys")


def test_a_chmod_failure_names_the_path() -> None:
    with pytest.raises(KeyDirError, match="tighten agent key dir /proc/self/net to 0700"):
        ensure_key_dir_secure("/proc/self/net")


def test_a_stat_failure_other_than_missing_names_the_path(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(KeyDirError, match="stat agent key dir") as caught:
        ensure_key_dir_secure(blocker / "keys")
    assert str(blocker / "keys") in str(caught.value)


def test_a_symlink_loop_is_a_stat_failure(tmp_path: Path) -> None:
    looped = tmp_path / "loop"
    looped.symlink_to(looped)
    with pytest.raises(KeyDirError, match="stat agent key dir") as caught:
        ensure_key_dir_secure(looped)
    assert str(looped) in str(caught.value)


# -- marshal_key_and_zeroize (A4 case 27) -------------------------------------------------------------------


def test_the_der_is_zeroed_after_the_callback() -> None:
    seen: list[bytearray] = []
    marshal_key_and_zeroize(ec.generate_private_key(ec.SECP256R1()), seen.append)
    assert seen
    assert len(seen[0]) > 0
    assert all(byte == 0 for byte in seen[0])


def test_the_der_is_zeroed_even_when_the_callback_fails_and_its_error_passes() -> None:
    seen: list[bytearray] = []

    def failing(der: bytearray) -> None:
        seen.append(der)
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        marshal_key_and_zeroize(ec.generate_private_key(ec.SECP256R1()), failing)
    assert all(byte == 0 for byte in seen[0])


def test_a_nil_key_is_an_error() -> None:
    with pytest.raises(ValueError, match="nil private key"):
        marshal_key_and_zeroize(None, lambda der: der)


# -- generation, PEM, key info (A4 cases 14, 19) --------------------------------------------------------------


def test_ec_keys_are_written_as_sec1_ec_private_key_pem() -> None:
    pem = private_key_pem(generate_private_key())
    assert pem.startswith(b"-----BEGIN EC PRIVATE KEY-----\n")
    key = load_pem_private_key(pem, None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.curve.name == "secp256r1"
    assert all(len(line) <= 64 for line in pem.splitlines())


def test_rsa_keys_are_pkcs8() -> None:
    pem = private_key_pem(generate_private_key(KeyAlgorithm.RSA_2048))
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----\n")
    assert isinstance(load_pem_private_key(pem, None), rsa.RSAPrivateKey)


@pytest.mark.parametrize(
    ("algorithm", "family", "bits"),
    [
        (KeyAlgorithm.ECDSA_P256, KeyFamily.ECDSA, 256),
        (KeyAlgorithm.ECDSA_P384, KeyFamily.ECDSA, 384),
        (KeyAlgorithm.RSA_2048, KeyFamily.RSA, 2048),
    ],
)
def test_key_info(algorithm: KeyAlgorithm, family: KeyFamily, bits: int) -> None:
    info = key_info(generate_private_key(algorithm))
    assert (info.family, info.size_bits) == (family, bits)


# -- CSRs (A4 cases 19, 74) ------------------------------------------------------------------------------------


def test_csr_sans_are_classified() -> None:
    pem = csr_pem(generate_private_key(), "a.example.com", ["10.0.0.5", "::1", "a.example.com", "alice@example.com"])
    csr = x509.load_pem_x509_csr(pem.encode())
    assert "CERTIFICATE REQUEST" in pem
    assert csr.is_signature_valid
    sans = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("10.0.0.5"),
        ipaddress.ip_address("::1"),
    ]
    assert sans.get_values_for_type(x509.DNSName) == ["a.example.com"]
    assert sans.get_values_for_type(x509.RFC822Name) == ["alice@example.com"]


def test_csr_uri_sans() -> None:
    pem = csr_pem(generate_private_key(), "workload", ["spiffe://example.org/ns/web"])
    sans = x509.load_pem_x509_csr(pem.encode()).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert sans.value.get_values_for_type(x509.UniformResourceIdentifier) == ["spiffe://example.org/ns/web"]


# -- key files (§A1.5, §A1.7, A4 case 73) ----------------------------------------------------------------------


@pytest.fixture
def key_files(tmp_path: Path) -> KeyFiles:
    return KeyFiles(tmp_path / "keys")


def test_install_writes_0600_in_a_0700_dir(key_files: KeyFiles) -> None:
    key_files.install("mc-web", private_key_pem(generate_private_key()))
    path = key_files.key_path("mc-web")
    assert mode_of(path) == 0o600
    assert mode_of(key_files.key_dir) == 0o700
    assert path.read_bytes().startswith(b"-----BEGIN EC PRIVATE KEY-----")
    assert not key_files.previous_path("mc-web").exists()
    assert [p.name for p in key_files.key_dir.iterdir()] == ["mc-web.key"]  # no temp left behind


def test_a_new_key_keeps_the_previous_one_as_prev(key_files: KeyFiles) -> None:
    first, second = private_key_pem(generate_private_key()), private_key_pem(generate_private_key())
    key_files.install("mc-web", first)
    key_files.install("mc-web", second)
    assert key_files.key_path("mc-web").read_bytes() == second
    assert key_files.previous_path("mc-web").read_bytes() == first
    assert mode_of(key_files.previous_path("mc-web")) == 0o600


def test_restore_previous_puts_the_deployed_key_back(key_files: KeyFiles) -> None:
    first, second = private_key_pem(generate_private_key()), private_key_pem(generate_private_key())
    key_files.install("mc-web", first)
    key_files.install("mc-web", second)
    key_files.restore_previous("mc-web")
    assert key_files.key_path("mc-web").read_bytes() == first
    assert not key_files.previous_path("mc-web").exists()


def test_restore_previous_without_a_previous_key_removes_the_unused_one(key_files: KeyFiles) -> None:
    key_files.install("mc-web", private_key_pem(generate_private_key()))
    key_files.restore_previous("mc-web")
    assert not key_files.key_path("mc-web").exists()


def test_the_key_matching_the_certificate_is_chosen_even_when_it_is_prev(key_files: KeyFiles) -> None:
    ca = SmallCA()
    deployed_key, new_key = generate_private_key(), generate_private_key()
    deployed_cert = x509.load_pem_x509_certificate(ca.sign(deployed_key.public_key(), "web").encode())
    new_cert = x509.load_pem_x509_certificate(ca.sign(new_key.public_key(), "web").encode())
    key_files.install("mc-web", private_key_pem(deployed_key))
    key_files.install("mc-web", private_key_pem(new_key))  # issuance started; the old cert is still live
    assert key_files.matching_key("mc-web", deployed_cert).encode() == private_key_pem(deployed_key)
    assert key_files.matching_key("mc-web", new_cert).encode() == private_key_pem(new_key)


def test_no_matching_key_names_the_serial(key_files: KeyFiles) -> None:
    ca = SmallCA()
    cert = x509.load_pem_x509_certificate(ca.sign(generate_private_key().public_key(), "web").encode())
    key_files.install("mc-web", private_key_pem(generate_private_key()))
    with pytest.raises(KeyMismatch, match=f"no private key matching certificate {cert.serial_number:x}"):
        key_files.matching_key("mc-web", cert)


def test_no_key_file_at_all_is_a_key_read_failure(key_files: KeyFiles) -> None:
    cert = x509.load_pem_x509_certificate(SmallCA().sign(generate_private_key().public_key(), "web").encode())
    with pytest.raises(KeyNotFound, match="key read failed"):
        key_files.matching_key("mc-web", cert)


def test_a_delivered_key_is_installed_once(key_files: KeyFiles) -> None:
    pem = private_key_pem(generate_private_key()).decode()
    key_files.install_delivered("mc-web", pem)
    key_files.install_delivered("mc-web", pem)
    assert key_files.key_path("mc-web").read_text() == pem
    assert not key_files.previous_path("mc-web").exists()
    assert mode_of(key_files.key_path("mc-web")) == 0o600


@pytest.mark.parametrize("bad", ["../etc/passwd", "a/b", ".hidden", "", "x" * 200])
def test_certificate_ids_cannot_escape_the_key_dir(key_files: KeyFiles, bad: str) -> None:
    with pytest.raises(ValueError, match="not usable as a key file name"):
        key_files.key_path(bad)
