from __future__ import annotations

import pytest

from certctl.pki.errors import IssuerConfigError
from certctl.pki.keys import KeyAlgorithm
from certctl.pki.local_ca_config import LocalCAConfig


def test_empty_config_takes_the_defaults() -> None:
    config = LocalCAConfig.from_mapping({})
    assert config == LocalCAConfig()
    assert config.validity_days == 90
    assert config.ca_common_name == "CertCtl Local CA"
    assert config.ca_key_algorithm is KeyAlgorithm.ECDSA_P256  # the issue overrides pki.md §A1.7 (RSA-2048)
    assert not config.sub_ca_mode


def test_full_config_is_parsed() -> None:
    config = LocalCAConfig.from_mapping(
        {
            "validity_days": 30,
            "ca_common_name": "Ops CA",
            "ca_key_algorithm": "ecdsa-p384",
            "ca_cert_path": "/etc/certctl/ca.pem",
            "ca_key_path": "/etc/certctl/ca.key",
            "crl_distribution_point_urls": ["http://crl.example.test/ca.crl"],
            "ocsp_url": "http://ocsp.example.test",
            "ca_issuers_url": "",
        }
    )
    assert config.validity_days == 30
    assert config.ca_key_algorithm is KeyAlgorithm.ECDSA_P384
    assert config.sub_ca_mode
    assert config.crl_distribution_point_urls == ("http://crl.example.test/ca.crl",)
    assert config.ca_issuers_url is None


@pytest.mark.parametrize(
    ("raw", "field", "message"),
    [
        ({"validity_days": 0}, "validity_days", "at least 1"),
        ({"validity_days": "90"}, "validity_days", "integer"),
        ({"validity_days": True}, "validity_days", "integer"),
        ({"ca_cert_path": "/a.pem"}, "ca_cert_path", "both"),
        ({"ca_key_path": "/a.key"}, "ca_cert_path", "both"),
        ({"ca_key_algorithm": "Ed25519"}, "ca_key_algorithm", "not supported"),
        ({"ca_key_algorithm": "RSA-1024"}, "ca_key_algorithm", "unknown key algorithm"),
        ({"ca_common_name": "x" * 65}, "ca_common_name", "1 to 64"),
        ({"ca_common_name": 5}, "ca_common_name", "must be a string"),
        ({"crl_distribution_point_urls": "http://a.example/crl"}, "crl_distribution_point_urls", "list of URLs"),
        ({"crl_distribution_point_urls": ["ldap://a.example/crl"]}, "crl_distribution_point_urls", "http"),
        ({"ocsp_url": "not a url"}, "ocsp_url", "http"),
        ({"ca_issuers_url": "https://"}, "ca_issuers_url", "http"),
        ({"validty_days": 30}, "validty_days", "unknown local CA config key"),
    ],
)
def test_bad_config_names_the_field(raw: dict[str, object], field: str, message: str) -> None:
    with pytest.raises(IssuerConfigError, match=message) as caught:
        LocalCAConfig.from_mapping(raw)
    assert caught.value.field == field


def test_distribution_urls() -> None:
    config = LocalCAConfig()
    assert config.distribution_urls("iss-local", None).ocsp_urls == ()
    urls = config.distribution_urls("iss/odd id", "https://pki.example.test/base/")
    assert urls.ocsp_urls == ("https://pki.example.test/base/.well-known/pki/ocsp/iss%2Fodd%20id",)
    assert urls.ca_issuers_urls == ("https://pki.example.test/base/.well-known/pki/ca/iss%2Fodd%20id",)
    assert urls.crl_urls == ("https://pki.example.test/base/.well-known/pki/crl/iss%2Fodd%20id",)
