"""Where an intermediate CA's key lives, by `key_driver_id` (pki.md §A1.6): the one seam between the
hierarchy and key storage.

* `db`        the key PEM, encrypted at rest with the config cipher, in `intermediate_cas.encrypted_key`
* `issuer`    the issuer's own local CA key (a registered root that is the issuer's self-signed CA)
* `pkcs11:…`  a key in a PKCS#11 token, through `certctl.pki.pkcs11` (optional; imported on first use)
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from types import ModuleType

from certctl.errors import UpstreamFailed, ValidationFailed
from certctl.pki.errors import IssuerError, RetryableIssuerError
from certctl.pki.keys import KeyAlgorithm, SigningKey, UnsupportedKey
from certctl.security.encryption import ConfigCipher, DecryptionFailed

DB_DRIVER = "db"
ISSUER_DRIVER = "issuer"
PKCS11_PREFIX = "pkcs11:"

OwnCAKey = Callable[[], SigningKey]
"""The issuer's own local CA key, built only when a CA with the `issuer` driver needs it."""


class KeyDriverUnavailable(ValidationFailed):
    """The key driver cannot be used here (unknown id, or PKCS#11 support missing)."""


def is_pkcs11(driver_id: str) -> bool:
    return driver_id.startswith(PKCS11_PREFIX)


def check_driver_id(driver_id: str) -> None:
    """Raise KeyDriverUnavailable for an id no driver understands."""
    if driver_id not in (DB_DRIVER, ISSUER_DRIVER) and not (
        is_pkcs11(driver_id) and len(driver_id) > len(PKCS11_PREFIX)
    ):
        raise KeyDriverUnavailable(
            f"unknown key_driver_id {driver_id!r}; expected {DB_DRIVER!r}, {ISSUER_DRIVER!r} or 'pkcs11:<uri>'"
        )


def load_signing_key(
    driver_id: str, encrypted_key: bytes | None, *, cipher: ConfigCipher, own_ca_key: OwnCAKey
) -> SigningKey:
    """The key a CA row refers to. Raises KeyDriverUnavailable, or ValidationFailed when it cannot be read."""
    check_driver_id(driver_id)
    if driver_id == ISSUER_DRIVER:
        return own_ca_key()
    if is_pkcs11(driver_id):
        return _token_call(lambda module: module.load_signing_key(driver_id), driver_id)
    if encrypted_key is None:
        raise ValidationFailed("the CA's key is missing from the database (key_driver_id 'db')")
    try:
        return SigningKey.from_pem(cipher.decrypt(bytes(encrypted_key)))
    except (DecryptionFailed, UnsupportedKey) as exc:
        raise ValidationFailed(f"the CA's stored key cannot be read: {exc}") from exc


def generate_signing_key(
    driver_id: str, algorithm: KeyAlgorithm, *, cipher: ConfigCipher
) -> tuple[SigningKey, bytes | None]:
    """A new CA key and, for `db`, its encrypted PKCS#8 PEM to store (None for a token-held key)."""
    check_driver_id(driver_id)
    if driver_id == ISSUER_DRIVER:
        raise KeyDriverUnavailable("key_driver_id 'issuer' names the issuer's own CA key; a new CA needs a new key")
    if is_pkcs11(driver_id):
        return _token_call(lambda module: module.generate_signing_key(driver_id, algorithm), driver_id), None
    key = SigningKey.generate(algorithm)
    return key, cipher.encrypt(key.private_key_pem())


def store_key(key: SigningKey, *, cipher: ConfigCipher) -> bytes:
    """The encrypted PKCS#8 PEM of a supplied key (driver `db`)."""
    return cipher.encrypt(key.private_key_pem())


def _token_call(call: Callable[[ModuleType], object], driver_id: str) -> SigningKey:
    module = _pkcs11()
    shown = mask_driver_id(driver_id)
    try:
        key = call(module)
    except RetryableIssuerError as exc:  # the token is busy or unreachable: worth another try
        raise UpstreamFailed(f"PKCS#11 key {shown!r}: {exc}") from exc
    except (IssuerError, ValueError, RuntimeError, OSError, LookupError) as exc:  # python-pkcs11: RuntimeError
        raise ValidationFailed(f"PKCS#11 key {shown!r}: {exc}") from exc
    if not isinstance(key, SigningKey):
        raise KeyDriverUnavailable("certctl.pki.pkcs11 returned something that is not a SigningKey")
    return key


def mask_driver_id(driver_id: str) -> str:
    """The id as shown to people: a PKCS#11 URI's PIN (`pin-value=`, RFC 7512) masked."""
    return re.sub(r"(pin-value=)[^;&]*", r"\1********", driver_id)


def _pkcs11() -> ModuleType:
    try:
        pkcs11 = importlib.import_module("certctl.pki.pkcs11")
    except ImportError as exc:  # the optional `hsm` extra (python-pkcs11) or the module itself is missing
        raise KeyDriverUnavailable(f"PKCS#11 support not installed ({exc})") from exc
    if not hasattr(pkcs11, "load_signing_key") or not hasattr(pkcs11, "generate_signing_key"):
        raise KeyDriverUnavailable("PKCS#11 support not installed (certctl.pki.pkcs11 lacks the signer functions)")
    return pkcs11
