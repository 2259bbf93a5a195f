"""Encryption at rest (core.md §13.2): the v3 format written, v2/v1 read, and the start-up key checks."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from sqlalchemy import create_engine, select, text
from sqlalchemy.pool import NullPool

from certctl.bootstrap import DEFAULT_POLICY_ID, prepare
from certctl.config import Settings
from certctl.db.engine import Database
from certctl.errors import ConfigurationError
from certctl.issuers.models import ConfigSource, Issuer, IssuerType
from certctl.policies.models import RenewalPolicy
from certctl.security.encryption import (
    KEY_FILE_NAME,
    MIN_PASSPHRASE_LEN,
    ConfigCipher,
    DecryptionFailed,
    load_or_create_passphrase,
)

KEY_A = "passphrase-A-0123456789abcdef0123456789"
KEY_B = "passphrase-B-0123456789abcdef0123456789"
SECRET = b'{"api_key": "vault-token-123", "url": "https://vault.example:8200"}'
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _derive(passphrase: str, salt: bytes, iterations: int) -> bytes:
    return PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=salt, iterations=iterations).derive(
        passphrase.encode()
    )


def v2_blob(passphrase: str, plaintext: bytes, nonce: bytes | None = None) -> bytes:
    """0x02 || salt(16) || nonce(12) || AES-256-GCM(ct+tag), PBKDF2-HMAC-SHA256 100 000 rounds."""
    salt, nonce = os.urandom(16), nonce or os.urandom(12)
    return b"\x02" + salt + nonce + AESGCM(_derive(passphrase, salt, 100_000)).encrypt(nonce, plaintext, None)


def v1_blob(passphrase: str, plaintext: bytes, nonce: bytes | None = None) -> bytes:
    """nonce(12) || AES-256-GCM(ct+tag), key from the fixed salt "certctl-config-encryption-v1", 100 000 rounds."""
    nonce = nonce or os.urandom(12)
    key = _derive(passphrase, b"certctl-config-encryption-v1", 100_000)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, None)


@pytest.fixture(scope="module")
def cipher_a() -> ConfigCipher:
    return ConfigCipher(KEY_A)


@pytest.fixture(scope="module")
def v3_a(cipher_a: ConfigCipher) -> bytes:
    return cipher_a.encrypt(SECRET)


# --- ConfigCipher ----------------------------------------------------------------------------------


def test_encrypt_then_decrypt_round_trips(cipher_a: ConfigCipher, v3_a: bytes) -> None:
    assert cipher_a.decrypt(v3_a) == SECRET
    assert cipher_a.decrypt(cipher_a.encrypt(b"")) == b""


def test_a_fresh_cipher_with_the_same_passphrase_decrypts(v3_a: bytes) -> None:
    assert ConfigCipher(KEY_A).decrypt(v3_a) == SECRET


def test_v3_layout_is_version_salt_nonce_ciphertext_and_tag(v3_a: bytes) -> None:
    assert v3_a[0] == 0x03
    assert len(v3_a) == 1 + 16 + 12 + len(SECRET) + 16
    assert SECRET not in v3_a
    # Decrypt by hand with the documented parameters: PBKDF2-HMAC-SHA256, 600 000 rounds, no AAD.
    salt, nonce, sealed = v3_a[1:17], v3_a[17:29], v3_a[29:]
    assert AESGCM(_derive(KEY_A, salt, 600_000)).decrypt(nonce, sealed, None) == SECRET


def test_every_encryption_uses_a_fresh_salt_and_nonce(cipher_a: ConfigCipher, v3_a: bytes) -> None:
    again = cipher_a.encrypt(SECRET)
    assert again != v3_a
    assert again[1:17] != v3_a[1:17]
    assert again[17:29] != v3_a[17:29]


def test_v2_blobs_decrypt(cipher_a: ConfigCipher) -> None:
    assert cipher_a.decrypt(v2_blob(KEY_A, SECRET)) == SECRET


def test_v1_blobs_decrypt(cipher_a: ConfigCipher) -> None:
    assert cipher_a.decrypt(v1_blob(KEY_A, SECRET)) == SECRET


@pytest.mark.parametrize("first_byte", [b"\x02", b"\x03"])
def test_a_v1_blob_whose_nonce_looks_like_a_version_byte_falls_through_to_v1(
    cipher_a: ConfigCipher, first_byte: bytes
) -> None:
    blob = v1_blob(KEY_A, SECRET, nonce=first_byte + os.urandom(11))
    assert blob[0] == first_byte[0]
    assert cipher_a.decrypt(blob) == SECRET


@pytest.mark.parametrize("version", ["v3", "v2", "v1"])
def test_the_wrong_passphrase_fails_for_every_format(cipher_a: ConfigCipher, version: str) -> None:
    blob = {
        "v3": lambda: cipher_a.encrypt(SECRET),
        "v2": lambda: v2_blob(KEY_A, SECRET),
        "v1": lambda: v1_blob(KEY_A, SECRET),
    }[version]()
    with pytest.raises(DecryptionFailed):
        ConfigCipher(KEY_B).decrypt(blob)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda b: b[:1] + bytes([b[1] ^ 0x01]) + b[2:],  # salt
        lambda b: b[:20] + bytes([b[20] ^ 0x01]) + b[21:],  # nonce
        lambda b: b[:35] + bytes([b[35] ^ 0x80]) + b[36:],  # ciphertext
        lambda b: b[:-1] + bytes([b[-1] ^ 0x01]),  # tag
        lambda b: b[:-1],  # truncated tag
        lambda b: b"\x02" + b[1:],  # version byte swapped: v2 iterations no longer match
        lambda b: b + b"\x00",  # trailing garbage
        lambda b: b"",
        lambda b: b[:28],  # header only
    ],
    ids=["salt", "nonce", "ciphertext", "tag", "truncated", "version", "appended", "empty", "header-only"],
)
def test_a_tampered_blob_fails(cipher_a: ConfigCipher, v3_a: bytes, tamper: Callable[[bytes], bytes]) -> None:
    with pytest.raises(DecryptionFailed):
        cipher_a.decrypt(tamper(v3_a))


def test_passphrases_shorter_than_32_characters_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 32 characters"):
        ConfigCipher("x" * (MIN_PASSPHRASE_LEN - 1))
    ConfigCipher("x" * MIN_PASSPHRASE_LEN)  # exactly 32 is enough


# --- the key file ------------------------------------------------------------------------------------


def test_a_configured_passphrase_wins_and_no_key_file_is_made(tmp_path: Path) -> None:
    assert load_or_create_passphrase(KEY_A, tmp_path) == (KEY_A, False)
    assert not (tmp_path / KEY_FILE_NAME).exists()


def test_without_a_passphrase_a_0600_key_file_is_created_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "not-yet"
    previous = os.umask(0)  # the file mode must not depend on the process umask
    try:
        passphrase, created = load_or_create_passphrase(None, data_dir)
    finally:
        os.umask(previous)
    path = data_dir / KEY_FILE_NAME
    assert created
    assert len(passphrase) >= MIN_PASSPHRASE_LEN
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().strip() == passphrase
    ConfigCipher(passphrase)  # usable as a key

    content, mtime = path.read_bytes(), path.stat().st_mtime_ns
    assert load_or_create_passphrase(None, data_dir) == (passphrase, False)
    assert (path.read_bytes(), path.stat().st_mtime_ns) == (content, mtime)


def test_an_existing_key_file_is_used_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / KEY_FILE_NAME
    path.write_text(KEY_A + "\n")
    path.chmod(0o600)
    assert load_or_create_passphrase(None, tmp_path) == (KEY_A, False)
    assert path.read_text() == KEY_A + "\n"


def test_a_key_file_holding_too_short_a_key_is_an_error_and_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / KEY_FILE_NAME
    path.write_text("short\n")
    with pytest.raises(ConfigurationError, match="no usable key"):
        load_or_create_passphrase(None, tmp_path)
    assert path.read_text() == "short\n"


# --- start-up checks (bootstrap.prepare) -----------------------------------------------------------


@pytest.fixture
def encrypted_issuer_db(settings_factory: Callable[..., Settings]) -> Settings:
    """A migrated database with one issuer whose config was encrypted under KEY_A (and no default policy)."""
    settings = settings_factory(config_encryption_key=KEY_A)
    context = prepare(settings, run_migrations=False)
    try:
        with context.db.begin() as session:
            session.add(
                Issuer(
                    id="iss-vault",
                    name="Vault",
                    type=IssuerType.VAULT_PKI,
                    config={"url": "https://vault.example:8200", "api_key": "********"},
                    encrypted_config=context.cipher.encrypt(SECRET),
                    source=ConfigSource.DATABASE,
                    created_at=T0,
                    updated_at=T0,
                )
            )
            # Remove what start-up seeds, so a start-up that got too far would show.
            session.delete(session.get(RenewalPolicy, DEFAULT_POLICY_ID))
    finally:
        context.db.dispose()
    return settings


def _database_state(settings: Settings) -> tuple[list[tuple[str, bytes | None]], list[str]]:
    db = Database.from_url(settings.sqlalchemy_url)
    try:
        with db.begin() as session:
            issuers = [(i.id, i.encrypted_config) for i in session.scalars(select(Issuer))]
            policies = list(session.scalars(select(RenewalPolicy.id)))
    finally:
        db.dispose()
    return issuers, policies


def test_the_right_key_starts_and_decrypts_stored_configs(
    encrypted_issuer_db: Settings, settings_factory: Callable[..., Settings]
) -> None:
    context = prepare(settings_factory(config_encryption_key=KEY_A))
    try:
        with context.db.begin() as session:
            issuer = session.get(Issuer, "iss-vault")
            assert issuer is not None
            assert issuer.encrypted_config is not None
            assert context.cipher.decrypt(issuer.encrypted_config) == SECRET
            assert session.get(RenewalPolicy, DEFAULT_POLICY_ID) is not None  # start-up went on to seed
    finally:
        context.db.dispose()


def test_a_different_key_refuses_to_start_and_changes_nothing(
    encrypted_issuer_db: Settings, settings_factory: Callable[..., Settings]
) -> None:
    before = _database_state(encrypted_issuer_db)
    wrong = settings_factory(config_encryption_key=KEY_B)

    with pytest.raises(ConfigurationError) as refused:
        prepare(wrong)

    message = str(refused.value)
    assert "does not decrypt the stored configuration of issuer iss-vault" in message
    assert "CERTCTL_CONFIG_ENCRYPTION_KEY" in message
    assert KEY_B not in message
    assert KEY_A not in message
    assert _database_state(encrypted_issuer_db) == before
    assert before[1] == []  # not even the default policy was seeded
    assert not (wrong.data_dir / KEY_FILE_NAME).exists()


def test_a_key_file_with_a_different_key_refuses_to_start_and_is_kept(
    encrypted_issuer_db: Settings, settings_factory: Callable[..., Settings]
) -> None:
    settings = settings_factory(config_encryption_key=None)
    key_file = settings.data_dir / KEY_FILE_NAME
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key_file.write_text(KEY_B + "\n")
    before = _database_state(encrypted_issuer_db)

    with pytest.raises(
        ConfigurationError, match=f"does not decrypt.*{KEY_FILE_NAME}|{KEY_FILE_NAME}.*does not decrypt"
    ):
        prepare(settings)

    assert key_file.read_text() == KEY_B + "\n"
    assert _database_state(encrypted_issuer_db) == before


def test_a_missing_key_file_and_no_key_refuses_to_start_without_making_a_new_key(
    encrypted_issuer_db: Settings, settings_factory: Callable[..., Settings]
) -> None:
    settings = settings_factory(config_encryption_key=None)
    before = _database_state(encrypted_issuer_db)

    with pytest.raises(ConfigurationError) as refused:
        prepare(settings)

    message = str(refused.value)
    assert "encrypted issuer/target configuration but no key is available" in message
    assert "CERTCTL_CONFIG_ENCRYPTION_KEY" in message
    assert str(settings.data_dir / KEY_FILE_NAME) in message
    assert not (settings.data_dir / KEY_FILE_NAME).exists()
    assert _database_state(encrypted_issuer_db) == before


def test_with_nothing_encrypted_and_no_key_a_key_file_is_created(settings_factory: Callable[..., Settings]) -> None:
    settings = settings_factory(config_encryption_key=None)
    context = prepare(settings)
    try:
        key_file = settings.data_dir / KEY_FILE_NAME
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        blob = context.cipher.encrypt(b"x")
        assert ConfigCipher(key_file.read_text().strip()).decrypt(blob) == b"x"
    finally:
        context.db.dispose()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_refused_start_up_leaves_no_connections_open(
    encrypted_issuer_db: Settings, settings_factory: Callable[..., Settings]
) -> None:
    def others() -> int:
        engine = create_engine(encrypted_issuer_db.sqlalchemy_url, poolclass=NullPool)
        try:
            with engine.connect() as conn:
                query = (
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid()"
                )
                return int(conn.execute(text(query)).scalar_one())
        finally:
            engine.dispose()

    # The PostgreSQL test database is shared by the session: count what this start-up leaves, not the total.
    before = others()
    with pytest.raises(ConfigurationError):
        prepare(settings_factory(config_encryption_key=KEY_B))
    assert others() == before


def test_bulk_encryption_shares_a_salt_but_never_a_nonce_and_stays_readable() -> None:
    cipher = ConfigCipher("bulk-encryption-passphrase-0123456789abcdef")
    blobs = [cipher.encrypt_many(f"key {i}".encode()) for i in range(50)]
    assert len({blob[1:17] for blob in blobs}) == 1  # one salt: one PBKDF2 derivation for all of them
    assert len({blob[17:29] for blob in blobs}) == 50  # a fresh nonce each time
    assert [cipher.decrypt(blob) for blob in blobs] == [f"key {i}".encode() for i in range(50)]
    other = ConfigCipher("bulk-encryption-passphrase-0123456789abcdef")  # another process reads them too
    assert other.decrypt(blobs[7]) == b"key 7"
