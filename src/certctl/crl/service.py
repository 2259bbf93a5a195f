"""CRLs per issuer (pki.md §A2.3, §A2.5): read from the cache, rebuilt when stale, one build at a time.

A cached CRL is stale when its nextUpdate has passed or when the issuer's `revocation_revision` (bumped in
every revocation's transaction, on any replica) differs from the revision it was built from. Builds of one
issuer are serialised by a lock per issuer in this process and by `CRLStore.lock_issuer` across replicas,
and the CRL number is read and raised under that lock: it never repeats and never goes down.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from hashlib import sha256

from cryptography.hazmat.primitives.serialization import Encoding

from certctl.clock import Clock
from certctl.crl.builder import RevokedEntries, build_crl
from certctl.crl.models import CRLCache, CRLGenerationEvent
from certctl.crl.store import CacheMeta, CRLStore, IssuerRevocationState
from certctl.db.engine import Database
from certctl.errors import CertctlError, NotFound, UpstreamFailed, ValidationFailed
from certctl.ids import new_id
from certctl.issuers.connectors import ConnectorRegistry
from certctl.issuers.models import IssuerType
from certctl.pki.errors import IssuerConfigError, UnknownIssuerType
from certctl.pki.local_ca import LocalCA
from certctl.revocation.reasons import InvalidRevocationReason, reason_code
from certctl.scheduler.deadline import Deadline

log = logging.getLogger("certctl.crl")

DEFAULT_CRL_VALIDITY = timedelta(hours=24)
"""nextUpdate - thisUpdate (pki.md §A2.3); `crl_validity` stretches it for long refresh intervals."""
ADMIN_EVENTS_SHOWN = 10
MEMORY_RECHECK_SECONDS = 1.0
"""An in-process copy is served without touching the database for at most this long."""


def crl_validity(refresh_interval: timedelta) -> timedelta:
    """max(24 h, twice the refresh interval): a CRL never expires before the next scheduled rebuild."""
    return max(DEFAULT_CRL_VALIDITY, 2 * refresh_interval)


class CRLUnsupported(CertctlError):
    """The issuer's connector cannot sign CRLs (only the local CA can): HTTP 501 at the distribution point."""

    def __init__(self, issuer_id: str, issuer_type: str) -> None:
        super().__init__(f"issuer {issuer_id} ({issuer_type}) does not publish a CRL through certctl")
        self.issuer_id, self.issuer_type = issuer_id, issuer_type


class CRLGenerationFailed(UpstreamFailed):
    """Building or storing the CRL failed; the failure is in `crl_generation_events`."""

    def __init__(self, issuer_id: str, error: str) -> None:
        super().__init__(f"CRL generation for issuer {issuer_id} failed: {error}")
        self.issuer_id, self.error = issuer_id, error


@dataclass(frozen=True, slots=True)
class CRLSnapshot:
    """One issued CRL, as served."""

    issuer_id: str
    der: bytes
    crl_number: int
    this_update: datetime
    next_update: datetime
    revision: int
    revoked_count: int
    etag: str = field(init=False)
    """Weak ETag `W/"<hex of the first 16 bytes of SHA-256(DER)>"` (pki.md §A2.3)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "etag", f'W/"{sha256(self.der).digest()[:16].hex()}"')


@dataclass(frozen=True, slots=True)
class RefreshSummary:
    """What one `regenerate_all` did, for the loop's log line and stats."""

    regenerated: int = 0
    failed: int = 0
    skipped: int = 0


@dataclass(frozen=True, slots=True)
class CacheStatus:
    """One issuer in the admin view."""

    issuer_id: str
    meta: CacheMeta | None
    is_stale: bool
    """No CRL yet, nextUpdate passed, or revocations since the build: the next read rebuilds it."""
    events: list[CRLGenerationEvent]


@dataclass(slots=True)
class _Remembered:
    snapshot: CRLSnapshot
    checked_at: float  # monotonic seconds of the last database check


class CRLService:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        connectors: ConnectorRegistry,
        *,
        validity: timedelta = DEFAULT_CRL_VALIDITY,
    ) -> None:
        self._db, self._clock, self._connectors, self._validity = db, clock, connectors, validity
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._memory: dict[str, _Remembered] = {}
        self._rebuilds = ThreadPoolExecutor(max_workers=1, thread_name_prefix="crl-rebuild")
        self._queued: set[str] = set()

    @property
    def clock(self) -> Clock:
        return self._clock

    # -- reads ----------------------------------------------------------------------------------------------

    def peek(self, issuer_id: str) -> CRLSnapshot | None:
        """The in-process copy when it was checked against the database within the last second and has not
        expired; no I/O, so the event loop can call it. None means: call `current` (in a thread)."""
        remembered = self._memory.get(issuer_id)
        if remembered is None or self._clock.monotonic() - remembered.checked_at >= MEMORY_RECHECK_SECONDS:
            return None
        if self._clock.now() >= remembered.snapshot.next_update:
            return None
        return remembered.snapshot

    def current(self, issuer_id: str) -> CRLSnapshot:
        """The issuer's current CRL, rebuilt first when missing or stale. When the rebuild fails, the cached
        CRL is returned if it has not expired yet.

        Raises NotFound (unknown issuer), CRLUnsupported (not a local CA) or CRLGenerationFailed.
        """
        with self._db.read() as session:
            store = CRLStore(session)
            issuer = store.issuer_state(issuer_id)
            if issuer is None:
                raise NotFound("issuer", issuer_id)
            meta = store.meta(issuer_id)
            if meta is not None and self._is_fresh(meta, issuer):
                remembered = self._memory.get(issuer_id)
                if remembered is not None and remembered.snapshot.crl_number == meta.crl_number:
                    remembered.checked_at = self._clock.monotonic()
                    return remembered.snapshot
                der = store.der(issuer_id)
                if der is not None:
                    return self._remember(_snapshot(meta, der))
        try:
            return self._build(issuer_id, "read", only_if_stale=True)
        except CRLGenerationFailed:
            # Better an unexpired CRL that misses the newest revocations than none; the failure is recorded.
            previous = self._unexpired_cache(issuer_id)
            if previous is None:
                raise
            return self._remember(previous)  # served from memory for a second: at most one retry a second

    def regenerate(self, issuer_id: str, trigger: str) -> CRLSnapshot:
        """Build, sign and store a new CRL now (trigger: scheduled, revocation, read, admin).

        Raises NotFound, CRLUnsupported or CRLGenerationFailed (recorded in `crl_generation_events`).
        """
        return self._build(issuer_id, trigger, only_if_stale=False)

    def after_revocation(self, issuer_id: str) -> None:
        """A revocation of the issuer committed: forget the in-process copy now and rebuild in the background,
        so the revoking request never waits for a large CRL. Revocations arriving while one rebuild is queued
        share it; a reader in the meantime rebuilds on demand (the revision tells it the cache is stale)."""
        self._memory.pop(issuer_id, None)
        with self._locks_guard:
            if issuer_id in self._queued:
                return
            self._queued.add(issuer_id)
        self._rebuilds.submit(self._rebuild_after_revocation, issuer_id)

    def close(self) -> None:
        """Finish the rebuilds already queued (before the database pool goes away)."""
        self._rebuilds.shutdown(wait=True)

    def _rebuild_after_revocation(self, issuer_id: str) -> None:
        with self._locks_guard:
            self._queued.discard(issuer_id)  # a revocation from now on queues its own rebuild
        try:
            self._build(issuer_id, "revocation", only_if_stale=True)
        except (CRLUnsupported, NotFound, ValidationFailed):
            return  # not a CRL-capable issuer (or gone): nothing to publish
        except CRLGenerationFailed as exc:
            log.warning("crl.generation_failed", extra={"issuer_id": issuer_id, "error": exc.error})

    def regenerate_all(self, trigger: str, deadline: Deadline | None = None) -> RefreshSummary:
        """Rebuild the CRL of every enabled issuer whose connector is a local CA (the `crl-refresh` loop)."""
        deadline = deadline or Deadline.never()
        with self._db.read() as session:
            issuers = [issuer for issuer in CRLStore(session).issuer_states() if issuer.enabled]
        regenerated = failed = skipped = 0
        for issuer in issuers:
            if deadline.expired:
                skipped += 1
                continue
            try:
                self.regenerate(issuer.issuer_id, trigger)
            except (CRLUnsupported, NotFound, ValidationFailed):
                skipped += 1  # not CRL-capable, deleted or disabled meanwhile
            except CRLGenerationFailed as exc:
                failed += 1
                log.warning("crl.generation_failed", extra={"issuer_id": issuer.issuer_id, "error": exc.error})
            else:
                regenerated += 1
        return RefreshSummary(regenerated=regenerated, failed=failed, skipped=skipped)

    def cache_status(self, events_per_issuer: int = ADMIN_EVENTS_SHOWN) -> list[CacheStatus]:
        """The admin view: every issuer that has a cached CRL or is a local CA, with its latest builds."""
        now = self._clock.now()
        with self._db.read() as session:
            store = CRLStore(session)
            cached = store.all_meta()
            statuses: list[CacheStatus] = []
            for issuer in store.issuer_states():
                meta = cached.get(issuer.issuer_id)
                if meta is None and issuer.type is not IssuerType.GENERIC_CA:
                    continue
                statuses.append(
                    CacheStatus(
                        issuer_id=issuer.issuer_id,
                        meta=meta,
                        is_stale=meta is None or meta.revision != issuer.revocation_revision or now >= meta.next_update,
                        events=list(store.recent_events(issuer.issuer_id, events_per_issuer)),
                    )
                )
        return statuses

    def local_ca(self, issuer_id: str) -> LocalCA:
        """The issuer's connector when it can sign CRLs; raises NotFound, ValidationFailed (disabled) or
        CRLUnsupported."""
        try:
            connector = self._connectors.get(issuer_id)
        except (IssuerConfigError, UnknownIssuerType) as exc:
            raise CRLUnsupported(issuer_id, f"connector unavailable: {exc}") from exc
        if not isinstance(connector, LocalCA):
            raise CRLUnsupported(issuer_id, str(connector.issuer_type))
        return connector

    # -- builds ---------------------------------------------------------------------------------------------

    def _build(self, issuer_id: str, trigger: str, *, only_if_stale: bool) -> CRLSnapshot:
        ca = self.local_ca(issuer_id)
        with self._lock_for(issuer_id):
            started_at = self._clock.now()
            started = time.perf_counter()
            try:
                return self._build_locked(ca, issuer_id, trigger, started_at, started, only_if_stale=only_if_stale)
            except NotFound:
                raise
            except Exception as exc:  # any failure is recorded for the admin view, then reported
                error = f"{type(exc).__name__}: {exc}"
                self._record_failure(issuer_id, trigger, started_at, started, error)
                raise CRLGenerationFailed(issuer_id, error) from exc

    def _build_locked(
        self,
        ca: LocalCA,
        issuer_id: str,
        trigger: str,
        started_at: datetime,
        started: float,
        *,
        only_if_stale: bool,
    ) -> CRLSnapshot:
        with self._db.begin() as session:
            store = CRLStore(session)
            store.lock_issuer(issuer_id)
            issuer = store.issuer_state(issuer_id)
            if issuer is None:
                raise NotFound("issuer", issuer_id)
            meta = store.meta(issuer_id)
            if only_if_stale and meta is not None and self._is_fresh(meta, issuer):
                der = store.der(issuer_id)  # another thread or replica built it while we waited
                if der is not None:
                    return self._remember(_snapshot(meta, der))
            # The revision is read before the entries: a revocation committed in between is on this CRL
            # but leaves the revision behind, so the next read rebuilds once more (never the reverse).
            revision = issuer.revocation_revision
            now = self._clock.now()
            revoked = RevokedEntries.from_ledger(store.ledger_rows(issuer_id, now), _reason_code)
            number = max((meta.crl_number if meta is not None else 0) + 1, 1)
            crl = build_crl(
                ca.certificate,
                ca.signing_key,
                revoked,
                crl_number=number,
                this_update=now,
                next_update=now + self._validity,
            )
            der = crl.public_bytes(Encoding.DER)
            duration_ms = round((time.perf_counter() - started) * 1000)
            this_update, next_update = crl.last_update_utc, crl.next_update_utc
            assert next_update is not None  # set above
            store.save(
                CRLCache(
                    issuer_id=issuer_id,
                    crl_der=der,
                    crl_number=number,
                    this_update=this_update,
                    next_update=next_update,
                    generated_at=now,
                    generation_duration_ms=duration_ms,
                    revoked_count=revoked.count,
                    revision=revision,
                ),
                exists=meta is not None,
            )
            store.add_event(
                CRLGenerationEvent(
                    id=new_id("crlgen"),
                    issuer_id=issuer_id,
                    crl_number=number,
                    trigger=trigger[:16],
                    started_at=started_at,
                    duration_ms=duration_ms,
                    revoked_count=revoked.count,
                )
            )
        log.info(
            "crl.generated",
            extra={"issuer_id": issuer_id, "crl_number": number, "entries": revoked.count, "duration_ms": duration_ms},
        )
        return self._remember(
            CRLSnapshot(issuer_id, der, number, this_update, next_update, revision, revoked_count=revoked.count)
        )

    def _record_failure(self, issuer_id: str, trigger: str, started_at: datetime, started: float, error: str) -> None:
        log.error("crl.generation_failed", extra={"issuer_id": issuer_id, "error": error})
        try:
            with self._db.begin() as session:
                CRLStore(session).add_event(
                    CRLGenerationEvent(
                        id=new_id("crlgen"),
                        issuer_id=issuer_id,
                        trigger=trigger[:16],
                        started_at=started_at,
                        duration_ms=round((time.perf_counter() - started) * 1000),
                        error=error[:2000],
                    )
                )
        except Exception:  # the database itself may be what failed; the log line above is the record then
            log.exception("crl.event_not_recorded", extra={"issuer_id": issuer_id})

    # -- helpers --------------------------------------------------------------------------------------------

    def _unexpired_cache(self, issuer_id: str) -> CRLSnapshot | None:
        with self._db.read() as session:
            store = CRLStore(session)
            meta = store.meta(issuer_id)
            if meta is None or self._clock.now() >= meta.next_update:
                return None
            der = store.der(issuer_id)
        return None if der is None else _snapshot(meta, der)

    def _is_fresh(self, meta: CacheMeta, issuer: IssuerRevocationState) -> bool:
        return meta.revision == issuer.revocation_revision and self._clock.now() < meta.next_update

    def _remember(self, snapshot: CRLSnapshot) -> CRLSnapshot:
        self._memory[snapshot.issuer_id] = _Remembered(snapshot, self._clock.monotonic())
        return snapshot

    def _lock_for(self, issuer_id: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(issuer_id, threading.Lock())


def _snapshot(meta: CacheMeta, der: bytes) -> CRLSnapshot:
    return CRLSnapshot(
        meta.issuer_id, der, meta.crl_number, meta.this_update, meta.next_update, meta.revision, meta.revoked_count
    )


def _reason_code(name: str) -> int:
    try:
        return int(reason_code(name))
    except InvalidRevocationReason:
        # The API never stores such a name; should one appear, list the serial as unspecified, not drop it.
        log.warning("crl.unknown_reason", extra={"reason": name})
        return 0
