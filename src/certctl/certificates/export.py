"""Exporting issued certificates: PEM pieces and PKCS#12 trust bundles (certificates only, never keys)."""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

EXPORT_WINDOW_SECONDS = 3600.0


@dataclass(frozen=True, slots=True)
class PemExport:
    cert_pem: str
    chain_pem: str
    full_pem: str


def split_pem(pem_chain: str) -> PemExport:
    certs = x509.load_pem_x509_certificates(pem_chain.encode())
    parts = [c.public_bytes(serialization.Encoding.PEM).decode() for c in certs]
    return PemExport(cert_pem=parts[0], chain_pem="".join(parts[1:]), full_pem="".join(parts))


def pkcs12_bundle(pem_chain: str, name: str, password: str) -> bytes:
    """A PKCS#12 trust store of the leaf and its chain (AES-256 / PBES2 when a password is given)."""
    certs = x509.load_pem_x509_certificates(pem_chain.encode())
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password.encode()) if password else serialization.NoEncryption()
    )
    return pkcs12.serialize_key_and_certificates(name.encode(), None, certs[0], certs[1:] or None, encryption)


class SlidingWindowLimiter:
    """At most `limit` events per actor in any `window` seconds (CERTCTL_CERT_EXPORT_RATE_LIMIT_PER_ACTOR_HR)."""

    def __init__(self, limit: int, monotonic: Callable[[], float], window: float = EXPORT_WINDOW_SECONDS) -> None:
        self.limit, self.window = limit, window
        self._monotonic = monotonic
        self._events: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def acquire(self, actor: str) -> int:
        """0 when allowed (and counted), else the whole seconds until the oldest event leaves the window."""
        if self.limit <= 0:
            return 0
        now = self._monotonic()
        with self._lock:
            events = self._events.setdefault(actor, deque())
            while events and now - events[0] >= self.window:
                events.popleft()
            if len(events) >= self.limit:
                return max(1, math.ceil(self.window - (now - events[0])))
            events.append(now)
            return 0
