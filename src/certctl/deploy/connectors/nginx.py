"""NGINX (`NGINX`, agent-targets-discovery.md §A2.5).

Keys: `cert_path` (required), `key_path`, `chain_path`, `validate_command` (required, e.g.
`nginx -t`), `reload_command` (required, e.g. `nginx -s reload` or `systemctl reload nginx`),
`cert_file_mode`/`_owner`/`_group` (and `chain_`, `key_`), verify and backup keys (config.py).
The key file is 0640 unless `key_file_mode` says otherwise, even over an existing key's mode; new
files belong to `nginx`, else `www-data`, when that user and group exist.
"""

from __future__ import annotations

from certctl.deploy.connectors.file_target import FileTargetRules
from certctl.deploy.connectors.files import FileConnector
from certctl.deploy.plan import FileRole

NGINX_RULES = FileTargetRules(
    target_type="NGINX",
    deployment_prefix="nginx",
    roles=(FileRole.CERT, FileRole.CHAIN, FileRole.KEY),
    required=("cert_path", "reload_command", "validate_command"),
    validate_what="nginx -t",
    reload_what="nginx -s reload",
    forced_modes={FileRole.KEY: 0o640},
    owner_candidates=("nginx", "www-data"),
)


class NginxConnector(FileConnector):
    rules = NGINX_RULES
    target_type = NGINX_RULES.target_type
