"""Live connectors for issuer rows: built from the decrypted config, cached until the row changes."""

from __future__ import annotations

import threading
from datetime import datetime

from certctl.clock import Clock
from certctl.db.engine import Database
from certctl.errors import NotFound, ValidationFailed
from certctl.issuers.ca_store import DatabaseCAStore
from certctl.issuers.models import HierarchyMode, Issuer, IssuerType
from certctl.issuers.sealing import ConfigSealer
from certctl.pki.connector import ConnectorDeps, IssuerConnector
from certctl.pki.errors import IssuerConfigError, UnknownIssuerType
from certctl.pki.local_ca import LocalCA
from certctl.pki.registry import build_connector, validate_issuer_config
from certctl.security.encryption import ConfigCipher


class ConnectorRegistry:
    """One connector per issuer, rebuilt when the issuer's `updated_at` moves (core.md §9)."""

    def __init__(self, db: Database, cipher: ConfigCipher, clock: Clock, public_url: str | None = None) -> None:
        self._db, self._clock, self._public_url = db, clock, public_url or None
        self._sealer, self._cipher = ConfigSealer(cipher), cipher
        self._ca_store = DatabaseCAStore(db, cipher, clock)
        self._cache: dict[str, tuple[datetime, IssuerConnector]] = {}
        self._lock = threading.Lock()

    def get(self, issuer_id: str) -> IssuerConnector:
        """The connector for an enabled issuer; raises NotFound, ValidationFailed or IssuerConfigError."""
        with self._db.read() as session:
            issuer = session.get(Issuer, issuer_id)
            if issuer is None:
                raise NotFound("issuer", issuer_id)
            if not issuer.enabled:
                raise ValidationFailed(f"issuer {issuer_id} is disabled")
            stamp, kind, mode = issuer.updated_at, issuer.type, issuer.hierarchy_mode
            with self._lock:
                cached = self._cache.get(issuer_id)
            if cached is not None and cached[0] == stamp:
                return cached[1]  # unchanged since built: no need to decrypt its config again
            config = self._sealer.unseal(issuer.encrypted_config, issuer.config, f"issuer {issuer_id}")
        with self._lock:
            cached = self._cache.get(issuer_id)
            if cached is not None and cached[0] == stamp:
                return cached[1]
            connector = self._build(issuer_id, kind, config, mode)
            self._cache[issuer_id] = (stamp, connector)
            return connector

    def has_connector(self, issuer_id: str) -> bool:
        try:
            self.get(issuer_id)
        except (NotFound, ValidationFailed, IssuerConfigError, UnknownIssuerType):
            return False
        return True

    def test(self, issuer: Issuer) -> None:
        """Validate the config and build the connector once (POST /issuers/{id}/test)."""
        config = self._sealer.unseal(issuer.encrypted_config, issuer.config, f"issuer {issuer.id}")
        validate_issuer_config(issuer.type, config)
        self._build(issuer.id, issuer.type, config, issuer.hierarchy_mode)

    def forget(self, issuer_id: str) -> None:
        with self._lock:
            self._cache.pop(issuer_id, None)

    def _build(
        self, issuer_id: str, kind: IssuerType, config: dict[str, object], mode: HierarchyMode = HierarchyMode.SINGLE
    ) -> IssuerConnector:
        deps = ConnectorDeps(
            clock=self._clock, issuer_id=issuer_id, public_url=self._public_url, ca_store=self._ca_store
        )
        connector = build_connector(kind, config, deps)
        if isinstance(connector, LocalCA):
            stored = self._ca_store.load(issuer_id)
            if stored is not None and stored.cert_pem != connector.export().cert_pem:
                # Another replica saved its CA first: use the stored one, so every replica signs alike.
                connector = build_connector(kind, config, deps)
        if isinstance(connector, LocalCA) and mode is HierarchyMode.TREE and connector.config.issuing_ca_id:
            # Tree mode: sign with the configured intermediate (pki.md §A1.6); the hierarchy service bumps
            # the issuer's updated_at whenever a CA of it changes, so this cache entry is rebuilt.
            from certctl.intermediates.chain import tree_local_ca  # the hierarchy package imports issuers

            connector = tree_local_ca(
                connector,
                connector.config.issuing_ca_id,
                db=self._db,
                cipher=self._cipher,
                clock=self._clock,
                public_url=self._public_url,
            )
        return connector
