"""The local CA's issuer config (pki.md §A1.1, §A1.7), parsed once from the issuer row's JSON."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from urllib.parse import quote, urlsplit

from certctl.ids import is_valid_client_id
from certctl.pki.errors import IssuerConfigError
from certctl.pki.extensions import DistributionURLs
from certctl.pki.keys import KeyAlgorithm
from certctl.pki.pkcs11 import parse_reference

DEFAULT_CA_COMMON_NAME = "CertCtl Local CA"
DEFAULT_VALIDITY_DAYS = 90
# The issue settles pki.md §A1.7's RSA-2048 default in favour of ECDSA P-256; SCEP with an RSA-only
# client can still choose `ca_key_algorithm: RSA-2048` (or a separate RSA RA certificate).
DEFAULT_CA_KEY_ALGORITHM = KeyAlgorithm.ECDSA_P256
MAX_COMMON_NAME_LENGTH = 64  # ub-common-name, RFC 5280 Appendix A.1


@dataclass(frozen=True, slots=True)
class LocalCAConfig:
    """Issuer-row config of a GenericCA issuer. Paths set = sub-CA mode; else a persisted self-signed root."""

    validity_days: int = DEFAULT_VALIDITY_DAYS
    ca_common_name: str = DEFAULT_CA_COMMON_NAME
    ca_key_algorithm: KeyAlgorithm = DEFAULT_CA_KEY_ALGORITHM
    ca_cert_path: str | None = None
    ca_key_path: str | None = None
    crl_distribution_point_urls: tuple[str, ...] = ()
    ocsp_url: str | None = None
    ca_issuers_url: str | None = None
    ca_key_pkcs11: str | None = None
    """`pkcs11:` reference of a CA key held in a token (certctl.pki.pkcs11); replaces ca_key_path."""
    issuing_ca_id: str | None = None
    """Hierarchy mode `tree`: the intermediate CA (`ica-…`) that signs this issuer's leaves."""

    def __post_init__(self) -> None:
        if self.validity_days < 1:
            raise IssuerConfigError("validity_days must be at least 1", field="validity_days")
        if not self.ca_common_name or len(self.ca_common_name) > MAX_COMMON_NAME_LENGTH:
            raise IssuerConfigError(
                f"ca_common_name must be 1 to {MAX_COMMON_NAME_LENGTH} characters", "ca_common_name"
            )
        if not self.ca_key_algorithm.can_sign_certificates:
            raise IssuerConfigError(f"{self.ca_key_algorithm.value} CA keys are not supported", "ca_key_algorithm")
        if self.ca_key_pkcs11 is not None:
            _check_pkcs11_reference(self.ca_key_pkcs11, key_path=self.ca_key_path)
        elif bool(self.ca_cert_path) != bool(self.ca_key_path):
            raise IssuerConfigError("set both ca_cert_path and ca_key_path, or neither", field="ca_cert_path")
        for url in self.crl_distribution_point_urls:
            _check_url(url, "crl_distribution_point_urls")
        if self.issuing_ca_id is not None and not is_valid_client_id(self.issuing_ca_id):
            raise IssuerConfigError(
                f"issuing_ca_id {self.issuing_ca_id!r} is not an intermediate CA id (ica-…)", field="issuing_ca_id"
            )
        for name in ("ocsp_url", "ca_issuers_url"):
            if (url := getattr(self, name)) is not None:
                _check_url(url, name)

    @property
    def sub_ca_mode(self) -> bool:
        return bool(self.ca_cert_path and (self.ca_key_path or self.ca_key_pkcs11))

    @classmethod
    def from_mapping(cls, raw: Mapping[str, object]) -> LocalCAConfig:
        """Parse the issuer row's JSON; raises IssuerConfigError naming the field (unknown keys included)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise IssuerConfigError(
                f"unknown local CA config key(s) {', '.join(unknown)}; expected {', '.join(sorted(known))}",
                field=unknown[0],
            )
        days = raw.get("validity_days", DEFAULT_VALIDITY_DAYS)
        if isinstance(days, bool) or not isinstance(days, int):
            raise IssuerConfigError("validity_days must be an integer", field="validity_days")
        algorithm = raw.get("ca_key_algorithm") or DEFAULT_CA_KEY_ALGORITHM.value
        try:
            key_algorithm = KeyAlgorithm.parse(str(algorithm))
        except ValueError as exc:
            raise IssuerConfigError(str(exc), field="ca_key_algorithm") from exc
        urls = raw.get("crl_distribution_point_urls") or ()
        if not isinstance(urls, (list, tuple)) or not all(isinstance(url, str) for url in urls):
            raise IssuerConfigError("crl_distribution_point_urls must be a list of URLs", "crl_distribution_point_urls")
        return cls(
            validity_days=days,
            ca_common_name=_optional_str(raw, "ca_common_name") or DEFAULT_CA_COMMON_NAME,
            ca_key_algorithm=key_algorithm,
            ca_cert_path=_optional_str(raw, "ca_cert_path"),
            ca_key_path=_optional_str(raw, "ca_key_path"),
            crl_distribution_point_urls=tuple(str(url) for url in urls),
            ocsp_url=_optional_str(raw, "ocsp_url"),
            ca_issuers_url=_optional_str(raw, "ca_issuers_url"),
            ca_key_pkcs11=_optional_str(raw, "ca_key_pkcs11"),
            issuing_ca_id=_optional_str(raw, "issuing_ca_id"),
        )

    def distribution_urls(self, issuer_id: str, public_url: str | None) -> DistributionURLs:
        """AIA and CDP URLs for leaves: explicit config URLs win, else derived from the public URL,
        else none (pki.md §A1.7 decision o)."""

        def pick(explicit: tuple[str, ...], kind: str) -> tuple[str, ...]:
            if explicit:
                return explicit
            return (derived_url(public_url, kind, issuer_id),) if public_url else ()

        return DistributionURLs(
            ocsp_urls=pick((self.ocsp_url,) if self.ocsp_url else (), "ocsp"),
            ca_issuers_urls=pick((self.ca_issuers_url,) if self.ca_issuers_url else (), "ca"),
            crl_urls=pick(self.crl_distribution_point_urls, "crl"),
        )


def derived_url(public_url: str, kind: str, issuer_id: str) -> str:
    """`<public>/.well-known/pki/<kind>/<issuer_id>` (pki.md §A1.7 decision o)."""
    return f"{public_url.rstrip('/')}/.well-known/pki/{kind}/{quote(issuer_id, safe='')}"


def pki_base_url(public_url: str, pki_http_port: int) -> str | None:
    """The base of derived AIA/CDP URLs: `http://<host of public_url>:<pki_http_port>` when the plain-HTTP
    distribution point is on (relying parties fetch CRLs, OCSP and CA certificates over plain HTTP, issue
    6 item 6), else the public URL; None without a public URL (no AIA/CDP, pki.md §A1.7)."""
    host = urlsplit(public_url).hostname if public_url else None
    if not public_url or not pki_http_port or host is None:
        return public_url or None
    return f"http://{f'[{host}]' if ':' in host else host}:{pki_http_port}"


def _check_url(url: str, field: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or not url.isascii() or " " in url:
        raise IssuerConfigError(f"{field}: {url!r} is not an http(s) URL", field=field)


def _check_pkcs11_reference(reference: str, *, key_path: str | None) -> None:
    """The reference parses and its module file exists (no token is opened); raises IssuerConfigError."""
    if key_path:
        raise IssuerConfigError("set ca_key_path or ca_key_pkcs11, not both", field="ca_key_pkcs11")
    parse_reference(reference)  # python-pkcs11 itself is imported only when a token is opened


def _optional_str(raw: Mapping[str, object], field: str) -> str | None:
    """A string field; absent, null and "" all mean unset."""
    value = raw.get(field)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise IssuerConfigError(f"{field} must be a string", field=field)
    return value
