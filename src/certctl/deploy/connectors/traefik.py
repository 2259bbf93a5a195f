"""Traefik (`Traefik`, agent-targets-discovery.md §A2.5): files its file provider reads.

Keys: `cert_dir` (required, must exist and be writable), `cert_file` (→ `cert.pem`) and `key_file`
(→ `key.pem`), relative names (subdirectories allowed, no `..`); `cert_file_mode` (→ 0644) and
`key_file_mode` (→ 0600), both forced over an existing file's mode unless configured; owners; verify
and backup keys. Ours: `dynamic_config_path`, an absolute `.yml`/`.yaml`/`.toml` path: a dynamic
configuration file naming the two files under `tls.certificates`, rewritten in the same plan.

The certificate file is the leaf then the chain. There is no reload: Traefik's file provider watches
its directory. Pointing `providers.file.directory` at the dynamic file's directory makes every
deployment a change there (the file is renamed into place with the certificates), so Traefik reloads
even when the certificates live elsewhere. The probe runs only with `post_deploy_verify.enabled: true`
and an endpoint, as in the original; a failed probe restores the files (no reload to run).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Self

from certctl.deploy.connectors.base import ConnectorDeps
from certctl.deploy.connectors.cert_dir import DirectoryConnector, DirectoryLayout, NameKey
from certctl.deploy.connectors.config import ConfigReader
from certctl.deploy.connectors.file_target import CheckedTarget, FileTargetConfig, FileTargetRules
from certctl.deploy.errors import TargetConfigError
from certctl.deploy.plan import FileRole, PlannedFile

DYNAMIC_CONFIG_KEY = "dynamic_config_path"
DYNAMIC_CONFIG_SUFFIXES = (".yml", ".yaml", ".toml")  # what Traefik's file provider parses
_HEADER = "Written by certctl on every deployment of this target; changes here are overwritten."

TRAEFIK_RULES = FileTargetRules(
    target_type="Traefik",
    deployment_prefix="traefik",
    roles=(FileRole.CERT, FileRole.KEY),
    required=(),
    validate_what="validate command",
    reload_what="reload command",
    forced_modes={FileRole.CERT: 0o644, FileRole.KEY: 0o600},
)


class TraefikConnector(DirectoryConnector):
    rules = TRAEFIK_RULES
    target_type = TRAEFIK_RULES.target_type
    name_keys = (NameKey(FileRole.CERT, "cert_file", "cert.pem"), NameKey(FileRole.KEY, "key_file", "key.pem"))
    verify_by_default = False

    def __init__(
        self,
        config: FileTargetConfig,
        layout: DirectoryLayout,
        dynamic_config_path: str = "",
        deps: ConnectorDeps | None = None,
    ) -> None:
        super().__init__(config, layout, deps)
        self.dynamic_config_path = dynamic_config_path

    @classmethod
    def from_config(cls, raw: Mapping[str, object] | None, deps: ConnectorDeps | None = None) -> Self:
        reader = ConfigReader(cls.rules.target_type, raw)
        layout, config = cls.read_layout(reader)
        return cls(config, layout, reader.string(DYNAMIC_CONFIG_KEY), deps)

    def _check(self) -> CheckedTarget:
        checked = super()._check()
        if self.dynamic_config_path:
            _check_dynamic_path(self.dynamic_config_path, checked, host_checks=self._deps.host_checks)
        return checked

    def _extra_files(self, checked: CheckedTarget) -> Mapping[str, PlannedFile]:
        if not self.dynamic_config_path:
            return {}
        path = Path(self.dynamic_config_path)
        text = dynamic_config(path.suffix, checked.paths[FileRole.CERT], checked.paths[FileRole.KEY])
        # FULLCHAIN: a public file (0644 when new) that no command placeholder names.
        return {DYNAMIC_CONFIG_KEY: PlannedFile(path, text.encode("utf-8"), FileRole.FULLCHAIN)}


def _check_dynamic_path(text: str, checked: CheckedTarget, *, host_checks: bool) -> None:
    path = PurePosixPath(text)
    if not path.is_absolute() or ".." in path.parts:
        raise TargetConfigError("Traefik", DYNAMIC_CONFIG_KEY, f"must be an absolute path without '..', got {text!r}")
    if path.suffix not in DYNAMIC_CONFIG_SUFFIXES:
        raise TargetConfigError(
            "Traefik", DYNAMIC_CONFIG_KEY, f"must end in {', '.join(DYNAMIC_CONFIG_SUFFIXES)} (Traefik's formats)"
        )
    if Path(text) in checked.paths.values():
        raise TargetConfigError("Traefik", DYNAMIC_CONFIG_KEY, "must not be the certificate or key file")
    if host_checks and not Path(text).parent.is_dir():
        raise TargetConfigError("Traefik", DYNAMIC_CONFIG_KEY, f"directory {Path(text).parent} does not exist")


def dynamic_config(suffix: str, cert_path: Path, key_path: Path) -> str:
    """Traefik dynamic configuration with one `tls.certificates` entry, in YAML or TOML by `suffix`.

    JSON string literals are valid double-quoted scalars in both formats, so paths are escaped safely.
    """
    cert, key = json.dumps(str(cert_path)), json.dumps(str(key_path))
    if suffix == ".toml":
        return f"# {_HEADER}\n[[tls.certificates]]\n  certFile = {cert}\n  keyFile = {key}\n"
    return f"# {_HEADER}\ntls:\n  certificates:\n    - certFile: {cert}\n      keyFile: {key}\n"
