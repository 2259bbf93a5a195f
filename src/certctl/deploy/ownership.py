"""Which mode, uid and gid a deployed file gets (agent-targets-discovery.md §A2.2).

Mode: the file's own → the existing file's permission bits → the plan defaults → 0600 for keys and
combined PEMs, 0644 otherwise. Owner and group (only as a pair): the file's own → the existing file's
→ the plan defaults → unchanged. chmod errors always fail; chown errors fail only when running as root.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from collections.abc import Sequence
from dataclasses import dataclass

from certctl.deploy.errors import PlanInvalid
from certctl.deploy.plan import PUBLIC_FILE_MODE, SECRET_FILE_MODE, FileDefaults, PlannedFile


class OwnershipError(PlanInvalid):
    """An owner or group name that does not exist on this host."""


@dataclass(frozen=True, slots=True)
class ExistingFile:
    """What a destination looked like before the deployment: restored exactly on rollback."""

    mode: int  # permission bits only
    uid: int
    gid: int
    size: int

    @classmethod
    def at(cls, path: os.PathLike[str] | str) -> ExistingFile | None:
        """None when nothing is there; raises PlanInvalid when something other than a file is."""
        try:
            info = os.stat(path)
        except FileNotFoundError:
            return None
        if not stat.S_ISREG(info.st_mode):
            raise PlanInvalid(f"{path} exists and is not a regular file")
        return cls(stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid, info.st_size)


@dataclass(frozen=True, slots=True)
class Ownership:
    mode: int
    uid: int | None = None  # None: leave as created (the agent's user)
    gid: int | None = None


def lookup_uid(name: str) -> int:
    """A user name or a numeric uid string; raises OwnershipError for an unknown name."""
    if name.isdigit():
        return int(name)
    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        raise OwnershipError(f"unknown user {name!r}") from None


def lookup_gid(name: str) -> int:
    """A group name or a numeric gid string; raises OwnershipError for an unknown name."""
    if name.isdigit():
        return int(name)
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise OwnershipError(f"unknown group {name!r}") from None


def first_existing_account(candidates: Sequence[str]) -> str | None:
    """The first name that exists both as a user and as a group here (default owners of new files)."""
    for name in candidates:
        try:
            pwd.getpwnam(name)
            grp.getgrnam(name)
        except KeyError:
            continue
        return name
    return None


def resolve(planned: PlannedFile, existing: ExistingFile | None, defaults: FileDefaults) -> Ownership:
    """Raises OwnershipError when a named owner or group is unknown."""
    if planned.mode:
        mode = planned.mode
    elif existing is not None:
        mode = existing.mode
    elif defaults.mode:
        mode = defaults.mode
    else:
        mode = SECRET_FILE_MODE if planned.role.secret else PUBLIC_FILE_MODE
    if planned.owner and planned.group:
        return Ownership(mode, lookup_uid(planned.owner), lookup_gid(planned.group))
    if existing is not None:
        return Ownership(mode, existing.uid, existing.gid)
    if defaults.owner and defaults.group:
        return Ownership(mode, lookup_uid(defaults.owner), lookup_gid(defaults.group))
    return Ownership(mode)


def apply_to_fd(fd: int, ownership: Ownership) -> None:
    """chown (as root, or when permitted) then chmod, on an open file: chown may clear set-id bits."""
    if ownership.uid is not None or ownership.gid is not None:
        uid = -1 if ownership.uid is None else ownership.uid
        gid = -1 if ownership.gid is None else ownership.gid
        try:
            os.fchown(fd, uid, gid)
        except PermissionError:
            # Unprivileged agents (and tests) cannot give files away; only root must succeed (§A2.2).
            if os.geteuid() == 0:
                raise
    os.fchmod(fd, ownership.mode)
