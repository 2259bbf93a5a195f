"""The REST client behind `certctl certs …` and `certctl jobs …`.

Server URL and API key come from flags, else CERTCTL_SERVER_URL / CERTCTL_API_KEY, else the config
file (~/.config/certctl/cli.toml or CERTCTL_CLI_CONFIG). The server must be https.
"""

from __future__ import annotations

import os
import ssl
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

DEFAULT_SERVER = "https://localhost:8443"
TIMEOUT_SECONDS = 30.0


class CliError(Exception):
    """A problem the user must fix (exit 1), with the message to print."""


@dataclass(frozen=True, slots=True)
class ClientConfig:
    server: str = DEFAULT_SERVER
    api_key: str | None = None
    ca_bundle: str | None = None
    insecure: bool = False


def config_path() -> Path:
    explicit = os.environ.get("CERTCTL_CLI_CONFIG")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "certctl" / "cli.toml"


def resolve_config(
    server: str | None, api_key: str | None, ca_bundle: str | None, insecure: bool | None
) -> ClientConfig:
    """Flags win over the environment, which wins over the config file."""
    file_values: dict[str, Any] = {}
    path = config_path()
    if path.is_file():
        try:
            file_values = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise CliError(f"{path}: not valid TOML: {exc}") from exc
    env = os.environ
    chosen_server = server or env.get("CERTCTL_SERVER_URL") or file_values.get("server") or DEFAULT_SERVER
    if not str(chosen_server).startswith("https://"):
        raise CliError(f"server URL {chosen_server!r} must start with https:// (certctl serves HTTPS only)")
    env_insecure = env.get("CERTCTL_SERVER_TLS_INSECURE_SKIP_VERIFY", "").lower() in ("1", "true", "yes")
    return ClientConfig(
        server=str(chosen_server).rstrip("/"),
        api_key=api_key or env.get("CERTCTL_API_KEY") or file_values.get("api_key"),
        ca_bundle=ca_bundle or env.get("CERTCTL_SERVER_CA_BUNDLE_PATH") or file_values.get("ca_bundle"),
        insecure=bool(insecure) or env_insecure or bool(file_values.get("insecure", False)),
    )


class RestClient:
    def __init__(self, config: ClientConfig, transport: httpx.BaseTransport | None = None) -> None:
        headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
        verify: ssl.SSLContext | bool = False if config.insecure else _tls_context(config.ca_bundle)
        self._http = httpx.Client(
            base_url=config.server, headers=headers, timeout=TIMEOUT_SECONDS, verify=verify, transport=transport
        )

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise CliError(f"cannot reach the server: {exc}") from exc
        if response.status_code >= 400:
            raise CliError(f"API error (HTTP {response.status_code}): {response.text.strip()}")
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        return response.json() if response.content else {}

    def close(self) -> None:
        self._http.close()


def _tls_context(ca_bundle: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca_bundle) if ca_bundle else ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context
