"""HAProxy (`HAProxy`, agent-targets-discovery.md §A2.5).

One combined file at `pem_path` (required): certificate, chain, key, in that order. Keys:
`reload_command` (required), `validate_command` (optional, e.g. `haproxy -c -f /etc/haproxy/haproxy.cfg`;
with `{pem_path}` or `${CERTCTL_STAGED_PEM}` in a staged config it checks the new file before the
swap), `pem_file_mode` (else 0600, even over an existing file's mode), `pem_file_owner`/`_group`,
verify and backup keys. A master-worker reload (`kill -USR2`) succeeds even when the new file is
refused, so configure `post_deploy_verify.endpoint`: only the probe notices (stack.md §C.7).
"""

from __future__ import annotations

from certctl.deploy.connectors.file_target import FileTargetRules
from certctl.deploy.connectors.files import FileConnector
from certctl.deploy.plan import FileRole

HAPROXY_RULES = FileTargetRules(
    target_type="HAProxy",
    deployment_prefix="haproxy",
    roles=(FileRole.PEM,),
    required=("pem_path", "reload_command"),
    validate_what="haproxy -c -f",
    reload_what="haproxy reload",
    forced_modes={FileRole.PEM: 0o600},
    owner_candidates=("haproxy",),
)


class HAProxyConnector(FileConnector):
    rules = HAPROXY_RULES
    target_type = HAPROXY_RULES.target_type
