"""Everything a request or loop needs, built once per process from the settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from certctl.agents.access import bootstrap_actor
from certctl.agents.service import AgentService
from certctl.apikeys.service import ApiKeyService
from certctl.audit.service import AuditService
from certctl.certificates.export import SlidingWindowLimiter
from certctl.clock import Clock, SystemClock
from certctl.config import AuthType, Settings
from certctl.crl.service import CRLService, crl_validity
from certctl.db.engine import Database
from certctl.deploy.metrics import DeployCounters
from certctl.issuers.connectors import ConnectorRegistry
from certctl.notifications.service import NotificationService
from certctl.notifications.wiring import Notifications, build_notifications
from certctl.ocsp.service import OCSPService
from certctl.pki.local_ca_config import pki_base_url
from certctl.revocation.service import RevocationService
from certctl.security.apikeys import legacy_keys, parse_named_keys
from certctl.security.encryption import ConfigCipher, load_or_create_passphrase
from certctl.security.roles import Actor


@dataclass
class AppContext:
    settings: Settings
    db: Database
    cipher: ConfigCipher
    clock: Clock = field(default_factory=SystemClock)
    api_keys: ApiKeyService = field(init=False)
    audit: AuditService = field(init=False)
    export_limiter: SlidingWindowLimiter = field(init=False)
    connectors: ConnectorRegistry = field(init=False)
    started_at: datetime = field(init=False)
    notifications: Notifications = field(init=False)
    agents: AgentService = field(init=False)
    deploy_counters: DeployCounters = field(init=False)  # fed by the deployments agents report
    ocsp: OCSPService = field(init=False)
    crls: CRLService = field(init=False)
    revocations: RevocationService = field(init=False)

    def __post_init__(self) -> None:
        named = parse_named_keys(self.settings.api_keys_named.get_secret_value())
        env_keys = named or legacy_keys(self.settings.auth_secret.get_secret_value())
        self.api_keys = ApiKeyService(self.db, self.clock, env_keys)
        self.audit = AuditService(self.db, self.clock)
        self.agents = AgentService(self.db, self.clock)
        self.deploy_counters = DeployCounters()
        self.started_at = self.clock.now()
        # Derived AIA/CDP URLs point at the plain-HTTP distribution point when it is on (pki_base_url).
        distribution_base = pki_base_url(self.settings.server_public_url, self.settings.pki_http_port)
        self.connectors = ConnectorRegistry(self.db, self.cipher, self.clock, distribution_base)
        self.crls = CRLService(
            self.db, self.clock, self.connectors, validity=crl_validity(self.settings.crl_generation_interval)
        )
        self.ocsp = OCSPService(
            self.db,
            self.connectors,
            self.cipher,
            self.clock,
            responder_validity=self.settings.ocsp_responder_validity,
            rotation_grace=self.settings.ocsp_responder_rotation_grace,
            rate_limit_per_ip_min=self.settings.ocsp_rate_limit_per_ip_min,
        )
        self.export_limiter = SlidingWindowLimiter(
            self.settings.cert_export_rate_limit_per_actor_hr, self.clock.monotonic
        )
        self.notifications = build_notifications(self.settings, self.db, self.clock)
        self.revocations = RevocationService(
            self.db,
            self.clock,
            self.connectors,
            notify=self.notifications.dispatcher.deliver_soon,
            webhook_configured=bool(self.settings.webhook_url),
            # After each commit: cached OCSP answers go at once, the CRL is rebuilt in the background.
            listeners=[self.ocsp.invalidate, self.crls.after_revocation],
        )

    def close(self) -> None:
        """Finish handed-over deliveries and CRL rebuilds, release outbound connections, then the database pool."""
        try:
            self.notifications.close()
            self.crls.close()
        finally:
            self.db.dispose()

    @property
    def notification_service(self) -> NotificationService:
        return self.notifications.service

    @classmethod
    def from_settings(cls, settings: Settings, clock: Clock | None = None) -> AppContext:
        secret = settings.config_encryption_key
        passphrase, _ = load_or_create_passphrase(secret.get_secret_value() if secret else None, settings.data_dir)
        db = Database.from_url(settings.sqlalchemy_url, max_conns=settings.database_max_conns)
        return cls(settings=settings, db=db, cipher=ConfigCipher(passphrase), clock=clock or SystemClock())

    def authenticate_in_memory(self, presented: str) -> Actor | None:
        """Environment keys and the agent bootstrap token: no I/O."""
        return self.api_keys.authenticate_env(presented) or bootstrap_actor(
            presented, self.settings.agent_bootstrap_token.get_secret_value()
        )

    def authenticate(self, presented: str) -> Actor | None:
        """Operator keys, then per-agent credentials, then the bootstrap token."""
        return (
            self.api_keys.authenticate(presented)
            or self.agents.authenticate(presented)
            or bootstrap_actor(presented, self.settings.agent_bootstrap_token.get_secret_value())
        )

    @property
    def auth_disabled(self) -> bool:
        return self.settings.auth_type is AuthType.NONE
