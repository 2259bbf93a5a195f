"""The built-in local CA (issuer type GenericCA, pki.md §A1): a self-signed root or a loaded sub-CA that
signs leaves from CSRs. Key handling is delegated to `certctl.pki.keys.SigningKey`."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import NameOID

from certctl.clock import Clock
from certctl.issuers.models import IssuerType
from certctl.pki import extensions as ext
from certctl.pki import pkcs11
from certctl.pki.connector import (
    CAMaterialStore,
    Capabilities,
    ConnectorDeps,
    IssuedCertificate,
    IssueRequest,
    OrderState,
    OrderStatus,
    certificates_to_pem,
)
from certctl.pki.csr import csr_common_names, csr_key_info, csr_subject_alt_names, load_csr
from certctl.pki.errors import BadCSR, InvalidCAMaterial, IssuerConfigError, PermanentIssuerError
from certctl.pki.keys import CAMaterial, KeyAlgorithm, SigningKey, UnsupportedKey
from certctl.pki.local_ca_config import DEFAULT_CA_COMMON_NAME, LocalCAConfig
from certctl.pki.name_constraints import check_leaf_names
from certctl.pki.profile_check import check_profile, effective_max_ttl_seconds
from certctl.pki.sans import SubjectAltNames, check_unicode_safety, classify_san, is_hostname_like, merge_sans
from certctl.pki.serials import canonical_serial, random_serial

DEFAULT_CA_VALIDITY = timedelta(days=3650)
"""Self-signed root lifetime: ten years (pki.md §A1.2)."""
ORDER_ID_PREFIX = "local-"
DEFAULT_ISSUER_ID = "iss-local"

LOCAL_CA_CAPABILITIES = Capabilities(
    can_revoke=True, can_crl=True, can_ocsp=True, async_orders=False, supports_must_staple=True
)


class LocalCA:
    """Signs leaf certificates with a CA key held in memory; satisfies `IssuerConnector`.

    Every instance holds a usable CA: the constructor refuses a chain whose first certificate is not a
    CA:TRUE keyCertSign certificate valid now, whose key does not match, or whose chain does not link.
    """

    def __init__(
        self,
        *,
        key: SigningKey,
        chain: Sequence[x509.Certificate],
        clock: Clock,
        config: LocalCAConfig | None = None,
        issuer_id: str = DEFAULT_ISSUER_ID,
        public_url: str | None = None,
    ) -> None:
        _check_ca(key, chain, clock.now())
        self._key = key
        self._chain = list(chain)
        self._clock = clock
        self._config = config or LocalCAConfig()
        self._issuer_id = issuer_id
        self._urls = self._config.distribution_urls(issuer_id, public_url)

    def __repr__(self) -> str:
        return f"LocalCA({self.certificate.subject.rfc4514_string()!r}, {self._key.algorithm.value})"

    # -- construction ---------------------------------------------------------------------------------

    @classmethod
    def create_self_signed(
        cls,
        *,
        clock: Clock,
        common_name: str = DEFAULT_CA_COMMON_NAME,
        key_algorithm: KeyAlgorithm = KeyAlgorithm.ECDSA_P256,
        validity: timedelta = DEFAULT_CA_VALIDITY,
        config: LocalCAConfig | None = None,
        issuer_id: str = DEFAULT_ISSUER_ID,
        public_url: str | None = None,
        key: SigningKey | None = None,
    ) -> LocalCA:
        """A new root CA: subject CN only, random serial, notBefore = now, notAfter = now + `validity`.

        `key` signs with an existing key (one held in a token) instead of a fresh `key_algorithm` key.
        Raises InvalidCAMaterial for an algorithm a CA cannot use (Ed25519).
        """
        if not key_algorithm.can_sign_certificates:
            raise InvalidCAMaterial(f"{key_algorithm.value} CA keys are not supported")
        if key is None:
            key = SigningKey.generate(key_algorithm)
        now = _to_second(clock.now())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        ski = ext.subject_key_identifier(key.public_key())
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(random_serial())
            .not_valid_before(now)
            .not_valid_after(now + validity)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(ext.ca_key_usage(), critical=True)
            .add_extension(ski, critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        )
        certificate = key.sign_certificate(builder)
        return cls(key=key, chain=[certificate], clock=clock, config=config, issuer_id=issuer_id, public_url=public_url)

    @classmethod
    def from_pem(
        cls,
        cert_pem: str | bytes,
        key_pem: str | bytes,
        *,
        clock: Clock,
        password: bytes | None = None,
        config: LocalCAConfig | None = None,
        issuer_id: str = DEFAULT_ISSUER_ID,
        public_url: str | None = None,
    ) -> LocalCA:
        """Load a CA (sub-CA mode, or a persisted self-signed root): `cert_pem` holds the CA certificate,
        optionally followed by its issuers; `key_pem` is PKCS#8, PKCS#1 RSA or SEC1 EC.

        Raises InvalidCAMaterial (not CA:TRUE, no keyCertSign, outside its validity, key mismatch,
        broken chain, unsupported key type or size).
        """
        data = cert_pem.encode("ascii") if isinstance(cert_pem, str) else cert_pem
        try:
            chain = x509.load_pem_x509_certificates(data)
        except ValueError as exc:
            raise InvalidCAMaterial(f"CA certificate PEM does not parse: {exc}") from exc
        try:
            key = SigningKey.from_pem(key_pem, password)
        except UnsupportedKey as exc:
            raise InvalidCAMaterial(f"CA key: {exc}") from exc
        return cls(key=key, chain=chain, clock=clock, config=config, issuer_id=issuer_id, public_url=public_url)

    @classmethod
    def from_material(
        cls,
        material: CAMaterial,
        *,
        clock: Clock,
        password: bytes | None = None,
        config: LocalCAConfig | None = None,
        issuer_id: str = DEFAULT_ISSUER_ID,
        public_url: str | None = None,
    ) -> LocalCA:
        """Load what `export` produced; raises InvalidCAMaterial like `from_pem`."""
        if not material.key_pem:  # stored by a CA whose key is in a token: only its reference can load it
            raise InvalidCAMaterial("this CA's key is held in a PKCS#11 token; set ca_key_pkcs11 to its reference")
        return cls.from_pem(
            material.cert_pem,
            material.key_pem,
            clock=clock,
            password=password,
            config=config,
            issuer_id=issuer_id,
            public_url=public_url,
        )

    def export(self, password: bytes | None = None) -> CAMaterial:
        """The CA chain PEM and the key as PKCS#8 PEM (encrypted when `password` is given), to persist."""
        return self._key.export_ca_material(self.ca_chain_pem(), password)

    # -- registry entry (ConnectorFactory) --------------------------------------------------------------

    @staticmethod
    def validate_config(config: Mapping[str, object]) -> None:
        """Raise IssuerConfigError when `config` is not a valid local CA config (pki.md §A1.1)."""
        LocalCAConfig.from_mapping(config)

    @classmethod
    def build(cls, config: Mapping[str, object], deps: ConnectorDeps) -> LocalCA:
        """The issuer row's CA: sub-CA files when both paths are set; else the persisted self-signed root
        from `deps.ca_store`, created and saved on first use (in memory only without a store).

        Raises IssuerConfigError (bad config, unreadable files) or InvalidCAMaterial.
        """
        parsed = LocalCAConfig.from_mapping(config)
        if parsed.ca_key_pkcs11:
            return cls._build_in_token(parsed, parsed.ca_key_pkcs11, deps)
        if parsed.ca_cert_path and parsed.ca_key_path:
            cert_pem = _read_file(parsed.ca_cert_path, "ca_cert_path")
            key_pem = _read_file(parsed.ca_key_path, "ca_key_path")
            return cls.from_pem(
                cert_pem, key_pem, clock=deps.clock, config=parsed, issuer_id=deps.issuer_id, public_url=deps.public_url
            )
        store: CAMaterialStore | None = deps.ca_store
        if store is not None and (material := store.load(deps.issuer_id)) is not None:
            return cls.from_material(
                material, clock=deps.clock, config=parsed, issuer_id=deps.issuer_id, public_url=deps.public_url
            )
        ca = cls.create_self_signed(
            clock=deps.clock,
            common_name=parsed.ca_common_name,
            key_algorithm=parsed.ca_key_algorithm,
            config=parsed,
            issuer_id=deps.issuer_id,
            public_url=deps.public_url,
        )
        if store is not None:
            store.save(deps.issuer_id, ca.export())
        return ca

    @classmethod
    def _build_in_token(cls, parsed: LocalCAConfig, reference: str, deps: ConnectorDeps) -> LocalCA:
        """`ca_key_pkcs11`: the key stays in the token; the certificate comes from `ca_cert_path` (sub-CA)
        or the store, where a new self-signed root keeps only its certificate (the key is generated in
        the token on first use). Raises IssuerConfigError (Pkcs11Error) or InvalidCAMaterial."""
        store: CAMaterialStore | None = deps.ca_store
        cert_pem: bytes | None = None
        if parsed.ca_cert_path:
            cert_pem = _read_file(parsed.ca_cert_path, "ca_cert_path")
        elif store is not None and (material := store.load(deps.issuer_id)) is not None:
            cert_pem = material.cert_pem.encode("ascii")
        if cert_pem is not None:
            key = pkcs11.load_signing_key(reference)
            chain = _parse_chain(cert_pem)
            return cls(
                key=key,
                chain=chain,
                clock=deps.clock,
                config=parsed,
                issuer_id=deps.issuer_id,
                public_url=deps.public_url,
            )
        ca = cls.create_self_signed(
            clock=deps.clock,
            common_name=parsed.ca_common_name,
            key_algorithm=parsed.ca_key_algorithm,
            key=pkcs11.load_or_generate_signing_key(reference, parsed.ca_key_algorithm),
            config=parsed,
            issuer_id=deps.issuer_id,
            public_url=deps.public_url,
        )
        if store is not None:
            store.save(deps.issuer_id, ca.export())  # the certificate and the reference, no key bytes
        return ca

    # -- IssuerConnector ------------------------------------------------------------------------------

    @property
    def issuer_type(self) -> IssuerType:
        return IssuerType.GENERIC_CA

    @property
    def issuer_id(self) -> str:
        return self._issuer_id

    @property
    def config(self) -> LocalCAConfig:
        return self._config

    @property
    def certificate(self) -> x509.Certificate:
        """The issuing CA certificate."""
        return self._chain[0]

    @property
    def key_algorithm(self) -> KeyAlgorithm:
        return self._key.algorithm

    @property
    def distribution_urls(self) -> ext.DistributionURLs:
        """The AIA and CDP URLs leaves of this CA carry (empty without a public URL or explicit ones)."""
        return self._urls

    @property
    def signing_key(self) -> SigningKey:
        """The issuing CA's key: CRLs and OCSP responder certificates are signed with it."""
        return self._key

    def capabilities(self) -> Capabilities:
        return LOCAL_CA_CAPABILITIES

    def get_ca_chain(self) -> list[x509.Certificate]:
        return list(self._chain)

    def ca_chain_pem(self) -> str:
        return certificates_to_pem(self._chain)

    def issue(self, request: IssueRequest) -> IssuedCertificate:
        """Sign a leaf for the request's CSR (pki.md §A1.3 as amended by §A1.7).

        Raises BadCSR (bad PEM or signature, unsafe or invalid names, nothing to certify),
        ProfileViolation, or InvalidCAMaterial when the CA is no longer valid.
        """
        csr = load_csr(request.csr_pem)
        key_info = csr_key_info(csr)
        sans = self._leaf_sans(request, csr)
        check_leaf_names(self._chain, sans.general_names())  # NameConstraintViolation before signing
        profile = request.profile
        ekus = request.ekus or (profile.allowed_ekus if profile and profile.allowed_ekus else ext.DEFAULT_LEAF_EKUS)
        if profile is not None:
            check_profile(profile, key=key_info, sans=sans, ekus=ekus)
        if not sans and not csr.subject:
            raise BadCSR("the certificate would have neither a subject nor a subject alternative name")

        now = _to_second(self._clock.now())
        not_after = self._leaf_not_after(now, effective_max_ttl_seconds(profile, request.max_ttl_seconds))
        serial = random_serial()
        public_key = csr.public_key()
        eku, eku_critical = ext.extended_key_usage(ekus)
        builder = (
            x509.CertificateBuilder()
            .subject_name(csr.subject)
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(serial)
            .not_valid_before(now)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(ext.leaf_key_usage(key_info.family, ekus), critical=True)
            .add_extension(eku, critical=eku_critical)
            .add_extension(ext.subject_key_identifier(public_key), critical=False)
            .add_extension(ext.authority_key_identifier(self.certificate), critical=False)
        )
        if sans:
            # RFC 5280 §4.2.1.6: critical when the subject is empty.
            builder = builder.add_extension(x509.SubjectAlternativeName(sans.general_names()), critical=not csr.subject)
        if request.must_staple or (profile is not None and profile.must_staple):
            builder = builder.add_extension(ext.MUST_STAPLE, critical=False)
        if (aia := ext.authority_information_access(self._urls)) is not None:
            builder = builder.add_extension(aia, critical=False)
        if (cdp := ext.crl_distribution_points(self._urls)) is not None:
            builder = builder.add_extension(cdp, critical=False)

        certificate = self._key.sign_certificate(builder)
        serial_text = canonical_serial(serial)
        return IssuedCertificate.from_certificate(certificate, self._chain, order_id=f"{ORDER_ID_PREFIX}{serial_text}")

    def renew(self, request: IssueRequest) -> IssuedCertificate:
        """Identical to `issue` (pki.md §A1.3)."""
        return self.issue(request)

    def revoke(self, serial: str, reason: x509.ReasonFlags | None = None) -> None:
        """Accept a revocation: certctl's ledger is authoritative and the CRL/OCSP are built from it.

        Raises PermanentIssuerError when `serial` is not a serial.
        """
        try:
            canonical_serial(serial)
        except ValueError as exc:
            raise PermanentIssuerError(str(exc)) from exc

    def get_order_status(self, order_id: str) -> OrderStatus:
        """Local orders complete synchronously, so every order is `completed` (pki.md §A1.3 step 12)."""
        return OrderStatus(OrderState.COMPLETED)

    # -- helpers ----------------------------------------------------------------------------------------

    def _leaf_sans(self, request: IssueRequest, csr: x509.CertificateSigningRequest) -> SubjectAltNames:
        # Request order first: hostname-like common names, the request's SANs, then the CSR's SANs.
        try:
            check_unicode_safety(request.common_name, what="common name")
        except ValueError as exc:
            raise BadCSR(str(exc)) from exc
        common_names = [
            name for name in (request.common_name, *csr_common_names(csr)) if name and is_hostname_like(name)
        ]
        try:
            names = [classify_san(text) for text in (*common_names, *request.sans)]
            return merge_sans([*names, *csr_subject_alt_names(csr)])
        except ValueError as exc:
            raise BadCSR(str(exc)) from exc

    def _leaf_not_after(self, now: datetime, max_ttl_seconds: int) -> datetime:
        ca_not_after = self.certificate.not_valid_after_utc
        if not self.certificate.not_valid_before_utc <= now < ca_not_after:
            raise InvalidCAMaterial(
                f"issuing CA is not valid at {now.isoformat()} "
                f"(valid {self.certificate.not_valid_before_utc.isoformat()} to {ca_not_after.isoformat()})"
            )
        not_after = now + timedelta(days=self._config.validity_days)
        if max_ttl_seconds > 0:
            not_after = min(not_after, now + timedelta(seconds=max_ttl_seconds))
        return min(not_after, ca_not_after)


def _to_second(moment: datetime) -> datetime:
    """X.509 times have one-second precision; truncate so the result equals what the certificate says."""
    if moment.tzinfo is None:
        raise ValueError("the clock must return aware UTC datetimes")
    return moment.replace(microsecond=0)


def _check_ca(key: SigningKey, chain: Sequence[x509.Certificate], now: datetime) -> None:
    if not chain:
        raise InvalidCAMaterial("no CA certificate given")
    if not key.algorithm.can_sign_certificates:
        raise InvalidCAMaterial(f"{key.algorithm.value} CA keys are not supported")
    certificate = chain[0]
    subject = certificate.subject.rfc4514_string()
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise InvalidCAMaterial(f"certificate {subject!r} is not a CA (BasicConstraints CA:TRUE missing)")
    try:
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is None or not usage.key_cert_sign:
        raise InvalidCAMaterial(f"certificate {subject!r} lacks KeyUsage keyCertSign")
    if now < certificate.not_valid_before_utc:
        raise InvalidCAMaterial(f"CA certificate {subject!r} is not valid before {certificate.not_valid_before_utc}")
    if now >= certificate.not_valid_after_utc:
        raise InvalidCAMaterial(f"CA certificate {subject!r} expired at {certificate.not_valid_after_utc}")
    if not key.matches(certificate.public_key()):
        raise InvalidCAMaterial(f"the CA key does not match the public key of {subject!r}")
    for child, parent in itertools.pairwise(chain):
        try:
            child.verify_directly_issued_by(parent)
        except (ValueError, TypeError, InvalidSignature) as exc:
            child_name, parent_name = child.subject.rfc4514_string(), parent.subject.rfc4514_string()
            raise InvalidCAMaterial(f"chain is broken: {child_name!r} is not issued by {parent_name!r}") from exc


def _parse_chain(data: bytes) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise InvalidCAMaterial(f"CA certificate PEM does not parse: {exc}") from exc


def _read_file(path: str, field: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise IssuerConfigError(f"{field}: cannot read {path}: {exc.strerror}", field=field) from exc
