from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from certctl.clock import FrozenClock
from certctl.pki.csr import build_csr
from certctl.pki.keys import CAMaterial, KeyAlgorithm, SigningKey
from certctl.pki.local_ca import LocalCA
from certctl.pki.local_ca_config import LocalCAConfig
from tests.pki.factories import NOW

CsrFactory = Callable[..., str]
CAFactory = Callable[..., LocalCA]


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture(scope="session")
def signing_keys() -> Callable[[KeyAlgorithm], SigningKey]:
    """One key per algorithm for the whole run (RSA-4096 generation is slow)."""
    cache: dict[KeyAlgorithm, SigningKey] = {}

    def get(algorithm: KeyAlgorithm) -> SigningKey:
        if algorithm not in cache:
            cache[algorithm] = SigningKey.generate(algorithm)
        return cache[algorithm]

    return get


@pytest.fixture(scope="session")
def ca_material() -> Callable[[KeyAlgorithm], CAMaterial]:
    """A self-signed root per algorithm, made at NOW, exported once per run."""
    cache: dict[KeyAlgorithm, CAMaterial] = {}

    def get(algorithm: KeyAlgorithm) -> CAMaterial:
        if algorithm not in cache:
            ca = LocalCA.create_self_signed(clock=FrozenClock(NOW), key_algorithm=algorithm)
            cache[algorithm] = ca.export()
        return cache[algorithm]

    return get


@pytest.fixture
def make_ca(clock: FrozenClock, ca_material: Callable[[KeyAlgorithm], CAMaterial]) -> CAFactory:
    def make(
        algorithm: KeyAlgorithm = KeyAlgorithm.ECDSA_P256,
        config: LocalCAConfig | None = None,
        issuer_id: str = "iss-local",
        public_url: str | None = None,
    ) -> LocalCA:
        return LocalCA.from_material(
            ca_material(algorithm), clock=clock, config=config, issuer_id=issuer_id, public_url=public_url
        )

    return make


@pytest.fixture
def local_ca(make_ca: CAFactory) -> LocalCA:
    return make_ca()


@pytest.fixture
def make_csr(signing_keys: Callable[[KeyAlgorithm], SigningKey]) -> CsrFactory:
    def make(
        common_name: str = "www.example.com",
        sans: Sequence[str] = (),
        algorithm: KeyAlgorithm = KeyAlgorithm.ECDSA_P256,
    ) -> str:
        return build_csr(signing_keys(algorithm), common_name, sans)

    return make
