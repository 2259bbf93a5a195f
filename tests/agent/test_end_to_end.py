"""`certctl server` and `certctl agent` as separate processes, deploying to real NGINX, Apache and HAProxy.

The agent registers itself with the bootstrap token, makes the key, sends the CSR; the local CA signs
it; the agent deploys, verifies and reports. What each test watches is what an operator would: the
certificate the web server serves in a TLS handshake, the job rows, and the agent's exit status and
log. Intervals are short (poll 1 s, heartbeat 2 s, no verify delay), and nothing waits on a fixed
sleep: every wait polls for a condition with a deadline.
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from certctl.agent.state import StateFile
from certctl.deploy.verify import certificate_fingerprint
from tests.conftest import PgDatabases
from tests.deploy.material import TestCA
from tests.deploy.servers import (
    ApacheServer,
    HAProxyServer,
    NginxServer,
    free_port,
    settled_fingerprint,
)

ADMIN_KEY = "e2e-admin-key-0123456789abcdef"
BOOTSTRAP_TOKEN = "e2e-bootstrap-token-0123456789abcdef"
START_SECONDS = 30.0
WAIT_SECONDS = 45.0

pytestmark = pytest.mark.timeout(240)


def wait_for(what: str, check: Callable[[], Any], timeout: float = WAIT_SECONDS, diagnostics: str = "") -> Any:
    """Poll `check` until it returns something truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
        except (httpx.HTTPError, OSError, ValueError, KeyError, AssertionError) as exc:
            last_error, value = exc, None
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what} (last error: {last_error})\n{diagnostics}")


# -- the control plane ---------------------------------------------------------------------------------


@dataclass
class ControlPlane:
    root: Path
    database_url: str | None = None  # SQLite in the data directory when None
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"

    @property
    def ca_bundle(self) -> Path:
        return self.root / "data" / "server-tls.crt"

    def log(self) -> str:
        return "".join(p.read_text(errors="replace")[-4000:] for p in sorted(self.root.glob("server-*.log")))

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CERTCTL_")}
        env |= {
            "PYTHONUNBUFFERED": "1",
            "CERTCTL_DATA_DIR": str(self.root / "data"),
            "CERTCTL_SERVER_PORT": str(self.port),
            "CERTCTL_API_KEYS_NAMED": f"e2e-admin:{ADMIN_KEY}:admin",
            "CERTCTL_AGENT_BOOTSTRAP_TOKEN": BOOTSTRAP_TOKEN,
            "CERTCTL_KEYGEN_MODE": "agent",
            "CERTCTL_RATE_LIMIT_ENABLED": "false",
        }
        if self.database_url:
            env["CERTCTL_DATABASE_URL"] = self.database_url
        self.starts += 1
        with (self.root / f"server-{self.starts}.log").open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "certctl", "server"], env=env, stdout=out, stderr=subprocess.STDOUT
            )
        wait_for("the control plane to answer /health", self._healthy, START_SECONDS, self.log())

    def _healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            pytest.fail(f"certctl server exited with {self.process.returncode}:\n{self.log()}")
        with httpx.Client(verify=False, timeout=2) as client:  # noqa: S501 - only "is it up?"
            return client.get(f"https://127.0.0.1:{self.port}/health").status_code == 200

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            verify=ssl.create_default_context(cafile=str(self.ca_bundle)),
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            timeout=15,
        )

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        with self.api() as client:
            response = client.request(method, path, **kwargs)
        assert response.status_code < 400, f"{method} {path}: {response.status_code} {response.text}"
        return response.json() if response.content else None


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def control_plane(
    request: pytest.FixtureRequest, tmp_path: Path, pg_databases: PgDatabases | None
) -> Iterator[ControlPlane]:
    url = None
    if request.param == "postgresql":
        if pg_databases is None:
            pytest.skip("PostgreSQL is not available")
        url = pg_databases.create("agent_e2e")
    plane = ControlPlane(tmp_path / "cp", url)
    plane.root.mkdir()
    plane.start()
    yield plane
    plane.stop()


# -- the agent process ----------------------------------------------------------------------------------


@dataclass
class AgentProcess:
    root: Path
    plane: ControlPlane
    name: str
    process: subprocess.Popen[bytes] | None = None
    runs: int = 0

    @property
    def state_file(self) -> Path:
        return self.root / "state" / "agent.json"

    @property
    def key_dir(self) -> Path:
        return self.root / "keys"

    def log(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.root.glob("agent-*.log")))

    def log_lines(self) -> list[dict[str, Any]]:
        lines = []
        for line in self.log().splitlines():
            if line.startswith("{"):
                lines.append(json.loads(line))
        return lines

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CERTCTL_")}
        env |= {
            "PYTHONUNBUFFERED": "1",
            "CERTCTL_SERVER_URL": self.plane.url,
            "CERTCTL_SERVER_CA_BUNDLE_PATH": str(self.plane.ca_bundle),
            "CERTCTL_AGENT_BOOTSTRAP_TOKEN": BOOTSTRAP_TOKEN,
            "CERTCTL_AGENT_NAME": self.name,
            "CERTCTL_AGENT_STATE_FILE": str(self.state_file),
            "CERTCTL_KEY_DIR": str(self.key_dir),
            "CERTCTL_AGENT_POLL_INTERVAL": "1s",
            "CERTCTL_AGENT_HEARTBEAT_INTERVAL": "2s",
            "CERTCTL_VERIFY_DELAY": "0s",
            "CERTCTL_VERIFY_TIMEOUT": "3s",
            "CERTCTL_LOG_FORMAT": "json",
        }
        self.runs += 1
        with (self.root / f"agent-{self.runs}.log").open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "certctl", "agent"], env=env, stdout=out, stderr=subprocess.STDOUT
            )
        wait_for("the agent to register", self._registered, START_SECONDS, self.log())

    def _registered(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            pytest.fail(f"certctl agent exited with {self.process.returncode}:\n{self.log()}")
        return StateFile(self.state_file).load() is not None and "started as" in self.log()

    @property
    def agent_id(self) -> str:
        credentials = StateFile(self.state_file).load()
        assert credentials is not None
        return credentials.agent_id

    def wait_exit(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the agent did not exit within {timeout} s:\n{self.log()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@pytest.fixture
def agent(control_plane: ControlPlane, tmp_path: Path) -> Iterator[AgentProcess]:
    process = AgentProcess(tmp_path / "agent", control_plane, "e2e-web-1")
    process.root.mkdir()
    process.start()
    yield process
    process.stop()


# -- inventory through the REST API --------------------------------------------------------------------


def make_owner(plane: ControlPlane) -> tuple[str, str]:
    team = plane.call("POST", "/api/v1/teams", json={"name": "web"})
    owner = plane.call("POST", "/api/v1/owners", json={"name": "alice", "team_id": team["id"]})
    return team["id"], owner["id"]


def make_target(plane: ControlPlane, agent_id: str, name: str, target_type: str, config: dict[str, Any]) -> str:
    body = {"name": name, "type": target_type, "agent_id": agent_id, "config": config}
    return str(plane.call("POST", "/api/v1/targets", json=body)["id"])


def make_certificate(plane: ControlPlane, target_ids: list[str]) -> str:
    team_id, owner_id = make_owner(plane)
    body = {
        "name": "e2e-localhost",
        "common_name": "localhost",
        "sans": ["localhost", "127.0.0.1"],
        "owner_id": owner_id,
        "team_id": team_id,
        "issuer_id": "iss-local",
        "renewal_policy_id": "rp-default",
        "target_ids": target_ids,
    }
    return str(plane.call("POST", "/api/v1/certificates", json=body)["id"])


def versions(plane: ControlPlane, cert_id: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = plane.call("GET", f"/api/v1/certificates/{cert_id}/versions")["data"]
    return sorted(data, key=lambda v: v["created_at"])


def jobs(plane: ControlPlane, cert_id: str, job_type: str = "Deployment") -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = plane.call(
        "GET", "/api/v1/jobs", params={"certificate_id": cert_id, "type": job_type, "per_page": 200}
    )["data"]
    return sorted(found, key=lambda j: j["created_at"])


def wait_for_version(plane: ControlPlane, cert_id: str, count: int, agent: AgentProcess) -> dict[str, Any]:
    def issued() -> dict[str, Any] | None:
        found = versions(plane, cert_id)
        return found[-1] if len(found) >= count else None

    result: dict[str, Any] = wait_for(f"version {count} of {cert_id}", issued, diagnostics=agent.log()[-6000:])
    return result


def wait_for_deployments(
    plane: ControlPlane, cert_id: str, version: dict[str, Any], target_ids: list[str], agent: AgentProcess
) -> dict[str, dict[str, Any]]:
    """Per target, the newest Deployment job created since `version`, once its attempt has ended:
    Completed, Failed, or back to Pending with an attempt counted (a retry is scheduled)."""
    since = datetime.fromisoformat(version["created_at"])

    def finished() -> dict[str, dict[str, Any]] | None:
        newest = {
            job["target_id"]: job
            for job in jobs(plane, cert_id)
            if job["target_id"] in target_ids and datetime.fromisoformat(job["created_at"]) >= since
        }
        done = {
            target: job
            for target, job in newest.items()
            if job["status"] in ("Completed", "Failed") or (job["status"] == "Pending" and job["attempts"] > 0)
        }
        return done if set(done) == set(target_ids) else None

    result: dict[str, dict[str, Any]] = wait_for(
        f"deployments of {version['id']}", finished, diagnostics=agent.log()[-6000:]
    )
    return result


def renew(plane: ControlPlane, cert_id: str) -> None:
    plane.call("POST", f"/api/v1/certificates/{cert_id}/renew", json={})


def write_fail_once(path: Path, then: list[str]) -> str:
    """A reload command that fails the first time it runs, then runs `then` (no shell in the command
    itself: the agent runs the script's path as an argument list)."""
    marker = path.with_suffix(".failed-once")
    path.write_text(
        "#!/bin/sh\n"
        f'if [ ! -e "{marker}" ]; then touch "{marker}"; echo "reload refused (test)" >&2; exit 1; fi\n'
        f"exec {' '.join(then)}\n"
    )
    path.chmod(0o755)
    return str(path)


# -- the tests -------------------------------------------------------------------------------------------


def test_issue_deploy_renew_roll_back_and_retire_on_nginx(
    control_plane: ControlPlane, agent: AgentProcess, tmp_path: Path
) -> None:
    initial = TestCA().issue()
    nginx = NginxServer(tmp_path / "nginx", initial)
    nginx.start(initial.fingerprint)
    try:
        agent_id = agent.agent_id
        config = {
            "cert_path": str(nginx.cert_path),
            "key_path": str(nginx.key_path),
            "validate_command": nginx.validate_command,
            "reload_command": nginx.reload_command,
            "post_deploy_verify": {"endpoint": f"127.0.0.1:{nginx.port}", "server_name": "localhost"},
        }
        target_id = make_target(control_plane, agent_id, "nginx-e2e", "NGINX", config)
        cert_id = make_certificate(control_plane, [target_id])

        # Issuance: the key is made on the agent, the certificate served by nginx.
        first = wait_for_version(control_plane, cert_id, 1, agent)
        deployed = wait_for_deployments(control_plane, cert_id, first, [target_id], agent)[target_id]
        assert deployed["status"] == "Completed", deployed
        assert deployed["verification_status"] == "success"
        assert deployed["verification_fingerprint"] == first["fingerprint_sha256"].replace(":", "").lower()
        assert settled_fingerprint(nginx.port) == certificate_fingerprint(first["pem_chain"])
        key_file = agent.key_dir / f"{cert_id}.key"
        assert key_file.read_text().startswith("-----BEGIN EC PRIVATE KEY-----")
        assert key_file.stat().st_mode & 0o777 == 0o600
        assert nginx.key_path.read_text() == key_file.read_text()
        assert "PRIVATE KEY" not in json.dumps(versions(control_plane, cert_id))  # the key never left the host

        # Renewal: a new key and certificate; the previous key is kept as .prev.
        renew(control_plane, cert_id)
        second = wait_for_version(control_plane, cert_id, 2, agent)
        deployed = wait_for_deployments(control_plane, cert_id, second, [target_id], agent)[target_id]
        assert deployed["status"] == "Completed", deployed
        assert settled_fingerprint(nginx.port) == certificate_fingerprint(second["pem_chain"])
        assert (agent.key_dir / f"{cert_id}.key.prev").exists()

        # A broken deploy: the validate command fails after the swap; files restored, no reload.
        reloads_before = nginx.reloads()
        control_plane.call(
            "PATCH", f"/api/v1/targets/{target_id}", json={"config": config | {"validate_command": "false"}}
        )
        renew(control_plane, cert_id)
        third = wait_for_version(control_plane, cert_id, 3, agent)
        failed = wait_for_deployments(control_plane, cert_id, third, [target_id], agent)[target_id]
        assert failed["status"] in ("Failed", "Pending"), failed
        assert (failed["last_error"] or "").startswith("deployment failed: nginx -t failed"), failed
        assert failed["deployment_result"]["stage"] == "validate"
        assert nginx.reloads() == reloads_before
        assert settled_fingerprint(nginx.port) == certificate_fingerprint(second["pem_chain"])
        assert nginx.cert_path.read_text() in second["pem_chain"]

        # Retirement: the agent says why and exits 0 (systemd's Restart=on-failure leaves it down).
        with control_plane.api() as client:
            response = client.delete(
                f"/api/v1/agents/{agent_id}", params={"force": "true", "reason": "host decommissioned"}
            )
        assert response.status_code == 200, response.text
        assert agent.wait_exit() == 0
        retired = [line for line in agent.log_lines() if "agent retired by control plane" in line.get("msg", "")]
        assert retired, agent.log()[-4000:]
        assert "host decommissioned" in retired[0]["msg"]
    finally:
        nginx.stop()


def test_apache_and_haproxy_survive_a_server_restart_and_a_failed_reload(
    control_plane: ControlPlane, agent: AgentProcess, tmp_path: Path
) -> None:
    initial = TestCA().issue()
    apache = ApacheServer(tmp_path / "apache", initial)
    haproxy = HAProxyServer(tmp_path / "haproxy", initial)
    apache.start(initial.fingerprint)
    haproxy.start(initial.fingerprint)
    try:
        agent_id = agent.agent_id
        apache_id = make_target(
            control_plane,
            agent_id,
            "apache-e2e",
            "Apache",
            {
                "cert_path": str(apache.cert_path),
                "key_path": str(apache.key_path),
                "chain_path": str(apache.chain_path),
                "validate_command": apache.validate_command,
                "reload_command": apache.reload_command,
                "verify_endpoint": f"127.0.0.1:{apache.port}",  # agent-level verification only
            },
        )
        haproxy_reload = haproxy.reload_command.split()
        haproxy_config = {
            "pem_path": str(haproxy.pem_path),
            "validate_command": haproxy.validate_command,
            "reload_command": haproxy.reload_command,
            "post_deploy_verify": {"endpoint": f"127.0.0.1:{haproxy.port}", "server_name": "localhost"},
        }
        haproxy_id = make_target(control_plane, agent_id, "haproxy-e2e", "HAProxy", haproxy_config)
        targets = [apache_id, haproxy_id]
        cert_id = make_certificate(control_plane, targets)
        first = wait_for_version(control_plane, cert_id, 1, agent)
        done = wait_for_deployments(control_plane, cert_id, first, targets, agent)
        assert {t: j["status"] for t, j in done.items()} == dict.fromkeys(targets, "Completed"), done
        assert done[apache_id]["verification_status"] == "success"  # probed by the agent itself
        expected = certificate_fingerprint(first["pem_chain"])
        assert settled_fingerprint(apache.port) == expected
        assert settled_fingerprint(haproxy.port) == expected

        # The control plane goes away and comes back on the same port and database.
        control_plane.stop()
        wait_for("the agent to notice the outage", lambda: "agent.heartbeat.failed" in agent.log())
        control_plane.start()
        wait_for("the agent to reconnect", lambda: "agent.reconnected" in agent.log(), diagnostics=agent.log()[-4000:])
        assert agent.process is not None
        assert agent.process.poll() is None

        # Renewal after the restart, with an HAProxy reload that fails once: rolled back there.
        script = write_fail_once(tmp_path / "haproxy-reload.sh", haproxy_reload)
        control_plane.call(
            "PATCH", f"/api/v1/targets/{haproxy_id}", json={"config": haproxy_config | {"reload_command": script}}
        )
        renew(control_plane, cert_id)
        second = wait_for_version(control_plane, cert_id, 2, agent)
        done = wait_for_deployments(control_plane, cert_id, second, targets, agent)
        assert done[apache_id]["status"] == "Completed", done[apache_id]
        assert settled_fingerprint(apache.port) == certificate_fingerprint(second["pem_chain"])
        rolled_back = done[haproxy_id]
        assert rolled_back["status"] in ("Failed", "Pending"), rolled_back
        assert rolled_back["deployment_result"]["rolled_back"] is True
        assert rolled_back["deployment_result"]["rollback_outcome"] == "restored"
        assert "reload" in (rolled_back["last_error"] or "")
        assert settled_fingerprint(haproxy.port) == expected  # still the first certificate

        # A restart of the agent reuses its state file: no second registration.
        agent.stop()
        assert agent.process is not None
        assert agent.process.returncode == 0
        assert "agent stopped" in agent.log()
        agent.start()
        assert agent.agent_id == agent_id
        listed = control_plane.call("GET", "/api/v1/agents")["data"]
        assert [a["id"] for a in listed if a["name"] == agent.name] == [agent_id]
    finally:
        apache.stop()
        haproxy.stop()
