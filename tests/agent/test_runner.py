"""The main loop on a FrozenClock (no wall-clock sleeps): failures and backoff, retirement, stop,
reconnection, resumed work, dry run and self-registration (§A1.3, A4 cases 2-5, 23, 25, 86, 87)."""

from __future__ import annotations

import itertools
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from certctl.agent.config import AgentSettings
from certctl.agent.dryrun import DryRun
from certctl.agent.errors import AgentConfigError
from certctl.agent.identity import known_credentials, register
from certctl.agent.jobs import JobRunner
from certctl.agent.protocol import HostInfo, WorkItem
from certctl.agent.runner import MAX_BACKOFF_SECONDS, AgentLoop, LoopExit, RetirementSignal, StopSignal, backoff_seconds
from certctl.agent.state import Credentials, StateFile
from certctl.clock import FrozenClock
from certctl.deploy.connectors import ConnectorDeps
from tests.agent.conftest import Harness
from tests.agent.fakes import AGENT_ID, API_KEY, FakeControlPlane

HOST = HostInfo("web-1", "linux", "amd64", "127.0.0.1")
HEARTBEAT, POLL = 60.0, 30.0


class ClockedStop(StopSignal):
    """Each wait moves the FrozenClock instead of sleeping; stops after `limit` waits (or at `until`)."""

    def __init__(self, clock: FrozenClock, limit: int = 1_000, until: float | None = None) -> None:
        super().__init__()
        self.clock, self.limit, self.until = clock, limit, until
        self.waits: list[float] = []

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        self.clock.advance(timedelta(seconds=max(seconds, 0.0)))
        if len(self.waits) >= self.limit or (self.until is not None and self.clock.monotonic() >= self.until):
            self.set()
        return self.is_set()


def loop_for(h: Harness, stop: StopSignal, clock: FrozenClock, **kwargs: Any) -> AgentLoop:
    return AgentLoop(
        client=h.server.client(),
        host=HOST,
        jobs=h.jobs,
        reporter=h.reporter,
        journal=h.journal,
        heartbeat_interval_seconds=HEARTBEAT,
        poll_interval_seconds=POLL,
        clock=clock,
        stop=stop,
        **kwargs,
    )


# -- backoff ------------------------------------------------------------------------------------------------


@given(failures=st.integers(min_value=0, max_value=10_000), poll=st.floats(min_value=0.001, max_value=3600))
def test_backoff_is_failures_times_poll_capped_at_five_minutes(failures: int, poll: float) -> None:
    delay = backoff_seconds(failures, poll)
    assert 0 <= delay <= MAX_BACKOFF_SECONDS
    assert delay == min(failures * poll, 300.0)
    assert backoff_seconds(failures + 1, poll) >= delay


def test_no_backoff_without_failures() -> None:
    assert backoff_seconds(0, 30) == 0
    assert backoff_seconds(3, 30) == 90
    assert backoff_seconds(11, 30) == 300


# -- the loop -----------------------------------------------------------------------------------------------


def test_start_heartbeats_and_polls_at_once_then_on_the_timers(harness: Harness) -> None:
    clock = FrozenClock()
    start = clock.monotonic()
    harness.server.clock = clock
    assert loop_for(harness, ClockedStop(clock, until=start + 125), clock).run() is LoopExit.STOPPED
    assert [r.at - start for r in harness.server.calls("heartbeat")] == [0, 60, 120]
    assert [r.at - start for r in harness.server.calls("work")] == [0, 30, 60, 90, 120]


def test_a_500_heartbeat_adds_exactly_one_failure(harness: Harness) -> None:
    harness.server.fail["heartbeat"] = 500
    loop = loop_for(harness, StopSignal(), FrozenClock())
    assert loop.heartbeat() is False
    assert loop.failures == 1


def test_an_unreachable_server_adds_one_failure_per_call(harness: Harness) -> None:
    harness.server.down = True
    loop = loop_for(harness, StopSignal(), FrozenClock())
    loop.heartbeat()
    assert loop.failures == 1
    loop.poll_cycle()
    assert loop.failures == 2


def test_an_empty_poll_does_nothing_else(harness: Harness) -> None:
    loop = loop_for(harness, StopSignal(), FrozenClock())
    loop.poll_cycle()
    assert [r.route for r in harness.server.requests] == ["work"]
    assert loop.failures == 0


def test_polls_back_off_while_the_server_is_down_and_resume_when_it_returns(harness: Harness) -> None:
    clock = FrozenClock()
    start = clock.monotonic()
    harness.server.clock, harness.server.down = clock, True
    stop = ClockedStop(clock, until=start + 2000)
    loop = loop_for(harness, stop, clock)
    loop.run()
    polls = [r.at - start for r in harness.server.calls("work")]
    gaps = [b - a for a, b in itertools.pairwise(polls)]
    # failures grow with every heartbeat and poll, so each wait is longer, up to poll + 5 minutes
    assert gaps == sorted(gaps)
    assert gaps[0] > POLL
    assert gaps[-1] == POLL + MAX_BACKOFF_SECONDS
    assert loop.failures > 5

    harness.server.down = False
    stop.until = None
    stop.limit = len(stop.waits) + 3
    loop.stop = stop
    stop._event.clear()
    loop.run()
    assert loop.failures == 0  # the next heartbeat reconnected
    heartbeat_back = harness.server.calls("heartbeat")[-1].at
    assert harness.server.calls("work")[-1].at <= heartbeat_back + POLL  # and the poll came right after


def test_a_successful_heartbeat_after_failures_delivers_the_outbox_and_polls_at_once(harness: Harness) -> None:
    from certctl.agent.protocol import ReportedStatus

    clock = FrozenClock()
    harness.server.down = True
    harness.reporter.status("job-1", ReportedStatus.COMPLETED)
    assert harness.reporter.pending() == 1
    loop = loop_for(harness, StopSignal(), clock)
    loop.heartbeat()
    assert loop.failures == 1
    harness.server.down = False
    stop = ClockedStop(clock, limit=1)
    loop.stop = stop
    loop.run()
    assert harness.reporter.pending() == 0
    assert harness.server.statuses("job-1")[-1] == {"status": "Completed"}


def test_awaiting_csr_and_deployment_items_each_reach_their_handler(harness: Harness) -> None:
    harness.server.work = [
        {
            "id": "job-1",
            "type": "Issuance",
            "status": "AwaitingCSR",
            "certificate_id": "mc-1",
            "common_name": "a.example.com",
        },
        {"id": "job-2", "type": "Deployment", "status": "Running", "certificate_id": "mc-1"},
    ]
    loop = loop_for(harness, StopSignal(), FrozenClock())
    loop.poll_cycle()
    assert len(harness.server.calls("csr")) == 1
    assert [s["status"] for s in harness.server.statuses("job-2")] == ["Running", "Completed"]


def test_claimed_work_interrupted_by_an_outage_runs_after_reconnecting(harness: Harness) -> None:
    harness.server.work = [{"id": "job-2", "type": "Deployment", "status": "Running", "certificate_id": "mc-1"}]
    harness.server.down_after = "status"  # the server goes away right after accepting "Running"
    loop = loop_for(harness, StopSignal(), FrozenClock())
    loop.poll_cycle()
    assert [w["id"] for w in harness.journal.claimed_work()] == ["job-2"]
    assert loop.failures == 1

    harness.server.down, harness.server.work = False, []
    loop.poll_cycle()  # the item comes from the journal: the poll no longer lists it
    assert [s["status"] for s in harness.server.statuses("job-2")] == ["Running", "Running", "Failed"]
    assert harness.server.statuses("job-2")[-1]["error"].startswith("cert fetch failed")  # no mc-1 here
    assert list(harness.journal.claimed_work()) == []


def test_a_stop_request_ends_the_loop(harness: Harness) -> None:
    stop = StopSignal()
    stop.set()
    assert loop_for(harness, stop, FrozenClock()).run() is LoopExit.STOPPED


def test_410_on_heartbeat_and_work_retires_the_agent(harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    harness.server.fail["heartbeat"] = harness.server.fail["work"] = 410
    harness.server.fail_body["heartbeat"] = {"error": "Gone", "message": "Agent has been retired: decommissioned"}
    loop = loop_for(harness, ClockedStop(FrozenClock()), FrozenClock())
    with caplog.at_level(logging.WARNING, logger="certctl.agent"):
        assert loop.run() is LoopExit.RETIRED
    assert loop.failures == 0  # a 410 is not a failure
    assert loop.retirement.reason == "Agent has been retired: decommissioned"
    assert any(
        "agent retired by control plane" in r.getMessage() and "status 0" in r.getMessage() for r in caplog.records
    )


def test_the_retirement_signal_is_one_shot() -> None:
    signal = RetirementSignal()
    assert signal.close("first") is True
    assert signal.close("second") is False
    assert signal.reason == "first"
    assert signal.closed


# -- dry run (A4 case 87) ------------------------------------------------------------------------------------


def test_dry_run_plans_without_keys_writes_or_reports(harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    site = harness.root / "site"
    site.mkdir()
    harness.server.work = [
        {
            "id": "job-1",
            "type": "Deployment",
            "status": "Running",
            "certificate_id": "mc-1",
            "target_id": "tgt-1",
            "target_type": "Files",
            "target_config": {"cert_path": str(site / "cert.pem"), "validate_command": "true"},
        },
        {"id": "job-2", "type": "Renewal", "status": "AwaitingCSR", "certificate_id": "mc-1", "common_name": "a"},
    ]
    from certctl.agent.keys import generate_private_key, private_key_pem

    key = generate_private_key()
    harness.keys.install("mc-1", private_key_pem(key))
    harness.server.certificates["mc-1"] = harness.server.ca.sign(key.public_key(), "a")
    keys_before = sorted(p.name for p in harness.keys.key_dir.iterdir())
    dry = DryRun(harness.server.client(), harness.keys, ConnectorDeps(runner=harness.runner))
    loop = loop_for(harness, StopSignal(), FrozenClock(), dry_run=dry)
    with caplog.at_level(logging.INFO, logger="certctl.agent"):
        assert loop.run() is LoopExit.DRY_RUN_DONE
    assert [r.route for r in harness.server.requests] == ["heartbeat", "work", "certificate"]
    assert sorted(p.name for p in harness.keys.key_dir.iterdir()) == keys_before
    assert list(site.iterdir()) == []
    assert not harness.journal.root.exists()
    messages = [r.getMessage() for r in caplog.records]
    assert any("dry-run: would deploy the newest version of mc-1 to Files target tgt-1" in m for m in messages)
    assert any("dry-run: would generate a ECDSA-P256 key" in m for m in messages)


# -- identity (A4 case 86) -----------------------------------------------------------------------------------


def test_explicit_id_and_key_win(tmp_path: Path) -> None:
    settings = AgentSettings(agent_id="ag-1", api_key="k")
    assert known_credentials(settings, StateFile(tmp_path / "agent.json")) == Credentials(
        "ag-1", "k", settings.server_url
    )


def test_without_credentials_or_token_the_agent_says_how_to_register(tmp_path: Path) -> None:
    with pytest.raises(AgentConfigError, match="Register an agent first via POST /api/v1/agents"):
        known_credentials(AgentSettings(), StateFile(tmp_path / "agent.json"))
    with pytest.raises(AgentConfigError, match="CERTCTL_API_KEY"):
        known_credentials(AgentSettings(agent_id="ag-1"), StateFile(tmp_path / "agent.json"))


def test_self_registration_stores_the_credential_and_is_reused(tmp_path: Path, server: FakeControlPlane) -> None:
    settings = AgentSettings(bootstrap_token="boot", agent_name="web-1")
    state = StateFile(tmp_path / "lib" / "agent.json")
    assert known_credentials(settings, state) is None
    credentials = register(server.client(agent_id="", credential=None), settings, state, HOST)
    assert credentials == Credentials(AGENT_ID, API_KEY, settings.server_url)
    assert state.path.stat().st_mode & 0o777 == 0o600
    assert known_credentials(settings, state) == credentials  # a restart registers nothing
    assert len(server.calls("register")) == 1


@pytest.mark.parametrize(("status", "message"), [(401, "bootstrap token"), (409, "already exists")])
def test_a_refused_registration_explains_itself(
    tmp_path: Path, server: FakeControlPlane, status: int, message: str
) -> None:
    server.fail["register"] = status
    with pytest.raises(AgentConfigError, match=message):
        register(
            server.client(agent_id="", credential=None),
            AgentSettings(bootstrap_token="b"),
            StateFile(tmp_path / "s.json"),
            HOST,
        )


def test_a_stop_between_claimed_jobs_leaves_the_rest_for_the_next_start(harness: Harness) -> None:
    harness.server.work = [
        {"id": f"job-{n}", "type": "Deployment", "status": "Running", "certificate_id": "mc-1"} for n in (1, 2)
    ]
    stop = StopSignal()

    class StopAfterOne:
        def run(self, item: WorkItem) -> None:
            harness.jobs.run(item)
            stop.set()  # SIGTERM arrives while the first job runs

    loop = loop_for(harness, stop, FrozenClock())
    loop._jobs = cast(JobRunner, StopAfterOne())
    loop.poll_cycle()
    assert harness.server.statuses("job-1")[-1]["status"] == "Failed"  # finished (no mc-1 here)
    assert harness.server.statuses("job-2") == []
    assert [w["id"] for w in harness.journal.claimed_work()] == ["job-2"]
