"""Caddy (`Caddy`, agent-targets-discovery.md §A2.5): the admin API, or files.

Keys: `mode` (`api` | `file`, → `api`); `admin_api` (→ `http://localhost:2019`); `timeout` (ours: per
admin request, → 10 s); `cert_dir`, `cert_file` (→ `cert.pem`), `key_file` (→ `key.pem`);
`cert_file_mode` (→ 0644), `key_file_mode` (→ 0600); `reload_command` (ours, file mode); verify and
backup keys.

API mode. The original posted to `/config/apps/tls/certificates/load`, which Caddy 2.6 refuses (500
"unknown module: tls.certificates.load"). Ours reads `GET /config/apps/tls/certificates`, replaces its
own `load_pem` entry (tagged `certctl-<certificate_id>`) and keeps every other key (`load_files`, …) and
every foreign entry, then `PATCH`es the object back (`PUT` when there is none yet); Caddy loads the new
configuration before answering, so a 200 means the certificate is live. Our entry already holding this
certificate → unchanged, no write. If the GET fails, our entry is appended with `POST …/load_pem`,
which never drops anything (the next deployment removes the duplicate). An admin API error falls back
to writing the files only when `cert_dir` is set (`method=file-fallback`); otherwise the deployment
fails. With `post_deploy_verify.endpoint` set, a probe that does not see the certificate restores the
previous `certificates` object.

When another loaded certificate also matches the server name, Caddy may keep serving it: have the
connection policy pick ours with `"certificate_selection": {"any_tag": ["certctl-<certificate_id>"]}`.
Caddy keeps its configuration, the private key included, in `autosave.json` under its config directory.

File mode writes `cert_dir/cert_file` (leaf then chain) and `cert_dir/key_file` in one plan. Caddy
reads them (`load_files`) only when its configuration loads, so ours accepts an optional
`reload_command` (e.g. `caddy reload --force --config /etc/caddy/caddy.json`), run after the swap
with the usual rollback; the fallback after an admin API error runs it too.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Self

import httpx

from certctl.deploy.connectors.base import CheckItem, ConnectorDeps, DeployRequest, DeployResult, TargetCheck
from certctl.deploy.connectors.cert_dir import DirectoryConnector, DirectoryLayout, NameKey
from certctl.deploy.connectors.config import ConfigReader
from certctl.deploy.connectors.file_target import CheckedTarget, FileTargetConfig, FileTargetRules
from certctl.deploy.connectors.files import joined_pem
from certctl.deploy.connectors.results import ResultParts, finish, verify_served
from certctl.deploy.errors import (
    DeployError,
    RollbackFailed,
    StepFailed,
    TargetConfigError,
    ValidateFailed,
    ValidateOnlyNotSupported,
    VerifyFailed,
    WriteFailed,
)
from certctl.deploy.plan import FileRole
from certctl.deploy.precheck import precheck
from certctl.deploy.result import ApplyResult, DeployOutcome, DeployStage, RollbackOutcome
from certctl.deploy.verify import VerifyResult

log = logging.getLogger("certctl.deploy")

MODES = ("api", "file")
DEFAULT_ADMIN_API = "http://localhost:2019"
DEFAULT_TIMEOUT_SECONDS = 10.0
CERTIFICATES = "/config/apps/tls/certificates"
MAX_ERROR_CHARS = 500

CADDY_RULES = FileTargetRules(
    target_type="Caddy",
    deployment_prefix="caddy-file",
    roles=(FileRole.CERT, FileRole.KEY),
    required=(),
    validate_what="validate command",
    reload_what="reload command",
    forced_modes={FileRole.CERT: 0o644, FileRole.KEY: 0o600},
)


class CaddyAdminError(DeployError):
    """The admin API could not be reached, or refused a request."""


@dataclass(frozen=True, slots=True)
class CaddySettings:
    mode: str = "api"
    admin_api: str = DEFAULT_ADMIN_API
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS

    @classmethod
    def read(cls, reader: ConfigReader) -> CaddySettings:
        return cls(
            reader.string("mode").lower() or "api",
            reader.string("admin_api").rstrip("/") or DEFAULT_ADMIN_API,
            reader.duration_seconds("timeout") or DEFAULT_TIMEOUT_SECONDS,
        )

    def check(self) -> None:
        if self.mode not in MODES:
            raise TargetConfigError("Caddy", "mode", f"must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.mode != "api":
            return
        try:
            url = httpx.URL(self.admin_api)
        except httpx.InvalidURL as exc:
            raise TargetConfigError("Caddy", "admin_api", f"not a URL: {exc}") from None
        if url.scheme not in ("http", "https") or not url.host or url.query or url.fragment:
            raise TargetConfigError("Caddy", "admin_api", f"must be an http(s)://host:port URL, got {self.admin_api!r}")


class CaddyConnector(DirectoryConnector):
    rules = CADDY_RULES
    target_type = CADDY_RULES.target_type
    name_keys = (NameKey(FileRole.CERT, "cert_file", "cert.pem"), NameKey(FileRole.KEY, "key_file", "key.pem"))

    def __init__(
        self,
        config: FileTargetConfig,
        layout: DirectoryLayout,
        settings: CaddySettings | None = None,
        deps: ConnectorDeps | None = None,
    ) -> None:
        super().__init__(config, layout, deps)
        self.settings = settings or CaddySettings()

    @classmethod
    def from_config(cls, raw: Mapping[str, object] | None, deps: ConnectorDeps | None = None) -> Self:
        reader = ConfigReader(cls.rules.target_type, raw)
        layout, config = cls.read_layout(reader)
        config = dataclasses.replace(config, reload_command=reader.string("reload_command"))
        return cls(config, layout, CaddySettings.read(reader), deps)

    def _needs_dir(self) -> bool:
        return self.settings.mode == "file"

    def _check(self) -> CheckedTarget:
        self.settings.check()
        return super()._check()

    def _extra_metadata(self) -> dict[str, str]:
        return {"method": "file"}

    # -- deploy -------------------------------------------------------------------------------------------

    def deploy(self, request: DeployRequest) -> DeployResult:
        checked = self._check()
        started = time.perf_counter()
        with self._deps.target_locks.holding(request.target_id):
            if self.settings.mode == "file":
                return self._deploy_files(request, checked, started)
            fall_back = None
            if self.layout.directory:

                def fall_back(error: str) -> DeployResult:
                    return self._fall_back(request, checked, started, error)

            return _ApiDeployment(self, self._deps, self._admin(), request, checked, started, fall_back).run()

    def _fall_back(self, request: DeployRequest, checked: CheckedTarget, started: float, error: str) -> DeployResult:
        warning = f"admin API failed, wrote the files instead: {error}"
        log.warning("deploy.caddy_file_fallback", extra={"target_type": self.target_type, "error": error})
        result = self._deploy_files(request, checked, started)
        return dataclasses.replace(
            result,
            message=f"{result.message} (file fallback after: {error})",
            warnings=(*result.warnings, warning),
            metadata={**result.metadata, "method": "file-fallback", "api_error": error},
        )

    # -- dry run and test ------------------------------------------------------------------------------

    def validate_only(self, request: DeployRequest) -> None:
        self._check()
        if self.settings.mode != "api":
            raise ValidateOnlyNotSupported("Caddy file mode has nothing to dry-run")
        try:
            self._admin().request("GET", "/config/")
        except CaddyAdminError as exc:
            raise ValidateFailed(f"Caddy admin API (ValidateOnly): {exc}") from exc

    def test(self) -> TargetCheck:
        check = super().test()
        if not check.items[0].ok or self.settings.mode != "api":
            return check
        try:
            self._admin().request("GET", "/config/")
        except CaddyAdminError as exc:
            admin = CheckItem("admin_api", False, str(exc))
        else:
            admin = CheckItem("admin_api", True, f"{self.settings.admin_api} answers")
        return TargetCheck((*check.items, admin))

    def _admin(self) -> _Admin:
        return _Admin(self.settings.admin_api, self.settings.timeout_seconds)


class _Admin:
    """Caddy's admin API (JSON over HTTP; never through a proxy from the environment)."""

    def __init__(self, base_url: str, timeout_seconds: float) -> None:
        self.base_url, self.timeout_seconds = base_url, timeout_seconds

    def request(self, method: str, path: str, body: object = None) -> httpx.Response:
        """Raises CaddyAdminError for a transport error or a status of 400 and above."""
        url = self.base_url + path
        content = None if body is None else json.dumps(body).encode("utf-8")
        headers = {"Content-Type": "application/json"} if content is not None else {}
        try:
            with httpx.Client(timeout=self.timeout_seconds, trust_env=False) as client:
                response = client.request(method, url, content=content, headers=headers)
        except httpx.HTTPError as exc:
            raise CaddyAdminError(f"{method} {url}: {exc}") from exc
        if response.status_code >= 400:
            raise CaddyAdminError(f"{method} {url}: HTTP {response.status_code}: {_error_text(response)}")
        return response

    def certificates(self) -> tuple[str, dict[str, object] | None]:
        """("object", the object) | ("absent", None) | ("unknown", None) when the GET failed."""
        try:
            response = self.request("GET", CERTIFICATES)
        except CaddyAdminError as exc:
            text = str(exc)
            # Caddy answers 400 "invalid traversal path" when a parent (apps, tls) does not exist yet.
            if "invalid traversal path" in text or "does not exist" in text:
                return "absent", None
            log.warning("deploy.caddy_get_failed", extra={"target_type": "Caddy", "error": text})
            return "unknown", None
        try:
            value = response.json()
        except ValueError:
            return "unknown", None
        if value is None:
            return "absent", None
        return ("object", value) if isinstance(value, dict) else ("unknown", None)


def _error_text(response: httpx.Response) -> str:
    try:
        value = response.json()
    except ValueError:
        return response.text[:MAX_ERROR_CHARS]
    error = value.get("error") if isinstance(value, dict) else None
    return (error if isinstance(error, str) else response.text)[:MAX_ERROR_CHARS]


def _ours(entry: object, tag: str) -> bool:
    return isinstance(entry, dict) and isinstance(entry.get("tags"), list) and tag in entry["tags"]


def _holds(entry: object, tag: str, cert_data: str) -> bool:
    """Our entry (by tag) holding exactly this certificate data (compared by SHA-256)."""
    if not _ours(entry, tag):
        return False
    assert isinstance(entry, dict)
    certificate = entry.get("certificate")
    return isinstance(certificate, str) and _digest(certificate) == _digest(cert_data)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _pems(certificates: Mapping[str, object]) -> list[object]:
    value = certificates.get("load_pem")
    return list(value) if isinstance(value, list) else []


class _ApiDeployment:
    """One deployment through the admin API: read, merge, write, verify, and undo after a failed probe."""

    def __init__(
        self,
        connector: CaddyConnector,
        deps: ConnectorDeps,
        admin: _Admin,
        request: DeployRequest,
        checked: CheckedTarget,
        started: float,
        fall_back: Callable[[str], DeployResult] | None,
    ) -> None:
        self.target_type, self.deps, self.policy = connector.target_type, deps, connector.config.verify.policy
        self.admin, self.request, self.checked, self.started, self.fall_back = (
            admin,
            request,
            checked,
            started,
            fall_back,
        )
        certificate_id = request.metadata.get("certificate_id") or request.target_id or "default"
        self.tag = f"certctl-{certificate_id}"
        self.cert_data = joined_pem(request.cert_pem, request.chain_pem)
        self.warnings: tuple[str, ...] = ()
        self.verification: list[VerifyResult] = []

    def run(self) -> DeployResult:
        key = self.request.key_pem
        if not key or not key.strip():
            return self.stopped(DeployStage.PRECHECK, ValidateFailed("Caddy's admin API needs the private key"))
        if self.deps.precheck:
            try:
                self.warnings = precheck(self.request.cert_pem, self.request.chain_pem, key, now=self.deps.clock.now())
            except ValidateFailed as exc:
                return self.stopped(DeployStage.PRECHECK, exc)
        state, current = self.admin.certificates()
        if current is not None and any(_holds(e, self.tag, self.cert_data) for e in _pems(current)):
            return self.done(DeployOutcome.UNCHANGED, "caddy-api-idem", "unchanged: Caddy already has this certificate")
        try:
            self.write(state, current, {"certificate": self.cert_data, "key": key, "tags": ["certctl", self.tag]})
        except CaddyAdminError as exc:
            if self.fall_back is not None:
                return self.fall_back(str(exc))
            return self.stopped(DeployStage.WRITE, WriteFailed(f"Caddy admin API: {exc}"))
        if self.checked.endpoint is not None:
            try:
                verify_served(self.checked.endpoint, self.request.cert_pem, self.policy, self.deps, self.verification)
            except StepFailed as failure:
                return self.undo(state, current, failure)
        return self.done(DeployOutcome.SUCCESS, "caddy-api", "loaded into Caddy through the admin API")

    def write(self, state: str, current: dict[str, object] | None, entry: dict[str, object]) -> None:
        if current is not None:  # replace our entry, keep everything else
            kept = [e for e in _pems(current) if not _ours(e, self.tag)]
            self.admin.request("PATCH", CERTIFICATES, {**current, "load_pem": [*kept, entry]})
        elif state == "absent":  # PUT creates the missing parents too (apps, tls)
            self.admin.request("PUT", CERTIFICATES, {"load_pem": [entry]})
        else:  # the GET failed: append, which cannot drop what we did not see
            self.admin.request("POST", f"{CERTIFICATES}/load_pem", entry)

    def undo(self, state: str, previous: dict[str, object] | None, failure: StepFailed) -> DeployResult:
        """Put the previous `certificates` back after a failed probe."""
        try:
            if previous is not None:
                self.admin.request("PATCH", CERTIFICATES, previous)
            elif state == "absent":
                self.admin.request("DELETE", CERTIFICATES)
            else:
                response = self.admin.request("GET", f"{CERTIFICATES}/load_pem")
                pems = response.json()
                kept = [e for e in pems if not _holds(e, self.tag, self.cert_data)] if isinstance(pems, list) else []
                self.admin.request("PATCH", f"{CERTIFICATES}/load_pem", kept)
        except (CaddyAdminError, ValueError) as exc:
            also = RollbackFailed(f"{failure}; restoring Caddy's previous certificates failed: {exc}")
            applied = ApplyResult(
                DeployOutcome.ROLLBACK_FAILED, DeployStage.VERIFY, reloaded=True, rollback=RollbackOutcome.ALSO_FAILED
            )
            return self.finish(applied, "caddy-api", also)
        applied = ApplyResult(
            DeployOutcome.ROLLED_BACK, DeployStage.VERIFY, reloaded=True, rollback=RollbackOutcome.RESTORED
        )
        return self.finish(applied, "caddy-api", VerifyFailed(str(failure)))

    def stopped(self, stage: DeployStage, error: DeployError) -> DeployResult:
        return self.finish(ApplyResult.stopped(stage, str(error)), "caddy-api", error)

    def done(self, outcome: DeployOutcome, prefix: str, message: str) -> DeployResult:
        applied = ApplyResult(outcome, DeployStage.DONE, reloaded=outcome is DeployOutcome.SUCCESS)
        return self.finish(applied, prefix, message=message)

    def finish(
        self, applied: ApplyResult, prefix: str, error: DeployError | None = None, message: str = ""
    ) -> DeployResult:
        applied = dataclasses.replace(
            applied, duration_seconds=time.perf_counter() - self.started, error=str(error) if error else ""
        )
        if error is not None:
            error.result = applied
        self.deps.counters.record(self.target_type, applied)
        endpoint = self.checked.endpoint
        parts = ResultParts(
            self.target_type,
            prefix,
            str(endpoint) if endpoint else self.admin.base_url,
            self.started,
            {"method": "api", "admin_api": self.admin.base_url, "tag": self.tag},
            message,
            self.warnings,
            self.verification,
        )
        return finish(parts, applied, self.deps, error)
