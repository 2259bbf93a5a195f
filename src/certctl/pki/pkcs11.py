"""CA keys held in a PKCS#11 token: the private key never exists in this process's memory.

A key is named by a reference modelled on RFC 7512 ("The PKCS #11 URI Scheme")::

    pkcs11:module=/usr/lib/softhsm/libsofthsm2.so;token=certctl;object=root-ca[;pin-source=file:/run/pin]

`module` (alias `module-path`) is the PKCS#11 library, `token` the token label, `object` the label of the
private key (its public key object carries the same label). Values are percent-decoded; attributes may
also come after `?`, separated by `&`, as in RFC 7512. The user PIN is read from `pin-source` (a file,
trailing newline dropped) or else from the environment variable `CERTCTL_PKCS11_PIN`; it is never part of
the reference, never logged and never stored.

Signing follows stack.md §B.4.6: SoftHSM 2.6 lacks CKM_ECDSA_SHA256, so the digest is computed here and
the token signs it with CKM_ECDSA (the raw r‖s it returns is DER-encoded); RSA uses CKM_RSA_PKCS over a
DigestInfo built here. The key objects subclass cryptography's private-key interfaces, so the certificate,
CSR, CRL and OCSP builders sign with them unchanged.

python-pkcs11 is an optional dependency (extra `hsm`): it is imported only when a token is used, so a
reference can be parsed and checked without it.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, Self, TypeVar
from urllib.parse import quote, unquote

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.padding import AsymmetricPadding
from cryptography.hazmat.primitives.asymmetric.utils import NoDigestInfo, Prehashed, encode_dss_signature
from cryptography.utils import Buffer

from certctl.pki.errors import IssuerConfigError, RetryableIssuerError
from certctl.pki.keys import RSA_PUBLIC_EXPONENT, KeyAlgorithm, KeyFamily, KeyNotExportable, SigningKey, TokenHeldKey

if TYPE_CHECKING:
    import pkcs11 as p11

SCHEME = "pkcs11:"
PIN_ENV = "CERTCTL_PKCS11_PIN"
CONFIG_FIELD = "ca_key_pkcs11"
_ATTRIBUTE_ALIASES = {"module": "module", "module-path": "module", "token": "token", "object": "object"}
_CURVE_NAMES: dict[KeyAlgorithm, str] = {KeyAlgorithm.ECDSA_P256: "secp256r1", KeyAlgorithm.ECDSA_P384: "secp384r1"}
# DER DigestInfo prefixes for RSASSA-PKCS1-v1_5 (RFC 8017 §9.2, note 1): the token pads and signs the rest.
_DIGEST_INFO: dict[str, bytes] = {
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}
_KEY_ID_BYTES = 16

T = TypeVar("T")


class Pkcs11Error(IssuerConfigError):
    """The reference, the PIN, the token or the key object is unusable (bad syntax, wrong PIN, no such key)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, field=CONFIG_FIELD)


class TokenSigningFailed(RetryableIssuerError):
    """The token did not sign (removed, busy, session lost twice): the same request may succeed later."""


# -- the reference ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pkcs11Reference:
    """A parsed `pkcs11:` key reference (see the module docstring); it never holds a PIN."""

    module: str
    token: str
    object: str
    pin_file: str | None = None

    @classmethod
    def parse(cls, text: str) -> Pkcs11Reference:
        """Raises Pkcs11Error naming what is wrong (never echoing a `pin-value`)."""
        if not isinstance(text, str) or not text.lower().startswith(SCHEME):
            raise Pkcs11Error(f"a PKCS#11 key reference starts with {SCHEME!r}, e.g. {_EXAMPLE}")
        body = text[len(SCHEME) :]
        path, _, query = body.partition("?")
        parts = [p for p in path.split(";") if p] + [p for p in query.split("&") if p]
        values: dict[str, str] = {}
        for part in parts:
            name, sep, raw = part.partition("=")
            name = name.strip().lower()
            if name == "pin-value":
                raise Pkcs11Error(
                    f"the PIN is never part of the reference; set {PIN_ENV} or use pin-source=file:<path>"
                )
            if not sep:
                raise Pkcs11Error(f"attribute {name!r} has no value; expected name=value, e.g. {_EXAMPLE}")
            key = _ATTRIBUTE_ALIASES.get(name, name)
            if key not in ("module", "token", "object", "pin-source", "type"):
                raise Pkcs11Error(
                    f"unknown PKCS#11 reference attribute {name!r}; expected module, token, object, pin-source"
                )
            if key in values:
                raise Pkcs11Error(f"attribute {name!r} is given twice")
            values[key] = unquote(raw)
        if values.get("type", "private") != "private":
            raise Pkcs11Error("type must be 'private' (the reference names the private key)")
        missing = [name for name in ("module", "token", "object") if not values.get(name)]
        if missing:
            raise Pkcs11Error(f"the reference lacks {', '.join(missing)}; expected {_EXAMPLE}")
        pin_file = None
        if (source := values.get("pin-source")) is not None:
            if not source.startswith("file:") or not source[len("file:") :].lstrip("/"):
                raise Pkcs11Error("pin-source must be file:<path> (a file holding the user PIN)")
            pin_file = source[len("file:") :]
            if pin_file.startswith("///"):  # file:///run/pin (a file URI) means /run/pin
                pin_file = pin_file[2:]
        return cls(module=values["module"], token=values["token"], object=values["object"], pin_file=pin_file)

    def __str__(self) -> str:
        text = f"{SCHEME}module={_q(self.module)};token={_q(self.token)};object={_q(self.object)}"
        return text + (f";pin-source=file:{_q(self.pin_file)}" if self.pin_file else "")

    def check_module(self) -> None:
        """Raises Pkcs11Error when the module path is not an existing file (checked without loading it)."""
        if not os.path.isabs(self.module):
            raise Pkcs11Error(f"module must be an absolute path to a PKCS#11 library, not {self.module!r}")
        if not Path(self.module).is_file():
            raise Pkcs11Error(f"PKCS#11 module {self.module} does not exist")

    def read_pin(self) -> str:
        """The user PIN from `pin-source` or CERTCTL_PKCS11_PIN; raises Pkcs11Error (never showing the PIN)."""
        if self.pin_file is not None:
            try:
                pin = Path(self.pin_file).read_text(encoding="utf-8").rstrip("\r\n")
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
                raise Pkcs11Error(f"cannot read the PIN file {self.pin_file}: {reason}") from None
        else:
            pin = os.environ.get(PIN_ENV, "")
        if not pin:
            raise Pkcs11Error(f"no PIN for token {self.token!r}: set {PIN_ENV} or add pin-source=file:<path>")
        return pin


_EXAMPLE = "pkcs11:module=/usr/lib/softhsm/libsofthsm2.so;token=<label>;object=<key label>"


def _q(value: str) -> str:
    return quote(value, safe="/.-_~:")


def parse_reference(text: str) -> Pkcs11Reference:
    """Parse and check a reference for an issuer config: syntax and module file; raises Pkcs11Error."""
    reference = Pkcs11Reference.parse(text)
    reference.check_module()
    return reference


# -- sessions ----------------------------------------------------------------------------------------------


def _library() -> Any:
    """python-pkcs11, imported on first use (optional extra `hsm`)."""
    try:
        import pkcs11
    except ImportError as exc:
        raise Pkcs11Error("CA keys in a PKCS#11 token need python-pkcs11: pip install 'certctl[hsm]'") from exc
    return pkcs11


class _TokenSession:
    """One logged-in session to one token, shared by every key in it.

    python-pkcs11 sessions are not thread-safe, so every call holds the lock; and a token's login state is
    per process, so one session per token avoids "already logged in" on a second key. A lost session
    (token removed, handle invalid, logged out) is reopened once per call.
    """

    def __init__(self, module: str, token: str, pin: str) -> None:
        self._module, self._token, self._pin = module, token, pin
        self._lock = threading.RLock()
        self._session: p11.Session | None = None

    def run(self, action: Callable[[p11.Session], T]) -> T:
        """Run `action` with the open session; raises Pkcs11Error, or the library's error on a second failure."""
        lib = _library()
        lost = (
            lib.exceptions.SessionHandleInvalid,
            lib.exceptions.SessionClosed,
            lib.exceptions.UserNotLoggedIn,
            lib.exceptions.DeviceRemoved,
            lib.exceptions.TokenNotPresent,
            lib.exceptions.KeyHandleInvalid,
            lib.exceptions.ObjectHandleInvalid,
        )
        with self._lock:
            for attempt in (1, 2):
                session = self._open()
                try:
                    return action(session)
                except lost:
                    self._session = None  # its handle is gone; open a fresh one
                    if attempt == 2:
                        raise
            raise AssertionError("unreachable")

    def _open(self) -> p11.Session:
        if self._session is not None:
            return self._session
        lib = _library()
        errors = lib.exceptions
        try:
            with _LIBRARY_LOCK:
                module = lib.lib(self._module)
            token = module.get_token(token_label=self._token)
            self._session = token.open(rw=True, user_pin=self._pin)
        except errors.NoSuchToken:
            raise Pkcs11Error(f"no token labelled {self._token!r} in {self._module}") from None
        except errors.MultipleTokensReturned:
            raise Pkcs11Error(f"several tokens are labelled {self._token!r} in {self._module}") from None
        except (errors.PinIncorrect, errors.PinInvalid, errors.PinLenRange):
            raise Pkcs11Error(f"the PIN for token {self._token!r} is wrong") from None
        except errors.PinLocked:
            raise Pkcs11Error(f"the user PIN of token {self._token!r} is locked (too many wrong PINs)") from None
        except errors.UserPinNotInitialized:
            raise Pkcs11Error(f"token {self._token!r} has no user PIN yet (initialise it first)") from None
        except errors.UserAlreadyLoggedIn:
            raise Pkcs11Error(
                f"token {self._token!r} is already logged in by this process with a different PIN"
            ) from None
        except errors.PKCS11Error as exc:
            raise Pkcs11Error(f"cannot open token {self._token!r} in {self._module}: {type(exc).__name__}") from exc
        return self._session


_LIBRARY_LOCK = threading.Lock()
_SESSIONS: dict[tuple[str, str, str], _TokenSession] = {}
_SESSIONS_LOCK = threading.Lock()


def _session_for(reference: Pkcs11Reference) -> _TokenSession:
    pin = reference.read_pin()
    # Keyed by a digest of the PIN too, so a wrong PIN is tried (and refused) rather than riding on a
    # session someone else logged in; the PIN itself is kept only inside the session object.
    key = (reference.module, reference.token, hashlib.sha256(pin.encode("utf-8")).hexdigest())
    with _SESSIONS_LOCK:
        session = _SESSIONS.get(key)
        if session is None:
            session = _SESSIONS[key] = _TokenSession(reference.module, reference.token, pin)
        return session


# -- key objects -------------------------------------------------------------------------------------------


class _TokenKeyMixin(TokenHeldKey):
    """What every token-held key shares: its reference, its session, and refusal to export."""

    _reference: Pkcs11Reference
    _session: _TokenSession

    @property
    def key_reference(self) -> str:
        return str(self._reference)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._reference})"

    def _sign_in_token(self, data: bytes, mechanism_name: str) -> bytes:
        label = self._reference.object

        def sign(session: p11.Session) -> bytes:
            lib = _library()
            private = session.get_key(object_class=lib.ObjectClass.PRIVATE_KEY, label=label)
            signed: bytes = private.sign(data, mechanism=getattr(lib.Mechanism, mechanism_name))  # type: ignore[attr-defined]
            return bytes(signed)

        try:
            return self._session.run(sign)
        except Pkcs11Error:
            raise
        except _library().exceptions.PKCS11Error as exc:
            raise TokenSigningFailed(f"the token did not sign with {self._reference}: {type(exc).__name__}") from exc

    def _refuse_export(self) -> NoReturn:
        raise KeyNotExportable(f"the key at {self._reference} is held in a token and cannot be exported")

    def private_numbers(self) -> NoReturn:
        self._refuse_export()

    def private_bytes(
        self,
        encoding: serialization.Encoding,
        format: serialization.PrivateFormat,
        encryption_algorithm: serialization.KeySerializationEncryption,
    ) -> NoReturn:
        self._refuse_export()

    def __copy__(self) -> Self:
        return self  # one token object: a copy is the same key

    def __deepcopy__(self, memo: dict[int, object]) -> Self:
        return self


class Pkcs11ECPrivateKey(_TokenKeyMixin, ec.EllipticCurvePrivateKey):
    """An ECDSA key in a token: signs there (software hash + CKM_ECDSA); cannot be exported or used for ECDH."""

    def __init__(self, reference: Pkcs11Reference, session: _TokenSession, public: ec.EllipticCurvePublicKey):
        self._reference, self._session, self._public = reference, session, public

    @property
    def curve(self) -> ec.EllipticCurve:
        return self._public.curve

    @property
    def key_size(self) -> int:
        return self._public.curve.key_size

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._public

    def sign(self, data: Buffer, signature_algorithm: ec.EllipticCurveSignatureAlgorithm) -> bytes:
        if not isinstance(signature_algorithm, ec.ECDSA):
            raise UnsupportedAlgorithm(f"a token key signs only ECDSA, not {type(signature_algorithm).__name__}")
        raw = self._sign_in_token(_digest(data, signature_algorithm.algorithm), "ECDSA")
        half = len(raw) // 2  # CKM_ECDSA returns r ‖ s, each as long as the order (PKCS#11 §2.3.1)
        return encode_dss_signature(int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big"))

    def exchange(self, algorithm: ec.ECDH, peer_public_key: ec.EllipticCurvePublicKey) -> bytes:
        raise UnsupportedAlgorithm("a token-held CA key is for signing only")


class Pkcs11RSAPrivateKey(_TokenKeyMixin, rsa.RSAPrivateKey):
    """An RSA key in a token: PKCS#1 v1.5 signatures (software hash + DigestInfo + CKM_RSA_PKCS) only."""

    def __init__(self, reference: Pkcs11Reference, session: _TokenSession, public: rsa.RSAPublicKey):
        self._reference, self._session, self._public = reference, session, public

    @property
    def key_size(self) -> int:
        return self._public.key_size

    def public_key(self) -> rsa.RSAPublicKey:
        return self._public

    def sign(
        self,
        data: Buffer,
        padding: AsymmetricPadding,
        algorithm: hashes.HashAlgorithm | Prehashed | NoDigestInfo,
    ) -> bytes:
        if padding.name != "EMSA-PKCS1-v1_5":
            raise UnsupportedAlgorithm(f"a token RSA key signs with PKCS#1 v1.5 only, not {padding.name}")
        if isinstance(algorithm, NoDigestInfo):
            raise UnsupportedAlgorithm("a token RSA key signs a DigestInfo it builds itself")
        digest = _digest(data, algorithm)
        name = algorithm._algorithm.name if isinstance(algorithm, Prehashed) else algorithm.name
        if (prefix := _DIGEST_INFO.get(name)) is None:
            raise UnsupportedAlgorithm(f"a token RSA key signs SHA-256/384/512 digests, not {name}")
        return self._sign_in_token(prefix + digest, "RSA_PKCS")

    def decrypt(self, ciphertext: bytes, padding: AsymmetricPadding) -> bytes:
        raise UnsupportedAlgorithm("a token-held CA key is for signing only")


def _digest(data: Buffer, algorithm: hashes.HashAlgorithm | Prehashed) -> bytes:
    if isinstance(algorithm, Prehashed):
        return bytes(data)
    hasher = hashes.Hash(algorithm)
    hasher.update(data)
    return hasher.finalize()


# -- loading and generating --------------------------------------------------------------------------------


def load_signing_key(ref: str) -> SigningKey:
    """The existing key `ref` names, as a SigningKey that signs in the token.

    Raises Pkcs11Error (bad reference, missing module or PIN, wrong PIN, no such token or key, no public
    key object with the same label, unsupported key type or size).
    """
    reference = parse_reference(ref)
    session = _session_for(reference)
    key = session.run(lambda s: _load(s, reference, session))
    if key is None:
        raise Pkcs11Error(f"token {reference.token!r} holds no private key labelled {reference.object!r}")
    return _signing_key(key)


def generate_signing_key(ref: str, algorithm: KeyAlgorithm) -> SigningKey:
    """Generate a new key pair in the token under the reference's object label (sensitive, never
    extractable) and return it as a SigningKey.

    Raises Pkcs11Error when the label is already taken, the algorithm cannot sign certificates, or the
    token refuses (see `load_signing_key`).
    """
    reference = parse_reference(ref)
    if not algorithm.can_sign_certificates:
        raise Pkcs11Error(f"{algorithm.value} CA keys are not supported")
    session = _session_for(reference)

    def generate(s: p11.Session) -> Pkcs11ECPrivateKey | Pkcs11RSAPrivateKey:
        if _load(s, reference, session) is not None:
            raise Pkcs11Error(f"token {reference.token!r} already holds a key labelled {reference.object!r}")
        _generate(s, reference.object, algorithm)
        key = _load(s, reference, session)
        if key is None:  # the token accepted the generation but does not show the key
            raise Pkcs11Error(f"the key generated as {reference.object!r} cannot be found in the token")
        return key

    return _signing_key(_run_refusals(session, generate, reference))


def load_or_generate_signing_key(ref: str, algorithm: KeyAlgorithm) -> SigningKey:
    """The key `ref` names, generated first (with `algorithm`) when the token does not hold it yet."""
    reference = parse_reference(ref)
    session = _session_for(reference)
    existing = session.run(lambda s: _load(s, reference, session))
    if existing is not None:
        return _signing_key(existing)
    return generate_signing_key(ref, algorithm)


def _run_refusals(
    session: _TokenSession,
    action: Callable[[p11.Session], T],
    reference: Pkcs11Reference,
) -> T:
    try:
        return session.run(action)
    except Pkcs11Error:
        raise
    except _library().exceptions.PKCS11Error as exc:
        raise Pkcs11Error(f"the token refused to generate {reference.object!r}: {type(exc).__name__}") from exc


def _signing_key(key: Pkcs11ECPrivateKey | Pkcs11RSAPrivateKey) -> SigningKey:
    try:
        return SigningKey(key)
    except ValueError as exc:  # UnsupportedKey: e.g. a P-521 or RSA-1024 key in the token
        raise Pkcs11Error(f"the key at {key.key_reference} cannot be a CA key: {exc}") from exc


def _load(
    s: p11.Session, reference: Pkcs11Reference, session: _TokenSession
) -> Pkcs11ECPrivateKey | Pkcs11RSAPrivateKey | None:
    lib = _library()
    errors = lib.exceptions
    label = reference.object
    try:
        private = s.get_key(object_class=lib.ObjectClass.PRIVATE_KEY, label=label)
    except errors.NoSuchKey:
        return None
    except errors.MultipleObjectsReturned:
        raise Pkcs11Error(f"token {reference.token!r} holds several private keys labelled {label!r}") from None
    try:
        public = s.get_key(object_class=lib.ObjectClass.PUBLIC_KEY, label=label)
    except errors.NoSuchKey:
        raise Pkcs11Error(f"token {reference.token!r} holds no public key labelled {label!r}") from None
    except errors.MultipleObjectsReturned:
        raise Pkcs11Error(f"token {reference.token!r} holds several public keys labelled {label!r}") from None
    if private.key_type == lib.KeyType.EC:
        spki = lib.util.ec.encode_ec_public_key(public)
        ec_public = serialization.load_der_public_key(spki)
        if not isinstance(ec_public, ec.EllipticCurvePublicKey):
            raise Pkcs11Error(f"the public key labelled {label!r} is not an EC key")
        return Pkcs11ECPrivateKey(reference, session, ec_public)
    if private.key_type == lib.KeyType.RSA:
        modulus = int.from_bytes(public[lib.Attribute.MODULUS], "big")
        exponent = int.from_bytes(public[lib.Attribute.PUBLIC_EXPONENT], "big")
        return Pkcs11RSAPrivateKey(reference, session, rsa.RSAPublicNumbers(exponent, modulus).public_key())
    raise Pkcs11Error(f"the key labelled {label!r} is a {private.key_type.name} key; a CA key is EC or RSA")


def _generate(s: p11.Session, label: str, algorithm: KeyAlgorithm) -> None:
    lib = _library()
    attribute = lib.Attribute
    key_id = secrets.token_bytes(_KEY_ID_BYTES)
    # The private half is sensitive and never extractable: no one, us included, can read it back out.
    private_template = {
        attribute.TOKEN: True,
        attribute.PRIVATE: True,
        attribute.SENSITIVE: True,
        attribute.EXTRACTABLE: False,
        attribute.SIGN: True,
        attribute.DECRYPT: False,
    }
    public_template: dict[Any, Any] = {attribute.TOKEN: True, attribute.VERIFY: True}
    if algorithm.family is KeyFamily.ECDSA:
        parameters = s.create_domain_parameters(
            lib.KeyType.EC,
            {attribute.EC_PARAMS: lib.util.ec.encode_named_curve_parameters(_CURVE_NAMES[algorithm])},
            local=True,
        )
        parameters.generate_keypair(
            store=True, label=label, id=key_id, public_template=public_template, private_template=private_template
        )
        return
    public_template[attribute.PUBLIC_EXPONENT] = RSA_PUBLIC_EXPONENT.to_bytes(3, "big")
    s.generate_keypair(
        lib.KeyType.RSA,
        algorithm.size_bits,
        store=True,
        label=label,
        id=key_id,
        public_template=public_template,
        private_template=private_template,
    )
