"""Connector configs at rest (core.md §13.2): the full config lives only in `encrypted_config`; the
`config` column keeps a masked shadow with `********` in place of secrets.

Issuers and deployment targets share these rules, so targets use this module too.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from certctl.errors import Conflict, ValidationFailed
from certctl.security.encryption import ConfigCipher, DecryptionFailed
from certctl.security.masking import MASK, mask_config, merge_masked

if TYPE_CHECKING:
    from certctl.issuers.models import Issuer
    from certctl.targets.models import DeploymentTarget

    # An issuer or target: a masked `config` shadow beside its `encrypted_config`.
    ConfiguredRow = Issuer | DeploymentTarget


class StoredConfigUnreadable(Conflict):
    """The stored config does not decrypt (wrong key or corrupted blob), so placeholders cannot be kept."""

    def __init__(self, owner: str) -> None:
        super().__init__(
            f"the stored config of {owner} cannot be decrypted with the configured key; "
            "send the complete config without '********' placeholders to replace it"
        )
        self.owner = owner


@dataclass(frozen=True, slots=True)
class SealedConfig:
    encrypted: bytes  # v3 blob of the JSON-serialised full config
    shadow: dict[str, Any]  # what the `config` column and every response carry


@dataclass(frozen=True, slots=True)
class ConfigReplacement:
    """A new config sealed outside the write transaction, and the stored blob it was based on."""

    owner: str
    sealed: SealedConfig
    basis: bytes | None

    def apply(self, row: ConfiguredRow) -> None:
        """Store the new config, unless someone replaced the old one since it was read (Conflict)."""
        if row.encrypted_config != self.basis:
            raise Conflict(f"the config of {self.owner} changed during this update; fetch it and retry")
        row.config, row.encrypted_config = self.sealed.shadow, self.sealed.encrypted


class ConfigSealer:
    """Encrypts full configs, masks their shadows and resolves `********` placeholders on update."""

    def __init__(self, cipher: ConfigCipher) -> None:
        self._cipher = cipher

    def seal(self, config: Mapping[str, Any]) -> SealedConfig:
        """Costs one PBKDF2 derivation (600 000 rounds, ~0.3 s): call it outside write transactions."""
        plaintext = json.dumps(dict(config), separators=(",", ":"), ensure_ascii=False).encode()
        return SealedConfig(encrypted=self._cipher.encrypt(plaintext), shadow=mask_config(config))

    def unseal(self, encrypted: bytes | None, shadow: Mapping[str, Any], owner: str) -> dict[str, Any]:
        """The full stored config; a row without a blob (seeded while no key was set) holds it in plain text.

        Raises StoredConfigUnreadable when the blob does not decrypt or does not hold a JSON object.
        """
        if encrypted is None:
            return dict(shadow)
        try:
            data = json.loads(self._cipher.decrypt(encrypted))
        except (DecryptionFailed, ValueError) as exc:
            raise StoredConfigUnreadable(owner) from exc
        if not isinstance(data, dict):
            raise StoredConfigUnreadable(owner)
        return data

    def replacement(
        self,
        incoming: Mapping[str, Any],
        current: ConfiguredRow,
        owner: str,
        check: Callable[[dict[str, Any]], None] | None = None,
    ) -> ConfigReplacement:
        """Resolve placeholders against `current`, run `check`, and seal: the slow part of an update (one
        PBKDF2), done before the write transaction; `apply` it inside that transaction."""
        full = self.resolve(incoming, owner, current.encrypted_config, current.config)
        if check is not None:
            check(full)
        return ConfigReplacement(owner=owner, sealed=self.seal(full), basis=current.encrypted_config)

    def resolve(
        self,
        incoming: Mapping[str, Any],
        owner: str,
        encrypted: bytes | None = None,
        shadow: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The config to store: `incoming`, with each `********` value replaced by the stored secret.

        The stored config is decrypted only when a placeholder needs it. Raises ValidationFailed when a
        placeholder has no stored value to keep (always the case on create).
        """
        if MASK not in incoming.values():
            return dict(incoming)
        stored: dict[str, Any] = {}
        if encrypted is not None or shadow:
            stored = self.unseal(encrypted, shadow or {}, owner)
        # A placeholder left in a plain-text row is not a secret: it must not be "kept" as one.
        kept = {name: value for name, value in stored.items() if value != MASK}
        merged = merge_masked(incoming, kept)
        unresolved = sorted(name for name, value in merged.items() if value == MASK)
        if unresolved:
            names = ", ".join(f"config.{name}" for name in unresolved)
            raise ValidationFailed(
                f"{names}: '********' stands for a stored secret, but {owner} has no stored value to keep; "
                "send the real value"
            )
        return merged
