"""Postfix and Dovecot (`Postfix`, `Dovecot`: one connector, agent-targets-discovery.md §A2.5).

Keys: `mode` (`postfix` | `dovecot`; → the target type's), then as NGINX: `cert_path`, `key_path`,
`chain_path`, `validate_command`, `reload_command`, `<role>_file_mode`/`_owner`/`_group`, verify and
backup keys. Each mode fills what is not set:

| mode    | cert_path                     | key_path                     | reload           | validate       |
|---------|-------------------------------|------------------------------|------------------|----------------|
| postfix | /etc/postfix/certs/cert.pem   | /etc/postfix/certs/key.pem   | `postfix reload` | `postfix check`|
| dovecot | /etc/dovecot/certs/cert.pem   | /etc/dovecot/certs/key.pem   | `doveadm reload` | `doveconf -n`  |

Without `chain_path` the certificate file holds the leaf then the chain (what `smtpd_tls_cert_file`
and `ssl_cert` expect); the key is 0600 unless `key_file_mode` says otherwise; new files belong to
`postfix`, `dovecot` or `_postfix`. The original applied the presets only in `validate_config`; ours
applies them when the config is read. `doveconf -n` reads no certificate file, and `postfix check`
checks permissions, not certificates: the pre-check and a probe of an implicit-TLS port (465, 993)
are what catch a bad pair.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Self

from certctl.deploy.connectors.base import ConnectorDeps, DeployRequest
from certctl.deploy.connectors.config import ConfigReader
from certctl.deploy.connectors.file_target import CheckedTarget, FileTargetConfig, FileTargetRules
from certctl.deploy.connectors.files import FileConnector, chained_contents
from certctl.deploy.errors import TargetConfigError
from certctl.deploy.plan import FileRole


@dataclass(frozen=True, slots=True)
class MailPreset:
    cert_path: str
    key_path: str
    reload_command: str
    validate_command: str


PRESETS: Mapping[str, MailPreset] = {
    "postfix": MailPreset(
        "/etc/postfix/certs/cert.pem", "/etc/postfix/certs/key.pem", "postfix reload", "postfix check"
    ),
    "dovecot": MailPreset("/etc/dovecot/certs/cert.pem", "/etc/dovecot/certs/key.pem", "doveadm reload", "doveconf -n"),
}


def _rules(target_type: str) -> FileTargetRules:
    return FileTargetRules(
        target_type=target_type,
        deployment_prefix=target_type.lower(),
        roles=(FileRole.CERT, FileRole.CHAIN, FileRole.KEY),
        required=("cert_path",),
        validate_what="validate command",
        reload_what="reload command",
        forced_modes={FileRole.KEY: 0o600},
        owner_candidates=("postfix", "dovecot", "_postfix"),
    )


class MailConnector(FileConnector):
    default_mode: ClassVar[str]

    def __init__(self, config: FileTargetConfig, mode: str, deps: ConnectorDeps | None = None) -> None:
        super().__init__(config, deps)
        self.mode = mode

    @classmethod
    def from_config(cls, raw: Mapping[str, object] | None, deps: ConnectorDeps | None = None) -> Self:
        mode = ConfigReader(cls.rules.target_type, raw).string("mode").lower() or cls.default_mode
        settings = dict(raw or {})
        if (preset := PRESETS.get(mode)) is not None:  # an unknown mode is refused by validate_config
            for key in ("cert_path", "key_path", "reload_command", "validate_command"):
                if settings.get(key) in (None, ""):
                    settings[key] = getattr(preset, key)
        return cls(FileTargetConfig.parse(cls.rules, settings), mode, deps)

    def _check(self) -> CheckedTarget:
        if self.mode not in PRESETS:
            raise TargetConfigError(self.target_type, "mode", f"must be one of {', '.join(PRESETS)}, got {self.mode!r}")
        return super()._check()

    def _file_contents(self, request: DeployRequest) -> Mapping[FileRole, str]:
        return chained_contents(request, separate_chain=bool(self.config.paths.get(FileRole.CHAIN)))

    def _deployment_prefix(self) -> str:
        return self.mode

    def _extra_metadata(self) -> dict[str, str]:
        return {"mode": self.mode}

    def _validate_what(self) -> str:
        return PRESETS[self.mode].validate_command if self.mode in PRESETS else super()._validate_what()

    def _reload_what(self) -> str:
        return PRESETS[self.mode].reload_command if self.mode in PRESETS else super()._reload_what()


class PostfixConnector(MailConnector):
    rules = _rules("Postfix")
    target_type = "Postfix"
    default_mode = "postfix"


class DovecotConnector(MailConnector):
    rules = _rules("Dovecot")
    target_type = "Dovecot"
    default_mode = "dovecot"
