"""SoftHSM2 session fixtures shared by every test that needs a PKCS#11 token (registered in tests/conftest.py).

SOFTHSM2_CONF is read once per process, when the library initialises, so the whole session shares one token
directory: every test needing a token must use these fixtures, never a directory of its own. Skips without
softhsm2 or python-pkcs11, unless CERTCTL_REQUIRE_PEERS=1 (then fails).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from certctl.pki.pkcs11 import PIN_ENV

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
TOKEN = "certctl-test"
PIN_TOKEN = "certctl-pin"  # nobody logs in to it before the wrong-PIN test
USER_PIN, SO_PIN = "1234", "5678"


def token_ref(label: str, token: str = TOKEN, extra: str = "") -> str:
    """The reference of key `label` in a session token."""
    return f"pkcs11:module={MODULE};token={token};object={label}{extra}"


def new_label() -> str:
    return f"k-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A token directory with two fresh tokens; SOFTHSM2_CONF points at it for the whole session."""
    missing = [
        what
        for what, present in (
            ("softhsm2-util", shutil.which("softhsm2-util") is not None),
            (MODULE, Path(MODULE).is_file()),
            ("python-pkcs11", importlib.util.find_spec("pkcs11") is not None),
        )
        if not present
    ]
    if missing:
        message = f"PKCS#11 tests need {', '.join(missing)}"
        if os.environ.get("CERTCTL_REQUIRE_PEERS") == "1":
            pytest.fail(f"{message}; required because CERTCTL_REQUIRE_PEERS=1")
        pytest.skip(message)
    root = tmp_path_factory.mktemp("softhsm")
    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SOFTHSM2_CONF", str(conf))
        for label in (TOKEN, PIN_TOKEN):
            subprocess.run(
                ["softhsm2-util", "--init-token", "--free", "--label", label, "--pin", USER_PIN, "--so-pin", SO_PIN],
                check=True,
                capture_output=True,
            )
        yield root


@pytest.fixture
def pin(softhsm: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The user PIN of the session tokens, in CERTCTL_PKCS11_PIN for this test."""
    monkeypatch.setenv(PIN_ENV, USER_PIN)
    return USER_PIN
