"""Deploy counters (§A2.4): what each outcome increments, the snapshot, the exposition text."""

from __future__ import annotations

import pytest
from prometheus_client.exposition import generate_latest

from certctl.deploy.metrics import (
    ATTEMPTS,
    IDEMPOTENT_SKIPS,
    POST_VERIFY_FAILURES,
    RELOAD_FAILURES,
    ROLLBACKS,
    VALIDATE_FAILURES,
    CounterSample,
    DeployCounters,
)
from certctl.deploy.result import ApplyResult, DeployOutcome, DeployStage, RollbackOutcome


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        (ApplyResult(DeployOutcome.SUCCESS, DeployStage.DONE), {(ATTEMPTS, "success")}),
        (ApplyResult(DeployOutcome.UNCHANGED, DeployStage.DONE), {(ATTEMPTS, "success"), (IDEMPOTENT_SKIPS, None)}),
        (ApplyResult.stopped(DeployStage.PRECHECK, "mismatch"), {(ATTEMPTS, "failure"), (VALIDATE_FAILURES, None)}),
        (ApplyResult.stopped(DeployStage.PLAN, "bad plan"), {(ATTEMPTS, "failure")}),
        (
            ApplyResult(DeployOutcome.ROLLED_BACK, DeployStage.RELOAD, rollback=RollbackOutcome.RESTORED),
            {(ATTEMPTS, "failure"), (RELOAD_FAILURES, None), (ROLLBACKS, "restored")},
        ),
        (
            ApplyResult(DeployOutcome.ROLLBACK_FAILED, DeployStage.VERIFY, rollback=RollbackOutcome.ALSO_FAILED),
            {(ATTEMPTS, "failure"), (POST_VERIFY_FAILURES, None), (ROLLBACKS, "also_failed")},
        ),
    ],
)
def test_each_outcome_increments_its_counters(result: ApplyResult, expected: set[tuple[str, str | None]]) -> None:
    counters = DeployCounters()
    counters.record("NGINX", result)
    assert {(s.name, s.label) for s in counters.snapshot()} == expected
    assert all(s.value == 1 and s.target_type == "NGINX" for s in counters.snapshot())


def test_the_snapshot_is_sorted_and_the_exposition_has_every_family() -> None:
    counters = DeployCounters()
    counters.record("NGINX", ApplyResult(DeployOutcome.SUCCESS, DeployStage.DONE))
    counters.record("Apache", ApplyResult(DeployOutcome.SUCCESS, DeployStage.DONE))
    counters.record("Apache", ApplyResult(DeployOutcome.SUCCESS, DeployStage.DONE))
    assert counters.snapshot() == (
        CounterSample(ATTEMPTS, "Apache", "success", 2),
        CounterSample(ATTEMPTS, "NGINX", "success", 1),
    )
    text = generate_latest(counters.collector()).decode()
    assert 'certctl_deploy_attempts_total{result="success",target_type="Apache"} 2.0' in text
    for name in (ATTEMPTS, VALIDATE_FAILURES, RELOAD_FAILURES, POST_VERIFY_FAILURES, ROLLBACKS, IDEMPOTENT_SKIPS):
        assert f"# TYPE {name} counter" in text
