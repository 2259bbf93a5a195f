"""`certctl agent` (and the `certctl-agent` script): flags → AgentSettings → `daemon.run_agent`.

Kept light: every `certctl` command imports this module to register the sub-command, so the daemon
(HTTP client, deploy connectors, key handling) is imported only when the agent actually runs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from certctl.agent.config import load_agent_settings
from certctl.agent.errors import AgentConfigError

app = typer.Typer(
    help="Run the certctl agent: poll the control plane, make keys, deploy and verify certificates.",
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback(invoke_without_command=True)
def agent(
    config: Annotated[
        Path | None, typer.Option("--config", help="KEY=VALUE environment file (e.g. /etc/certctl/agent.env)")
    ] = None,
    server: Annotated[str | None, typer.Option("--server", help="control plane URL (https://)")] = None,
    api_key: Annotated[str | None, typer.Option("--api-key", help="this agent's credential")] = None,
    agent_id: Annotated[str | None, typer.Option("--agent-id", help="this agent's id (ag-…)")] = None,
    name: Annotated[str | None, typer.Option("--name", help="name to register under (default: host name)")] = None,
    bootstrap_token: Annotated[
        str | None, typer.Option("--bootstrap-token", help="self-register with this token when no credential")
    ] = None,
    state_file: Annotated[Path | None, typer.Option("--state-file", help="credentials file (0600)")] = None,
    key_dir: Annotated[Path | None, typer.Option("--key-dir", help="private keys directory (0700)")] = None,
    discovery_dirs: Annotated[str | None, typer.Option("--discovery-dirs", help="comma-separated dirs")] = None,
    ca_bundle: Annotated[
        Path | None, typer.Option("--ca-bundle", help="PEM bundle: the only roots trusted for the server")
    ] = None,
    insecure_skip_verify: Annotated[
        bool | None,
        typer.Option("--insecure-skip-verify/--no-insecure-skip-verify", help="development only: no TLS checks"),
    ] = None,
    verify: Annotated[bool | None, typer.Option("--verify/--no-verify", help="probe endpoints after deploys")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="one heartbeat and poll; log the plan; change nothing; exit")
    ] = False,
    log_level: Annotated[str | None, typer.Option("--log-level", help="debug, info, warn or error")] = None,
    log_format: Annotated[str | None, typer.Option("--log-format", help="json or text")] = None,
) -> None:
    """Run the agent daemon (flags override CERTCTL_* variables, which override --config)."""
    flags: dict[str, str | bool | None] = {
        "CERTCTL_SERVER_URL": server,
        "CERTCTL_API_KEY": api_key,
        "CERTCTL_AGENT_ID": agent_id,
        "CERTCTL_AGENT_NAME": name,
        "CERTCTL_AGENT_BOOTSTRAP_TOKEN": bootstrap_token,
        "CERTCTL_AGENT_STATE_FILE": str(state_file) if state_file else None,
        "CERTCTL_KEY_DIR": str(key_dir) if key_dir else None,
        "CERTCTL_DISCOVERY_DIRS": discovery_dirs,
        "CERTCTL_SERVER_CA_BUNDLE_PATH": str(ca_bundle) if ca_bundle else None,
        "CERTCTL_SERVER_TLS_INSECURE_SKIP_VERIFY": insecure_skip_verify,
        "CERTCTL_VERIFY_DEPLOYMENT": verify,
        "CERTCTL_AGENT_DRY_RUN": True if dry_run else None,
        "CERTCTL_LOG_LEVEL": log_level,
        "CERTCTL_LOG_FORMAT": log_format,
    }
    try:
        settings = load_agent_settings(flags, os.environ, config)
    except AgentConfigError as exc:
        typer.echo(f"certctl agent: {exc}", err=True)
        raise typer.Exit(1) from None
    from certctl.agent.daemon import run_agent

    raise typer.Exit(run_agent(settings))


def run() -> None:
    """The `certctl-agent` console script."""
    app(prog_name="certctl-agent")
