"""The agent's dangerous layer: the only agent module that makes, writes or reads private keys.

(The control plane's equivalent is `certctl.pki.keys`; the agent uses its `SigningKey` to sign CSRs
and compare public keys.) Spec: agent-targets-discovery.md §A1.5, §A1.6, §A1.7.

* Key dir: `ensure_key_dir_secure` with the original's rules and quirks (§A1.6).
* Key files: `<key_dir>/<certificate_id>.key`, mode 0600, EC keys as SEC1 `EC PRIVATE KEY` PEM like
  the original (RSA and Ed25519 as PKCS#8). A new key moves the previous one to `.key.prev` first; a
  rejected CSR puts it back, so a failed issuance never strands the certificate already deployed.
* Deploy: the first of `.key`, `.key.prev` whose public key is the certificate's.
* Zeroisation is best effort in Python: the DER is copied into a `bytearray` that is overwritten after
  use, but the library's own `bytes` and the PEM text live until garbage-collected.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import stat
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from certctl.pki.csr import build_csr
from certctl.pki.keys import (
    RSA_PUBLIC_EXPONENT,
    KeyAlgorithm,
    KeyFamily,
    KeyInfo,
    PrivateKey,
    SigningKey,
    UnsupportedKey,
    classify_public_key,
)

DEFAULT_KEY_ALGORITHM = KeyAlgorithm.ECDSA_P256
KEY_FILE_MODE = 0o600
KEY_DIR_MODE = 0o700
_CERTIFICATE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_CURVES = {KeyAlgorithm.ECDSA_P256: ec.SECP256R1(), KeyAlgorithm.ECDSA_P384: ec.SECP384R1()}

_T = TypeVar("_T")


class KeyDirError(OSError):
    """The key directory cannot be made private; the message names the directory and the step."""


class KeyNotFound(Exception):
    """Neither `<id>.key` nor `<id>.key.prev` exists."""


class KeyMismatch(Exception):
    """Key files exist, but none belongs to the certificate being deployed."""


# -- the key directory (§A1.6) ---------------------------------------------------------------------------


def ensure_key_dir_secure(directory: str | Path) -> None:
    """Create the key dir 0700, or tighten it to 0700 unless it already has no group/other bits.

    Refuses "", "." and "/" (after cleaning). Quirk kept from the original and pinned by a test: a
    regular file at the path is chmodded to 0700 and no error is raised. Raises KeyDirError.
    """
    raw = str(directory)
    cleaned = os.path.normpath(raw) if raw else ""
    if cleaned in ("", ".", "/", "//"):
        raise KeyDirError(f'refuse empty/root dir "{raw}"')
    try:
        info = os.stat(cleaned)
    except FileNotFoundError:
        try:
            os.makedirs(cleaned, mode=KEY_DIR_MODE, exist_ok=True)
            os.chmod(cleaned, KEY_DIR_MODE)  # makedirs honours the umask
        except OSError as exc:
            raise KeyDirError(f"create agent key dir {cleaned}: {exc.strerror or exc}") from exc
        return
    except OSError as exc:
        raise KeyDirError(f"stat agent key dir {cleaned}: {exc.strerror or exc}") from exc
    mode = stat.S_IMODE(info.st_mode)
    if mode == KEY_DIR_MODE or mode & 0o077 == 0:
        return
    try:
        os.chmod(cleaned, KEY_DIR_MODE)
    except OSError as exc:
        raise KeyDirError(f"tighten agent key dir {cleaned} to 0700: {exc.strerror or exc}") from exc


# -- making and encoding keys ------------------------------------------------------------------------------


def generate_private_key(algorithm: KeyAlgorithm = DEFAULT_KEY_ALGORITHM) -> PrivateKey:
    """A fresh key from the OS CSPRNG."""
    if algorithm.family is KeyFamily.RSA:
        return rsa.generate_private_key(public_exponent=RSA_PUBLIC_EXPONENT, key_size=algorithm.size_bits)
    if algorithm.family is KeyFamily.ECDSA:
        return ec.generate_private_key(_CURVES[algorithm])
    return ed25519.Ed25519PrivateKey.generate()


def marshal_key_and_zeroize(key: PrivateKey | None, callback: Callable[[bytearray], _T]) -> _T:
    """Hand the key's DER (SEC1 for EC, PKCS#8 otherwise) to `callback`, then overwrite it with zeros,
    also when the callback raises (its error propagates). A None key raises ValueError("nil private key")."""
    if key is None:
        raise ValueError("nil private key")
    der = bytearray(key.private_bytes(serialization.Encoding.DER, _format_of(key), serialization.NoEncryption()))
    try:
        return callback(der)
    finally:
        der[:] = bytes(len(der))


def private_key_pem(key: PrivateKey) -> bytes:
    """`EC PRIVATE KEY` (SEC1) PEM for EC keys, as the original writes them; `PRIVATE KEY` otherwise."""
    label = "EC PRIVATE KEY" if isinstance(key, ec.EllipticCurvePrivateKey) else "PRIVATE KEY"
    return marshal_key_and_zeroize(key, lambda der: _pem(label, der))


def _format_of(key: PrivateKey) -> serialization.PrivateFormat:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return serialization.PrivateFormat.TraditionalOpenSSL  # SEC1 ECPrivateKey (RFC 5915)
    return serialization.PrivateFormat.PKCS8


def _pem(label: str, der: bytearray) -> bytes:
    encoded = base64.b64encode(der)
    lines = [encoded[i : i + 64] for i in range(0, len(encoded), 64)]  # RFC 7468 §2: 64 columns
    return b"".join([f"-----BEGIN {label}-----\n".encode(), *(line + b"\n" for line in lines)]) + (
        f"-----END {label}-----\n".encode()
    )


def key_info(key: PrivateKey) -> KeyInfo:
    """("ECDSA", 256), ("RSA", 2048), … (A4 case 14)."""
    return classify_public_key(key.public_key())


def csr_pem(key: PrivateKey, common_name: str, sans: Sequence[str]) -> str:
    """A CSR for CN + SANs (IP literals → IP SANs, `@` → email, `scheme://` → URI, the rest DNS), signed
    with `key`. Raises ValueError for an unusable name."""
    return build_csr(SigningKey(key), common_name, sans)


# -- key files -----------------------------------------------------------------------------------------------


class KeyFiles:
    """`<key_dir>/<certificate_id>.key` and `.key.prev` of one agent."""

    def __init__(self, key_dir: Path) -> None:
        self.key_dir = key_dir

    def key_path(self, certificate_id: str) -> Path:
        """Raises ValueError for an id that is not a plain file name (no path tricks from the server)."""
        if not _CERTIFICATE_ID.fullmatch(certificate_id):
            raise ValueError(f"certificate id {certificate_id!r} is not usable as a key file name")
        return self.key_dir / f"{certificate_id}.key"

    def previous_path(self, certificate_id: str) -> Path:
        return self.key_path(certificate_id).with_name(f"{certificate_id}.key.prev")

    def install(self, certificate_id: str, pem: bytes) -> None:
        """Write a new key 0600, keeping the current one as `.key.prev`. Raises KeyDirError, OSError."""
        ensure_key_dir_secure(self.key_dir)
        path, previous = self.key_path(certificate_id), self.previous_path(certificate_id)
        if path.exists():
            os.chmod(path, KEY_FILE_MODE)
            os.replace(path, previous)
        _write_private(path, pem)

    def install_delivered(self, certificate_id: str, pem: str) -> None:
        """A key the server generated (server keygen): installed unless `.key` already holds it."""
        path = self.key_path(certificate_id)
        with contextlib.suppress(OSError):
            if path.read_text(encoding="ascii").strip() == pem.strip():
                return
        self.install(certificate_id, pem.encode("ascii"))

    def restore_previous(self, certificate_id: str) -> None:
        """Undo `install` after a rejected CSR: `.key.prev` back to `.key`, or no key when there was none."""
        path, previous = self.key_path(certificate_id), self.previous_path(certificate_id)
        if previous.exists():
            os.replace(previous, path)
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def matching_key(self, certificate_id: str, certificate: x509.Certificate) -> str:
        """The PEM of the first of `.key`, `.key.prev` that belongs to `certificate`.

        Raises KeyNotFound (neither file) or KeyMismatch (none matches; the message names the serial).
        """
        candidates = [self.key_path(certificate_id), self.previous_path(certificate_id)]
        found = False
        for path in candidates:
            try:
                pem = path.read_text(encoding="ascii")
            except FileNotFoundError:
                continue
            except (OSError, UnicodeDecodeError) as exc:
                raise KeyNotFound(f"key read failed: {path}: {exc}") from exc
            found = True
            try:
                if SigningKey.from_pem(pem).matches(certificate.public_key()):
                    return pem
            except UnsupportedKey:
                continue  # an unreadable key cannot be the right one
        if not found:
            raise KeyNotFound(f"key read failed: no key file at {candidates[0]} or {candidates[1]}")
        raise KeyMismatch(f"no private key matching certificate {certificate.serial_number:x}")


def _write_private(path: Path, data: bytes) -> None:
    """Write `data` 0600 through a temp file in the same directory and a rename."""
    temp = path.with_name(f".{path.name}.tmp.{os.getpid()}.{os.urandom(4).hex()}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, KEY_FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, KEY_FILE_MODE)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise
