"""`certctl server` as a real process: HTTPS only, a bootstrap certificate and admin key, refusal of bad
TLS pairs before listening, SQLite and PostgreSQL (core.md §4.1, §10.9, §13.7)."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
import socket
import sqlite3
import ssl
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import create_engine, text

from tests.conftest import REQUIRE_PEERS, PgDatabases

START_TIMEOUT_SECONDS = 20.0
EXIT_TIMEOUT_SECONDS = 20.0
FINGERPRINT = re.compile(r"SHA-256 fingerprint: ((?:[0-9A-F]{2}:){31}[0-9A-F]{2})")
ADMIN_KEY = re.compile(r"admin API key: (\S+)")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def insecure_context() -> ssl.SSLContext:
    """A client that accepts any certificate: for probing the handshake itself."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def handshake(port: int, context: ssl.SSLContext, server_hostname: str = "localhost") -> tuple[str | None, bytes]:
    """TLS version and DER certificate the server presents."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=server_hostname) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        return tls.version(), der


def colon_hex(digest: bytes) -> str:
    return ":".join(f"{byte:02X}" for byte in digest)


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    data_dir: Path
    log_dir: Path
    name: str
    env: dict[str, str] = field(default_factory=dict)

    @property
    def stdout(self) -> str:
        return (self.log_dir / f"{self.name}.out").read_text()

    @property
    def stderr(self) -> str:
        return (self.log_dir / f"{self.name}.err").read_text()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def client(self, **headers: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, verify=insecure_context(), headers=headers, timeout=10)

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"server exited with {self.process.returncode}:\n{self.stdout}\n{self.stderr}")
            try:
                with self.client() as client:
                    if client.get("/health").status_code == 200:
                        break
            except (httpx.TransportError, ssl.SSLError, OSError):
                pass
            time.sleep(0.1)
        else:
            pytest.fail(f"server not healthy after {START_TIMEOUT_SECONDS} s:\n{self.stdout}\n{self.stderr}")
        # The banner is printed once the socket is bound, so it is there by now (flushed before serving).
        assert "certctl is listening on" in self.stdout, self.stdout

    def wait_exit(self) -> int:
        try:
            return self.process.wait(timeout=EXIT_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            pytest.fail(f"server still running after {EXIT_TIMEOUT_SECONDS} s:\n{self.stdout}\n{self.stderr}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def fingerprint(self) -> str:
        match = FINGERPRINT.search(self.stdout)
        assert match, self.stdout
        return match.group(1)

    def admin_key(self) -> str | None:
        match = ADMIN_KEY.search(self.stdout)
        return match.group(1) if match else None

    def log_lines(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.stderr.splitlines() if line.strip()]


Launcher = Callable[..., Server]


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Launcher]:
    """Start `certctl server` processes; every one is stopped at the end of the test, whatever happens."""
    started: list[Server] = []
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("CERTCTL_")}

    def start(data_dir: Path | None = None, *, wait: bool = True, args: Sequence[str] = (), **settings: str) -> Server:
        data_dir = data_dir or tmp_path / "data"
        port = int(settings.pop("server_port", None) or free_port())
        env = {
            **base_env,
            "PYTHONUNBUFFERED": "1",
            "CERTCTL_DATA_DIR": str(data_dir),
            "CERTCTL_SERVER_PORT": str(port),
            **{f"CERTCTL_{name.upper()}": value for name, value in settings.items()},
        }
        name = f"server-{len(started)}"
        with (tmp_path / f"{name}.out").open("wb") as out, (tmp_path / f"{name}.err").open("wb") as err:
            process = subprocess.Popen(
                [sys.executable, "-m", "certctl", "server", *args], env=env, stdout=out, stderr=err, cwd=tmp_path
            )
        server = Server(process=process, port=port, data_dir=data_dir, log_dir=tmp_path, name=name, env=env)
        started.append(server)
        if wait:
            server.wait_healthy()
        return server

    yield start
    for server in started:
        server.stop()


def write_self_signed(directory: Path, name: str, *, key: ec.EllipticCurvePrivateKey | None = None) -> Path:
    """A self-signed certificate for localhost; returns the certificate path ({name}.key holds a new key)."""
    directory.mkdir(parents=True, exist_ok=True)
    key = key or ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / f"{name}.crt"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / f"{name}.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path


# First start ------------------------------------------------------------------------------------------


def test_first_start_creates_a_certificate_and_an_admin_key_and_serves_https(launch: Launcher) -> None:
    server = launch()
    stdout = server.stdout
    assert f"certctl is listening on https://localhost:{server.port}" in stdout
    assert "database: SQLite" in stdout

    cert_path, key_path = server.data_dir / "server-tls.crt", server.data_dir / "server-tls.key"
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    assert server.fingerprint() == colon_hex(cert.fingerprint(hashes.SHA256()))
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    public_key = cert.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert isinstance(public_key.curve, ec.SECP256R1)
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert key.public_key() == public_key
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    assert ipaddress.ip_address("127.0.0.1") in san.get_values_for_type(x509.IPAddress)

    # The certificate on the wire is the file, and it verifies for both names it claims.
    _, der = handshake(server.port, insecure_context())
    assert hashlib.sha256(der).digest() == cert.fingerprint(hashes.SHA256())
    pinned = ssl.create_default_context(cafile=str(cert_path))
    for hostname in ("localhost", "127.0.0.1"):
        handshake(server.port, pinned, server_hostname=hostname)

    admin_key = server.admin_key()
    assert admin_key is not None
    key_file = server.data_dir / "bootstrap-admin-key"
    assert key_file.read_text().strip() == admin_key
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    with httpx.Client(base_url=server.url, verify=pinned, timeout=10) as client:
        check = client.get("/api/v1/auth/check", headers={"Authorization": f"Bearer {admin_key}"})
        assert check.json() == {"status": "authenticated", "user": "admin", "admin": True, "role": "admin"}
        assert client.get("/api/v1/auth/check").status_code == 401
        assert client.get("/ready").json() == {"status": "ready", "db": "reachable"}
        assert check.headers["strict-transport-security"].startswith("max-age=")
        assert "server" not in check.headers

    # Stored as a hash only.
    with sqlite3.connect(server.data_dir / "certctl.db") as db:
        rows = db.execute("SELECT name, role, key_hash FROM api_keys").fetchall()
    assert rows == [("admin", "admin", hashlib.sha256(admin_key.encode()).hexdigest())]

    # Logs are JSON lines without uvicorn's ANSI-coloured duplicate of each message.
    lines = server.log_lines()
    assert any(line["msg"] == "request" and line["path"] == "/api/v1/auth/check" for line in lines)
    assert not [line for line in lines if "color_message" in line]
    assert admin_key not in server.stderr


def test_plain_http_gets_no_http_response(launch: Launcher) -> None:
    server = launch()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
        raw.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        received = b""
        try:
            while chunk := raw.recv(4096):
                received += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    assert not received.startswith(b"HTTP/")
    assert b"healthy" not in received
    with server.client() as client:
        assert client.get("/health").status_code == 200  # still serving TLS afterwards


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
def test_tls_1_1_is_refused_while_1_2_and_1_3_connect(launch: Launcher) -> None:
    server = launch()
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        context = insecure_context()
        context.minimum_version = context.maximum_version = version
        assert handshake(server.port, context)[0] == version.name.replace("_", ".")
    assert handshake(server.port, insecure_context())[0] == "TLSv1.3"  # preferred when both can

    legacy = insecure_context()
    legacy.minimum_version = legacy.maximum_version = ssl.TLSVersion.TLSv1_1
    legacy.set_ciphers("DEFAULT:@SECLEVEL=0")  # OpenSSL 3 would not even offer TLS 1.1 otherwise
    # Control: this client does complete a TLS 1.1 handshake with a server that allows it ...
    assert _tls11_control_handshake(legacy, server.data_dir) == "TLSv1.1"
    # ... and certctl refuses it during the handshake: a protocol_version alert, or (asyncio's SSL
    # transport aborts without flushing the alert) the connection simply closed before any ServerHello.
    with pytest.raises(ssl.SSLError) as refused:
        handshake(server.port, legacy)
    assert isinstance(refused.value, ssl.SSLEOFError) or refused.value.reason in {
        "TLSV1_ALERT_PROTOCOL_VERSION",
        "UNSUPPORTED_PROTOCOL",
    }, refused.value
    assert handshake(server.port, insecure_context())[0] == "TLSv1.3"  # and it keeps serving others


def _tls11_control_handshake(client: ssl.SSLContext, data_dir: Path) -> str | None:
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.minimum_version = ssl.TLSVersion.TLSv1_1
    server_context.set_ciphers("DEFAULT:@SECLEVEL=0")
    server_context.load_cert_chain(data_dir / "server-tls.crt", data_dir / "server-tls.key")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(5)

        def accept_one() -> None:
            conn, _ = listener.accept()
            try:
                with server_context.wrap_socket(conn, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                pass

        thread = threading.Thread(target=accept_one, daemon=True)
        thread.start()
        try:
            return handshake(listener.getsockname()[1], client)[0]
        except ssl.SSLError:
            return None
        finally:
            thread.join(timeout=5)


def test_a_port_in_use_fails_without_claiming_to_listen(launch: Launcher) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        server = launch(wait=False, server_port=str(squatter.getsockname()[1]))
        assert server.wait_exit() != 0
    assert "listening" not in server.stdout
    assert "admin API key" not in server.stdout
    assert "address already in use" in server.stderr.lower()


def _children(pid: int) -> list[int]:
    found = []
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat_file.parent.name))
    return found


def test_several_worker_processes_serve_one_socket_and_stop_together(
    launch: Launcher, pg_databases: PgDatabases | None
) -> None:
    if pg_databases is None:
        if REQUIRE_PEERS:
            pytest.fail("PostgreSQL required (CERTCTL_REQUIRE_PEERS=1) but not available")
        pytest.skip("PostgreSQL not available")
    server = launch(args=["--workers", "2"], database_url=pg_databases.create("workers"))
    assert server.stdout.count("certctl is listening on") == 1
    workers = [
        pid for pid in _children(server.process.pid) if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]
    assert len(workers) == 2
    admin_key = server.admin_key()
    with server.client(Authorization=f"Bearer {admin_key}") as client:
        for n in range(10):
            assert (
                client.post("/api/v1/teams", json={"name": f"team-{n}"}, headers={"Connection": "close"}).status_code
                == 201
            )
        assert client.get("/api/v1/teams").json()["total"] == 10
    server.process.terminate()
    assert server.wait_exit() == 0
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()]


# Restarts ----------------------------------------------------------------------------------------------


def test_a_restart_reuses_the_certificate_and_the_admin_key(launch: Launcher) -> None:
    first = launch()
    fingerprint, admin_key = first.fingerprint(), first.admin_key()
    cert_bytes = (first.data_dir / "server-tls.crt").read_bytes()
    assert "created now" in first.stdout
    first.stop()

    second = launch(first.data_dir)
    assert second.fingerprint() == fingerprint
    assert (second.data_dir / "server-tls.crt").read_bytes() == cert_bytes
    assert "created now" not in second.stdout
    assert second.admin_key() in (None, admin_key)
    with second.client(Authorization=f"Bearer {admin_key}") as client:
        assert client.get("/api/v1/auth/check").json()["user"] == "admin"
    _, der = handshake(second.port, insecure_context())
    assert colon_hex(hashlib.sha256(der).digest()) == fingerprint
    with sqlite3.connect(second.data_dir / "certctl.db") as db:
        assert db.execute("SELECT count(*) FROM api_keys").fetchone() == (1,)
    second.stop()

    # Once the operator has saved the key and deleted the file, it is not printed (nor replaced) again.
    (first.data_dir / "bootstrap-admin-key").unlink()
    third = launch(first.data_dir)
    assert third.admin_key() is None
    assert "bootstrap-admin-key" not in third.stdout
    with third.client(Authorization=f"Bearer {admin_key}") as client:
        assert client.get("/api/v1/auth/check").status_code == 200
    assert not (first.data_dir / "bootstrap-admin-key").exists()


# Operator-supplied TLS pairs ---------------------------------------------------------------------------


def test_an_operator_pair_is_served_and_no_bootstrap_certificate_is_made(launch: Launcher, tmp_path: Path) -> None:
    cert_path = write_self_signed(tmp_path / "tls", "operator")
    server = launch(server_tls_cert_path=str(cert_path), server_tls_key_path=str(cert_path.with_suffix(".key")))
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    assert server.fingerprint() == colon_hex(cert.fingerprint(hashes.SHA256()))
    _, der = handshake(server.port, insecure_context())
    assert der == cert.public_bytes(serialization.Encoding.DER)
    assert not (server.data_dir / "server-tls.crt").exists()


def _assert_refused_before_listening(server: Server, *fragments: str) -> None:
    assert server.wait_exit() != 0
    assert "listening" not in server.stdout
    for fragment in fragments:
        assert fragment in server.stderr, server.stderr
    # Nothing was prepared either: the TLS check comes before the database.
    assert not (server.data_dir / "certctl.db").exists()
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", server.port), timeout=2):
        pass


def test_a_key_that_does_not_match_the_certificate_stops_the_start(launch: Launcher, tmp_path: Path) -> None:
    cert_path = write_self_signed(tmp_path / "tls", "one")
    other = write_self_signed(tmp_path / "tls", "two")
    key_path = other.with_suffix(".key")
    server = launch(wait=False, server_tls_cert_path=str(cert_path), server_tls_key_path=str(key_path))
    _assert_refused_before_listening(server, "does not match", str(key_path), str(cert_path))


@pytest.mark.parametrize(
    ("broken", "fragment"),
    [("cert", "holds no PEM certificate"), ("key", "holds no usable PEM private key")],
)
def test_a_garbage_file_stops_the_start_naming_it(launch: Launcher, tmp_path: Path, broken: str, fragment: str) -> None:
    cert_path = write_self_signed(tmp_path / "tls", "pair")
    key_path = cert_path.with_suffix(".key")
    garbage = tmp_path / "tls" / "garbage.pem"
    garbage.write_text("-----BEGIN NOTHING-----\nnot base64 at all\n-----END NOTHING-----\n")
    paths = {"cert": cert_path, "key": key_path} | {broken: garbage}
    server = launch(wait=False, server_tls_cert_path=str(paths["cert"]), server_tls_key_path=str(paths["key"]))
    _assert_refused_before_listening(server, fragment, str(garbage))


def test_a_missing_file_stops_the_start(launch: Launcher, tmp_path: Path) -> None:
    cert_path = write_self_signed(tmp_path / "tls", "pair")
    missing = tmp_path / "tls" / "missing.key"
    server = launch(wait=False, server_tls_cert_path=str(cert_path), server_tls_key_path=str(missing))
    _assert_refused_before_listening(server, "does not exist", str(missing))


@pytest.mark.parametrize("only", ["server_tls_cert_path", "server_tls_key_path"])
def test_only_one_of_the_pair_stops_the_start(launch: Launcher, tmp_path: Path, only: str) -> None:
    cert_path = write_self_signed(tmp_path / "tls", "pair")
    value = cert_path if only.endswith("cert_path") else cert_path.with_suffix(".key")
    server = launch(wait=False, **{only: str(value)})
    _assert_refused_before_listening(server, "CERTCTL_SERVER_TLS_CERT_PATH and CERTCTL_SERVER_TLS_KEY_PATH")
    assert not (server.data_dir / "server-tls.crt").exists()


# Auth disabled ------------------------------------------------------------------------------------------


def test_auth_type_none_warns_at_start_and_prints_no_admin_key(launch: Launcher) -> None:
    server = launch(auth_type="none")
    warnings = [line for line in server.log_lines() if line["level"] == "warning" and line["msg"] == "auth.disabled"]
    assert len(warnings) == 1
    assert "CERTCTL_AUTH_TYPE=none" in str(warnings[0]["detail"])
    assert server.admin_key() is None
    with server.client() as client:
        assert client.get("/api/v1/auth/check").json()["user"] == "anonymous"
        assert client.get("/api/v1/auth/info").json() == {"auth_type": "none", "required": False}


# PostgreSQL -------------------------------------------------------------------------------------------


def test_the_server_migrates_and_serves_on_postgresql(launch: Launcher, pg_databases: PgDatabases | None) -> None:
    if pg_databases is None:
        if REQUIRE_PEERS:
            pytest.fail("PostgreSQL required (CERTCTL_REQUIRE_PEERS=1) but not available")
        pytest.skip("PostgreSQL not available")
    url = pg_databases.create("server")
    server = launch(database_url=url)
    assert "database: PostgreSQL" in server.stdout
    assert "postgres@" in server.stdout or "postgresql" in server.stdout
    assert not (server.data_dir / "certctl.db").exists()
    admin_key = server.admin_key()
    assert admin_key is not None
    with server.client(Authorization=f"Bearer {admin_key}") as client:
        assert client.get("/ready").json() == {"status": "ready", "db": "reachable"}
        assert client.get("/api/v1/auth/check").json()["admin"] is True
        assert client.post("/api/v1/teams", json={"name": "on-postgres"}).status_code == 201
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT name FROM teams")).scalars().all() == ["on-postgres"]
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
            assert conn.execute(text("SELECT name, role FROM api_keys")).all() == [("admin", "admin")]
    finally:
        engine.dispose()
