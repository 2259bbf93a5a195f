"""What the agent keeps on disk between runs, beside its credentials file (core.md §6.1).

* The credentials file (`CERTCTL_AGENT_STATE_FILE`, default /var/lib/certctl/agent.json, mode 0600):
  `{agent_id, api_key, server_url}`, written atomically after self-registration and reused on restart.
* The journal, `<state file>.journal/` (0700), so that no claimed job is lost to a crash, a restart or
  an unreachable server:
  - `outbox/`: job status and verification reports, written **before** they are sent, sent in order,
    removed on 200 (delivered) or 404/409 (the job is gone or no longer Running: nothing to deliver);
  - `work/`: Deployment and Validation items the poll claimed (the server flipped them to Running),
    removed once their final status is in the outbox; a restart runs what is left;
  - `csr/`: a CSR whose submission got no answer; when the server still lists the job as AwaitingCSR,
    the same CSR is sent again instead of making yet another key.
Every file is created 0600 (work items carry decrypted target configs) and replaced by rename.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from certctl.agent.errors import AgentConfigError

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


def write_private_json(path: Path, value: object) -> None:
    """Write JSON to `path` atomically with mode 0600: temp file (0600 from creation), fsync, rename."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temp = path.with_name(f".{path.name}.tmp.{os.getpid()}.{os.urandom(4).hex()}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(value, handle, indent=2, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a directory be fsynced
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@dataclass(frozen=True, slots=True)
class Credentials:
    agent_id: str
    api_key: str = field(repr=False)
    server_url: str = ""


class StateFile:
    """The credentials file. `load()` is None when it does not exist; a damaged file is an error."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> Credentials | None:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise AgentConfigError(f"reading agent state file {self.path}: {exc}") from exc
        if not isinstance(raw, dict) or not raw.get("agent_id") or not raw.get("api_key"):
            raise AgentConfigError(f"agent state file {self.path} lacks agent_id or api_key")
        return Credentials(str(raw["agent_id"]), str(raw["api_key"]), str(raw.get("server_url") or ""))

    def save(self, credentials: Credentials) -> None:
        write_private_json(
            self.path,
            {
                "agent_id": credentials.agent_id,
                "api_key": credentials.api_key,
                "server_url": credentials.server_url,
            },
        )


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """A report waiting to be delivered: `POST path` with `body`."""

    path: Path  # the journal file
    job_id: str
    kind: str  # "status" or "verify"
    url_path: str
    body: dict[str, Any] = field(repr=False)


class Journal:
    """The `<state file>.journal/` directory: outbox, claimed work, pending CSRs."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._seq = 0

    @classmethod
    def beside(cls, state_file: Path) -> Journal:
        return cls(state_file.with_name(state_file.name + ".journal"))

    def _dir(self, name: str) -> Path:
        directory = self.root / name
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.root, 0o700)
        os.chmod(directory, 0o700)
        return directory

    # -- outbox ----------------------------------------------------------------------------------------

    def add_report(self, job_id: str, kind: str, url_path: str, body: dict[str, Any]) -> OutboxEntry:
        """Journal a report before it is sent; entries keep their order across restarts."""
        outbox = self._dir("outbox")
        self._seq = max(self._seq, *(self._sequence(p) for p in outbox.glob("*.json")), 0) + 1
        path = outbox / f"{self._seq:012d}-{_safe(job_id)}-{_safe(kind)}.json"
        write_private_json(path, {"job_id": job_id, "kind": kind, "path": url_path, "body": body})
        return OutboxEntry(path, job_id, kind, url_path, body)

    def pending_reports(self) -> list[OutboxEntry]:
        """Oldest first; an unreadable entry is skipped (and kept, for the operator to look at)."""
        entries = []
        for path in sorted(self._dir("outbox").glob("*.json"), key=self._sequence):
            try:
                raw = json.loads(path.read_text(encoding="utf-8"))
                entries.append(OutboxEntry(path, str(raw["job_id"]), str(raw["kind"]), str(raw["path"]), raw["body"]))
            except (OSError, ValueError, KeyError, TypeError):
                continue
        return entries

    def remove(self, entry_path: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            entry_path.unlink()

    @staticmethod
    def _sequence(path: Path) -> int:
        head = path.name.split("-", 1)[0]
        return int(head) if head.isdigit() else 0

    # -- claimed work ------------------------------------------------------------------------------------

    def save_work(self, job_id: str, item: dict[str, Any]) -> None:
        write_private_json(self._dir("work") / f"{_safe(job_id)}.json", item)

    def drop_work(self, job_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self._dir("work") / f"{_safe(job_id)}.json").unlink()

    def claimed_work(self) -> Iterator[dict[str, Any]]:
        for path in sorted(self._dir("work").glob("*.json"), key=lambda p: p.stat().st_mtime_ns):
            try:
                raw = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(raw, dict):
                yield raw

    # -- pending CSRs ------------------------------------------------------------------------------------

    def save_csr(self, job_id: str, certificate_id: str, csr_pem: str) -> None:
        write_private_json(
            self._dir("csr") / f"{_safe(job_id)}.json",
            {"job_id": job_id, "certificate_id": certificate_id, "csr_pem": csr_pem},
        )

    def pending_csr(self, job_id: str) -> str | None:
        try:
            raw = json.loads((self._dir("csr") / f"{_safe(job_id)}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        value = raw.get("csr_pem") if isinstance(raw, dict) else None
        return value if isinstance(value, str) else None

    def drop_csr(self, job_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self._dir("csr") / f"{_safe(job_id)}.json").unlink()

    def forget_csrs_except(self, job_ids: set[str]) -> None:
        """Drop pending CSRs of jobs the server no longer lists as awaiting one."""
        for path in self._dir("csr").glob("*.json"):
            if path.stem not in {_safe(job_id) for job_id in job_ids}:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()


def _safe(text: str) -> str:
    return _SAFE_NAME.sub("_", text)[:100] or "_"
