from __future__ import annotations

import json

import pytest

from certctl.errors import ValidationFailed
from certctl.issuers.sealing import ConfigSealer, StoredConfigUnreadable
from certctl.security.encryption import ConfigCipher
from certctl.security.masking import MASK

PASSPHRASE = "sealing-test-passphrase-0123456789abcdef"


@pytest.fixture(scope="module")
def cipher() -> ConfigCipher:
    return ConfigCipher(PASSPHRASE)


@pytest.fixture(scope="module")
def sealer(cipher: ConfigCipher) -> ConfigSealer:
    return ConfigSealer(cipher)


def test_seal_encrypts_the_full_config_and_masks_the_shadow(sealer: ConfigSealer, cipher: ConfigCipher) -> None:
    config = {"api_key": "dc-123", "org_id": 42, "base_url": "https://www.digicert.com", "nested": {"password": "p"}}
    sealed = sealer.seal(config)
    assert json.loads(cipher.decrypt(sealed.encrypted)) == config
    assert sealed.shadow == config | {"api_key": MASK}  # masking is top-level only (core.md §13.2)
    assert b"dc-123" not in sealed.encrypted


def test_resolve_without_placeholders_never_decrypts(sealer: ConfigSealer) -> None:
    assert sealer.resolve({"token": "new"}, "issuer x", encrypted=b"\x03garbage", shadow={}) == {"token": "new"}


def test_resolve_restores_placeholders_from_the_stored_config(sealer: ConfigSealer) -> None:
    sealed = sealer.seal({"token": "old", "addr": "a"})
    merged = sealer.resolve({"token": MASK, "addr": "b"}, "issuer x", sealed.encrypted, sealed.shadow)
    assert merged == {"token": "old", "addr": "b"}


def test_a_blob_that_does_not_decrypt_is_reported_not_guessed(sealer: ConfigSealer) -> None:
    other = ConfigSealer(ConfigCipher("another-passphrase-0123456789abcdefgh")).seal({"token": "t"})
    with pytest.raises(StoredConfigUnreadable, match="send the complete config"):
        sealer.resolve({"token": MASK}, "issuer x", other.encrypted, other.shadow)


def test_plain_text_rows_resolve_from_the_config_column_but_never_keep_a_placeholder(sealer: ConfigSealer) -> None:
    assert sealer.resolve({"token": MASK}, "issuer x", None, {"token": "plain"}) == {"token": "plain"}
    with pytest.raises(ValidationFailed, match=r"config\.token"):
        sealer.resolve({"token": MASK}, "issuer x", None, {"token": MASK})


def test_placeholders_on_create_are_refused(sealer: ConfigSealer) -> None:
    with pytest.raises(ValidationFailed, match=r"config\.password, config\.token: .* issuer new has no stored value"):
        sealer.resolve({"token": MASK, "password": MASK, "user": "u"}, "issuer new")
