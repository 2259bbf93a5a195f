"""Fixtures for deploy tests: certificate material, a recording command runner, fresh counters."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pytest

from certctl.deploy.commands import CommandOutcome, SubprocessRunner
from certctl.deploy.locks import TargetLocks
from certctl.deploy.metrics import DeployCounters
from tests.deploy.material import Material, TestCA


@pytest.fixture(scope="session")
def ca() -> TestCA:
    return TestCA()


@pytest.fixture(scope="session")
def cert_a(ca: TestCA) -> Material:
    return ca.issue()


@pytest.fixture(scope="session")
def cert_b(ca: TestCA) -> Material:
    return ca.issue()


@dataclass
class RecordingRunner:
    """The real subprocess runner, plus a log of every argument list it ran (a test's witness)."""

    inner: SubprocessRunner = field(default_factory=SubprocessRunner)
    calls: list[tuple[str, ...]] = field(default_factory=list)
    envs: list[dict[str, str]] = field(default_factory=list)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def run(self, argv: Sequence[str], *, env: Mapping[str, str], timeout_seconds: float) -> CommandOutcome:
        with self._guard:
            self.calls.append(tuple(argv))
            self.envs.append(dict(env))
        return self.inner.run(argv, env=env, timeout_seconds=timeout_seconds)


@pytest.fixture
def runner() -> RecordingRunner:
    return RecordingRunner()


@pytest.fixture
def counters() -> DeployCounters:
    return DeployCounters()


@pytest.fixture
def target_locks() -> TargetLocks:
    return TargetLocks()
