"""Apache httpd (`Apache`, agent-targets-discovery.md §A2.5).

The NGINX keys, with `chain_path` also required; suggested commands `apachectl configtest` and
`apachectl graceful` (graceful starts a stopped server, which the rollback reload relies on). The key
file is 0600 unless `key_file_mode` says otherwise; new files belong to `apache`, `www-data` or
`httpd`. `apache2 -t` does not notice a key that does not match the certificate, and a graceful reload
with one stops the server (stack.md §C.7): the pre-check refuses such a pair before any write.
"""

from __future__ import annotations

from certctl.deploy.connectors.file_target import FileTargetRules
from certctl.deploy.connectors.files import FileConnector
from certctl.deploy.plan import FileRole

APACHE_RULES = FileTargetRules(
    target_type="Apache",
    deployment_prefix="apache",
    roles=(FileRole.CERT, FileRole.CHAIN, FileRole.KEY),
    required=("cert_path", "chain_path", "reload_command", "validate_command"),
    validate_what="apachectl configtest",
    reload_what="apachectl graceful",
    forced_modes={FileRole.KEY: 0o600},
    owner_candidates=("apache", "www-data", "httpd"),
)


class ApacheConnector(FileConnector):
    rules = APACHE_RULES
    target_type = APACHE_RULES.target_type
