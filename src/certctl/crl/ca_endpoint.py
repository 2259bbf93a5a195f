"""`GET /.well-known/pki/ca/{issuer_id}[/chain]`: the issuing CA certificate (the AIA caIssuers target,
pki.md §A2.5) as DER or PEM, and the PEM chain, issuing CA first. Unauthenticated, cacheable."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from hashlib import sha256

import anyio.to_thread
from cryptography.hazmat.primitives.serialization import Encoding

from certctl.clock import Clock
from certctl.crl._http import PEM_CONTENT_TYPE, bad_format, etag_matches, method_not_allowed, wants_pem
from certctl.distribution.asgi import Handler, PKIRequest, PKIResponse, text_response
from certctl.errors import NotFound, ValidationFailed
from certctl.issuers.connectors import ConnectorRegistry
from certctl.pki.connector import certificates_to_pem
from certctl.pki.errors import IssuerError

CERT_CONTENT_TYPE = "application/pkix-cert"  # RFC 2585 §4.1, what AIA caIssuers clients expect
CACHE_CONTROL = "public, max-age=86400"
"""A CA certificate changes only when the CA is replaced; a day keeps relying parties' fetches rare."""
RECHECK_SECONDS = 1.0


class CAChainUnavailable(Exception):
    """The issuer's connector has no CA chain to publish (HTTP 501)."""


@dataclass(frozen=True, slots=True)
class CACertificates:
    issuer_id: str
    der: bytes
    """The issuing CA certificate."""
    pem: bytes
    chain_pem: bytes
    """Issuing CA first, then its issuers."""
    etag: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "etag", f'W/"{sha256(self.chain_pem).digest()[:16].hex()}"')


class CACertificateSource:
    """Each issuer's CA certificates from its connector, remembered in-process and re-read at most once a
    second (the connector registry rebuilds a connector when its issuer row changes)."""

    def __init__(self, connectors: ConnectorRegistry, clock: Clock) -> None:
        self._connectors, self._clock = connectors, clock
        self._memory: dict[str, tuple[float, CACertificates]] = {}
        self._guard = threading.Lock()

    def peek(self, issuer_id: str) -> CACertificates | None:
        remembered = self._memory.get(issuer_id)
        if remembered is None or self._clock.monotonic() - remembered[0] >= RECHECK_SECONDS:
            return None
        return remembered[1]

    def load(self, issuer_id: str) -> CACertificates:
        """Raises NotFound, ValidationFailed (disabled issuer) or CAChainUnavailable."""
        try:
            connector = self._connectors.get(issuer_id)
            chain = connector.get_ca_chain()
        except (IssuerError, NotImplementedError) as exc:
            raise CAChainUnavailable(f"issuer {issuer_id} has no CA certificate to publish: {exc}") from exc
        if not chain:
            raise CAChainUnavailable(f"issuer {issuer_id} has no CA certificate to publish")
        remembered = self._memory.get(issuer_id)
        der = chain[0].public_bytes(Encoding.DER)
        if remembered is not None and remembered[1].der == der:
            certificates = remembered[1]
        else:
            certificates = CACertificates(
                issuer_id=issuer_id,
                der=der,
                pem=chain[0].public_bytes(Encoding.PEM),
                chain_pem=certificates_to_pem(chain).encode(),
            )
        with self._guard:
            self._memory[issuer_id] = (self._clock.monotonic(), certificates)
        return certificates


def ca_handler(connectors: ConnectorRegistry, clock: Clock) -> Handler:
    source = CACertificateSource(connectors, clock)

    async def handle(request: PKIRequest) -> PKIResponse:
        refused = method_not_allowed(request) or bad_format(request)
        if refused is not None:
            return refused
        if request.rest not in ("", "chain"):
            return text_response(404, "not found: expected /.well-known/pki/ca/{issuer_id}[/chain]")
        certificates = source.peek(request.issuer_id)
        if certificates is None:
            try:
                certificates = await anyio.to_thread.run_sync(source.load, request.issuer_id)
            except NotFound:
                return text_response(404, f"issuer {request.issuer_id} not found")
            except ValidationFailed as exc:
                return text_response(404, str(exc))
            except CAChainUnavailable as exc:
                return text_response(501, str(exc))
        if request.rest == "chain":
            body, content_type, variant = certificates.chain_pem, PEM_CONTENT_TYPE, "chain"
        elif wants_pem(request):
            body, content_type, variant = certificates.pem, PEM_CONTENT_TYPE, "pem"
        else:
            body, content_type, variant = certificates.der, CERT_CONTENT_TYPE, "der"
        etag = f'{certificates.etag[:-1]}-{variant}"'
        headers = (("etag", etag), ("cache-control", CACHE_CONTROL), ("vary", "Accept"))
        if etag_matches(request.headers, etag):
            return PKIResponse(304, headers=headers)
        return PKIResponse(200, body, content_type, headers)

    return handle
