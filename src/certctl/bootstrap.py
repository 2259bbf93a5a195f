"""The start-up sequence (core.md §10.9): connect, migrate, check the encryption key, seed the baseline."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from certctl.clock import Clock, SystemClock
from certctl.config import Settings
from certctl.context import AppContext
from certctl.db import migrate
from certctl.db.engine import Database
from certctl.errors import ConfigurationError
from certctl.issuers.models import ConfigSource, Issuer, IssuerType
from certctl.policies.models import RenewalPolicy
from certctl.security.encryption import KEY_FILE_NAME, ConfigCipher, DecryptionFailed, load_or_create_passphrase
from certctl.security.roles import Role
from certctl.security.tls import write_private
from certctl.targets.models import DeploymentTarget

log = logging.getLogger("certctl.bootstrap")
BOOTSTRAP_ADMIN_KEY_FILE = "bootstrap-admin-key"
DEFAULT_POLICY_ID = "rp-default"
LOCAL_ISSUER_ID = "iss-local"


def prepare(
    settings: Settings, clock: Clock | None = None, *, run_migrations: bool = True, seed_issuers: bool = True
) -> AppContext:
    """Everything before serving: returns a context whose database is at the latest schema."""
    clock = clock or SystemClock()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database.from_url(settings.sqlalchemy_url, max_conns=settings.database_max_conns)
    try:
        try:
            db.ping()
        except OperationalError as exc:
            raise ConfigurationError(f"cannot connect to the database: {str(exc.orig).strip()}") from exc
        if run_migrations:
            migrate.upgrade(db.engine)
        cipher = _cipher(settings, db)
        context = AppContext(settings=settings, db=db, cipher=cipher, clock=clock)
        seed_baseline(context)
        if seed_issuers:
            seed_env_issuers(context)
    except BaseException:
        db.dispose()  # a refused start-up leaves no pooled connections behind
        raise
    return context


def _cipher(settings: Settings, db: Database) -> ConfigCipher:
    sample = _first_encrypted_blob(db)
    configured = settings.config_encryption_key.get_secret_value() if settings.config_encryption_key else None
    key_file = settings.data_dir / KEY_FILE_NAME
    if sample is not None and configured is None and not key_file.exists():
        # Making a fresh key now would strand every stored secret: refuse, touch nothing.
        raise ConfigurationError(
            "the database holds encrypted issuer/target configuration but no key is available: "
            f"set CERTCTL_CONFIG_ENCRYPTION_KEY or restore {key_file}"
        )
    passphrase, created = load_or_create_passphrase(configured, settings.data_dir)
    if created:
        log.warning("encryption.key_file_created", extra={"path": str(key_file)})
    cipher = ConfigCipher(passphrase)
    if sample is not None:
        owner, blob = sample
        try:
            cipher.decrypt(blob)
        except DecryptionFailed as exc:
            source = "CERTCTL_CONFIG_ENCRYPTION_KEY" if configured else str(key_file)
            raise ConfigurationError(
                f"the configured encryption key ({source}) does not decrypt the stored configuration of {owner}; "
                "start with the key the data was written with (nothing has been changed)"
            ) from exc
    return cipher


def _first_encrypted_blob(db: Database) -> tuple[str, bytes] | None:
    with db.begin() as session:
        for model, kind in ((Issuer, "issuer"), (DeploymentTarget, "target")):
            row = session.execute(
                select(model.id, model.encrypted_config).where(model.encrypted_config.is_not(None)).limit(1)
            ).first()
            if row is not None and row[1] is not None:
                return f"{kind} {row[0]}", bytes(row[1])
    return None


def seed_baseline(context: AppContext) -> None:
    """The original's seed.sql: the default renewal policy every certificate may use (idempotent)."""
    now = context.clock.now()
    with context.db.begin() as session:
        if session.get(RenewalPolicy, DEFAULT_POLICY_ID) is None:
            session.add(
                RenewalPolicy(
                    id=DEFAULT_POLICY_ID,
                    name="Default",
                    renewal_window_days=30,
                    auto_renew=True,
                    max_retries=3,
                    retry_interval_seconds=3600,
                    created_at=now,
                    updated_at=now,
                )
            )


def seed_env_issuers(context: AppContext) -> None:
    """On an empty issuers table, the built-in local CA `iss-local` (core.md §9), from the environment:
    sub-CA mode when CERTCTL_CA_CERT_PATH and CERTCTL_CA_KEY_PATH are set, else a self-signed root made
    on first use and kept encrypted in the database. Its config holds no secret, so it is stored plain."""
    settings, now = context.settings, context.clock.now()
    config: dict[str, str] = {}
    if settings.ca_cert_path and settings.ca_key_path:
        config = {"ca_cert_path": str(settings.ca_cert_path), "ca_key_path": str(settings.ca_key_path)}
    with context.db.begin() as session:
        if session.scalar(select(Issuer.id).limit(1)) is not None:
            return
        session.add(
            Issuer(
                id=LOCAL_ISSUER_ID,
                name="Local CA",
                type=IssuerType.GENERIC_CA,
                config=config,
                encrypted_config=None,
                enabled=True,
                source=ConfigSource.ENV,
                created_at=now,
                updated_at=now,
            )
        )


def ensure_bootstrap_admin_key(context: AppContext) -> str | None:
    """On a server with no API key at all, create an admin key and keep it in a 0600 file for the operator.

    Returns the key to print, or None when keys are configured by the operator.
    """
    path: Path = context.settings.data_dir / BOOTSTRAP_ADMIN_KEY_FILE
    if path.exists():
        return path.read_text().strip() or None
    if context.auth_disabled or context.api_keys.has_any_key():
        return None
    created = context.api_keys.create("admin", Role.ADMIN)
    write_private(path, (created.plaintext + "\n").encode())
    os.chmod(path, 0o600)
    return created.plaintext
