"""The demo data set (ui-cli-mcp.md §5): `load_demo(context)` fills a fresh database with a realistic fleet.

Used by `certctl demo` and by `CERTCTL_DEMO_SEED=true` at start-up. Every timestamp is relative to the
context's clock at load time; loading again inserts nothing and changes nothing (insert-if-absent by
primary key; the append-only audit trail is skipped once its first demo row exists).

What it loads (rows): teams 6, owners 6, renewal_policies 3 (rp-standard, rp-urgent, rp-manual; rp-default
comes from the baseline seed), certificate_profiles 5, issuers 13 (`iss-local`, kept as it is when start-up
made it, plus 12 with fake configs and no secrets), agents 12 (8 workload agents and the sentinels
server-scanner, cloud-aws-sm, cloud-azure-kv, cloud-gcp-sm), agent_groups 6, agent_group_members 3,
deployment_targets 10, managed_certificates 32, certificate_target_mappings 34, certificate_versions 33
(real certificates signed by the local CA, keys not kept), certificate_revocations 1 (mc-compromised, so the
demo CRL and OCSP report it), jobs 44, audit_events 51.

Demo agent credentials: each workload agent authenticates with the documented, public key
`demo-agent-key-<agent id>` (its `api_key_hash` is that key's SHA-256 hex), so a demo agent can run
against the demo server:

    ag-web-prod      demo-agent-key-ag-web-prod       ag-data-prod   demo-agent-key-ag-data-prod
    ag-web-staging   demo-agent-key-ag-web-staging    ag-edge-01     demo-agent-key-ag-edge-01
    ag-lb-prod       demo-agent-key-ag-lb-prod        ag-k8s-prod    demo-agent-key-ag-k8s-prod
    ag-iis-prod      demo-agent-key-ag-iis-prod       ag-mac-dev     demo-agent-key-ag-mac-dev

The sentinel agents get no usable key (their hash is `sentinel-no-auth`, which no SHA-256 digest equals):
they stand for the server itself. Never enable the demo seed on a server holding real data.

Not loaded yet, because their tables do not exist yet (each arrives with its feature): health checks
(arrives with health monitoring),
discovery scans and discovered certificates (arrives with discovery), network scan targets (arrives
with the network scanner), approval requests for the two AwaitingApproval jobs (arrives with issuance
approvals), policy rules and violations (arrives with compliance policies).
"""

from certctl.demo.inventory import DEMO_AGENT_KEY_PREFIX, demo_agent_key
from certctl.demo.loader import DemoDataConflict, DemoSummary, load_demo

__all__ = ["DEMO_AGENT_KEY_PREFIX", "DemoDataConflict", "DemoSummary", "demo_agent_key", "load_demo"]
