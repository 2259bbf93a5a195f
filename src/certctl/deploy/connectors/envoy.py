"""Envoy (`Envoy`, agent-targets-discovery.md §A2.5): certificate files and an optional SDS file.

Keys: `cert_dir` (required, must exist and be writable); `cert_filename` (→ `cert.pem`),
`key_filename` (→ `key.pem`), `chain_filename` (optional), plain names without `/` or `\\`;
`sds_config` (bool): also write `<cert_dir>/sds.json`, a file-based SDS resource named `server_cert`
that points Envoy at the two files; `<role>_file_mode`/`_owner`/`_group` (cert and chain 0644, key
0600 unless configured); verify and backup keys.

The certificate file holds the leaf then the chain, unless `chain_filename` is set, which puts the
chain in its own file. Every file goes in one plan (the original wrote them one by one). Envoy reloads
by itself: its SDS file watcher (`path_config_source` with `watched_directory` = `cert_dir`) reacts to
the rename. Post-deploy verification is off unless `post_deploy_verify.enabled` is true, as in the
original; a failed probe restores every file, with no reload to run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Self

from certctl.deploy.connectors.base import ConnectorDeps
from certctl.deploy.connectors.cert_dir import DirectoryConnector, DirectoryLayout, NameKey
from certctl.deploy.connectors.config import ConfigReader
from certctl.deploy.connectors.file_target import CheckedTarget, FileTargetConfig, FileTargetRules
from certctl.deploy.errors import TargetConfigError
from certctl.deploy.plan import FileRole, PlannedFile

SDS_FILENAME = "sds.json"
SDS_RESOURCE_NAME = "server_cert"
SDS_RESOURCE_TYPE = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"

ENVOY_RULES = FileTargetRules(
    target_type="Envoy",
    deployment_prefix="envoy",
    roles=(FileRole.CERT, FileRole.KEY, FileRole.CHAIN),
    required=(),
    validate_what="validate command",
    reload_what="reload command",
    forced_modes={FileRole.CERT: 0o644, FileRole.KEY: 0o600, FileRole.CHAIN: 0o644},
)


class EnvoyConnector(DirectoryConnector):
    rules = ENVOY_RULES
    target_type = ENVOY_RULES.target_type
    name_keys = (
        NameKey(FileRole.CERT, "cert_filename", "cert.pem"),
        NameKey(FileRole.KEY, "key_filename", "key.pem"),
        NameKey(FileRole.CHAIN, "chain_filename"),
    )
    plain_names = True
    verify_by_default = False

    def __init__(
        self,
        config: FileTargetConfig,
        layout: DirectoryLayout,
        sds_config: bool = False,
        deps: ConnectorDeps | None = None,
    ) -> None:
        super().__init__(config, layout, deps)
        self.sds_config = sds_config

    @classmethod
    def from_config(cls, raw: Mapping[str, object] | None, deps: ConnectorDeps | None = None) -> Self:
        reader = ConfigReader(cls.rules.target_type, raw)
        layout, config = cls.read_layout(reader)
        return cls(config, layout, reader.boolean("sds_config", False), deps)

    def _check(self) -> CheckedTarget:
        checked = super()._check()
        if self.sds_config:
            for key, name in self.layout.names:
                if name == SDS_FILENAME:
                    raise TargetConfigError(self.target_type, key.key, f"{SDS_FILENAME} is the SDS file's name")
        return checked

    def _extra_files(self, checked: CheckedTarget) -> Mapping[str, PlannedFile]:
        if not self.sds_config:
            return {}
        cert, key = checked.paths[FileRole.CERT], checked.paths[FileRole.KEY]
        path = cert.parent / SDS_FILENAME
        # FULLCHAIN: a public file that no command placeholder names; 0644 as the original writes it.
        return {"sds_config_path": PlannedFile(path, sds_document(str(cert), str(key)), FileRole.FULLCHAIN, 0o644)}


def sds_document(cert_path: str, key_path: str) -> bytes:
    """The SDS file Envoy's `path_config_source` reads: one TLS certificate secret, by absolute paths."""
    document = {
        "resources": [
            {
                "@type": SDS_RESOURCE_TYPE,
                "name": SDS_RESOURCE_NAME,
                "tls_certificate": {
                    "certificate_chain": {"filename": cert_path},
                    "private_key": {"filename": key_path},
                },
            }
        ]
    }
    return (json.dumps(document, indent=2) + "\n").encode("utf-8")
