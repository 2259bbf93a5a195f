"""A deployment plan: the files to put in place together, with their modes and owners (§A2.1, §A2.2).

Plans validate on construction (PlanInvalid) and never change; paths are made absolute, so two
spellings of one destination count as a duplicate.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from certctl.deploy.errors import PlanInvalid

# CERTCTL_DEPLOY_BACKUP_RETENTION's default (agent-targets-discovery.md §A1.1): backups kept per file.
DEFAULT_BACKUP_RETENTION = 3
NO_BACKUPS = -1  # keep none once the deployment is over (still made while it runs, for rollback)
MAX_FILE_MODE = 0o7777
PUBLIC_FILE_MODE = 0o644  # new certificates and chains (§A2.1, "default file modes")
SECRET_FILE_MODE = 0o600  # new private keys and combined PEMs


class FileRole(StrEnum):
    """What a file holds; names the staged-path placeholder and picks the default mode of a new file."""

    CERT = "cert"
    CHAIN = "chain"
    FULLCHAIN = "fullchain"
    KEY = "key"
    PEM = "pem"  # certificate, chain and key in one file (HAProxy)

    @property
    def secret(self) -> bool:
        return self in (FileRole.KEY, FileRole.PEM)

    @property
    def placeholder(self) -> str | None:
        """`{cert_path}` and friends (§A2.1); a full chain has none."""
        return None if self is FileRole.FULLCHAIN else f"{{{self.value}_path}}"


def check_mode(mode: int | None, what: str) -> None:
    if mode is not None and not 0 <= mode <= MAX_FILE_MODE:
        raise PlanInvalid(f"{what}: file mode {mode:#o} is outside 0-0o7777")


@dataclass(frozen=True, slots=True)
class FileDefaults:
    """Mode, owner and group for files that do not exist yet (owner and group count only together)."""

    mode: int | None = None
    owner: str | None = None
    group: str | None = None

    def __post_init__(self) -> None:
        check_mode(self.mode, "defaults")


@dataclass(frozen=True, slots=True)
class PlannedFile:
    """One destination and its new bytes. `mode` set explicitly wins over the existing file's mode."""

    path: Path
    content: bytes = field(repr=False)
    role: FileRole = FileRole.CERT
    mode: int | None = None
    owner: str | None = None
    group: str | None = None

    def __post_init__(self) -> None:
        if not str(self.path) or str(self.path) == ".":
            raise PlanInvalid("a planned file has an empty path")
        if "\x00" in str(self.path):
            raise PlanInvalid(f"path {str(self.path)!r} contains a NUL character")
        object.__setattr__(self, "path", Path(os.path.abspath(self.path)))
        check_mode(self.mode, str(self.path))


@dataclass(frozen=True, slots=True)
class Plan:
    """Files deployed all-or-nothing.

    `backup_retention`: 0 → 3, -1 → none kept; `backup_dir`: None → beside each file.
    """

    files: tuple[PlannedFile, ...]
    defaults: FileDefaults = field(default_factory=FileDefaults)
    backup_retention: int = DEFAULT_BACKUP_RETENTION
    backup_dir: Path | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "files", tuple(self.files))
        if not self.files:
            raise PlanInvalid("the plan has no files")
        seen: set[Path] = set()
        for planned in self.files:
            if planned.path in seen:
                raise PlanInvalid(f"the plan names {planned.path} twice")
            seen.add(planned.path)
        if self.backup_retention < NO_BACKUPS:
            raise PlanInvalid(f"backup_retention {self.backup_retention} is below -1")
        if self.backup_retention == 0:
            object.__setattr__(self, "backup_retention", DEFAULT_BACKUP_RETENTION)
        if self.backup_dir is not None:
            object.__setattr__(self, "backup_dir", Path(os.path.abspath(self.backup_dir)))

    @property
    def keeps_backups(self) -> bool:
        return self.backup_retention != NO_BACKUPS
