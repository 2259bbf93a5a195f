"""Target connectors and their registry (agent-targets-discovery.md §A1.8, §A2.0).

`build_connector(type, config)` only parses (type strings are case-sensitive, as in the original);
call `validate_config()` on the result before deploying. Types not listed here are deployed by later
modules (Kubernetes, cloud, SSH, …); "Files" is ours.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping

from certctl.deploy.connectors.apache import ApacheConnector
from certctl.deploy.connectors.base import (
    CheckItem,
    ConnectorDeps,
    DeployRequest,
    DeployResult,
    TargetCheck,
    TargetConnector,
)
from certctl.deploy.connectors.caddy import CaddyConnector
from certctl.deploy.connectors.envoy import EnvoyConnector
from certctl.deploy.connectors.generic import FilesConnector
from certctl.deploy.connectors.haproxy import HAProxyConnector
from certctl.deploy.connectors.keystore import JavaKeystoreConnector
from certctl.deploy.connectors.mail import DovecotConnector, PostfixConnector
from certctl.deploy.connectors.nginx import NginxConnector
from certctl.deploy.connectors.traefik import TraefikConnector
from certctl.deploy.errors import TargetConfigError, UnsupportedTargetType

ConnectorFactory = Callable[[Mapping[str, object] | None, ConnectorDeps | None], TargetConnector]

CONNECTORS: Mapping[str, ConnectorFactory] = {
    NginxConnector.target_type: NginxConnector.from_config,
    ApacheConnector.target_type: ApacheConnector.from_config,
    HAProxyConnector.target_type: HAProxyConnector.from_config,
    FilesConnector.target_type: FilesConnector.from_config,
    TraefikConnector.target_type: TraefikConnector.from_config,
    CaddyConnector.target_type: CaddyConnector.from_config,
    EnvoyConnector.target_type: EnvoyConnector.from_config,
    PostfixConnector.target_type: PostfixConnector.from_config,
    DovecotConnector.target_type: DovecotConnector.from_config,
    JavaKeystoreConnector.target_type: JavaKeystoreConnector.from_config,
}


def build_connector(
    target_type: str, config: Mapping[str, object] | str | bytes | None, deps: ConnectorDeps | None = None
) -> TargetConnector:
    """Raises UnsupportedTargetType, or TargetConfigError for invalid JSON or a value of the wrong type."""
    if (factory := CONNECTORS.get(target_type)) is None:
        raise UnsupportedTargetType(target_type)
    if isinstance(config, str | bytes):
        try:
            config = json.loads(config) if config.strip() else None
        except ValueError as exc:
            raise TargetConfigError(target_type, "", f"not JSON: {exc}") from None
        if config is not None and not isinstance(config, dict):
            raise TargetConfigError(target_type, "", "must be a JSON object")
    return factory(config, deps)


__all__ = [
    "CONNECTORS",
    "ApacheConnector",
    "CaddyConnector",
    "CheckItem",
    "ConnectorDeps",
    "DeployRequest",
    "DeployResult",
    "DovecotConnector",
    "EnvoyConnector",
    "FilesConnector",
    "HAProxyConnector",
    "JavaKeystoreConnector",
    "NginxConnector",
    "PostfixConnector",
    "TargetCheck",
    "TargetConnector",
    "TraefikConnector",
    "build_connector",
]
