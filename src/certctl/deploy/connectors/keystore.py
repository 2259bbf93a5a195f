"""Java keystores (`JavaKeystore`: PKCS#12 or JKS through keytool, agent-targets-discovery.md §A2.5).

Keys: `keystore_path` (required, absolute), `keystore_password` (required), `keystore_type`
(`PKCS12` | `JKS`, → `PKCS12`), `alias` (→ `server`, `[A-Za-z0-9_.-]+`), `keytool_path` (→ `keytool`),
`reload_command` (optional; a failure is only a warning unless ours `reload_failure_fatal: true`),
`keystore_file_mode`/`_owner`/`_group` (ours; a new keystore is 0600), `backup_retention` (0 → the
agent's default, **-1 keeps every backup**, as in the original), `backup_dir`, verify keys,
`create_keystore` (read and ignored, as in the original).

The original snapshotted with `keytool -exportkeystore`, an option keytool does not have, so every
deployment to an existing keystore failed. Ours:

1. the alias already holds this certificate (`keytool -list -v`, the `SHA256:` line) → unchanged;
2. the new keystore is built in a private temp directory: a copy of the live one, the alias deleted
   (a missing alias is fine), the new key and chain imported from a throwaway PKCS#12 (alias `1`),
   and `keytool -list -v` must show the alias with the new certificate's SHA-256;
3. the built bytes go through the atomic primitive (`apply`): a byte-for-byte backup of the live
   keystore, temp + rename, the reload command, the probe; a failed probe (or a fatal reload) puts
   the backup back and reloads again. Just before the swap the live keystore must still be the one
   the new file was built from, so a concurrent change is never overwritten.

A failure before the swap leaves the live keystore byte-identical. Passwords reach keytool through
environment variables (`-storepass:env`), never its command line.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re
import secrets
import shutil
import string
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Self

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from certctl.deploy.apply import Hooks, apply
from certctl.deploy.commands import CommandOutcome, OperatorCommand, run_command
from certctl.deploy.connectors.base import CheckItem, ConnectorDeps, DeployRequest, DeployResult, TargetCheck
from certctl.deploy.connectors.config import CommonSettings, ConfigReader, FileSettings, VerifySettings
from certctl.deploy.connectors.files import directory_writable
from certctl.deploy.connectors.results import ResultParts, finish, verify_served
from certctl.deploy.errors import (
    CommandFailed,
    DeployError,
    StepFailed,
    TargetConfigError,
    ValidateFailed,
    WriteFailed,
)
from certctl.deploy.plan import FileDefaults, FileRole, Plan, PlannedFile
from certctl.deploy.precheck import precheck
from certctl.deploy.result import ApplyResult, DeployOutcome, DeployStage
from certctl.deploy.verify import Endpoint, VerifyResult

log = logging.getLogger("certctl.deploy")

TARGET_TYPE = "JavaKeystore"
KEYSTORE_TYPES = ("PKCS12", "JKS")
ALIAS_PATTERN = re.compile(r"[A-Za-z0-9_.-]+")
PROGRAM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
# Names of the environment variables keytool reads the passwords from (`-storepass:env NAME`).
STORE_PASSWORD_ENV = "CERTCTL_KEYSTORE_PASSWORD"  # noqa: S105 - a variable name, not a password
SOURCE_PASSWORD_ENV = "CERTCTL_SOURCE_PASSWORD"  # noqa: S105 - the throwaway PKCS#12's
SOURCE_ALIAS = "1"  # keytool's alias for a PKCS#12 entry without a friendly name (stack.md §C.8)
SOURCE_PASSWORD_LENGTH = 32
KEEP_EVERY_BACKUP = 2**31 - 1  # backup_retention -1: the original never prunes
# keytool is a short-lived JVM: the client compiler and the serial collector start it about a third
# faster (several calls per deployment); a JVM that does not know an option ignores it.
JVM_OPTIONS = ("-J-XX:+IgnoreUnrecognizedVMOptions", "-J-XX:TieredStopAtLevel=1", "-J-XX:+UseSerialGC")
_SHA256_LINE = re.compile(r"SHA-?256:\s*([0-9A-Fa-f:]+)")


@dataclass(frozen=True, slots=True)
class KeystoreSettings:
    keystore_path: str
    keystore_password: str = field(repr=False)
    keystore_type: str = "PKCS12"
    alias: str = "server"
    keytool_path: str = "keytool"
    reload_command: str = ""
    reload_failure_fatal: bool = False
    file: FileSettings = field(default_factory=FileSettings)
    verify: VerifySettings = field(default_factory=VerifySettings)
    common: CommonSettings = field(default_factory=CommonSettings)

    @classmethod
    def read(cls, reader: ConfigReader) -> KeystoreSettings:
        reader.boolean("create_keystore", False)  # type-checked, otherwise unused (as in the original)
        return cls(
            reader.string("keystore_path"),
            reader.string("keystore_password", strip=False),
            reader.string("keystore_type").upper() or "PKCS12",
            reader.string("alias") or "server",
            reader.string("keytool_path") or "keytool",
            reader.string("reload_command"),
            reader.boolean("reload_failure_fatal", False),
            FileSettings.read(reader, "keystore"),
            VerifySettings.read(reader),
            CommonSettings.read(reader),
        )


@dataclass(frozen=True, slots=True)
class CheckedKeystore:
    path: Path
    reload: OperatorCommand | None
    endpoint: Endpoint | None


class JavaKeystoreConnector:
    target_type: ClassVar[str] = TARGET_TYPE

    def __init__(self, settings: KeystoreSettings, deps: ConnectorDeps | None = None) -> None:
        self.settings = settings
        self._deps = deps or ConnectorDeps()

    @classmethod
    def from_config(cls, raw: Mapping[str, object] | None, deps: ConnectorDeps | None = None) -> Self:
        return cls(KeystoreSettings.read(ConfigReader(TARGET_TYPE, raw)), deps)

    # -- validate_config --------------------------------------------------------------------------------

    def validate_config(self) -> None:
        self._check()

    def _check(self) -> CheckedKeystore:
        s = self.settings
        if not s.keystore_path:
            raise _error("keystore_path", "is required")
        path = Path(s.keystore_path)
        if not path.is_absolute() or ".." in path.parts:
            raise _error("keystore_path", f"must be an absolute path without '..', got {s.keystore_path!r}")
        if not s.keystore_password:
            raise _error("keystore_password", "is required")
        if s.keystore_type not in KEYSTORE_TYPES:
            raise _error("keystore_type", f"must be one of {', '.join(KEYSTORE_TYPES)}, got {s.keystore_type!r}")
        if not ALIAS_PATTERN.fullmatch(s.alias):
            raise _error("alias", f"must match {ALIAS_PATTERN.pattern}, got {s.alias!r}")
        if not (PROGRAM_NAME.fullmatch(s.keytool_path) or Path(s.keytool_path).is_absolute()):
            raise _error("keytool_path", f"must be a program name or an absolute path, got {s.keytool_path!r}")
        if bool(s.file.owner) != bool(s.file.group):
            raise _error("keystore_file_owner", "set both keystore_file_owner and _group, or neither")
        if s.common.backup_dir is not None and not s.common.backup_dir.is_absolute():
            raise _error("backup_dir", "must be an absolute path")
        reload = None
        if s.reload_command:
            try:
                reload = OperatorCommand.parse(s.reload_command)
            except ValueError as exc:
                raise _error("reload_command", str(exc)) from None
            if reload.placeholders:
                raise _error("reload_command", "placeholders name files; a keystore target has none")
        endpoint = None
        if s.verify.active:
            try:
                endpoint = Endpoint.parse(s.verify.endpoint, s.verify.server_name or None)
            except ValueError as exc:
                raise _error("post_deploy_verify.endpoint", str(exc)) from None
        if self._deps.host_checks and not path.parent.is_dir():
            raise _error("keystore_path", f"directory {path.parent} does not exist")
        return CheckedKeystore(path, reload, endpoint)

    # -- deploy -----------------------------------------------------------------------------------------------

    def deploy(self, request: DeployRequest) -> DeployResult:
        checked = self._check()
        started = time.perf_counter()
        with self._deps.target_locks.holding(request.target_id):
            return _Deployment(self._deps, self.settings, self._keytool(), checked, request, started).run()

    def validate_only(self, request: DeployRequest) -> None:
        """Build the new keystore in a temp directory (import and `-list -v` check), then discard it."""
        checked = self._check()
        material = _Material.parse(request, self._deps)
        try:
            with tempfile.TemporaryDirectory(prefix="certctl-keystore-") as work:
                self._keytool().build(checked.path, Path(work), material, self.settings.alias)
        except (CommandFailed, OSError) as exc:
            raise ValidateFailed(f"keytool (ValidateOnly): {exc}") from exc

    def test(self) -> TargetCheck:
        try:
            checked = self._check()
        except TargetConfigError as exc:
            return TargetCheck((CheckItem("config", False, str(exc)),))
        items = [CheckItem("config", True, "config is valid"), directory_writable("keystore_path", checked.path.parent)]
        keytool = self._keytool()
        if not keytool.available():
            items.append(CheckItem("keytool", False, f"{self.settings.keytool_path} not found (install a JRE)"))
        elif not checked.path.exists():
            items.append(CheckItem("keystore", True, f"{checked.path} does not exist yet: the first deploy creates it"))
        else:
            outcome = keytool.run(["-list", "-keystore", str(checked.path)])
            ok = outcome.ok
            message = f"{checked.path} opens with the password" if ok else _tail(outcome.output)
            items.append(CheckItem("keystore", ok, message))
        return TargetCheck(tuple(items))

    def _keytool(self) -> _Keytool:
        timeout = self.settings.common.command_timeout_seconds or self._deps.default_command_timeout_seconds
        return _Keytool(self._deps, self.settings, timeout)


def _error(key: str, problem: str) -> TargetConfigError:
    return TargetConfigError(TARGET_TYPE, key, problem)


def _tail(output: str) -> str:
    return output.strip().splitlines()[-1] if output.strip() else "no output"


@dataclass(frozen=True, slots=True)
class _Material:
    """The certificate, chain and key, parsed; `pkcs12()` is the throwaway import source."""

    cert: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    key_pem: str = field(repr=False)
    warnings: tuple[str, ...]

    @classmethod
    def parse(cls, request: DeployRequest, deps: ConnectorDeps) -> _Material:
        """Raises ValidateFailed for a missing key, an unreadable certificate or a key that does not match."""
        if not request.key_pem or not request.key_pem.strip():
            raise ValidateFailed("a keystore entry needs the private key; the request has none")
        try:
            cert = x509.load_pem_x509_certificate(request.cert_pem.encode("ascii", errors="replace"))
            chain = (
                x509.load_pem_x509_certificates(request.chain_pem.encode("ascii", errors="replace"))
                if request.chain_pem.strip()
                else []
            )
        except ValueError as exc:
            raise ValidateFailed(f"the certificate or chain does not parse: {exc}") from None
        warnings: tuple[str, ...] = ()
        if deps.precheck:  # only tests turn it off
            warnings = precheck(request.cert_pem, request.chain_pem, request.key_pem, now=deps.clock.now())
        return cls(cert, tuple(chain), request.key_pem, warnings)

    @property
    def sha256(self) -> str:
        return self.cert.fingerprint(hashes.SHA256()).hex()

    @property
    def sha1_thumbprint(self) -> str:
        """The original's deployment ID: SHA-1 of the DER, uppercase hex."""
        return self.cert.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303 - an identifier, not a security check

    def pkcs12(self, password: str) -> bytes:
        # keytool imports private keys only from a keystore: this throwaway PKCS#12, encrypted with a
        # random password, lives in a private temp directory for the length of one keytool call.
        try:
            key = serialization.load_pem_private_key(self.key_pem.encode("ascii"), password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise ValidateFailed(f"the private key does not load: {exc}") from None
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
            raise ValidateFailed(f"unsupported private key type {type(key).__name__}")
        return pkcs12.serialize_key_and_certificates(
            None,  # no friendly name: keytool calls the entry "1"
            key,
            self.cert,
            list(self.chain) or None,
            serialization.BestAvailableEncryption(password.encode("ascii")),
        )


class _Keytool:
    """keytool calls for one target: argument lists, passwords in the environment, output kept for errors."""

    def __init__(self, deps: ConnectorDeps, settings: KeystoreSettings, timeout_seconds: float) -> None:
        self._runner, self._settings, self._timeout = deps.runner, settings, timeout_seconds

    def available(self) -> bool:
        program = self._settings.keytool_path
        return os.access(program, os.X_OK) if os.path.isabs(program) else shutil.which(program) is not None

    def run(self, args: Sequence[str], source_password: str = "") -> CommandOutcome:
        """keytool with `args`; `-storepass:env`/`-storetype` are added for -list and -delete."""
        env = {STORE_PASSWORD_ENV: self._settings.keystore_password}
        if source_password:
            env[SOURCE_PASSWORD_ENV] = source_password
        argv = [self._settings.keytool_path, *JVM_OPTIONS, *args]
        if args[0] in ("-list", "-delete"):
            argv += ["-storetype", self._settings.keystore_type, "-storepass:env", STORE_PASSWORD_ENV]
        return self._runner.run(argv, env=env, timeout_seconds=self._timeout)

    def check(self, outcome: CommandOutcome) -> CommandOutcome:
        if outcome.ok:
            return outcome
        status = "timed out" if outcome.returncode is None else f"exit status {outcome.returncode}"
        command = next((arg for arg in outcome.argv[1:] if not arg.startswith("-J")), "")
        raise CommandFailed(
            f"keytool {command} failed: {status} (output: {outcome.output})",
            returncode=outcome.returncode,
            output=outcome.output,
        )

    def fingerprint(self, keystore: Path, alias: str) -> str | None:
        """The SHA-256 (lowercase hex) of `alias`'s certificate; None when the alias does not exist."""
        outcome = self.run(["-list", "-v", "-alias", alias, "-keystore", str(keystore)])
        if not outcome.ok and "does not exist" in outcome.output:
            return None
        self.check(outcome)
        for line in outcome.output.splitlines():
            if match := _SHA256_LINE.match(line.strip()):  # keytool indents it with a tab
                return match.group(1).replace(":", "").lower()
        return None

    def build(self, live: Path, work: Path, material: _Material, alias: str) -> tuple[bytes, str | None]:
        """The new keystore's bytes, and the SHA-256 of the live keystore it started from (None: none).

        Raises CommandFailed when keytool fails, ValidateFailed when the result does not hold the certificate.
        """
        keystore = work / "keystore"
        source_digest = None
        try:
            current = live.read_bytes()
        except FileNotFoundError:
            pass
        else:
            source_digest = hashlib.sha256(current).hexdigest()
            keystore.write_bytes(current)
            outcome = self.run(["-delete", "-alias", alias, "-keystore", str(keystore)])
            if not (outcome.ok or "does not exist" in outcome.output):
                self.check(outcome)
        password = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(SOURCE_PASSWORD_LENGTH))
        source = work / "source.p12"
        source.write_bytes(material.pkcs12(password))
        args = [
            "-importkeystore",
            "-noprompt",
            "-srckeystore",
            str(source),
            "-srcstoretype",
            "PKCS12",
            "-srcstorepass:env",
            SOURCE_PASSWORD_ENV,
            "-srcalias",
            SOURCE_ALIAS,
            "-destkeystore",
            str(keystore),
            "-deststoretype",
            self._settings.keystore_type,
            "-deststorepass:env",
            STORE_PASSWORD_ENV,
            "-destalias",
            alias,
        ]
        if self._settings.keystore_type == "JKS":  # JKS keys have their own password: the store's, as Tomcat expects
            args += ["-destkeypass:env", STORE_PASSWORD_ENV]
        self.check(self.run(args, source_password=password))
        found = self.fingerprint(keystore, alias)
        if found != material.sha256:
            raise ValidateFailed(
                f"keytool -list shows {alias!r} with SHA-256 {found or 'nothing'}, want {material.sha256}"
            )
        return keystore.read_bytes(), source_digest


def _digest_of(path: Path) -> str | None:
    try:
        with open(path, "rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except FileNotFoundError:
        return None


class _Deployment:
    """One deployment: idempotency check, build, then the atomic swap with reload and probe."""

    def __init__(
        self,
        deps: ConnectorDeps,
        settings: KeystoreSettings,
        keytool: _Keytool,
        checked: CheckedKeystore,
        request: DeployRequest,
        started: float,
    ) -> None:
        self.deps, self.settings, self.keytool = deps, settings, keytool
        self.checked, self.request, self.started = checked, request, started
        self.warnings: list[str] = []
        self.verification: list[VerifyResult] = []
        self.reload_failed = False

    def run(self) -> DeployResult:
        try:
            material = _Material.parse(self.request, self.deps)
        except ValidateFailed as exc:
            return self.stopped(DeployStage.PRECHECK, exc)
        self.warnings.extend(material.warnings)
        path, alias = self.checked.path, self.settings.alias
        try:
            if path.exists() and self.keytool.fingerprint(path, alias) == material.sha256:
                applied = ApplyResult(DeployOutcome.UNCHANGED, DeployStage.DONE)
                self.deps.counters.record(TARGET_TYPE, applied)
                return self.result(applied, material, f"unchanged: {alias!r} already holds this certificate")
            with tempfile.TemporaryDirectory(prefix="certctl-keystore-") as work:
                built, source_digest = self.keytool.build(path, Path(work), material, alias)
        except ValidateFailed as exc:
            return self.stopped(DeployStage.VALIDATE, exc)
        except (CommandFailed, OSError) as exc:
            return self.stopped(DeployStage.WRITE, WriteFailed(f"building the new keystore: {exc}"))
        try:
            applied = apply(
                self.plan(built),
                self.hooks(source_digest, material),
                force=True,
                counters=self.deps.counters,
                target_type=TARGET_TYPE,
            )
        except DeployError as exc:
            failed = exc.result or ApplyResult.stopped(DeployStage.PLAN, str(exc))
            return self.result(failed, material, error=exc)
        if self.reload_failed:
            applied = dataclasses.replace(applied, reloaded=False)
        return self.result(applied, material, f"imported {alias!r} into {path}")

    def plan(self, built: bytes) -> Plan:
        retention = self.settings.common.backup_retention
        if retention == -1:
            retention = KEEP_EVERY_BACKUP
        file = self.settings.file
        planned = PlannedFile(self.checked.path, built, FileRole.PEM, file.mode, file.owner or None, file.group or None)
        return Plan(
            (planned,),
            FileDefaults(),
            retention or self.deps.default_backup_retention,
            self.settings.common.backup_dir,
        )

    def hooks(self, source_digest: str | None, material: _Material) -> Hooks:
        path = self.checked.path

        def unchanged_since_built(_staged: Mapping[Path, Path]) -> None:
            if _digest_of(path) != source_digest:
                raise StepFailed(f"{path} changed while the new keystore was built from it; nothing replaced")

        reload_hook = verify_hook = None
        if (reload := self.checked.reload) is not None:

            def reload_hook() -> None:
                self.reload(reload)

        if (endpoint := self.checked.endpoint) is not None:

            def verify_hook() -> None:
                cert_pem = material.cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
                verify_served(endpoint, cert_pem, self.settings.verify.policy, self.deps, self.verification)

        return Hooks(unchanged_since_built, None, reload_hook, verify_hook)

    def reload(self, command: OperatorCommand) -> None:
        timeout = self.settings.common.command_timeout_seconds or self.deps.default_command_timeout_seconds
        try:
            run_command(self.deps.runner, command, what="keystore reload command", paths={}, timeout_seconds=timeout)
        except CommandFailed as exc:
            if self.settings.reload_failure_fatal:
                raise
            self.reload_failed = True
            self.warnings.append(f"{exc} (not fatal: reload_failure_fatal is off)")
            log.warning("deploy.reload_failed_not_fatal", extra={"target_type": TARGET_TYPE, "error": str(exc)})

    def stopped(self, stage: DeployStage, error: DeployError) -> DeployResult:
        error.result = ApplyResult.stopped(stage, str(error), time.perf_counter() - self.started)
        self.deps.counters.record(TARGET_TYPE, error.result)
        return self.result(error.result, None, error=error)

    def result(
        self, applied: ApplyResult, material: _Material | None, message: str = "", error: DeployError | None = None
    ) -> DeployResult:
        metadata = {
            "keystore_path": str(self.checked.path),
            "keystore_type": self.settings.keystore_type,
            "alias": self.settings.alias,
        }
        backup = applied.backup_paths.get(self.checked.path)
        if backup is not None:
            metadata["backup_path"] = str(backup)
        thumbprint = ""
        if material is not None and applied.outcome is DeployOutcome.SUCCESS:
            thumbprint = metadata["thumbprint"] = material.sha1_thumbprint
        endpoint = self.checked.endpoint
        parts = ResultParts(
            TARGET_TYPE,
            "jks-idem" if applied.idempotent else "jks",
            str(endpoint) if endpoint else str(self.checked.path),
            self.started,
            metadata,
            message,
            tuple(self.warnings),
            self.verification,
            deployment_id=thumbprint,
        )
        return finish(parts, applied, self.deps, error)
