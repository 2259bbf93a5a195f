"""The agent process: logging, identity, the parts of the loop wired together, signals, exit status.

Exit status: 0 after SIGTERM/SIGINT, after retirement by the control plane (so systemd's
`Restart=on-failure` does not bring a retired agent back) and after a dry run; 1 for a configuration
problem or an unexpected error.
"""

from __future__ import annotations

import logging
import signal

from certctl import __version__
from certctl.agent.client import AgentClient, client_ssl_context
from certctl.agent.config import AgentSettings
from certctl.agent.dryrun import DryRun
from certctl.agent.errors import AgentConfigError, AgentError
from certctl.agent.identity import known_credentials, register
from certctl.agent.jobs import JobContext, JobRunner
from certctl.agent.keys import KeyDirError, KeyFiles, ensure_key_dir_secure
from certctl.agent.protocol import HostInfo
from certctl.agent.reporter import Reporter
from certctl.agent.runner import AgentLoop, LoopExit, StopSignal
from certctl.agent.state import Journal, StateFile
from certctl.agent.verify import AgentVerifier
from certctl.config import LogLevel
from certctl.deploy.connectors import ConnectorDeps
from certctl.logs import configure_logging

log = logging.getLogger("certctl.agent")


def run_agent(settings: AgentSettings, stop: StopSignal | None = None) -> int:
    """Run until stopped, retired or (dry run) done; returns the exit status."""
    configure_logging(settings.log_level, settings.log_format)
    if settings.log_level is not LogLevel.DEBUG:
        for chatty in ("httpx", "httpcore"):  # a line per request; our own lines say what matters
            logging.getLogger(chatty).setLevel(logging.WARNING)
    for warning in settings.warnings:
        log.warning(warning)
    if settings.insecure_skip_verify:
        log.warning(
            "TLS verification of the control plane is OFF (CERTCTL_SERVER_TLS_INSECURE_SKIP_VERIFY): anyone on "
            "the path can impersonate the server and receive this agent's credential; use only for development"
        )
    if settings.discovery_dirs:
        log.warning("filesystem discovery is not part of this agent yet; CERTCTL_DISCOVERY_DIRS is ignored")
    try:
        ensure_key_dir_secure(settings.key_dir)
    except KeyDirError as exc:
        log.warning(f"key directory: {exc}")  # only a warning at start; CSR jobs check again and fail
    client: AgentClient | None = None
    try:
        state = StateFile(settings.state_file)
        credentials = known_credentials(settings, state)
        host = HostInfo.detect(settings.server_url)
        client = AgentClient(
            settings.server_url, ssl_context=client_ssl_context(settings.ca_bundle, settings.insecure_skip_verify)
        )
        if credentials is None:
            if settings.dry_run:
                raise AgentConfigError("--dry-run does not register: give CERTCTL_AGENT_ID and CERTCTL_API_KEY")
            credentials = register(client, settings, state, host)
        client.use_credential(credentials.agent_id, credentials.api_key)
        loop = _build_loop(settings, client, host, stop or _stop_on_signals())
        log.info(
            f"certctl agent {__version__} started as {credentials.agent_id}",
            extra={"agent_id": credentials.agent_id, "server_url": settings.server_url, "dry_run": settings.dry_run},
        )
        outcome = loop.run()
    except AgentConfigError as exc:
        log.error(f"certctl agent cannot start: {exc}")
        return 1
    except AgentError as exc:
        log.error(f"certctl agent failed: {exc}")
        return 1
    except Exception:
        log.exception("certctl agent crashed")
        return 1
    finally:
        if client is not None:
            client.close()
    return 0 if outcome in (LoopExit.STOPPED, LoopExit.RETIRED, LoopExit.DRY_RUN_DONE) else 1


def _build_loop(settings: AgentSettings, client: AgentClient, host: HostInfo, stop: StopSignal) -> AgentLoop:
    journal = Journal.beside(settings.state_file)
    reporter = Reporter(client, journal)
    keys = KeyFiles(settings.key_dir)
    deps = ConnectorDeps(default_backup_retention=settings.deploy_backup_retention)
    verifier = AgentVerifier(
        delay_seconds=settings.verify_delay_seconds, timeout_seconds=settings.verify_timeout_seconds
    )
    jobs = JobRunner(
        JobContext(client, reporter, journal, keys, verifier, deps, verify_deployment=settings.verify_deployment)
    )
    return AgentLoop(
        client=client,
        host=host,
        jobs=jobs,
        reporter=reporter,
        journal=journal,
        heartbeat_interval_seconds=settings.heartbeat_interval_seconds,
        poll_interval_seconds=settings.poll_interval_seconds,
        stop=stop,
        dry_run=DryRun(client, keys, deps) if settings.dry_run else None,
    )


def _stop_on_signals() -> StopSignal:
    stop = StopSignal()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda _sig, _frame: stop.set())
    return stop
