"""The demo's organisation and infrastructure rows: teams, owners, policies, profiles, issuers, agents, targets.

Every builder takes the run's `now` and returns new, unsaved rows; the loader inserts the missing ones.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from certctl.agents.credentials import SENTINEL_KEY_HASH
from certctl.agents.models import Agent, AgentGroup, AgentGroupMember, AgentStatus
from certctl.issuers.models import ConfigSource, Issuer, IssuerType
from certctl.org.models import Owner, Team
from certctl.policies.models import RenewalPolicy
from certctl.profiles.models import CertificateProfile
from certctl.security.apikeys import hash_key
from certctl.targets.models import DeploymentTarget, TargetType

DAY = timedelta(days=1)
LOCAL_ISSUER_ID = "iss-local"
LOCAL_CA_COMMON_NAME = "CertCtl Demo CA"
DEMO_AGENT_KEY_PREFIX = "demo-agent-key-"


def demo_agent_key(agent_id: str) -> str:
    """The documented, public credential of a demo workload agent (never use outside a demo)."""
    return f"{DEMO_AGENT_KEY_PREFIX}{agent_id}"


def teams(now: datetime) -> list[Team]:
    rows = [
        ("t-platform", "Platform Engineering", "Core infrastructure and platform services", 180),
        ("t-security", "Security Operations", "Security tooling and compliance", 180),
        ("t-payments", "Payments", "Payment processing services", 150),
        ("t-frontend", "Frontend", "Web and mobile applications", 150),
        ("t-data", "Data Engineering", "Data pipelines and analytics", 120),
        ("t-devops", "DevOps", "CI/CD and release engineering", 90),
    ]
    return [
        Team(id=i, name=n, description=d, created_at=now - days * DAY, updated_at=now - days * DAY)
        for i, n, d, days in rows
    ]


def owners(now: datetime) -> list[Owner]:
    rows = [
        ("o-alice", "Alice Chen", "t-platform", 180),
        ("o-bob", "Bob Martinez", "t-security", 180),
        ("o-carol", "Carol Williams", "t-payments", 150),
        ("o-dave", "Dave Kim", "t-frontend", 150),
        ("o-eve", "Eve Johnson", "t-data", 120),
        ("o-frank", "Frank Torres", "t-devops", 90),
    ]
    return [
        Owner(
            id=i,
            name=n,
            email=f"{i.removeprefix('o-')}@example.com",
            team_id=team,
            created_at=now - days * DAY,
            updated_at=now - days * DAY,
        )
        for i, n, team, days in rows
    ]


def renewal_policies(now: datetime) -> list[RenewalPolicy]:
    """rp-default comes from the baseline seed. The original's rp-urgent retried every 30 s; 60 s is our floor."""
    created = now - 180 * DAY
    rows = [
        ("rp-standard", "Standard 30-day", 30, True, 3, 60, [30, 14, 7, 0]),
        ("rp-urgent", "Urgent 14-day", 14, True, 5, 60, [14, 7, 3, 0]),
        ("rp-manual", "Manual Only", 30, False, 0, 3600, [30, 14, 7, 0]),
    ]
    return [
        RenewalPolicy(
            id=i,
            name=n,
            renewal_window_days=window,
            auto_renew=auto,
            max_retries=retries,
            retry_interval_seconds=interval,
            alert_thresholds_days=thresholds,
            created_at=created,
            updated_at=created,
        )
        for i, n, window, auto, retries, interval, thresholds in rows
    ]


def certificate_profiles(now: datetime) -> list[CertificateProfile]:
    """As the original, except that High Security requires approval (the demo's two AwaitingApproval jobs)."""
    ecdsa_256 = {"algorithm": "ECDSA", "min_size": 256}
    rsa_2048 = {"algorithm": "RSA", "min_size": 2048}

    def profile(profile_id: str, days_ago: int, **fields: Any) -> CertificateProfile:
        return CertificateProfile(
            id=profile_id, created_at=now - days_ago * DAY, updated_at=now - days_ago * DAY, **fields
        )

    return [
        profile(
            "prof-standard-tls",
            180,
            name="Standard TLS",
            description="Default profile for web-facing TLS certificates. Requires ECDSA P-256+ or RSA 2048+.",
            allowed_key_algorithms=[ecdsa_256, rsa_2048],
            max_ttl_seconds=90 * 86_400,
            allowed_ekus=["serverAuth"],
        ),
        profile(
            "prof-internal-mtls",
            150,
            name="Internal mTLS",
            description="Mutual TLS profile for internal service-to-service communication.",
            allowed_key_algorithms=[ecdsa_256],
            max_ttl_seconds=30 * 86_400,
            allowed_ekus=["serverAuth", "clientAuth"],
            required_san_patterns=[r".*\.internal\.example\.com$"],
        ),
        profile(
            "prof-short-lived",
            120,
            name="Short-Lived Credential",
            description="Ephemeral certificates for CI/CD pipelines and container workloads. TTL under 1 hour, "
            "expiry = revocation.",
            allowed_key_algorithms=[ecdsa_256],
            max_ttl_seconds=300,
            allowed_ekus=["serverAuth", "clientAuth"],
            spiffe_uri_pattern="spiffe://example.com/workload/*",
            allow_short_lived=True,
        ),
        profile(
            "prof-high-security",
            90,
            name="High Security",
            description="For PCI-DSS and compliance-sensitive workloads. RSA 4096+ or ECDSA P-384+ only; "
            "every issuance needs an approval.",
            allowed_key_algorithms=[{"algorithm": "ECDSA", "min_size": 384}, {"algorithm": "RSA", "min_size": 4096}],
            max_ttl_seconds=47 * 86_400,  # CA/B Forum ballot SC-081 end state
            allowed_ekus=["serverAuth"],
            required_san_patterns=[r".*\.example\.com$"],
            requires_approval=True,
        ),
        profile(
            "prof-smime",
            60,
            name="S/MIME Email",
            description="S/MIME certificate profile for email signing and encryption. Requires emailProtection EKU.",
            allowed_key_algorithms=[ecdsa_256, rsa_2048],
            max_ttl_seconds=365 * 86_400,
            allowed_ekus=["emailProtection"],
        ),
    ]


def local_issuer(now: datetime, config: dict[str, Any]) -> Issuer:
    """`iss-local` when start-up has not made it yet; an existing row is kept as it is."""
    created = now - 180 * DAY
    return Issuer(
        id=LOCAL_ISSUER_ID,
        name="Local Dev CA",
        type=IssuerType.GENERIC_CA,
        config=config,
        enabled=True,
        source=ConfigSource.ENV,
        created_at=created,
        updated_at=created,
    )


_ACME_LE = "https://acme-staging-v02.api.letsencrypt.org/directory"
_PCA_ARN = "arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/demo"
_EJBCA = "https://ejbca.internal:8443/ejbca/ejbca-rest-api/v1"
# id, name, type, config, enabled, created days ago
# fmt: off
_ISSUER_ROWS: tuple[tuple[str, str, IssuerType, dict[str, Any], bool, int], ...] = (
    ("iss-acme-le", "Let's Encrypt Staging", IssuerType.ACME,
     {"directory_url": _ACME_LE, "email": "admin@example.com", "challenge_type": "http-01"}, True, 150),
    ("iss-stepca", "step-ca Internal", IssuerType.STEP_CA,
     {"ca_url": "https://ca.internal:9000", "provisioner_name": "certctl", "validity_days": 90}, True, 120),
    ("iss-acme-zs", "ZeroSSL (EAB)", IssuerType.ACME,
     {"directory_url": "https://acme.zerossl.com/v2/DV90", "email": "admin@example.com", "challenge_type": "http-01"},
     True, 60),
    ("iss-openssl", "Custom OpenSSL CA", IssuerType.OPENSSL,
     {"sign_script": "/opt/ca/sign.sh", "timeout_seconds": 30}, False, 30),
    ("iss-vault", "HashiCorp Vault PKI", IssuerType.VAULT_PKI,
     {"addr": "https://vault.internal:8200", "mount": "pki", "role": "web-certs", "ttl": "8760h"}, True, 20),
    ("iss-digicert", "DigiCert CertCentral", IssuerType.DIGICERT,
     {"base_url": "https://www.digicert.com/services/v2", "product_type": "ssl_basic"}, True, 15),
    ("iss-sectigo", "Sectigo SCM", IssuerType.SECTIGO,
     {"base_url": "https://cert-manager.com/api", "cert_type": 423, "term": 365}, True, 10),
    ("iss-googlecas", "Google CAS", IssuerType.GOOGLE_CAS,
     {"project": "demo-project", "location": "us-central1", "ca_pool": "demo-pool"}, False, 5),
    ("iss-awsacmpca", "AWS ACM Private CA", IssuerType.AWS_ACM_PCA,
     {"region": "us-east-1", "ca_arn": _PCA_ARN, "signing_algorithm": "SHA256WITHRSA", "validity_days": 365},
     False, 3),
    ("iss-entrust", "Entrust CA", IssuerType.ENTRUST,
     {"api_url": "https://api.managed.entrust.com/v1/", "ca_id": "demo-ca-id"}, False, 2),
    ("iss-globalsign", "GlobalSign Atlas", IssuerType.GLOBALSIGN,
     {"api_url": "https://emea.api.hvca.globalsign.com:8443/v2/"}, False, 1),
    ("iss-ejbca", "EJBCA Enterprise", IssuerType.EJBCA,
     {"api_url": _EJBCA, "auth_mode": "mtls", "ca_name": "DemoCA"}, False, 1),
)
# fmt: on


def issuers(now: datetime) -> list[Issuer]:
    """The twelve external issuers: fake endpoints and no secrets (EAB and API credentials left out)."""
    return [
        Issuer(
            id=i,
            name=n,
            type=kind,
            config=config,
            enabled=enabled,
            source=ConfigSource.DATABASE,
            created_at=now - days * DAY,
            updated_at=now - days * DAY,
        )
        for i, n, kind, config, enabled, days in _ISSUER_ROWS
    ]


def agents(now: datetime) -> list[Agent]:
    """8 workload agents (7 online, the Windows one offline for 3 h) and the 4 sentinel agents."""
    # fmt: off
    workload = [
        # id, name, hostname, heartbeat seconds ago, registered days ago, os, arch, ip, version
        ("ag-web-prod", "web-prod-agent", "web-prod-01.internal", 30, 120, "linux", "amd64", "10.0.1.10", "2.0.14"),
        ("ag-web-staging", "web-staging-agent", "web-stg-01.internal", 45, 90, "linux", "amd64", "10.0.2.20", "2.0.14"),
        ("ag-lb-prod", "lb-prod-agent", "lb-prod-01.internal", 15, 150, "linux", "amd64", "10.0.1.50", "2.0.14"),
        ("ag-iis-prod", "iis-prod-agent", "iis-prod-01.internal", 3 * 3600, 60, "windows", "amd64", "10.0.3.15",
         "2.0.12"),
        ("ag-data-prod", "data-prod-agent", "data-prod-01.internal", 20, 90, "linux", "arm64", "10.0.4.30", "2.0.14"),
        ("ag-edge-01", "edge-eu-agent", "edge-eu-01.internal", 50, 45, "linux", "arm64", "10.0.5.10", "2.0.14"),
        ("ag-k8s-prod", "k8s-prod-agent", "k8s-node-01.internal", 10, 30, "linux", "amd64", "10.0.6.10", "2.0.14"),
        ("ag-mac-dev", "mac-dev-agent", "dev-mac-01.internal", 60, 15, "darwin", "arm64", "10.0.7.5", "2.0.14"),
    ]
    # fmt: on
    rows = [
        Agent(
            id=i,
            name=n,
            hostname=host,
            status=AgentStatus.ONLINE if beat < 300 else AgentStatus.OFFLINE,
            last_heartbeat_at=now - timedelta(seconds=beat),
            registered_at=now - days * DAY,
            os=os_name,
            architecture=arch,
            ip_address=ip,
            version=version,
            api_key_hash=hash_key(demo_agent_key(i)),
        )
        for i, n, host, beat, days, os_name, arch, ip, version in workload
    ]
    sentinels = [
        ("server-scanner", "Network Scanner (Server-Side)", "2.0.14"),
        ("cloud-aws-sm", "AWS Secrets Manager Discovery", "2.1.0"),
        ("cloud-azure-kv", "Azure Key Vault Discovery", "2.1.0"),
        ("cloud-gcp-sm", "GCP Secret Manager Discovery", "2.1.0"),
    ]
    rows += [
        Agent(
            id=i,
            name=n,
            hostname="certctl-server",
            status=AgentStatus.ONLINE,
            last_heartbeat_at=now,
            registered_at=now - 90 * DAY,
            os="linux",
            architecture="amd64",
            ip_address="127.0.0.1",
            version=version,
            api_key_hash=SENTINEL_KEY_HASH,
        )
        for i, n, version in sentinels
    ]
    return rows


def agent_groups(now: datetime) -> list[AgentGroup]:
    rows = [
        ("ag-linux-prod", "Linux Production", "All Linux agents in production", "linux", "", "", True, 90),
        ("ag-linux-amd64", "Linux AMD64", "Linux agents on x86_64 architecture", "linux", "amd64", "", True, 90),
        ("ag-windows", "Windows Agents", "All Windows-based agents", "windows", "", "", True, 60),
        ("ag-datacenter-a", "Datacenter A", "Agents in 10.0.1.0/24 subnet", "", "", "10.0.1.0/24", True, 90),
        ("ag-arm64", "ARM64 Agents", "Agents on ARM architecture", "", "arm64", "", True, 45),
        ("ag-manual", "Manual Group", "Manually managed agent group", "", "", "", False, 30),
    ]
    return [
        AgentGroup(
            id=i,
            name=n,
            description=d,
            match_os=os_name,
            match_architecture=arch,
            match_ip_cidr=cidr,
            enabled=enabled,
            created_at=now - days * DAY,
            updated_at=now - days * DAY,
        )
        for i, n, d, os_name, arch, cidr, enabled, days in rows
    ]


def agent_group_members() -> list[AgentGroupMember]:
    return [
        AgentGroupMember(agent_group_id="ag-manual", agent_id="ag-web-prod", membership_type="include"),
        AgentGroupMember(agent_group_id="ag-manual", agent_id="ag-web-staging", membership_type="include"),
        AgentGroupMember(agent_group_id="ag-manual", agent_id="ag-iis-prod", membership_type="exclude"),
    ]


NGINX_FILES = {
    "cert_path": "/etc/nginx/ssl/cert.pem",
    "key_path": "/etc/nginx/ssl/key.pem",
    "reload_command": "nginx -s reload",
    "validate_command": "nginx -t",
}


_APACHE_FILES = {
    "cert_path": "/etc/httpd/ssl/cert.pem",
    "key_path": "/etc/httpd/ssl/key.pem",
    "chain_path": "/etc/httpd/ssl/chain.pem",
    "reload_command": "apachectl graceful",
    "validate_command": "apachectl configtest",
}
_AZURE_KV = {
    "vault_url": "https://prod-vault.vault.azure.net",
    "certificate_name": "api-prod",
    "credential_mode": "managed_identity",
    "tags": {"env": "production"},
}
# id, name, type, agent, config, created days ago
# fmt: off
_TARGET_ROWS: tuple[tuple[str, str, TargetType, str, dict[str, Any], int], ...] = (
    ("tgt-nginx-prod", "NGINX Production", TargetType.NGINX, "ag-web-prod", NGINX_FILES, 120),
    ("tgt-apache-prod", "Apache Production", TargetType.APACHE, "ag-web-prod", _APACHE_FILES, 100),
    ("tgt-nginx-staging", "NGINX Staging", TargetType.NGINX, "ag-web-staging", NGINX_FILES, 90),
    ("tgt-haproxy-prod", "HAProxy Production", TargetType.HAPROXY, "ag-lb-prod",
     {"pem_path": "/etc/haproxy/ssl/site.pem", "reload_command": "systemctl reload haproxy"}, 150),
    ("tgt-iis-prod", "IIS Production", TargetType.IIS, "ag-iis-prod",
     {"site_name": "Default Web Site", "binding_info": "*:443:"}, 60),
    ("tgt-traefik-prod", "Traefik Production", TargetType.TRAEFIK, "ag-k8s-prod",
     {"cert_dir": "/etc/traefik/dynamic/certs"}, 30),
    ("tgt-caddy-prod", "Caddy Production", TargetType.CADDY, "ag-edge-01",
     {"mode": "api", "admin_api": "http://localhost:2019"}, 45),
    ("tgt-nginx-data", "NGINX Data Services", TargetType.NGINX, "ag-data-prod", NGINX_FILES, 90),
    ("tgt-aws-acm-prod", "AWS ACM Production", TargetType.AWS_ACM, "cloud-aws-sm",
     {"region": "us-east-1", "tags": {"env": "production", "app": "api-gateway"}}, 7),
    ("tgt-azure-kv-prod", "Azure KeyVault Prod", TargetType.AZURE_KEY_VAULT, "cloud-azure-kv", _AZURE_KV, 7),
)
# fmt: on

TARGET_AGENTS: dict[str, str] = {row[0]: row[3] for row in _TARGET_ROWS}
"""target id → owning agent id (the single-agent rule of agent key generation is checked against it)."""
TARGET_CREATED_DAYS: dict[str, int] = {row[0]: row[5] for row in _TARGET_ROWS}


def deployment_targets(now: datetime) -> list[DeploymentTarget]:
    """Ten targets; the cloud ones belong to their sentinel agents (agentless connectors run on the server)."""
    return [
        DeploymentTarget(
            id=i,
            name=n,
            type=kind,
            agent_id=agent_id,
            config=dict(config),
            enabled=True,
            source=ConfigSource.DATABASE,
            created_at=now - days * DAY,
            updated_at=now - days * DAY,
        )
        for i, n, kind, agent_id, config, days in _TARGET_ROWS
    ]
