"""Generic files + command (`Files`, ours): any of `cert_path`, `chain_path`, `fullchain_path`
(certificate then chain), `key_path`, `pem_path` (certificate, chain, key), with optional
`validate_command` and `reload_command`, per-file modes and owners, verify and backup keys.

No mode is forced: a replaced file keeps its mode; a new key or combined PEM is 0600, anything else 0644.
"""

from __future__ import annotations

from certctl.deploy.connectors.file_target import FileTargetRules
from certctl.deploy.connectors.files import FileConnector
from certctl.deploy.plan import FileRole

FILES_RULES = FileTargetRules(
    target_type="Files",
    deployment_prefix="files",
    roles=(FileRole.CERT, FileRole.CHAIN, FileRole.FULLCHAIN, FileRole.KEY, FileRole.PEM),
    required=(),
    validate_what="validate command",
    reload_what="reload command",
    forced_modes={},
    needs_a_path=True,
)


class FilesConnector(FileConnector):
    rules = FILES_RULES
    target_type = FILES_RULES.target_type
