"""Operator commands (validate, reload) run as argument lists, never through a shell (§A2.3).

The text passes the injection guard (`security/commands.py`) when the config is checked; it is then
split on whitespace — the guard has already refused quotes, escapes and every other shell syntax, so
this is exactly how `sh` would split it. Leading `NAME=value` words set environment variables, as they
would in `sh`. The placeholders `{cert_path}`, `{key_path}`, `{chain_path}`, `{pem_path}` are replaced
inside the words (and those values) after the check, so a path with spaces stays one argument and is
never re-parsed. No globbing, `~` or variable expansion happens.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from certctl.deploy.errors import CommandFailed
from certctl.security.commands import COMMAND_PLACEHOLDERS, validate_command

DEFAULT_COMMAND_TIMEOUT_SECONDS = 60.0
MAX_OUTPUT_CHARS = 4000  # the tail of the output kept for error messages
# Environment variables carrying the staged paths, for scripts and configs that read them (§A2.1).
PLACEHOLDER_ENV = {
    "{cert_path}": "CERTCTL_STAGED_CERT",
    "{key_path}": "CERTCTL_STAGED_KEY",
    "{chain_path}": "CERTCTL_STAGED_CHAIN",
    "{pem_path}": "CERTCTL_STAGED_PEM",
}
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=.*", re.DOTALL)


@dataclass(frozen=True, slots=True)
class OperatorCommand:
    """A checked command. Build with `parse`; raises ValueError (the guard's message) when refused."""

    text: str
    environment: tuple[tuple[str, str], ...]
    words: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> OperatorCommand:
        validate_command(text)
        words = text.split()
        environment: list[tuple[str, str]] = []
        while words and _ASSIGNMENT.fullmatch(words[0]):
            name, _, value = words.pop(0).partition("=")
            environment.append((name, value))
        if not words:
            raise ValueError("command has no program to run, only variable assignments")
        return cls(text, tuple(environment), tuple(words))

    def __str__(self) -> str:
        return self.text

    @property
    def placeholders(self) -> frozenset[str]:
        """The placeholders used; a validate command with any runs against the staged files (§A2.1)."""
        texts = [*self.words, *(value for _, value in self.environment)]
        return frozenset(p for p in COMMAND_PLACEHOLDERS if any(p in text for text in texts))

    def argv(self, paths: Mapping[str, str]) -> list[str]:
        """The argument list with placeholders replaced from `paths` ({placeholder: path}).

        Raises CommandFailed when a placeholder has no path in this deployment.
        """
        missing = sorted(self.placeholders - paths.keys())
        if missing:
            raise CommandFailed(
                f"{self.text}: {', '.join(missing)} names no file in this deployment", returncode=None, output=""
            )
        return [_substitute(word, paths) for word in self.words]

    def env(self, paths: Mapping[str, str], *, staged: bool = False) -> dict[str, str]:
        """Variables to add: CERTCTL_STAGED_* when `paths` are staged files, then the command's own assignments."""
        extra = {PLACEHOLDER_ENV[p]: path for p, path in paths.items() if staged and p in PLACEHOLDER_ENV}
        extra.update((name, _substitute(value, paths)) for name, value in self.environment)
        return extra


def _substitute(text: str, paths: Mapping[str, str]) -> str:
    for placeholder in COMMAND_PLACEHOLDERS:
        if placeholder in text and placeholder in paths:
            text = text.replace(placeholder, paths[placeholder])
    return text


@dataclass(frozen=True, slots=True)
class CommandOutcome:
    argv: tuple[str, ...]
    returncode: int | None  # None: killed after the timeout
    output: str  # stdout and stderr interleaved, tail only
    duration_seconds: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class CommandRunner(Protocol):
    def run(self, argv: Sequence[str], *, env: Mapping[str, str], timeout_seconds: float) -> CommandOutcome: ...


class SubprocessRunner:
    """Runs a program with no shell, no stdin, in its own process group; output goes to a temp file.

    A file rather than a pipe: a reload that starts a daemon (`apachectl graceful` on a stopped
    server) leaves it holding our stdout, and reading a pipe to EOF would wait for the daemon to exit.
    On timeout the whole process group is killed.
    """

    def run(self, argv: Sequence[str], *, env: Mapping[str, str], timeout_seconds: float) -> CommandOutcome:
        started = time.perf_counter()
        with tempfile.TemporaryFile() as sink:
            try:
                process = subprocess.Popen(  # noqa: S603 - an argument list from a checked OperatorCommand
                    list(argv),
                    stdin=subprocess.DEVNULL,
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, **env},
                    start_new_session=True,
                    close_fds=True,
                )
            except OSError as exc:  # program missing or not executable
                return CommandOutcome(tuple(argv), 127, f"cannot run {argv[0]}: {exc.strerror}", 0.0)
            try:
                returncode: int | None = process.wait(timeout=timeout_seconds)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                returncode = None
            sink.seek(0)
            output = sink.read().decode("utf-8", errors="replace")
        return CommandOutcome(
            tuple(argv), returncode, output[-MAX_OUTPUT_CHARS:].strip(), time.perf_counter() - started
        )


def run_command(
    runner: CommandRunner,
    command: OperatorCommand,
    *,
    what: str,
    paths: Mapping[str, str],
    staged: bool = False,
    timeout_seconds: float = DEFAULT_COMMAND_TIMEOUT_SECONDS,
) -> CommandOutcome:
    """Run `command` with `paths` (staged temps, or the live files) substituted.

    Raises CommandFailed "<what> failed: … (output: …)" on a non-zero exit, a timeout or a missing program.
    """
    outcome = runner.run(command.argv(paths), env=command.env(paths, staged=staged), timeout_seconds=timeout_seconds)
    if outcome.ok:
        return outcome
    status = (
        f"timed out after {timeout_seconds:g} s" if outcome.returncode is None else f"exit status {outcome.returncode}"
    )
    detail = f" (output: {outcome.output})" if outcome.output else ""
    raise CommandFailed(f"{what} failed: {status}{detail}", returncode=outcome.returncode, output=outcome.output)
