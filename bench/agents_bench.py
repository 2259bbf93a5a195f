"""Agent protocol under load, and one real NGINX deployment (issue 5's performance targets).

1. Work polls: one `certctl server` process (HTTPS, scheduler on, PostgreSQL or SQLite) and N simulated
   agents (default 200) that each poll `GET /api/v1/agents/{id}/work` every `--interval` seconds (30),
   heartbeat every 60 s, and report every Deployment they are handed as Completed, the way
   `certctl agent` does. The inventory behind them: `--certificates` issued certificates mapped to the
   agents' targets, with a share of them waiting for deployment, so polls claim real work.
   Target: p99 < 50 ms.
2. NGINX deploy: write, `nginx -t`, reload and TLS-verify a new certificate on a real nginx on a
   loopback port, through the same connector the agent uses. Target: < 2 s.

    CERTCTL_BENCH_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/<empty db> \\
        .venv/bin/python bench/agents_bench.py [--agents 200] [--interval 30] [--duration 120]

Without CERTCTL_BENCH_DATABASE_URL the server runs on a temporary SQLite file.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.lifecycle_bench import free_port, percentile, wait_healthy

from certctl.agents.models import Agent, AgentStatus
from certctl.certificates.models import (
    CertificateStatus,
    CertificateTargetMapping,
    CertificateVersion,
    ManagedCertificate,
)
from certctl.db import migrate
from certctl.db.engine import Database
from certctl.ids import new_id
from certctl.jobs.models import Job, JobStatus, JobType
from certctl.org.models import Owner, Team
from certctl.security.apikeys import hash_key
from certctl.targets.models import DeploymentTarget, TargetType

API_KEY = "agents-bench-admin-key-0123456789"
ENCRYPTION_KEY = "agents-bench-encryption-passphrase-0123456789"
NGINX_CONFIG = {"cert_path": "/etc/nginx/ssl/site.crt", "key_path": "/etc/nginx/ssl/site.key"}


def agent_key(index: int) -> str:
    return f"bench-agent-key-{index:05d}-0123456789abcdef"


def seed(db: Database, agents: int, certificates: int, waiting_share: float) -> list[str]:
    """Agents (with known credentials), one NGINX target each, issued certificates spread over them, and
    Pending deployments for `waiting_share` of the certificates. Returns the agent ids."""
    now = datetime.now(UTC)
    agent_ids = [f"agent-bench-{i:05d}" for i in range(agents)]
    rng = random.Random(5)
    with db.begin() as session:
        session.add(Team(id="t-bench", name="bench", created_at=now, updated_at=now))
        session.flush()
        session.add(
            Owner(
                id="o-bench",
                name="Bench",
                email="bench@example.test",
                team_id="t-bench",
                created_at=now,
                updated_at=now,
            )
        )
        session.flush()
        session.execute(
            insert(Agent),
            [
                {
                    "id": agent_id,
                    "name": agent_id,
                    "hostname": f"{agent_id}.example.test",
                    "status": AgentStatus.ONLINE,
                    "registered_at": now,
                    "last_heartbeat_at": now,
                    "api_key_hash": hash_key(agent_key(i)),
                }
                for i, agent_id in enumerate(agent_ids)
            ],
        )
        session.execute(
            insert(DeploymentTarget),
            [
                {
                    "id": f"target-{agent_id}",
                    "name": "site",
                    "type": TargetType.NGINX,
                    "agent_id": agent_id,
                    "config": NGINX_CONFIG,
                    "created_at": now,
                    "updated_at": now,
                }
                for agent_id in agent_ids
            ],
        )
        certs, versions, mappings, jobs = [], [], [], []
        for n in range(certificates):
            cert_id, version_id = f"mc-bench-{n:07d}", f"certver-bench-{n:07d}"
            agent_id = agent_ids[n % agents]
            certs.append(
                {
                    "id": cert_id,
                    "name": cert_id,
                    "common_name": f"site-{n}.example.test",
                    "sans": [],
                    "owner_id": "o-bench",
                    "team_id": "t-bench",
                    "issuer_id": "iss-local",
                    "renewal_policy_id": "rp-default",
                    "status": CertificateStatus.ACTIVE,
                    "expires_at": now + timedelta(days=60),
                    "tags": {},
                    "created_at": now,
                    "updated_at": now,
                }
            )
            versions.append(
                {
                    "id": version_id,
                    "certificate_id": cert_id,
                    "serial_number": f"{n + 1:x}",
                    "not_before": now,
                    "not_after": now + timedelta(days=60),
                    "fingerprint_sha256": f"{n:064x}",
                    "pem_chain": "-----BEGIN CERTIFICATE-----\n",
                    "created_at": now,
                }
            )
            mappings.append({"certificate_id": cert_id, "target_id": f"target-{agent_id}", "created_at": now})
            if rng.random() < waiting_share:
                jobs.append(
                    {
                        "id": new_id("job"),
                        "type": JobType.DEPLOYMENT,
                        "certificate_id": cert_id,
                        "target_id": f"target-{agent_id}",
                        "agent_id": agent_id,
                        "version_id": version_id,
                        "status": JobStatus.PENDING,
                        "attempts": 0,
                        "max_attempts": 3,
                        "scheduled_at": now,
                        "created_at": now,
                    }
                )
        for rows, table in (
            (certs, ManagedCertificate),
            (versions, CertificateVersion),
            (mappings, CertificateTargetMapping),
            (jobs, Job),
        ):
            for start in range(0, len(rows), 5000):
                session.execute(insert(table), rows[start : start + 5000])
    print(f"seeded {agents} agents, {certificates} certificates, {len(jobs)} waiting deployments")
    return agent_ids


async def simulate(
    url: str, agent_ids: list[str], interval: float, duration: float
) -> tuple[list[tuple[float, float]], int, int]:
    """Every agent polls every `interval` s (first poll at a random offset) and heartbeats every 60 s;
    returns (seconds since start, latency ms) per poll, the jobs handed out and the errors seen."""
    latencies: list[tuple[float, float]] = []
    began = time.monotonic()
    handed = errors = 0
    stop_at = time.monotonic() + duration
    limits = httpx.Limits(max_connections=len(agent_ids) + 10, max_keepalive_connections=len(agent_ids) + 10)
    async with httpx.AsyncClient(base_url=url, verify=False, timeout=30, limits=limits) as client:  # noqa: S501

        async def agent(index: int, agent_id: str) -> None:
            nonlocal handed, errors
            headers = {"Authorization": f"Bearer {agent_key(index)}"}
            await asyncio.sleep(random.uniform(0, interval))
            next_beat = 0.0
            while time.monotonic() < stop_at:
                started = time.monotonic()
                if started >= next_beat:
                    beat = await client.post(f"/api/v1/agents/{agent_id}/heartbeat", json={}, headers=headers)
                    errors += beat.status_code != 200
                    next_beat = started + 60
                polled = time.perf_counter()
                response = await client.get(f"/api/v1/agents/{agent_id}/work", headers=headers)
                latencies.append((started - began, (time.perf_counter() - polled) * 1000))
                if response.status_code != 200:
                    errors += 1
                else:
                    for job in response.json()["jobs"]:
                        handed += 1
                        done = await client.post(
                            f"/api/v1/agents/{agent_id}/jobs/{job['id']}/status",
                            json={"status": "Completed"},
                            headers=headers,
                        )
                        errors += done.status_code != 200
                await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))

        await asyncio.gather(*(agent(i, agent_id) for i, agent_id in enumerate(agent_ids)))
    return latencies, handed, errors


def bench_polls(args: argparse.Namespace, workdir: Path) -> None:
    url_env = os.environ.get("CERTCTL_BENCH_DATABASE_URL")
    database_url = url_env or f"sqlite:///{workdir / 'bench.db'}"
    env = os.environ | {
        "CERTCTL_DATABASE_URL": database_url,
        "CERTCTL_DATA_DIR": str(workdir / "data"),
        "CERTCTL_CONFIG_ENCRYPTION_KEY": ENCRYPTION_KEY,
        "CERTCTL_API_KEYS_NAMED": f"bench:{API_KEY}:admin",
        "CERTCTL_RATE_LIMIT_ENABLED": "false",
        "CERTCTL_LOG_LEVEL": "warn",
    }
    migrate.upgrade(Database.from_url(database_url).engine)
    db = Database.from_url(database_url)
    port = free_port()
    if args.server_log:
        env["CERTCTL_LOG_LEVEL"] = "info"  # one line per request, with its duration inside the server
    server = subprocess.Popen(
        [sys.executable, "-m", "certctl", "server"],
        env=env | {"CERTCTL_SERVER_PORT": str(port)},
        stdout=open(args.server_log, "wb") if args.server_log else subprocess.DEVNULL,  # noqa: SIM115
        stderr=subprocess.STDOUT if args.server_log else None,
    )
    url = f"https://127.0.0.1:{port}"
    try:
        wait_healthy(url)  # the server seeds the baseline rows (rp-default, iss-local) on its first start
        agent_ids = seed(db, args.agents, args.certificates, args.waiting_share)
        print(
            f"{args.agents} agents polling every {args.interval:g} s for {args.duration:g} s "
            f"({args.agents / args.interval:.1f} polls/s) on {'PostgreSQL' if url_env else 'SQLite'}"
        )
        latencies, handed, errors = asyncio.run(simulate(url, agent_ids, args.interval, args.duration))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)
        db.dispose()
    # The first round hands the whole seeded backlog out at once (every agent reports its deployments right
    # away); after it, polls find what a fleet normally finds. Both are printed.
    first_round = [ms for at, ms in latencies if at < args.interval]
    steady = [ms for at, ms in latencies if at >= args.interval]
    for label, values in (("first round, backlog handed out", first_round), ("steady state", steady)):
        if values:
            p99 = percentile(values, 0.99)
            verdict = f" (target p99 < 50 ms: {'met' if p99 < 50 else 'NOT met'})" if values is steady else ""
            print(
                f"GET /work, {label}: {len(values)} polls, p50 {statistics.median(values):.1f} ms, "
                f"p95 {percentile(values, 0.95):.1f} ms, p99 {p99:.1f} ms, max {max(values):.1f} ms{verdict}"
            )
    print(f"deployments handed out and reported: {handed}; errors: {errors}")


def bench_nginx_deploy(runs: int, workdir: Path) -> None:
    from tests.deploy.material import TestCA
    from tests.deploy.servers import NginxServer

    from certctl.deploy.connectors import DeployRequest, build_connector

    ca = TestCA()
    first = ca.issue()
    server = NginxServer(workdir / "nginx", first)
    server.start(first.fingerprint)
    try:
        connector = build_connector(
            "NGINX",
            {
                "cert_path": str(server.cert_path),
                "key_path": str(server.key_path),
                "chain_path": str(server.chain_path),
                "validate_command": server.validate_command,
                "reload_command": server.reload_command,
                "post_deploy_verify": {"endpoint": f"127.0.0.1:{server.port}", "server_name": "localhost"},
            },
        )
        connector.validate_config()
        timings = []
        for _ in range(runs):
            material = ca.issue()
            started = time.perf_counter()
            result = connector.deploy(DeployRequest(material.cert_pem, material.chain_pem, material.key_pem, "bench"))
            timings.append(time.perf_counter() - started)
            if not result.success or result.verification is None or not result.verification.verified:
                raise SystemExit(f"NGINX deploy failed: {result.message}")
    finally:
        server.stop()
    median = statistics.median(timings)
    print(
        f"NGINX deploy (write, nginx -t, reload, TLS verify; default verify backoff): median {median:.2f} s, "
        f"max {max(timings):.2f} s over {runs} (target < 2 s: {'met' if max(timings) < 2 else 'NOT met'})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--interval", type=float, default=30.0, help="seconds between two polls of one agent")
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of polling")
    parser.add_argument("--certificates", type=int, default=20_000)
    parser.add_argument("--waiting-share", type=float, default=0.05, help="share of certificates awaiting deploy")
    parser.add_argument("--deploys", type=int, default=5, help="NGINX deployments to time (0: skip)")
    parser.add_argument("--skip-polls", action="store_true")
    parser.add_argument("--server-log", help="write the server's log lines (with each request's duration) here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="certctl-agents-bench-") as tmp:
        workdir = Path(tmp)
        if not args.skip_polls:
            bench_polls(args, workdir)
        if args.deploys:
            bench_nginx_deploy(args.deploys, workdir)


if __name__ == "__main__":
    main()
