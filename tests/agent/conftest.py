"""An agent wired to the in-memory control plane: real journal, key files, connectors and files in the
test's directory; the TLS probe and the sleeps are the only stand-ins."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from certctl.agent.jobs import JobContext, JobRunner
from certctl.agent.keys import KeyFiles
from certctl.agent.reporter import Reporter
from certctl.agent.state import Journal
from certctl.agent.verify import AgentVerifier
from certctl.deploy.commands import CommandOutcome, SubprocessRunner
from certctl.deploy.connectors import ConnectorDeps
from certctl.deploy.locks import TargetLocks
from certctl.deploy.metrics import DeployCounters
from certctl.deploy.verify import Endpoint, ProbeResult
from tests.agent.fakes import FakeControlPlane


@dataclass
class RecordingRunner:
    """The real subprocess runner, plus the argument lists it ran."""

    inner: SubprocessRunner = field(default_factory=SubprocessRunner)
    calls: list[tuple[str, ...]] = field(default_factory=list)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def run(self, argv: Sequence[str], *, env: Mapping[str, str], timeout_seconds: float) -> CommandOutcome:
        with self._guard:
            self.calls.append(tuple(argv))
        return self.inner.run(argv, env=env, timeout_seconds=timeout_seconds)


@dataclass
class ScriptedProbe:
    """Answers every probe with `fingerprint` (or an error when it is empty); records the endpoints."""

    fingerprint: str = ""
    calls: list[Endpoint] = field(default_factory=list)

    def __call__(self, endpoint: Endpoint, timeout_seconds: float) -> ProbeResult:
        self.calls.append(endpoint)
        if not self.fingerprint:
            return ProbeResult(False, error=f"dial {endpoint}: connection refused")
        return ProbeResult(True, self.fingerprint)


@dataclass
class Harness:
    server: FakeControlPlane
    jobs: JobRunner
    journal: Journal
    keys: KeyFiles
    reporter: Reporter
    runner: RecordingRunner
    probe: ScriptedProbe
    root: Path
    sleeps: list[float]


@pytest.fixture
def server() -> FakeControlPlane:
    return FakeControlPlane()


@pytest.fixture
def harness(server: FakeControlPlane, tmp_path: Path) -> Harness:
    client = server.client()
    journal = Journal.beside(tmp_path / "state" / "agent.json")
    reporter = Reporter(client, journal)
    keys = KeyFiles(tmp_path / "keys")
    probe, runner = ScriptedProbe(), RecordingRunner()
    sleeps: list[float] = []
    verifier = AgentVerifier(delay_seconds=2.0, timeout_seconds=1.0, probe=probe, sleep=sleeps.append)
    deps = ConnectorDeps(
        runner=runner,
        probe=probe,
        counters=DeployCounters(),
        target_locks=TargetLocks(),
        sleep=sleeps.append,
    )
    jobs = JobRunner(JobContext(client, reporter, journal, keys, verifier, deps))
    return Harness(server, jobs, journal, keys, reporter, runner, probe, tmp_path, sleeps)
