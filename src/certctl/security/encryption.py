"""AES-256-GCM encryption of stored secrets (issuer/target configs), in the original's blob formats.

v3 (written): 0x03 || salt(16) || nonce(12) || ciphertext+tag, key = PBKDF2-HMAC-SHA256(passphrase,
salt, 600 000 iterations). Read fallbacks: v2 (0x02, 100 000 iterations) and v1 (nonce || ciphertext,
fixed salt, 100 000 iterations), so databases written by the Go certctl stay readable (core.md §13.2).
"""

from __future__ import annotations

import os
import secrets
import threading
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from certctl.errors import ConfigurationError

V3, V2 = 0x03, 0x02
V3_ITERATIONS, LEGACY_ITERATIONS = 600_000, 100_000
SALT_LEN, NONCE_LEN = 16, 12
V1_SALT = b"certctl-config-encryption-v1"
KEY_FILE_NAME = "config-encryption.key"
MIN_PASSPHRASE_LEN = 32
BULK_SALT_USES = 1 << 20


class DecryptionFailed(Exception):
    """No supported format authenticates under this passphrase: wrong key or corrupted blob."""


class ConfigCipher:
    """Encrypts with v3; decrypts v3, v2 and v1. Derived keys are cached per salt (600 000 rounds)."""

    def __init__(self, passphrase: str) -> None:
        if len(passphrase) < MIN_PASSPHRASE_LEN:
            raise ValueError(f"the encryption passphrase must be at least {MIN_PASSPHRASE_LEN} characters")
        self._passphrase = passphrase.encode()
        self._cache: dict[tuple[bytes, int], bytes] = {}
        self._lock = threading.Lock()
        self._bulk_salt = b""
        self._bulk_uses = 0

    def _key(self, salt: bytes, iterations: int) -> bytes:
        with self._lock:
            cached = self._cache.get((salt, iterations))
        if cached is not None:
            return cached
        kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=salt, iterations=iterations)
        key = kdf.derive(self._passphrase)
        with self._lock:
            if len(self._cache) > 4096:  # bounded: configs are few, but never grow without limit
                self._cache.clear()
            self._cache[(salt, iterations)] = key
        return key

    def encrypt(self, plaintext: bytes) -> bytes:
        """A v3 blob with its own salt: one PBKDF2 derivation (~0.3 s). For configs, written rarely."""
        return self._seal(os.urandom(SALT_LEN), plaintext)

    def encrypt_many(self, plaintext: bytes) -> bytes:
        """A v3 blob whose salt is shared by this process's bulk writes (server-generated private keys),
        so issuing thousands of certificates does not pay 600 000 PBKDF2 rounds each. Every blob still
        has its own random nonce; the salt rotates every BULK_SALT_USES blobs, far below the 2^32
        random-nonce bound for one AES-GCM key. Readers need nothing new: the format is plain v3."""
        with self._lock:
            if self._bulk_uses == 0:
                self._bulk_salt = os.urandom(SALT_LEN)
            salt = self._bulk_salt
            self._bulk_uses = (self._bulk_uses + 1) % BULK_SALT_USES
        return self._seal(salt, plaintext)

    def _seal(self, salt: bytes, plaintext: bytes) -> bytes:
        nonce = os.urandom(NONCE_LEN)
        sealed = AESGCM(self._key(salt, V3_ITERATIONS)).encrypt(nonce, plaintext, None)
        return bytes([V3]) + salt + nonce + sealed

    def decrypt(self, blob: bytes) -> bytes:
        attempts: list[tuple[bytes, bytes, bytes, int]] = []
        header = SALT_LEN + NONCE_LEN + 1
        if len(blob) > header and blob[0] in (V3, V2):
            iterations = V3_ITERATIONS if blob[0] == V3 else LEGACY_ITERATIONS
            attempts.append((blob[1 : 1 + SALT_LEN], blob[1 + SALT_LEN : header], blob[header:], iterations))
        if len(blob) > NONCE_LEN:
            attempts.append((V1_SALT, blob[:NONCE_LEN], blob[NONCE_LEN:], LEGACY_ITERATIONS))
        for salt, nonce, sealed, iterations in attempts:
            try:
                return AESGCM(self._key(salt, iterations)).decrypt(nonce, sealed, None)
            except InvalidTag:
                continue  # a blob failing v3/v2 authentication falls through to the next format
        raise DecryptionFailed("the stored secret does not decrypt with the configured key")


def load_or_create_passphrase(configured: str | None, data_dir: Path) -> tuple[str, bool]:
    """The passphrase from CERTCTL_CONFIG_ENCRYPTION_KEY, else a random key file (0600) in the data dir.

    Returns (passphrase, created). An existing key file is never overwritten.
    """
    if configured:
        return configured, False
    path = data_dir / KEY_FILE_NAME
    if path.exists():
        text = path.read_text().strip()
        if len(text) < MIN_PASSPHRASE_LEN:
            raise ConfigurationError(
                f"{path} holds no usable key (fewer than {MIN_PASSPHRASE_LEN} characters); "
                "restore it from backup or set CERTCTL_CONFIG_ENCRYPTION_KEY"
            )
        return text, False
    data_dir.mkdir(parents=True, exist_ok=True)
    passphrase = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(passphrase + "\n")
    return passphrase, True
