"""File operations of the primitive: same-directory temps, backups, restores, pruning (§A2.1).

Every new file is created exclusively with mode 0600, written, given its final mode and owner, fsynced,
and only then renamed over the destination, so readers see the old bytes or the new, never a mix, and a
key is never readable by others even for an instant.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import threading
import time
from pathlib import Path

from certctl.deploy.ownership import ExistingFile, Ownership, apply_to_fd

TEMP_MARKER = ".certctl-tmp."
BACKUP_MARKER = ".certctl-bak."
_SUFFIX_DIGITS = 19  # unix nanoseconds, zero-padded so names sort by time
_BACKUP_NAME = re.compile(r".*\.certctl-bak\.\d{19}")

_suffix_guard = threading.Lock()
_last_suffix = 0


def unique_suffix() -> str:
    """Unix nanoseconds as 19 digits, strictly increasing within this process."""
    global _last_suffix
    with _suffix_guard:
        _last_suffix = max(time.time_ns(), _last_suffix + 1)
        return f"{_last_suffix:0{_SUFFIX_DIGITS}d}"


def temp_path_for(path: Path) -> Path:
    # Same directory as the destination: rename is atomic only within one filesystem.
    return path.with_name(f"{path.name}{TEMP_MARKER}{unique_suffix()}")


def backup_prefix(path: Path, backup_dir: Path | None) -> tuple[Path, str]:
    """Directory and name prefix of `path`'s backups; in a shared backup dir a digest of the full path
    keeps `/a/cert.pem` and `/b/cert.pem` apart."""
    if backup_dir is None:
        return path.parent, f"{path.name}{BACKUP_MARKER}"
    digest = hashlib.sha256(os.fsencode(path)).hexdigest()[:12]
    return backup_dir, f"{path.name}.{digest}{BACKUP_MARKER}"


def backup_path_for(path: Path, backup_dir: Path | None) -> Path:
    directory, prefix = backup_prefix(path, backup_dir)
    return directory / f"{prefix}{unique_suffix()}"


def backups_of(path: Path, backup_dir: Path | None) -> list[Path]:
    """Existing backups of `path`, oldest first."""
    directory, prefix = backup_prefix(path, backup_dir)
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return sorted(directory / n for n in names if n.startswith(prefix) and _BACKUP_NAME.fullmatch(n))


def prune_backups(path: Path, backup_dir: Path | None, keep: int) -> list[Path]:
    """Delete all but the newest `keep` backups; returns what was deleted (errors are ignored)."""
    backups = backups_of(path, backup_dir)
    doomed = backups[: max(0, len(backups) - keep)]
    for backup in doomed:
        remove_quietly(backup)
    return doomed


def same_content(path: Path, data: bytes) -> bool:
    """Whether `path` is a regular file holding exactly `data` (size first, then SHA-256)."""
    try:
        if os.stat(path).st_size != len(data):
            return False
        with open(path, "rb") as handle:
            current = hashlib.file_digest(handle, "sha256").digest()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return False
    return current == hashlib.sha256(data).digest()


def write_new_file(path: Path, data: bytes, ownership: Ownership) -> None:
    """Create `path` (which must not exist), write, set mode and owner, fsync. Removes it on error."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        apply_to_fd(fd, ownership)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        remove_quietly(path)
        raise
    os.close(fd)


def copy_to_backup(source: Path, backup: Path, existing: ExistingFile) -> None:
    """Copy the live file's bytes to `backup` with its permission bits (and owner, best effort)."""
    backup.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    data = source.read_bytes()
    write_new_file(backup, data, Ownership(existing.mode, existing.uid, existing.gid))


def restore_from_backup(path: Path, backup: Path | None, existing: ExistingFile | None) -> None:
    """Put `path` back as it was: the backup's bytes with the original mode and owner, or no file at all."""
    if backup is None or existing is None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return
    data = backup.read_bytes()
    temp = temp_path_for(path)
    write_new_file(temp, data, Ownership(existing.mode, existing.uid, existing.gid))
    try:
        os.replace(temp, path)
    except BaseException:
        remove_quietly(temp)
        raise


def fsync_directories(paths: list[Path]) -> None:
    """Make renames durable: fsync each distinct parent directory (best effort)."""
    for directory in sorted({p.parent for p in paths}):
        try:
            fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            with contextlib.suppress(OSError):
                os.fsync(fd)
        finally:
            os.close(fd)


def remove_quietly(path: Path) -> None:
    """Unlink, ignoring errors: used on clean-up paths where the original error is what matters."""
    with contextlib.suppress(OSError):
        os.unlink(path)


def leftover_temps(directory: Path) -> list[Path]:
    """Temps a crashed deployment left behind (tests and the agent's start-up sweep use this)."""
    return sorted(p for p in directory.iterdir() if TEMP_MARKER in p.name)
