"""Loading the demo data set: every missing row by primary key, all but `iss-local` and its CA in one transaction."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, inspect, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from certctl.audit.models import AuditEvent
from certctl.certificates.models import CertificateVersion
from certctl.clock import FrozenClock
from certctl.context import AppContext
from certctl.db.base import Base
from certctl.demo import certificates as certs
from certctl.demo import history, inventory, notifications
from certctl.demo.inventory import LOCAL_CA_COMMON_NAME, LOCAL_ISSUER_ID
from certctl.demo.signing import DemoSigner
from certctl.errors import Conflict
from certctl.issuers.connectors import ConnectorRegistry
from certctl.issuers.models import Issuer, IssuerCAMaterial
from certctl.pki.local_ca import LocalCA

log = logging.getLogger("certctl.demo")

CA_AGE = timedelta(days=180)
"""How old a root the demo makes for `iss-local` when it has none yet: older than every demo certificate."""


@dataclass(frozen=True, slots=True)
class DemoSummary:
    """Rows inserted by one `load_demo` run, per table (0 where every demo row was already there)."""

    inserted: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.inserted.values())


class DemoDataConflict(Conflict):
    """A demo row clashes with an existing row under another id (a unique name already taken)."""


def load_demo(context: AppContext) -> DemoSummary:
    """Insert the demo data set (ui-cli-mcp.md §5), timestamps relative to `context.clock.now()`.

    Idempotent: rows whose primary key exists are left untouched, so a second run inserts nothing; the
    append-only audit trail is skipped as a whole once its first demo row exists. Writes no audit row of
    its own. Raises DemoDataConflict when a demo name is taken by another row (then only `iss-local` and
    its CA may have been made), and whatever `ConnectorRegistry.get` raises when `iss-local` cannot sign
    (disabled, unreadable sub-CA files).
    """
    now = context.clock.now()
    local_inserted = _ensure_local_issuer(context, now)
    with context.db.begin() as session:
        missing = _missing_ids(session, CertificateVersion, [plan.id for plan in certs.version_plans(now)])
    plans = [plan for plan in certs.version_plans(now) if plan.id in missing]
    # Keys and signatures are made before the write transaction opens, so it holds its locks briefly.
    versions = certs.issue_versions(plans, DemoSigner(_local_ca(context, now))) if plans else []
    inserted: dict[str, int] = {}
    for attempt in (1, 2):
        try:
            with context.db.begin() as session:
                inserted = _insert_all(session, now, versions)
            break
        except IntegrityError as exc:
            # A second process loading at the same moment makes the first try fail on a primary key; the
            # retry finds its rows and skips them. A name held by another row fails both times.
            if attempt == 2:
                raise DemoDataConflict(f"the demo data clashes with existing rows: {exc.orig}") from exc
            log.info("demo.retry_after_conflict", extra={"error": str(exc.orig)})
    inserted[Issuer.__tablename__] += local_inserted
    summary = DemoSummary(inserted)
    log.info("demo.loaded", extra={"inserted": summary.inserted, "total": summary.total})
    return summary


def _insert_all(session: Session, now: datetime, versions: list[CertificateVersion]) -> dict[str, int]:
    batches: list[Sequence[Base]] = [
        inventory.teams(now),
        inventory.owners(now),
        inventory.certificate_profiles(now),
        inventory.renewal_policies(now),
        inventory.issuers(now),
        inventory.agents(now),
        inventory.agent_groups(now),
        inventory.agent_group_members(),
        inventory.deployment_targets(now),
        certs.certificates(now),
        certs.target_mappings(now),
        versions,
    ]
    inserted = {type(batch[0]).__tablename__: _insert_missing(session, batch) for batch in batches if batch}
    inserted.setdefault(CertificateVersion.__tablename__, 0)
    stored = session.scalars(
        select(CertificateVersion).where(CertificateVersion.id.in_([plan.id for plan in certs.version_plans(now)]))
    ).all()
    fingerprints = {version.id: version.fingerprint_sha256 for version in stored}
    serials = {version.id: version.serial_number for version in stored}
    inserted["certificate_revocations"] = _insert_missing(
        session, history.revocations(now, {v.id: (v.serial_number, v.not_after) for v in stored})
    )
    inserted["jobs"] = _insert_missing(session, history.jobs(now, fingerprints))
    inserted["notification_events"] = _insert_missing(session, notifications.events(now))
    inserted["notification_attempts"] = _insert_missing(session, notifications.attempts(now))
    trail_loaded = session.get(AuditEvent, history.AUDIT_MARKER_ID) is not None
    inserted["audit_events"] = 0 if trail_loaded else _insert_missing(session, history.audit_events(now, serials))
    return inserted


def _ensure_local_issuer(context: AppContext, now: datetime) -> int:
    """`iss-local` as start-up would make it (sub-CA files from the settings, if set), named Local Dev CA."""
    settings = context.settings
    config: dict[str, Any] = {"ca_common_name": LOCAL_CA_COMMON_NAME, "validity_days": 90}
    if settings.ca_cert_path and settings.ca_key_path:
        config = {"ca_cert_path": str(settings.ca_cert_path), "ca_key_path": str(settings.ca_key_path)}
    try:
        with context.db.begin() as session:
            if session.get(Issuer, LOCAL_ISSUER_ID) is not None:
                return 0
            session.add(inventory.local_issuer(now, config))
    except IntegrityError:
        return 0  # another process made it at the same moment
    return 1


def _local_ca(context: AppContext, now: datetime) -> LocalCA:
    with context.db.begin() as session:
        issuer = session.get(Issuer, LOCAL_ISSUER_ID)
        fresh_root = (
            issuer is not None
            and issuer.encrypted_config is None
            and not issuer.config.get("ca_cert_path")
            and session.get(IssuerCAMaterial, LOCAL_ISSUER_ID) is None
        )
    if fresh_root:
        # The root would otherwise be made now, younger than the certificates it signed "months ago".
        born = FrozenClock(now - CA_AGE)
        ConnectorRegistry(context.db, context.cipher, born, context.settings.server_public_url).get(LOCAL_ISSUER_ID)
    connector = context.connectors.get(LOCAL_ISSUER_ID)
    if not isinstance(connector, LocalCA):
        raise DemoDataConflict(f"issuer {LOCAL_ISSUER_ID} is not a local CA, so it cannot sign the demo certificates")
    return connector


def _insert_missing(session: Session, rows: Sequence[Base]) -> int:
    """Add the rows whose primary key is not stored yet; returns how many were added."""
    mapper = inspect(type(rows[0]))
    keys = [tuple(mapper.primary_key_from_instance(row)) for row in rows]
    present = _present_keys(session, list(mapper.primary_key), keys)
    missing = [row for row, key in zip(rows, keys, strict=True) if key not in present]
    session.add_all(missing)
    session.flush()
    return len(missing)


def _missing_ids(session: Session, model: type[Base], ids: Sequence[str]) -> set[str]:
    (column,) = inspect(model).primary_key
    return set(ids) - {key[0] for key in _present_keys(session, [column], [(i,) for i in ids])}


def _present_keys(
    session: Session, columns: list[ColumnElement[Any]], keys: list[tuple[Any, ...]]
) -> set[tuple[Any, ...]]:
    if len(columns) == 1:
        stmt = select(columns[0]).where(columns[0].in_([key[0] for key in keys]))
    else:
        stmt = select(*columns).where(tuple_(*columns).in_(keys))
    return {tuple(row) for row in session.execute(stmt)}
