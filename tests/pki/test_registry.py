from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509

from certctl.clock import FrozenClock
from certctl.issuers.models import IssuerType
from certctl.pki.connector import ConnectorDeps, IssueRequest
from certctl.pki.errors import InvalidCAMaterial, IssuerConfigError, IssuerError, UnknownIssuerType
from certctl.pki.keys import CAMaterial, KeyAlgorithm
from certctl.pki.local_ca import LocalCA
from certctl.pki.registry import ISSUER_CONNECTORS, build_connector, validate_issuer_config
from tests.pki.conftest import CsrFactory
from tests.pki.factories import ca_certificate, ec_key, key_pem, pem


class MemoryCAStore:
    """A small real store: what the DB- or disk-backed store will do, in a dict."""

    def __init__(self) -> None:
        self.saved: dict[str, CAMaterial] = {}

    def load(self, issuer_id: str) -> CAMaterial | None:
        return self.saved.get(issuer_id)

    def save(self, issuer_id: str, material: CAMaterial) -> None:
        self.saved[issuer_id] = material


def test_generic_ca_is_the_local_ca() -> None:
    assert ISSUER_CONNECTORS[IssuerType.GENERIC_CA] is LocalCA


def test_build_without_a_store_makes_an_ephemeral_root(clock: FrozenClock) -> None:
    connector = build_connector(IssuerType.GENERIC_CA, {}, ConnectorDeps(clock=clock, issuer_id="iss-local"))
    assert isinstance(connector, LocalCA)
    assert connector.key_algorithm is KeyAlgorithm.ECDSA_P256
    assert connector.certificate.subject.rfc4514_string() == "CN=CertCtl Local CA"


def test_build_persists_the_root_once_and_reuses_it(clock: FrozenClock, make_csr: CsrFactory) -> None:
    store = MemoryCAStore()
    deps = ConnectorDeps(clock=clock, issuer_id="iss-local", ca_store=store, public_url="https://pki.example.test")
    config = {"ca_key_algorithm": "ECDSA-P256", "ca_common_name": "Persisted CA"}
    first = build_connector(IssuerType.GENERIC_CA, config, deps)
    assert set(store.saved) == {"iss-local"}
    second = build_connector(IssuerType.GENERIC_CA, config, deps)
    assert isinstance(first, LocalCA)
    assert isinstance(second, LocalCA)
    assert second.certificate == first.certificate
    issued = second.issue(IssueRequest(common_name="a.example.com", sans=(), csr_pem=make_csr("a.example.com")))
    issued.certificate().verify_directly_issued_by(first.certificate)
    aia = issued.certificate().extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert "https://pki.example.test/.well-known/pki/ocsp/iss-local" in [str(d.access_location.value) for d in aia]


def test_each_issuer_gets_its_own_root(clock: FrozenClock) -> None:
    store = MemoryCAStore()
    a = build_connector(
        IssuerType.GENERIC_CA, {"ca_key_algorithm": "ECDSA-P256"}, ConnectorDeps(clock, "iss-a", ca_store=store)
    )
    b = build_connector(
        IssuerType.GENERIC_CA, {"ca_key_algorithm": "ECDSA-P256"}, ConnectorDeps(clock, "iss-b", ca_store=store)
    )
    assert a.get_ca_chain() != b.get_ca_chain()


def test_build_reads_sub_ca_files(tmp_path: Path, clock: FrozenClock) -> None:
    key = ec_key()
    (tmp_path / "ca.pem").write_text(pem(ca_certificate(key, "File CA")))
    (tmp_path / "ca.key").write_bytes(key_pem(key))
    config = {"ca_cert_path": str(tmp_path / "ca.pem"), "ca_key_path": str(tmp_path / "ca.key")}
    store = MemoryCAStore()
    connector = build_connector(IssuerType.GENERIC_CA, config, ConnectorDeps(clock, "iss-local", ca_store=store))
    assert connector.get_ca_chain()[0].subject.rfc4514_string() == "CN=File CA"
    assert store.saved == {}  # sub-CA material stays where the operator put it


def test_missing_sub_ca_file_is_a_config_error(tmp_path: Path, clock: FrozenClock) -> None:
    config = {"ca_cert_path": str(tmp_path / "nope.pem"), "ca_key_path": str(tmp_path / "nope.key")}
    with pytest.raises(IssuerConfigError, match="ca_cert_path: cannot read") as caught:
        build_connector(IssuerType.GENERIC_CA, config, ConnectorDeps(clock, "iss-local"))
    assert caught.value.field == "ca_cert_path"


def test_a_stored_root_that_has_expired_is_reported(clock: FrozenClock) -> None:
    store = MemoryCAStore()
    store.save("iss-local", LocalCA.create_self_signed(clock=FrozenClock(clock.now())).export())
    clock.advance(timedelta(days=3651))
    with pytest.raises(InvalidCAMaterial, match="expired"):
        build_connector(IssuerType.GENERIC_CA, {}, ConnectorDeps(clock, "iss-local", ca_store=store))


@pytest.mark.parametrize("issuer_type", [t for t in IssuerType if t is not IssuerType.GENERIC_CA])
def test_unregistered_types_raise_unknown_issuer_type(clock: FrozenClock, issuer_type: IssuerType) -> None:
    with pytest.raises(UnknownIssuerType, match=f"no issuer connector is registered for type {issuer_type.value}") as c:
        build_connector(issuer_type, {}, ConnectorDeps(clock, "iss-x"))
    assert c.value.issuer_type is issuer_type
    assert isinstance(c.value, IssuerError)
    with pytest.raises(UnknownIssuerType):
        validate_issuer_config(issuer_type, {})


def test_validate_config_builds_nothing(tmp_path: Path) -> None:
    # Paths are not read and no key is generated: validation is about the shape of the config only.
    validate_issuer_config(
        IssuerType.GENERIC_CA, {"ca_cert_path": str(tmp_path / "x.pem"), "ca_key_path": str(tmp_path / "x.key")}
    )
    with pytest.raises(IssuerConfigError, match="validity_days"):
        validate_issuer_config(IssuerType.GENERIC_CA, {"validity_days": 0})
