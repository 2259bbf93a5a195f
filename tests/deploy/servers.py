"""Real nginx, Apache, HAProxy, Caddy, Postfix and Dovecot on loopback high ports, each in its own temp
directory (stack.md §C.6, §C.9).

Each server starts with certificate A already in place, runs as the current user (root in CI: workers
drop to nobody / www-data), is stopped by pid in the fixture's finalizer — even when the test failed —
and every path it uses is inside the test's directory.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from certctl.deploy.verify import Endpoint, probe_tls
from tests.conftest import REQUIRE_PEERS
from tests.deploy.material import Material

READY_SECONDS = 10.0


def require_binary(name: str, package: str = "nginx apache2 haproxy") -> str:
    """The binary's path; skip when missing, or fail when CERTCTL_REQUIRE_PEERS=1."""
    path = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/sbin/{name}") if os.access(p, os.X_OK)), None
    )
    if path is None:
        message = f"{name} is not installed (apt-get install -y --no-install-recommends {package})"
        if REQUIRE_PEERS:
            pytest.fail(f"{message}; required because CERTCTL_REQUIRE_PEERS=1")
        pytest.skip(message)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def served_fingerprint(port: int) -> str:
    """The SHA-256 of the certificate served now ("" when nothing answers)."""
    return probe_tls(Endpoint("127.0.0.1", port, "localhost"), 2.0).fingerprint


def wait_until_served(port: int, fingerprint: str | None = None, timeout: float = READY_SECONDS) -> str:
    """Poll until the port serves TLS (with `fingerprint`, when given); returns what it serves."""
    deadline = time.monotonic() + timeout
    while True:
        served = served_fingerprint(port)
        if served and (fingerprint is None or served == fingerprint):
            return served
        if time.monotonic() > deadline:
            raise AssertionError(f"port {port} serves {served or 'nothing'}, expected {fingerprint or 'TLS'}")
        time.sleep(0.05)


def settled_fingerprint(port: int, timeout: float = READY_SECONDS, in_a_row: int = 5) -> str:
    """What the port serves once it stops changing.

    Right after a reload the old workers can still accept a connection or two (nginx, HAProxy and
    Apache all drain gracefully), so one probe may see either certificate; wait for `in_a_row` equal
    answers.
    """
    deadline = time.monotonic() + timeout
    last, streak = "", 0
    while time.monotonic() < deadline:
        served = served_fingerprint(port)
        streak = streak + 1 if served == last else 1
        last = served
        if streak >= in_a_row:
            return served
        time.sleep(0.05)
    raise AssertionError(
        f"port {port} did not settle on one certificate within {timeout} s (last: {last or 'nothing'})"
    )


def pid_alive(pid: int) -> bool:
    """Running, and not a zombie (an exited process nobody has reaped yet)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our own child
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def stop_pid(pid: int, sig: signal.Signals = signal.SIGTERM, timeout: float = 5.0) -> None:
    """Signal one process we started and wait for it to go; SIGKILL after the timeout."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)
            break
        time.sleep(0.05)


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def write_material(certs: Path, material: Material, *, cert: str, key: str, chain: str | None = None) -> None:
    certs.mkdir(parents=True, exist_ok=True)
    (certs / cert).write_text(material.cert_pem)
    (certs / key).write_text(material.key_pem)
    os.chmod(certs / key, 0o600)
    if chain:
        (certs / chain).write_text(material.chain_pem)


class NginxServer:
    """`nginx -p P -c P/nginx.conf` in the foreground (`daemon off;`); reload via `nginx -s reload`."""

    def __init__(self, root: Path, material: Material) -> None:
        self.binary = require_binary("nginx")
        self.root, self.port = root, free_port()
        self.certs = root / "certs"
        self.cert_path, self.key_path, self.chain_path = (
            self.certs / "cert.pem",
            self.certs / "key.pem",
            self.certs / "chain.pem",
        )
        self.conf, self.error_log = root / "nginx.conf", root / "logs" / "error.log"
        for sub in ("logs", "temp"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        write_material(self.certs, material, cert="cert.pem", key="key.pem")
        temps = "\n".join(
            f"    {name}_temp_path {root}/temp/{name};" for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        self.conf.write_text(
            f"""daemon off;
pid {root}/nginx.pid;
error_log {self.error_log} notice;
worker_processes 1;
events {{ worker_connections 64; }}
http {{
    access_log off;
{temps}
    server {{
        listen 127.0.0.1:{self.port} ssl;
        ssl_certificate {self.cert_path};
        ssl_certificate_key {self.key_path};
        location / {{ return 200 "ok"; }}
    }}
}}
"""
        )
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def common_args(self) -> str:
        return f"-p {self.root} -c {self.conf} -e {self.error_log}"

    @property
    def validate_command(self) -> str:
        return f"{self.binary} -t -q {self.common_args}"

    @property
    def reload_command(self) -> str:
        return f"{self.binary} -s reload {self.common_args}"

    def start(self, fingerprint: str) -> None:
        self.process = subprocess.Popen(
            [self.binary, "-p", str(self.root), "-c", str(self.conf), "-e", str(self.error_log)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until_served(self.port, fingerprint)

    def reloads(self) -> int:
        """How many reloads the master has started (it logs each SIGHUP at notice level)."""
        return self.error_log.read_text().count("signal 1 (SIGHUP) received")

    def stop(self) -> None:
        if self.process is not None:
            stop_pid(self.process.pid, signal.SIGQUIT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=1)


class ApacheServer:
    """Debian's `apache2 -f httpd.conf -DFOREGROUND`; graceful via `apache2 -f httpd.conf -k graceful`.

    In the foreground the parent is our child, and a thread reaps it the moment it exits. That matters:
    `-k graceful` decides "not running, start it" with kill(pid, 0), which a zombie passes, and an
    orphaned daemon's zombie lingers until a lazy init reaps it (over a second in some containers).
    """

    def __init__(self, root: Path, material: Material) -> None:
        self.binary = require_binary("apache2")
        self.root, self.port = root, free_port()
        self.certs = root / "certs"
        self.cert_path, self.key_path, self.chain_path = (
            self.certs / "cert.pem",
            self.certs / "key.pem",
            self.certs / "chain.pem",
        )
        self.conf, self.pid_file = root / "httpd.conf", root / "run" / "httpd.pid"
        for sub in ("run", "logs"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        write_material(self.certs, material, cert="cert.pem", key="key.pem", chain="chain.pem")
        self.process: subprocess.Popen[bytes] | None = None
        modules = "/usr/lib/apache2/modules"
        user = "User www-data\nGroup www-data\n" if os.geteuid() == 0 else ""
        self.conf.write_text(
            f"""ServerRoot /etc/apache2
ServerName localhost
Listen 127.0.0.1:{self.port}
PidFile {self.pid_file}
DefaultRuntimeDir {root}/run
Mutex posixsem default
ErrorLog {root}/logs/error.log
LogLevel warn
{user}LoadModule mpm_event_module {modules}/mod_mpm_event.so
LoadModule authz_core_module {modules}/mod_authz_core.so
LoadModule socache_shmcb_module {modules}/mod_socache_shmcb.so
LoadModule ssl_module {modules}/mod_ssl.so
SSLSessionCache shmcb:{root}/run/ssl_scache(512000)
StartServers 1
ServerLimit 4
ThreadsPerChild 8
MaxRequestWorkers 16
MinSpareThreads 8
MaxSpareThreads 16
<VirtualHost 127.0.0.1:{self.port}>
    SSLEngine on
    SSLCertificateFile {self.cert_path}
    SSLCertificateKeyFile {self.key_path}
    SSLCertificateChainFile {self.chain_path}
</VirtualHost>
"""
        )

    @property
    def validate_command(self) -> str:
        return f"{self.binary} -t -f {self.conf}"

    @property
    def reload_command(self) -> str:
        return f"{self.binary} -f {self.conf} -k graceful"

    def start(self, fingerprint: str) -> None:
        self.process = subprocess.Popen(
            [self.binary, "-f", str(self.conf), "-DFOREGROUND"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        threading.Thread(target=self.process.wait, daemon=True).start()  # reap at once (see the class doc)
        wait_until_served(self.port, fingerprint)

    def stop(self) -> None:
        if self.process is not None:
            stop_pid(self.process.pid)
        # A graceful with a bad key makes the parent exit, and the rollback's graceful starts a new,
        # daemonized parent: stop whatever the pid file names too.
        for _ in range(3):
            pid = read_pid(self.pid_file)
            if pid is None or not pid_alive(pid):
                return
            stop_pid(pid)


class HAProxyServer:
    """`haproxy -W -f haproxy.cfg` in the foreground (master-worker); reload by `kill -USR2 <master>`."""

    def __init__(self, root: Path, material: Material) -> None:
        self.binary = require_binary("haproxy")
        self.root, self.port = root, free_port()
        self.pem_path = root / "certs" / "site.pem"
        self.conf = root / "haproxy.cfg"
        self.pem_path.parent.mkdir(parents=True, exist_ok=True)
        self.pem_path.write_text(material.cert_pem + material.key_pem)
        os.chmod(self.pem_path, 0o600)
        self.conf.write_text(self.config(f'"{self.pem_path}"'))
        self.process: subprocess.Popen[bytes] | None = None

    def config(self, crt: str) -> str:
        return f"""global
    log stderr format raw local0 notice
defaults
    mode http
    timeout connect 2s
    timeout client 5s
    timeout server 5s
frontend tls
    bind 127.0.0.1:{self.port} ssl crt {crt}
    http-request return status 200 content-type text/plain string ok
"""

    @property
    def validate_command(self) -> str:
        return f"{self.binary} -c -q -f {self.conf}"

    @property
    def reload_command(self) -> str:
        assert self.process is not None
        return f"kill -USR2 {self.process.pid}"

    def start(self, fingerprint: str) -> None:
        with (self.root / "haproxy.log").open("wb") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                [self.binary, "-W", "-f", str(self.conf)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        wait_until_served(self.port, fingerprint)

    def stop(self) -> None:
        if self.process is not None:
            stop_pid(self.process.pid)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=1)


def require_root(what: str) -> None:
    """Skip (or fail with CERTCTL_REQUIRE_PEERS=1) when not root: some servers drop privileges themselves."""
    if os.geteuid() != 0:
        message = f"{what} must be started as root"
        if REQUIRE_PEERS:
            pytest.fail(f"{message}; required because CERTCTL_REQUIRE_PEERS=1")
        pytest.skip(message)


def traversable_temp_dir(prefix: str) -> Path:
    """A fresh directory under /tmp that unprivileged daemon users can pass through (0711).

    pytest's tmp_path sits below a 0700 directory, which Postfix's `postfix` user cannot traverse.
    """
    root = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(root, 0o711)  # noqa: S103 - traversable, not readable: what the daemon users need
    return root


def starttls_fingerprint(port: int, timeout: float = 5.0) -> str:
    """SHA-256 of the certificate an SMTP server presents after STARTTLS ("" when it offers none)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with smtplib.SMTP("127.0.0.1", port, timeout=timeout) as smtp:
        smtp.ehlo("certctl-test")
        if not smtp.has_extn("starttls"):
            return ""
        smtp.starttls(context=context)
        assert isinstance(smtp.sock, ssl.SSLSocket)
        der = smtp.sock.getpeercert(binary_form=True)
    return hashlib.sha256(der or b"").hexdigest() if der else ""


class CaddyServer:
    """`caddy run --config caddy.json` (Caddy 2.6): an HTTPS server, the admin API on its own port.

    `certificates` is the initial `apps.tls.certificates` object (`load_files`, `load_pem`, …); None
    leaves the tls app out.
    """

    def __init__(self, root: Path, certificates: dict[str, object] | None) -> None:
        self.binary = require_binary("caddy", "caddy")
        self.root, self.port, self.admin_port = root, free_port(), free_port()
        self.certs = root / "certs"
        self.certs.mkdir(parents=True, exist_ok=True)
        self.conf = root / "caddy.json"
        self.conf.write_text(json.dumps(self.config(certificates), indent=2))
        self.process: subprocess.Popen[bytes] | None = None

    def config(self, certificates: dict[str, object] | None) -> dict[str, object]:
        server = {
            "listen": [f"127.0.0.1:{self.port}"],
            "tls_connection_policies": [{}],
            "automatic_https": {"disable": True},
            "routes": [{"handle": [{"handler": "static_response", "body": "ok"}]}],
        }
        apps: dict[str, object] = {"http": {"servers": {"tls": server}}}
        if certificates is not None:
            apps["tls"] = {"certificates": certificates}
        return {
            "admin": {"listen": f"127.0.0.1:{self.admin_port}"},
            "storage": {"module": "file_system", "root": str(self.root / "data")},
            "apps": apps,
        }

    @property
    def admin_api(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def reload_command(self) -> str:
        return f"{self.binary} reload --force --config {self.conf} --address 127.0.0.1:{self.admin_port}"

    @property
    def environment(self) -> dict[str, str]:
        home = str(self.root)
        return {**os.environ, "HOME": home, "XDG_DATA_HOME": home, "XDG_CONFIG_HOME": home}

    def start(self, fingerprint: str | None) -> None:
        """Start and wait until `fingerprint` is served (None: until the admin API answers)."""
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [self.binary, "run", "--config", str(self.conf)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.environment,
            )
        if fingerprint is not None:
            wait_until_served(self.port, fingerprint)
            return
        deadline = time.monotonic() + READY_SECONDS
        while True:
            try:
                self.current_certificates()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    @property
    def log(self) -> Path:
        return self.root / "caddy.log"

    def current_certificates(self) -> object:
        """GET /config/apps/tls/certificates (None when there is no such object)."""
        try:
            with urllib.request.urlopen(f"{self.admin_api}/config/apps/tls/certificates", timeout=5) as response:  # noqa: S310
                return json.load(response)
        except urllib.error.HTTPError as exc:
            if exc.code == 400:  # "invalid traversal path": no tls app yet
                return None
            raise

    def admin_requests(self) -> list[tuple[str, str]]:
        """(method, uri) of every admin API request Caddy logged, in order, except this helper's own."""
        requests = []
        for line in self.log.read_text().splitlines():
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if entry.get("logger") != "admin.api" or entry.get("msg") != "received request":
                    continue
                if any(agent.startswith("Python-urllib") for agent in entry["headers"].get("User-Agent", [])):
                    continue  # current_certificates() and start()
                requests.append((entry["method"], entry["uri"]))
        return requests

    def stop(self) -> None:
        if self.process is not None:
            stop_pid(self.process.pid)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=1)


class PostfixServer:
    """`postfix -c DIR start-fg`: smtpd with STARTTLS on one port and implicit TLS (like 465) on another.

    Runs as root (the master drops to `postfix`), in a 0711 directory under /tmp; logs to stdout.
    """

    def __init__(self, material: Material) -> None:
        self.binary = require_binary("postfix", "postfix")
        require_root("postfix")
        self.root = traversable_temp_dir("certctl-postfix-")
        self.smtp_port, self.port = free_port(), free_port()
        self.certs = self.root / "certs"
        self.cert_path, self.key_path = self.certs / "cert.pem", self.certs / "key.pem"
        write_material(self.certs, material, cert="cert.pem", key="key.pem")
        for sub in ("spool", "data"):
            (self.root / sub).mkdir()
        shutil.chown(self.root / "data", "postfix")
        (self.root / "main.cf").write_text(
            f"""compatibility_level = 3.6
queue_directory = {self.root}/spool
data_directory = {self.root}/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = localhost
mydestination =
maillog_file = /dev/stdout
smtpd_tls_cert_file = {self.cert_path}
smtpd_tls_key_file = {self.key_path}
smtpd_tls_security_level = may
"""
        )
        services = "\n".join(
            f"{name} unix - - n - {limit} {command}"
            for name, limit, command in (
                ("pickup", "1", "pickup"),
                ("cleanup", "0", "cleanup"),
                ("qmgr", "1", "qmgr"),
                ("tlsmgr", "1", "tlsmgr"),
                ("rewrite", "-", "trivial-rewrite"),
                ("bounce", "0", "bounce"),
                ("defer", "0", "bounce"),
                ("trace", "0", "bounce"),
                ("verify", "1", "verify"),
                ("proxymap", "-", "proxymap"),
                ("anvil", "1", "anvil"),
                ("scache", "1", "scache"),
            )
        )
        (self.root / "master.cf").write_text(
            f"""127.0.0.1:{self.smtp_port} inet n - n - - smtpd
127.0.0.1:{self.port} inet n - n - - smtpd -o smtpd_tls_wrappermode=yes
{services}
postlog unix-dgram n - n - 1 postlogd
"""
        )
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def validate_command(self) -> str:
        return f"{self.binary} -c {self.root} check"

    @property
    def reload_command(self) -> str:
        return f"{self.binary} -c {self.root} reload"

    def start(self, fingerprint: str) -> None:
        with (self.root / "postfix.log").open("wb") as log:
            self.process = subprocess.Popen(
                [self.binary, "-c", str(self.root), "start-fg"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until_served(self.port, fingerprint)

    def stop(self) -> None:
        master = read_pid(self.root / "spool" / "pid" / "master.pid")
        if master is not None and pid_alive(master):
            stop_pid(master)
        if self.process is not None:
            stop_pid(self.process.pid)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=1)
        shutil.rmtree(self.root, ignore_errors=True)


class DovecotServer:
    """`dovecot -c dovecot.conf -F` with no mail protocol: its doveadm service listens with TLS
    (`ssl = yes`) on a loopback port, which is enough to see the certificate it serves."""

    def __init__(self, material: Material) -> None:
        self.binary = require_binary("dovecot", "dovecot-core")
        require_root("dovecot")
        self.root = traversable_temp_dir("certctl-dovecot-")
        self.port = free_port()
        self.certs = self.root / "certs"
        self.cert_path, self.key_path = self.certs / "cert.pem", self.certs / "key.pem"
        write_material(self.certs, material, cert="cert.pem", key="key.pem")
        self.conf = self.root / "dovecot.conf"
        self.conf.write_text(
            f"""base_dir = {self.root}/run
state_dir = {self.root}/state
log_path = {self.root}/dovecot.log
protocols = none
listen = 127.0.0.1
ssl = yes
ssl_cert = <{self.cert_path}
ssl_key = <{self.key_path}
doveadm_password = certctl-test
service doveadm {{
  inet_listener {{
    address = 127.0.0.1
    port = {self.port}
    ssl = yes
  }}
}}
"""
        )
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def validate_command(self) -> str:
        return f"{shutil.which('doveconf') or 'doveconf'} -c {self.conf} -n"

    @property
    def reload_command(self) -> str:
        return f"{shutil.which('doveadm') or 'doveadm'} -c {self.conf} reload"

    def start(self, fingerprint: str) -> None:
        (self.root / "state").mkdir(exist_ok=True)
        self.process = subprocess.Popen(
            [self.binary, "-c", str(self.conf), "-F"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until_served(self.port, fingerprint)

    def stop(self) -> None:
        if self.process is not None:
            stop_pid(self.process.pid)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=1)
        shutil.rmtree(self.root, ignore_errors=True)
