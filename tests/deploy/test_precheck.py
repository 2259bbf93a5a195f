"""The Python pre-check before any write (§A2.1 decision p)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from certctl.deploy.errors import ValidateFailed
from certctl.deploy.precheck import precheck
from tests.deploy.material import Material, TestCA

NOW = datetime.now(UTC)


def test_a_matching_pair_in_order_has_no_warnings(cert_a: Material) -> None:
    assert precheck(cert_a.cert_pem, cert_a.chain_pem, cert_a.key_pem, now=NOW) == ()


def test_a_key_of_another_certificate_is_refused(cert_a: Material, cert_b: Material) -> None:
    with pytest.raises(ValidateFailed, match="private key does not match the certificate"):
        precheck(cert_a.cert_pem, "", cert_b.key_pem, now=NOW)


def test_an_empty_certificate_is_refused() -> None:
    with pytest.raises(ValidateFailed, match="empty"):
        precheck("  \n", "", None, now=NOW)


def test_material_that_does_not_parse_is_left_to_the_server(cert_a: Material) -> None:
    assert "does not parse" in precheck("garbage", "", cert_a.key_pem, now=NOW)[0]
    assert "key not checked" in precheck(cert_a.cert_pem, "", "not a key", now=NOW)[0]


def test_expiry_and_chain_order_are_warnings(ca: TestCA) -> None:
    expired = ca.issue(expired=True)
    other_ca = TestCA("another CA")
    warnings = precheck(expired.cert_pem, other_ca.cert_pem, expired.key_pem, now=NOW)
    assert any("expired at" in w for w in warnings)
    assert any("chain out of order" in w for w in warnings)
