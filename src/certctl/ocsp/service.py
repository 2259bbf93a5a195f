"""The OCSP responder's rules: which status a serial has, who signs, what is cached (pki.md §A2.4-5).

`cached` runs on the event loop and does no I/O; `answer` runs in a worker thread and may read the
database and sign. Both take an `OCSPQuery` already parsed by the HTTP layer.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import timedelta

from certctl.clock import Clock
from certctl.db.engine import Database
from certctl.errors import CertctlError, NotFound, ValidationFailed
from certctl.issuers.connectors import ConnectorRegistry
from certctl.ocsp.cache import DEFAULT_MAX_ENTRIES, CachedAnswer, CacheKey, ResponseCache
from certctl.ocsp.metrics import OCSP_COUNTERS, OCSPCounters, OCSPEvent
from certctl.ocsp.ratelimit import PerIPLimiter
from certctl.ocsp.responder import (
    INTERNAL_ERROR,
    UNKNOWN,
    IssuerHashes,
    OCSPQuery,
    sign_response,
)
from certctl.ocsp.responders import ResponderCertificates
from certctl.ocsp.store import OCSPStore
from certctl.pki.errors import IssuerError, UnknownIssuerType
from certctl.pki.local_ca import LocalCA
from certctl.security.encryption import ConfigCipher

CACHE_MARGIN_SECONDS = 300.0
"""An answer leaves the cache 5 minutes before its nextUpdate, so no client receives a nearly stale one."""
UNKNOWN_CACHE_SECONDS = 60.0
"""`unknown` is cached briefly: issuance does not bump the revision, and a serial may become known."""


class OCSPNotSupported(CertctlError):
    """The issuer exists but cannot sign OCSP answers here (only the local CA can): HTTP 501."""

    def __init__(self, issuer_id: str) -> None:
        super().__init__(f"issuer {issuer_id} does not support OCSP here; only local CA issuers do")
        self.issuer_id = issuer_id


class IssuerUnavailable(CertctlError):
    """The issuer's CA could not be loaded (broken configuration or key): HTTP 503."""


@dataclass(frozen=True, slots=True)
class Answer:
    der: bytes
    status: str | None
    """good / revoked / unknown; None for an unsuccessful response (internalError)."""
    max_age: int
    """Seconds a client may cache it; 0 = no-cache (nonce answers, errors)."""


@dataclass(frozen=True, slots=True)
class _IssuerState:
    ca: LocalCA
    hashes: IssuerHashes
    updated_at: object


class OCSPService:
    def __init__(
        self,
        db: Database,
        connectors: ConnectorRegistry,
        cipher: ConfigCipher,
        clock: Clock,
        *,
        responder_validity: timedelta,
        rotation_grace: timedelta,
        rate_limit_per_ip_min: int,
        counters: OCSPCounters = OCSP_COUNTERS,
        max_cached: int = DEFAULT_MAX_ENTRIES,
    ) -> None:
        self._clock = clock
        self._connectors = connectors
        self._store = OCSPStore(db)
        self.counters = counters
        self.cache = ResponseCache(clock.monotonic, max_cached)
        self.limiter = PerIPLimiter(rate_limit_per_ip_min, clock.monotonic)
        self.responders = ResponderCertificates(
            db, cipher, clock, validity=responder_validity, rotation_grace=rotation_grace
        )
        self._issuers: dict[str, _IssuerState] = {}
        self._refresh_lock = threading.Lock()

    def invalidate(self, issuer_id: str) -> None:
        """Drop the issuer's cached answers now; the revocation service calls it after each commit."""
        self.cache.invalidate(issuer_id)

    def cached(self, issuer_id: str, query: OCSPQuery) -> CachedAnswer | None:
        """A cached answer for a nonce-less query, or None. No I/O: safe on the event loop."""
        if query.nonce is not None or query.serial < 0:
            return None
        state = self._issuers.get(issuer_id)
        if state is None or not state.hashes.matches(query):
            return None
        return self.cache.get(_key(issuer_id, query), self._clock.monotonic())

    def answer(self, issuer_id: str, query: OCSPQuery) -> Answer:
        """Look up, sign and cache. Raises NotFound (404), OCSPNotSupported (501), IssuerUnavailable (503)."""
        state = self._issuer(issuer_id)
        matches = state.hashes.matches(query)
        cacheable = query.nonce is None and matches and query.serial >= 0
        if cacheable:
            hit = self.cache.get(_key(issuer_id, query), self._clock.monotonic())
            if hit is not None:  # filled by a concurrent miss
                self.counters.add(OCSPEvent.CACHE_HIT)
                self.counters.add(OCSPEvent(hit.status))
                return Answer(hit.der, hit.status, self.max_age(hit))
        generation = self.cache.generation(issuer_id)  # before the read: see cache.py
        if matches and query.serial >= 0:
            status = self._store.certificate_status(issuer_id, format(query.serial, "x"))
        else:
            status = UNKNOWN  # another issuer's CertID, or a serial no certificate can have
        now, started = self._clock.now(), self._clock.monotonic()
        try:
            responder = self.responders.for_ca(state.ca)
            der, next_update = sign_response(query, state.hashes, status, responder, now, echo_nonce=True)
        except Exception:
            self.counters.add(OCSPEvent.SIGNING_FAILED)
            return Answer(INTERNAL_ERROR, None, 0)
        self.counters.add(OCSPEvent(status.label))
        if query.nonce is not None:
            self.counters.add(OCSPEvent.NONCE_ECHOED)
            return Answer(der, status.label, 0)
        lifetime = (next_update - now).total_seconds()
        keep = UNKNOWN_CACHE_SECONDS if status.label == "unknown" else lifetime - CACHE_MARGIN_SECONDS
        entry = CachedAnswer(der, status.label, started + lifetime, started + keep, generation)
        if cacheable:
            self.cache.put(_key(issuer_id, query), entry)
        return Answer(der, status.label, self.max_age(entry))

    def max_age(self, entry: CachedAnswer) -> int:
        """Whole seconds left until the answer's nextUpdate."""
        return max(0, int(entry.next_update - self._clock.monotonic()))

    def _issuer(self, issuer_id: str) -> _IssuerState:
        """The issuer's CA, after re-reading its revision when the last read is over a second old."""
        state = self._issuers.get(issuer_id)
        if state is not None and self.cache.revision_is_current(issuer_id, self._clock.monotonic()):
            return state
        with self._refresh_lock:
            started = self._clock.monotonic()
            state = self._issuers.get(issuer_id)
            if state is not None and self.cache.revision_is_current(issuer_id, started):
                return state  # refreshed by another thread while this one waited
            stamp = self._store.issuer_stamp(issuer_id)
            if stamp is None or not stamp.enabled:
                self._forget(issuer_id)
                raise NotFound("issuer", issuer_id)
            if state is None or state.updated_at != stamp.updated_at:
                state = self._load(issuer_id, stamp.updated_at)
            self.cache.observe_revision(issuer_id, (stamp.revocation_revision, stamp.updated_at), started)
            return state

    def _load(self, issuer_id: str, updated_at: object) -> _IssuerState:
        try:
            connector = self._connectors.get(issuer_id)
        except (NotFound, ValidationFailed):
            self._forget(issuer_id)
            raise NotFound("issuer", issuer_id) from None
        except UnknownIssuerType:
            self._forget(issuer_id)
            raise OCSPNotSupported(issuer_id) from None
        except IssuerError as exc:
            self._forget(issuer_id)
            raise IssuerUnavailable(f"issuer {issuer_id} cannot sign OCSP answers now: {exc}") from exc
        if not isinstance(connector, LocalCA):
            self._forget(issuer_id)
            raise OCSPNotSupported(issuer_id)
        state = _IssuerState(connector, IssuerHashes(connector.certificate), updated_at)
        self._issuers[issuer_id] = state
        return state

    def _forget(self, issuer_id: str) -> None:
        self._issuers.pop(issuer_id, None)
        self.cache.forget_issuer(issuer_id)


def _key(issuer_id: str, query: OCSPQuery) -> CacheKey:
    return (issuer_id, format(query.serial, "x"), query.algorithm.name)
