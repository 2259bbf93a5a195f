"""The credentials file and the journal: modes, atomic writes, order, delivery rules (state.py, reporter.py)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from certctl.agent.errors import AgentConfigError, AgentRetired
from certctl.agent.protocol import ReportedStatus
from certctl.agent.reporter import Reporter
from certctl.agent.state import Credentials, Journal, StateFile
from certctl.agent.verify import VerifyReport
from tests.agent.fakes import AGENT_ID, FakeControlPlane


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_state_file_round_trip_is_0600(tmp_path: Path) -> None:
    state = StateFile(tmp_path / "lib" / "agent.json")
    assert state.load() is None
    state.save(Credentials("ag-1", "secret", "https://cp.example.com"))
    assert mode_of(state.path) == 0o600
    assert json.loads(state.path.read_text()) == {
        "agent_id": "ag-1",
        "api_key": "secret",
        "server_url": "https://cp.example.com",
    }
    assert state.load() == Credentials("ag-1", "secret", "https://cp.example.com")
    assert "secret" not in repr(state.load())
    assert sorted(p.name for p in state.path.parent.iterdir()) == ["agent.json"]  # no temp left


def test_state_file_replaces_atomically_and_stays_0600(tmp_path: Path) -> None:
    state = StateFile(tmp_path / "agent.json")
    state.save(Credentials("ag-1", "one"))
    inode = state.path.stat().st_ino
    state.save(Credentials("ag-1", "two"))
    assert state.path.stat().st_ino != inode  # a new file renamed over the old one
    assert mode_of(state.path) == 0o600
    loaded = state.load()
    assert loaded is not None
    assert loaded.api_key == "two"


@pytest.mark.parametrize("content", ["not json", "[]", '{"agent_id": "ag-1"}'])
def test_a_damaged_state_file_is_an_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "agent.json"
    path.write_text(content)
    with pytest.raises(AgentConfigError, match="state file"):
        StateFile(path).load()


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal.beside(tmp_path / "agent.json")


def test_journal_lives_beside_the_state_file_and_is_private(journal: Journal, tmp_path: Path) -> None:
    entry = journal.add_report("job-1", "status", "/p", {"status": "Completed"})
    assert journal.root == tmp_path / "agent.json.journal"
    assert mode_of(journal.root) == 0o700
    assert mode_of(entry.path.parent) == 0o700
    assert mode_of(entry.path) == 0o600


def test_reports_come_back_in_order_across_restarts(journal: Journal) -> None:
    for n in range(12):
        journal.add_report(f"job-{n}", "status", f"/p/{n}", {"n": n})
    reopened = Journal(journal.root)
    reopened.add_report("job-last", "verify", "/p/last", {"n": 12})
    assert [e.body["n"] for e in reopened.pending_reports()] == list(range(13))


def test_claimed_work_and_pending_csrs(journal: Journal) -> None:
    journal.save_work("job-a", {"id": "job-a", "type": "Deployment", "target_config": {"password": "x"}})
    assert [w["id"] for w in journal.claimed_work()] == ["job-a"]
    assert all(mode_of(p) == 0o600 for p in (journal.root / "work").iterdir())
    journal.drop_work("job-a")
    assert list(journal.claimed_work()) == []

    journal.save_csr("job-1", "mc-1", "CSR-1")
    journal.save_csr("job-2", "mc-2", "CSR-2")
    assert journal.pending_csr("job-1") == "CSR-1"
    journal.forget_csrs_except({"job-2"})
    assert journal.pending_csr("job-1") is None
    assert journal.pending_csr("job-2") == "CSR-2"


# -- the outbox's delivery rules (reporter.py) ---------------------------------------------------------------


@pytest.fixture
def server() -> FakeControlPlane:
    return FakeControlPlane()


def test_a_report_is_journaled_then_delivered_and_removed(server: FakeControlPlane, journal: Journal) -> None:
    reporter = Reporter(server.client(), journal)
    journal.save_work("job-1", {"id": "job-1"})
    reporter.status("job-1", ReportedStatus.COMPLETED, result={"stage": "done"})
    assert server.statuses("job-1") == [{"status": "Completed", "result": {"stage": "done"}}]
    assert reporter.pending() == 0
    assert list(journal.claimed_work()) == []


def test_an_unreachable_server_keeps_reports_in_order_until_it_is_back(
    server: FakeControlPlane, journal: Journal
) -> None:
    reporter = Reporter(server.client(), journal)
    server.down = True
    reporter.verification("job-1", VerifyReport("tgt-1", "aa", "aa", True))
    reporter.status("job-1", ReportedStatus.COMPLETED)
    assert reporter.pending() == 2
    server.down = False
    assert reporter.flush() is True
    delivered = [r.route for r in server.requests if r.route in ("verify", "status")]
    assert delivered[-2:] == ["verify", "status"]
    assert reporter.pending() == 0


@pytest.mark.parametrize("status", [500, 503, 401, 429])
def test_reports_that_may_succeed_later_are_kept(server: FakeControlPlane, journal: Journal, status: int) -> None:
    reporter = Reporter(server.client(), journal)
    server.fail["status"] = status
    reporter.status("job-1", ReportedStatus.FAILED, "boom")
    reporter.status("job-2", ReportedStatus.COMPLETED)
    assert reporter.pending() == 2
    assert len(server.calls("status")) == 2  # the second flush stopped at the first report again


@pytest.mark.parametrize("status", [404, 409, 400])
def test_reports_that_can_never_be_delivered_are_dropped(
    server: FakeControlPlane, journal: Journal, status: int
) -> None:
    reporter = Reporter(server.client(), journal)
    server.fail["status"] = status
    reporter.status("job-1", ReportedStatus.COMPLETED)
    assert reporter.pending() == 0


def test_a_retired_agent_stops_the_flush(server: FakeControlPlane, journal: Journal) -> None:
    reporter = Reporter(server.client(), journal)
    server.fail["status"] = 410
    with pytest.raises(AgentRetired):
        reporter.status("job-1", ReportedStatus.COMPLETED)


def test_status_reports_go_to_the_agents_own_route(server: FakeControlPlane, journal: Journal) -> None:
    Reporter(server.client(), journal).status("job-9", ReportedStatus.COMPLETED)
    assert server.calls("status")[0].path == f"/api/v1/agents/{AGENT_ID}/jobs/job-9/status"
