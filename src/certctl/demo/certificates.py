"""The demo's 32 managed certificates, their target mappings and their versions.

Status mix: 22 Active, 4 Expiring, 3 Expired, 1 RenewalInProgress, 1 Failed, 1 Revoked. Every certificate
has at least one real version signed by the local CA (the external issuers are fake, so their
certificates are too); `expires_at` is its latest version's notAfter.

The freeze (ui-cli-mcp.md §5.2): every certificate the renewal checker looks at expires beyond its
policy's renewal window and largest alert threshold, plus the checker's one-day slack, so the first
scheduler run changes no status and creates no job. Active certificates expire ≥ 35 days out (rp-urgent:
14-day window) or ≥ 47 days out (rp-standard: 30 days); the Expiring, RenewalInProgress and Failed ones
32 to 38 days out, as in the original: their status is seeded, not earned. The first renewal job appears
when mc-mail-prod enters its window, almost three days after loading.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from certctl.certificates.models import (
    CertificateStatus,
    CertificateTargetMapping,
    CertificateVersion,
    ManagedCertificate,
)
from certctl.certificates.versions import version_row
from certctl.demo.inventory import DAY, LOCAL_ISSUER_ID, TARGET_AGENTS, TARGET_CREATED_DAYS
from certctl.demo.signing import DemoSigner
from certctl.pki.extensions import DEFAULT_LEAF_EKUS, ExtendedKeyUsageName
from certctl.pki.keygen import generate_key_and_csr
from certctl.pki.keys import KeyAlgorithm

ACTIVE, EXPIRING, EXPIRED = CertificateStatus.ACTIVE, CertificateStatus.EXPIRING, CertificateStatus.EXPIRED
STANDARD_TLS, HIGH_SECURITY, SMIME = "prof-standard-tls", "prof-high-security", "prof-smime"
PROFILE_EKUS: Mapping[str | None, tuple[ExtendedKeyUsageName, ...]] = {
    STANDARD_TLS: (ExtendedKeyUsageName.SERVER_AUTH,),
    HIGH_SECURITY: (ExtendedKeyUsageName.SERVER_AUTH,),
    SMIME: (ExtendedKeyUsageName.EMAIL_PROTECTION,),
    None: DEFAULT_LEAF_EKUS,
}
REVOKED_DAYS_AGO = 14
ISSUED_AFTER = timedelta(seconds=1)  # from notBefore to the version row (and the end of its issuance job)
REVOCATION_REASON = "keyCompromise"  # RFC 5280 §5.3.1 reason name, as the original stores it


@dataclass(frozen=True, slots=True)
class CertSpec:
    """One demo certificate. `issued_days_ago` lists its versions' issue days, oldest first."""

    id: str
    name: str
    common_name: str
    sans: tuple[str, ...]
    owner_id: str
    team_id: str
    issuer_id: str
    policy_id: str
    status: CertificateStatus
    issued_days_ago: tuple[int, ...]
    created_days_ago: int
    tags: Mapping[str, str] = field(hash=False)
    targets: tuple[str, ...] = ()
    environment: str = "production"
    profile_id: str | None = STANDARD_TLS
    lifetime_days: int = 90
    key_algorithm: KeyAlgorithm = KeyAlgorithm.ECDSA_P256

    def version_id(self, number: int) -> str:
        return f"cv-{self.id.removeprefix('mc-')}-v{number}"


@dataclass(frozen=True, slots=True)
class VersionPlan:
    """A version to issue: when it starts and ends (whole seconds, as X.509 stores them)."""

    id: str
    spec: CertSpec
    number: int
    not_before: datetime
    not_after: datetime


OWNER_TEAMS: Mapping[str, str] = {
    "o-alice": "t-platform",
    "o-bob": "t-security",
    "o-carol": "t-payments",
    "o-dave": "t-frontend",
    "o-eve": "t-data",
    "o-frank": "t-devops",
}


def _spec(
    cert_id: str,
    name: str,
    cn: str,
    sans: tuple[str, ...],
    owner: str,
    issuer: str,
    policy: str,
    status: CertificateStatus,
    issued: tuple[int, ...],
    created: int,
    tags: Mapping[str, str],
    targets: tuple[str, ...] = (),
    *,
    environment: str = "production",
    profile_id: str | None = STANDARD_TLS,
    lifetime_days: int = 90,
    key_algorithm: KeyAlgorithm = KeyAlgorithm.ECDSA_P256,
) -> CertSpec:
    return CertSpec(
        id=cert_id,
        name=name,
        common_name=cn,
        sans=sans,
        owner_id=owner,
        team_id=OWNER_TEAMS[owner],
        issuer_id=issuer,
        policy_id=policy,
        status=status,
        issued_days_ago=issued,
        created_days_ago=created,
        tags=tags,
        targets=targets,
        environment=environment,
        profile_id=profile_id,
        lifetime_days=lifetime_days,
        key_algorithm=key_algorithm,
    )


LOCAL, LE, STEP, ZEROSSL = LOCAL_ISSUER_ID, "iss-acme-le", "iss-stepca", "iss-acme-zs"
WEB = ("tgt-nginx-prod", "tgt-apache-prod")  # both on ag-web-prod
NGINX, HAPROXY, DATA, STAGING = ("tgt-nginx-prod",), ("tgt-haproxy-prod",), ("tgt-nginx-data",), ("tgt-nginx-staging",)

# fmt: off
SPECS: tuple[CertSpec, ...] = (
    # Active, local CA
    _spec("mc-api-prod", "api-production", "api.example.com", ("api.example.com", "api-v2.example.com"), "o-alice",
          LOCAL, "rp-standard", ACTIVE, (75, 15), 180, {"service": "api-gateway", "tier": "critical"}, WEB),
    _spec("mc-web-prod", "web-production", "www.example.com", ("www.example.com", "example.com"), "o-dave",
          LOCAL, "rp-standard", ACTIVE, (30,), 365, {"service": "web-app", "tier": "critical"}, WEB),
    _spec("mc-pay-prod", "payments-production", "pay.example.com", ("pay.example.com", "checkout.example.com"),
          "o-carol", LOCAL, "rp-urgent", ACTIVE, (7,), 200,
          {"service": "payments", "tier": "critical", "pci": "true"}, HAPROXY,
          profile_id=HIGH_SECURITY, lifetime_days=47, key_algorithm=KeyAlgorithm.ECDSA_P384),
    _spec("mc-dash-prod", "dashboard-production", "dashboard.example.com", ("dashboard.example.com",), "o-dave",
          LOCAL, "rp-standard", ACTIVE, (8,), 100, {"service": "dashboard", "tier": "high"}, NGINX),
    _spec("mc-data-prod", "data-api-production", "data.example.com", ("data.example.com", "analytics.example.com"),
          "o-eve", LOCAL, "rp-standard", ACTIVE, (35,), 150, {"service": "data-api", "tier": "high"}, DATA),
    _spec("mc-search-prod", "search-production", "search.example.com", ("search.example.com", "es.example.com"),
          "o-eve", LOCAL, "rp-standard", ACTIVE, (22,), 130, {"service": "search", "tier": "high"}, DATA),
    _spec("mc-admin-prod", "admin-production", "admin.example.com", ("admin.example.com",), "o-bob",
          LOCAL, "rp-urgent", ACTIVE, (55,), 200, {"service": "admin-panel", "tier": "critical"}, WEB),
    # Active, Let's Encrypt staging
    _spec("mc-blog-prod", "blog-production", "blog.example.com", ("blog.example.com",), "o-dave",
          LE, "rp-standard", ACTIVE, (38,), 160, {"service": "blog", "tier": "medium"}, WEB),
    _spec("mc-docs-prod", "docs-production", "docs.example.com", ("docs.example.com", "help.example.com"), "o-dave",
          LE, "rp-standard", ACTIVE, (43,), 140, {"service": "docs", "tier": "medium"}, WEB),
    _spec("mc-status-prod", "status-production", "status.example.com", ("status.example.com",), "o-frank",
          LE, "rp-standard", ACTIVE, (19,), 80, {"service": "status-page", "tier": "high"}, NGINX),
    # Active, step-ca (internal services, server and client auth)
    _spec("mc-grpc-prod", "grpc-internal", "grpc.internal.example.com", ("grpc.internal.example.com",), "o-alice",
          STEP, "rp-standard", ACTIVE, (32,), 100, {"service": "grpc-gateway", "tier": "high"}, NGINX,
          profile_id=None),
    _spec("mc-vault-prod", "vault-internal", "vault.internal.example.com", ("vault.internal.example.com",),
          "o-bob", STEP, "rp-urgent", ACTIVE, (55,), 120, {"service": "vault", "tier": "critical"}, NGINX,
          profile_id=None),
    _spec("mc-consul-prod", "consul-internal", "consul.internal.example.com", ("consul.internal.example.com",),
          "o-alice", STEP, "rp-standard", ACTIVE, (27,), 90, {"service": "consul", "tier": "high"},
          ("tgt-apache-prod",), profile_id=None),
    # Active, ZeroSSL
    _spec("mc-shop-prod", "shop-production", "shop.example.com", ("shop.example.com", "store.example.com"),
          "o-carol", ZEROSSL, "rp-urgent", ACTIVE, (46,), 60,
          {"service": "shop", "tier": "critical", "pci": "true"}, HAPROXY),
    # Active, staging and development
    _spec("mc-api-stg", "api-staging", "api.staging.example.com", ("api.staging.example.com",), "o-alice",
          LOCAL, "rp-standard", ACTIVE, (25,), 120, {"service": "api-gateway", "tier": "low"}, STAGING,
          environment="staging"),
    _spec("mc-web-stg", "web-staging", "www.staging.example.com", ("www.staging.example.com", "staging.example.com"),
          "o-dave", LOCAL, "rp-standard", ACTIVE, (20,), 100, {"service": "web-app", "tier": "low"}, STAGING,
          environment="staging"),
    _spec("mc-pay-stg", "payments-staging", "pay.staging.example.com", ("pay.staging.example.com",), "o-carol",
          LOCAL, "rp-standard", ACTIVE, (18,), 80, {"service": "payments", "tier": "low"}, STAGING,
          environment="staging"),
    _spec("mc-api-dev", "api-development", "api.dev.example.com", ("api.dev.example.com",), "o-alice",
          LOCAL, "rp-standard", ACTIVE, (5,), 45, {"service": "api-gateway", "tier": "low"},
          environment="development"),
    # Active, the rest
    _spec("mc-wildcard-prod", "wildcard-production", "*.example.com", ("*.example.com", "example.com"), "o-alice",
          LE, "rp-standard", ACTIVE, (40,), 365, {"service": "wildcard", "tier": "critical"}, WEB),
    _spec("mc-edge-eu", "edge-eu-production", "eu.cdn.example.com", ("eu.cdn.example.com", "eu-assets.example.com"),
          "o-alice", LE, "rp-standard", ACTIVE, (29,), 45,
          {"service": "cdn-eu", "tier": "high", "region": "eu-west-1"}, ("tgt-caddy-prod",)),
    _spec("mc-k8s-ingress", "k8s-ingress", "ingress.example.com", ("ingress.example.com", "app.example.com"),
          "o-frank", LE, "rp-standard", ACTIVE, (34,), 35, {"service": "k8s-ingress", "tier": "critical"},
          ("tgt-traefik-prod",)),
    _spec("mc-smime-bob", "bob-email-signing", "bob@example.com", ("bob@example.com",), "o-bob",
          LOCAL, "rp-standard", ACTIVE, (65,), 66, {"type": "smime", "tier": "medium"},
          profile_id=SMIME, lifetime_days=365),
    # Expiring (32-38 days out: beyond every window and threshold of their policy)
    _spec("mc-auth-prod", "auth-production", "auth.example.com",
          ("auth.example.com", "login.example.com", "sso.example.com"), "o-bob", LOCAL, "rp-urgent", EXPIRING,
          (15,), 300, {"service": "auth", "tier": "critical"}, HAPROXY,
          profile_id=HIGH_SECURITY, lifetime_days=47, key_algorithm=KeyAlgorithm.ECDSA_P384),
    _spec("mc-cdn-prod", "cdn-production", "cdn.example.com", ("cdn.example.com", "static.example.com"), "o-alice",
          LOCAL, "rp-standard", EXPIRING, (56,), 250, {"service": "cdn", "tier": "high"}, HAPROXY),
    _spec("mc-mail-prod", "mail-production", "mail.example.com", ("mail.example.com", "smtp.example.com"), "o-bob",
          LOCAL, "rp-standard", EXPIRING, (57,), 400, {"service": "email", "tier": "medium"}, NGINX),
    _spec("mc-ci-prod", "ci-production", "ci.example.com", ("ci.example.com", "jenkins.example.com"), "o-frank",
          LE, "rp-standard", EXPIRING, (52,), 100, {"service": "ci", "tier": "high"}, NGINX),
    # Expired (really: notAfter 3, 15 and 7 days ago)
    _spec("mc-legacy-prod", "legacy-app", "legacy.example.com", ("legacy.example.com",), "o-alice",
          LOCAL, "rp-manual", EXPIRED, (93,), 500, {"service": "legacy", "tier": "low", "decom": "planned"},
          ("tgt-iis-prod",)),
    _spec("mc-old-api", "old-api-v1", "api-v1.example.com", ("api-v1.example.com",), "o-alice",
          LOCAL, "rp-manual", EXPIRED, (105,), 600, {"service": "api-v1", "tier": "low", "deprecated": "true"}),
    _spec("mc-wiki-prod", "wiki-production", "wiki.example.com", ("wiki.example.com",), "o-dave",
          LE, "rp-manual", EXPIRED, (97,), 300, {"service": "wiki", "tier": "low"}),
    # Renewal in progress, failed, revoked
    _spec("mc-grafana-prod", "grafana-production", "grafana.example.com",
          ("grafana.example.com", "metrics.example.com"), "o-eve", LOCAL, "rp-standard",
          CertificateStatus.RENEWAL_IN_PROGRESS, (57,), 180, {"service": "monitoring", "tier": "high"}, DATA),
    _spec("mc-vpn-prod", "vpn-production", "vpn.example.com", ("vpn.example.com",), "o-bob",
          LE, "rp-urgent", CertificateStatus.FAILED, (58,), 90, {"service": "vpn", "tier": "critical"}, HAPROXY),
    _spec("mc-compromised", "compromised-cert", "old-service.example.com", ("old-service.example.com",), "o-bob",
          LOCAL, "rp-standard", CertificateStatus.REVOKED, (45,), 120,
          {"service": "decommissioned", "tier": "low"}, NGINX),
)
# fmt: on

SPECS_BY_ID: Mapping[str, CertSpec] = {spec.id: spec for spec in SPECS}
# When a seeded status was set, where it is not the latest issuance (days ago).
STATUS_SINCE_DAYS: Mapping[str, float] = {
    "mc-auth-prod": 1,
    "mc-cdn-prod": 1,
    "mc-mail-prod": 1,
    "mc-ci-prod": 1,
    "mc-vpn-prod": 6,
    "mc-grafana-prod": 12 / 1440,
    "mc-compromised": REVOKED_DAYS_AGO,
}


def issue_time(now: datetime, days_ago: float, cert_id: str) -> datetime:
    """`days_ago` before `now`, a few deterministic hours earlier per certificate, on a whole second."""
    jitter = timedelta(minutes=sum(map(ord, cert_id)) % 480)
    return (now - timedelta(days=days_ago) - jitter).replace(microsecond=0)


def version_plans(now: datetime) -> list[VersionPlan]:
    return [
        VersionPlan(
            id=spec.version_id(number),
            spec=spec,
            number=number,
            not_before=(start := issue_time(now, days_ago, spec.id)),
            not_after=start + spec.lifetime_days * DAY,
        )
        for spec in SPECS
        for number, days_ago in enumerate(spec.issued_days_ago, start=1)
    ]


def certificates(now: datetime) -> list[ManagedCertificate]:
    latest = {plan.spec.id: plan for plan in version_plans(now)}  # plans run oldest first per certificate
    rows = []
    for spec in SPECS:
        current = latest[spec.id]
        created = issue_time(now, spec.created_days_ago, spec.id)
        updated = current.not_before
        if spec.status is EXPIRED:
            updated = current.not_after
        elif (since := STATUS_SINCE_DAYS.get(spec.id)) is not None:
            updated = now - timedelta(days=since)
        revoked = spec.status is CertificateStatus.REVOKED
        rows.append(
            ManagedCertificate(
                id=spec.id,
                name=spec.name,
                common_name=spec.common_name,
                sans=list(spec.sans),
                environment=spec.environment,
                owner_id=spec.owner_id,
                team_id=spec.team_id,
                issuer_id=spec.issuer_id,
                renewal_policy_id=spec.policy_id,
                certificate_profile_id=spec.profile_id,
                status=spec.status,
                expires_at=current.not_after,
                tags=dict(spec.tags),
                last_renewal_at=current.not_before,
                last_deployment_at=current.not_before + timedelta(seconds=25) if spec.targets else None,
                revoked_at=now - REVOKED_DAYS_AGO * DAY if revoked else None,
                revocation_reason=REVOCATION_REASON if revoked else None,
                source="API",
                created_at=created,
                updated_at=updated,
            )
        )
    return rows


def target_mappings(now: datetime) -> list[CertificateTargetMapping]:
    return [
        CertificateTargetMapping(
            certificate_id=spec.id,
            target_id=target_id,
            created_at=max(issue_time(now, spec.created_days_ago, spec.id), now - TARGET_CREATED_DAYS[target_id] * DAY),
        )
        for spec in SPECS
        for target_id in spec.targets
    ]


def owning_agent(cert_id: str) -> str | None:
    """The agent that makes the certificate's key in agent key-generation mode (all its targets are on it)."""
    targets = SPECS_BY_ID[cert_id].targets
    return TARGET_AGENTS[targets[0]] if targets else None


def issue_versions(plans: list[VersionPlan], signer: DemoSigner) -> list[CertificateVersion]:
    """Generate a key and CSR per version and sign it; the keys are dropped (they live on the agents)."""
    rows = []
    for plan in plans:
        spec = plan.spec
        generated = generate_key_and_csr(spec.common_name, spec.sans, spec.key_algorithm)
        issued = signer.sign(generated.csr_pem, plan.not_before, plan.not_after, PROFILE_EKUS[spec.profile_id])
        rows.append(
            CertificateVersion(
                **version_row(
                    issued,
                    version_id=plan.id,
                    certificate_id=spec.id,
                    csr_pem=generated.csr_pem,
                    encrypted_private_key=None,
                    created_at=plan.not_before + ISSUED_AFTER,
                )
            )
        )
    return rows
