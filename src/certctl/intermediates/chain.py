"""Issuance under an intermediate (pki.md §A1.6 AssembleChain): the issuer's connector in `tree` mode is a
LocalCA holding the issuing CA's key and the chain issuing CA → … → root."""

from __future__ import annotations

from cryptography import x509

from certctl.clock import Clock
from certctl.db.engine import Database
from certctl.errors import CertctlError, NotFound
from certctl.intermediates.key_drivers import load_signing_key
from certctl.intermediates.models import CAState
from certctl.intermediates.store import IntermediateCAStore
from certctl.pki.errors import IssuerConfigError
from certctl.pki.local_ca import LocalCA
from certctl.security.encryption import ConfigCipher


def tree_local_ca(
    own_ca: LocalCA, issuing_ca_id: str, *, db: Database, cipher: ConfigCipher, clock: Clock, public_url: str | None
) -> LocalCA:
    """The connector signing with intermediate `issuing_ca_id`; `own_ca` is the issuer's single-mode CA
    (its key serves the `issuer` key driver). Raises IssuerConfigError naming what is wrong."""
    field = "issuing_ca_id"
    with db.read() as session:
        try:
            lineage = IntermediateCAStore(session).lineage(issuing_ca_id)
        except NotFound as exc:
            raise IssuerConfigError(f"issuing_ca_id: intermediate CA {issuing_ca_id} does not exist", field) from exc
        except ValueError as exc:
            raise IssuerConfigError(f"issuing_ca_id: {exc}", field) from exc
        issuing = lineage[0]
        rows = [(ca.id, ca.owning_issuer_id, ca.state, ca.cert_pem) for ca in lineage]
        driver, encrypted = issuing.key_driver_id, issuing.encrypted_key
    for ca_id, owner, state, _ in rows:
        if owner != own_ca.issuer_id:
            raise IssuerConfigError(
                f"issuing_ca_id: intermediate CA {ca_id} belongs to issuer {owner}, not {own_ca.issuer_id}", field
            )
        if state is CAState.RETIRED:
            raise IssuerConfigError(f"issuing_ca_id: intermediate CA {ca_id} is retired", field)
    try:
        key = load_signing_key(driver, encrypted, cipher=cipher, own_ca_key=lambda: own_ca.signing_key)
    except CertctlError as exc:
        raise IssuerConfigError(f"issuing_ca_id: key of intermediate CA {issuing_ca_id}: {exc}", field) from exc
    chain = [x509.load_pem_x509_certificate(cert_pem.encode("ascii")) for *_, cert_pem in rows]
    return LocalCA(
        key=key, chain=chain, clock=clock, config=own_ca.config, issuer_id=own_ca.issuer_id, public_url=public_url
    )
