"""A local CA issuer with leaves, served by a real uvicorn server on a loopback port."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from certctl.app import create_app
from certctl.certificates.models import CertificateVersion
from certctl.clock import FrozenClock
from certctl.context import AppContext
from certctl.pki.keys import SigningKey
from certctl.pki.local_ca import LocalCA
from certctl.pki.serials import canonical_serial, random_serial
from tests.conftest import REQUIRE_PEERS
from tests.factories import seed_inventory
from tests.issuers.rows import insert_certificate

ISSUER = "iss-local"


@dataclass
class Leaf:
    certificate_id: str
    certificate: x509.Certificate
    path: Path

    @property
    def serial(self) -> str:
        return canonical_serial(self.certificate.serial_number)


@dataclass
class OCSPEnv:
    context: AppContext
    clock: FrozenClock
    ca: LocalCA
    ca_path: Path
    base_url: str
    tmp: Path

    @property
    def url(self) -> str:
        return f"{self.base_url}/.well-known/pki/ocsp/{ISSUER}"

    def issue(self, name: str, serial: int | None = None) -> Leaf:
        """A leaf signed by the issuer's CA and recorded as the latest version of a managed certificate."""
        key = SigningKey.generate()
        now = self.clock.now()
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name}.example.com")]))
            .issuer_name(self.ca.certificate.subject)
            .public_key(key.public_key())
            .serial_number(serial if serial is not None else random_serial())
            .not_valid_before(now - timedelta(minutes=1))
            .not_valid_after(now + timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        )
        cert = self.ca.signing_key.sign_certificate(builder)
        cert_id = insert_certificate(self.context, ISSUER, f"mc-{name}")
        pem = cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
        with self.context.db.begin() as session:
            session.add(
                CertificateVersion(
                    id=f"cv-{name}",
                    certificate_id=cert_id,
                    serial_number=canonical_serial(cert.serial_number),
                    not_before=cert.not_valid_before_utc,
                    not_after=cert.not_valid_after_utc,
                    fingerprint_sha256=cert.fingerprint(hashes.SHA256()).hex(),
                    pem_chain=pem + self.ca.ca_chain_pem(),
                    created_at=now,
                )
            )
        path = self.tmp / f"{name}.pem"
        path.write_text(pem)
        return Leaf(cert_id, cert, path)


def require_openssl() -> str:
    found = shutil.which("openssl")
    if found is None:
        if REQUIRE_PEERS:
            pytest.fail("openssl is required (CERTCTL_REQUIRE_PEERS=1)")
        pytest.skip("openssl not installed")
    return found


class ServerThread:
    """uvicorn on 127.0.0.1:<free port> in a thread, plain HTTP, stopped at teardown."""

    def __init__(self, app: Any) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(
            app, log_config=None, access_log=False, lifespan="off", http="httptools", proxy_headers=False
        )  # as `certctl server`: the peer address is the socket's, never X-Forwarded-For
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


@pytest.fixture
def ocsp_env_factory(context_factory: Callable[..., AppContext], tmp_path: Path) -> Iterator[Callable[..., OCSPEnv]]:
    servers: list[ServerThread] = []

    def build(**overrides: Any) -> OCSPEnv:
        # Real time, frozen: openssl checks thisUpdate and the responder's validity against its own clock.
        clock = FrozenClock(datetime.now(UTC).replace(microsecond=0))
        context = context_factory(clock, **overrides)
        seed_inventory(context)
        ca = context.connectors.get(ISSUER)
        assert isinstance(ca, LocalCA)
        ca_path = tmp_path / "ca.pem"
        ca_path.write_text(ca.ca_chain_pem())
        server = ServerThread(create_app(context)).__enter__()
        servers.append(server)
        return OCSPEnv(context, clock, ca, ca_path, f"http://127.0.0.1:{server.port}", tmp_path)

    yield build
    for server in servers:
        server.__exit__()


@pytest.fixture
def ocsp_env(ocsp_env_factory: Callable[..., OCSPEnv]) -> OCSPEnv:
    return ocsp_env_factory()


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client
