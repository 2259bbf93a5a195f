"""The plain-HTTP distribution point (CERTCTL_PKI_HTTP_PORT): a real `certctl server` serves CRLs and CA
certificates over plain HTTP and nothing else, and new leaves point their AIA/CDP URLs at it."""

from __future__ import annotations

import signal
import socket
from collections.abc import Callable

import httpx
import pytest
from cryptography import x509
from cryptography.x509.oid import AuthorityInformationAccessOID

from certctl.clock import FrozenClock
from certctl.context import AppContext
from certctl.pki.local_ca_config import pki_base_url
from tests.conftest import REQUIRE_PEERS, PgDatabases
from tests.crl.conftest import issue_leaf
from tests.factories import seed_inventory
from tests.test_server import Launcher, free_port, launch  # noqa: F401  (launch is a fixture)


@pytest.mark.parametrize(
    ("public_url", "port", "expected"),
    [
        ("https://pki.example.test", 0, "https://pki.example.test"),
        ("https://pki.example.test:8443", 8080, "http://pki.example.test:8080"),
        ("https://[2001:db8::1]:8443", 80, "http://[2001:db8::1]:80"),
        ("", 8080, None),
    ],
)
def test_the_distribution_base_url(public_url: str, port: int, expected: str | None) -> None:
    assert pki_base_url(public_url, port) == expected


def distribution_urls(leaf: x509.Certificate) -> tuple[list[str], list[str], list[str]]:
    aia = leaf.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    cdp = leaf.extensions.get_extension_for_class(x509.CRLDistributionPoints).value

    def access(method: x509.ObjectIdentifier) -> list[str]:
        return [d.access_location.value for d in aia if d.access_method == method]

    return (
        access(AuthorityInformationAccessOID.OCSP),
        access(AuthorityInformationAccessOID.CA_ISSUERS),
        [name.value for point in cdp for name in point.full_name or ()],
    )


@pytest.mark.parametrize(
    ("port", "base"),
    [(0, "https://pki.example.test:8443"), (8080, "http://pki.example.test:8080")],
)
def test_new_leaves_point_at_the_plain_http_listener_when_it_is_on(
    context_factory: Callable[..., AppContext], clock: FrozenClock, port: int, base: str
) -> None:
    context = context_factory(clock, server_public_url="https://pki.example.test:8443", pki_http_port=port)
    seed_inventory(context)
    assert distribution_urls(issue_leaf(context)) == (
        [f"{base}/.well-known/pki/ocsp/iss-local"],
        [f"{base}/.well-known/pki/ca/iss-local"],
        [f"{base}/.well-known/pki/crl/iss-local"],
    )


def check_listener(port: int) -> None:
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        crl = client.get("/.well-known/pki/crl/iss-local", headers={"Connection": "close"})
        assert crl.status_code == 200, crl.text
        assert crl.headers["content-type"] == "application/pkix-crl"
        x509.load_der_x509_crl(crl.content)
        ca = client.get("/.well-known/pki/ca/iss-local")
        assert ca.status_code == 200
        assert (
            x509.load_der_x509_certificate(ca.content)
            .extensions.get_extension_for_class(x509.BasicConstraints)
            .value.ca
        )
        assert client.get("/.well-known/pki/ca/iss-local/chain").text.startswith("-----BEGIN CERTIFICATE-----")
        for path in ("/api/v1/auth/check", "/health", "/", "/.well-known/pki/ocsp-nope/iss-local"):
            assert client.get(path).status_code == 404, path


def test_the_server_serves_crl_and_ca_certificate_over_plain_http_and_nothing_else(launch: Launcher) -> None:  # noqa: F811
    port = free_port()
    server = launch(pki_http_port=str(port), server_public_url="https://pki.example.test")
    assert f"plain HTTP: http://localhost:{port}" in server.stdout
    check_listener(port)
    with server.client() as api:  # the HTTPS API still answers the PKI paths too
        assert api.get("/.well-known/pki/crl/iss-local").status_code == 200
    server.process.terminate()
    # One process: uvicorn shuts down gracefully, then re-raises the SIGTERM it captured.
    assert server.wait_exit() in (0, -signal.SIGTERM)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/.well-known/pki/crl/iss-local", timeout=5)


def test_worker_processes_share_the_plain_http_port(
    launch: Launcher,  # noqa: F811
    pg_databases: PgDatabases | None,
) -> None:
    if pg_databases is None:
        if REQUIRE_PEERS:
            pytest.fail("PostgreSQL required (CERTCTL_REQUIRE_PEERS=1) but not available")
        pytest.skip("PostgreSQL not available")
    port = free_port()
    server = launch(args=["--workers", "2"], database_url=pg_databases.create("crlhttp"), pki_http_port=str(port))
    numbers = set()
    for _ in range(6):
        check_listener(port)
        with httpx.Client(timeout=10) as client:
            der = client.get(f"http://127.0.0.1:{port}/.well-known/pki/crl/iss-local").content
        numbers.add(x509.load_der_x509_crl(der).extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)
    assert numbers == {1}  # every worker serves the one stored CRL
    server.process.terminate()
    assert server.wait_exit() == 0


def test_a_plain_http_port_in_use_fails_the_start(launch: Launcher) -> None:  # noqa: F811
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = launch(pki_http_port=str(port), wait=False)
        assert server.wait_exit() != 0
    assert "plain-HTTP listener" in server.stdout + server.stderr
