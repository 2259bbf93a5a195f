"""The atomic multi-file primitive on real files (agent-targets-discovery.md §A2.1, A4 #29-#42)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path

import pytest

from certctl.deploy.apply import Hooks, apply, validate_staged
from certctl.deploy.errors import (
    PlanInvalid,
    ReloadFailed,
    RollbackFailed,
    StepFailed,
    ValidateFailed,
    VerifyFailed,
    WriteFailed,
)
from certctl.deploy.files import BACKUP_MARKER, TEMP_MARKER, backups_of, unique_suffix
from certctl.deploy.metrics import ATTEMPTS, IDEMPOTENT_SKIPS, ROLLBACKS, DeployCounters
from certctl.deploy.ownership import OwnershipError
from certctl.deploy.plan import FileDefaults, FileRole, Plan, PlannedFile
from certctl.deploy.result import DeployOutcome, DeployStage, RollbackOutcome


class Calls:
    """Hooks that count their calls and fail as told."""

    def __init__(self, *, fail_validate: bool = False, reload_failures: int = 0, fail_verify: bool = False) -> None:
        self.validate = self.reload = self.verify = 0
        self._fail_validate, self._reload_failures, self._fail_verify = fail_validate, reload_failures, fail_verify

    def on_validate(self) -> None:
        self.validate += 1
        if self._fail_validate:
            raise StepFailed("nginx -t failed: invalid SAN")

    def on_reload(self) -> None:
        self.reload += 1
        if self.reload <= self._reload_failures:
            raise StepFailed("nginx -s reload failed: exit status 1")

    def on_verify(self) -> None:
        self.verify += 1
        if self._fail_verify:
            raise StepFailed("post-deploy TLS verify SHA-256 mismatch")

    def hooks(self) -> Hooks:
        return Hooks(validate_after_swap=self.on_validate, reload=self.on_reload, verify=self.on_verify)


def existing(directory: Path, **files: str) -> dict[str, Path]:
    paths = {}
    for name, text in files.items():
        path = directory / f"{name}.pem"
        path.write_text(text)
        paths[name] = path
    return paths


def three_files(paths: Mapping[str, Path], suffix: str = "NEW") -> Plan:
    return Plan(
        (
            PlannedFile(paths["cert"], f"CERT-{suffix}".encode()),
            PlannedFile(paths["chain"], f"CHAIN-{suffix}".encode(), FileRole.CHAIN),
            PlannedFile(paths["key"], f"KEY-{suffix}".encode(), FileRole.KEY),
        )
    )


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if TEMP_MARKER in p.name)


def test_happy_path_writes_every_file_and_calls_each_hook_once(tmp_path: Path) -> None:
    paths = existing(tmp_path, cert="CERT-OLD", chain="CHAIN-OLD", key="KEY-OLD")
    calls = Calls()
    result = apply(three_files(paths), calls.hooks())
    assert [paths[n].read_text() for n in ("cert", "chain", "key")] == ["CERT-NEW", "CHAIN-NEW", "KEY-NEW"]
    assert (calls.validate, calls.reload, calls.verify) == (1, 1, 1)
    assert result.outcome is DeployOutcome.SUCCESS
    assert result.stage is DeployStage.DONE
    assert result.validate_ok is True
    assert result.reloaded
    assert not result.rolled_back
    assert {"write", "backup", "swap", "validate", "reload", "verify"} <= result.timings.keys()
    assert all(result.backup_paths[p] is not None for p in paths.values())
    assert leftovers(tmp_path) == []


def test_staged_validation_sees_the_new_bytes_before_the_live_files_change(tmp_path: Path) -> None:
    paths = existing(tmp_path, cert="CERT-OLD", chain="CHAIN-OLD", key="KEY-OLD")
    seen: dict[Path, tuple[str, str]] = {}

    def check(staged: Mapping[Path, Path]) -> None:
        for final, temp in staged.items():
            assert temp.parent == final.parent
            assert TEMP_MARKER in temp.name
            seen[final] = (temp.read_text(), final.read_text())

    apply(three_files(paths), Hooks(validate_staged=check))
    assert seen[paths["cert"]] == ("CERT-NEW", "CERT-OLD")
    assert seen[paths["key"]] == ("KEY-NEW", "KEY-OLD")


def test_a_staged_validation_failure_leaves_live_files_and_no_temps(tmp_path: Path) -> None:
    paths = existing(tmp_path, cert="CERT-OLD", chain="CHAIN-OLD", key="KEY-OLD")

    def refuse(staged: Mapping[Path, Path]) -> None:
        raise StepFailed("haproxy -c -f failed: inconsistencies between private key and certificate")

    calls = Calls()
    with pytest.raises(ValidateFailed, match="inconsistencies") as caught:
        apply(three_files(paths), Hooks(validate_staged=refuse, reload=calls.on_reload))
    assert paths["cert"].read_text() == "CERT-OLD"
    assert calls.reload == 0
    assert leftovers(tmp_path) == []
    assert not any(BACKUP_MARKER in p.name for p in tmp_path.iterdir())
    result = caught.value.result
    assert result is not None
    assert result.outcome is DeployOutcome.FAILED
    assert result.validate_ok is False


def test_a_validate_failure_after_the_swap_restores_every_file_without_reloading(tmp_path: Path) -> None:
    paths = existing(tmp_path, cert="CERT-OLD", chain="CHAIN-OLD", key="KEY-OLD")
    calls = Calls(fail_validate=True)
    with pytest.raises(ValidateFailed, match="invalid SAN") as caught:
        apply(three_files(paths), calls.hooks())
    assert [paths[n].read_text() for n in ("cert", "chain", "key")] == ["CERT-OLD", "CHAIN-OLD", "KEY-OLD"]
    assert calls.reload == 0
    assert leftovers(tmp_path) == []
    result = caught.value.result
    assert result is not None
    assert result.outcome is DeployOutcome.ROLLED_BACK
    assert result.stage is DeployStage.VALIDATE
    assert result.rollback is RollbackOutcome.RESTORED


def test_a_reload_failing_once_restores_the_original_bytes_and_reloads_again(tmp_path: Path) -> None:
    paths = existing(tmp_path, cert="CERT-OLD", chain="CHAIN-OLD", key="KEY-OLD")
    calls = Calls(reload_failures=1)
    with pytest.raises(ReloadFailed, match="exit status 1") as caught:
        apply(three_files(paths), calls.hooks())
    assert paths["cert"].read_text() == "CERT-OLD"
    assert paths["key"].read_text() == "KEY-OLD"
    assert calls.reload == 2
    assert calls.verify == 0
    assert caught.value.result is not None
    assert caught.value.result.rolled_back


def test_a_reload_that_always_fails_is_a_rollback_failure_and_keeps_the_backups(tmp_path: Path) -> None:
    paths = existing(tmp_path, cert="CERT-OLD", chain="CHAIN-OLD", key="KEY-OLD")
    plan = Plan(three_files(paths).files, backup_retention=-1)
    with pytest.raises(RollbackFailed, match="reload after restoring failed") as caught:
        apply(plan, Calls(reload_failures=99).hooks())
    assert paths["cert"].read_text() == "CERT-OLD"  # the files did come back
    result = caught.value.result
    assert result is not None
    assert result.rollback is RollbackOutcome.ALSO_FAILED
    assert len(backups_of(paths["cert"], None)) == 1  # kept for the operator even with retention -1


def test_a_file_that_did_not_exist_is_removed_by_the_rollback(tmp_path: Path) -> None:
    paths = existing(tmp_path, cert="CERT-OLD")
    new_key = tmp_path / "key.pem"
    plan = Plan((PlannedFile(paths["cert"], b"CERT-NEW"), PlannedFile(new_key, b"KEY-NEW", FileRole.KEY)))
    with pytest.raises(ReloadFailed):
        apply(plan, Calls(reload_failures=1).hooks())
    assert not new_key.exists()
    assert paths["cert"].read_text() == "CERT-OLD"


def test_a_verify_failure_restores_and_reloads_again(tmp_path: Path) -> None:
    paths = existing(tmp_path, cert="CERT-OLD", chain="CHAIN-OLD", key="KEY-OLD")
    calls = Calls(fail_verify=True)
    with pytest.raises(VerifyFailed, match="mismatch"):
        apply(three_files(paths), calls.hooks())
    assert paths["cert"].read_text() == "CERT-OLD"
    assert calls.reload == 2


def test_a_deleted_backup_makes_the_rollback_fail(tmp_path: Path) -> None:
    paths = existing(tmp_path, cert="CERT-OLD")

    def lose_backups() -> None:
        for backup in backups_of(paths["cert"], None):
            backup.unlink()
        raise StepFailed("reload failed")

    with pytest.raises(RollbackFailed, match="restoring failed"):
        apply(Plan((PlannedFile(paths["cert"], b"CERT-NEW"),)), Hooks(reload=lose_backups))


def test_a_failed_rename_midway_restores_the_files_already_renamed(tmp_path: Path) -> None:
    paths = existing(tmp_path, cert="CERT-OLD", key="KEY-OLD")
    plan = Plan((PlannedFile(paths["cert"], b"CERT-NEW"), PlannedFile(paths["key"], b"KEY-NEW", FileRole.KEY)))

    def remove_second_temp(staged: Mapping[Path, Path]) -> None:
        staged[paths["key"]].unlink()

    with pytest.raises(WriteFailed, match=f"rename {paths['key']}") as caught:
        apply(plan, Hooks(validate_staged=remove_second_temp))
    assert paths["cert"].read_text() == "CERT-OLD"
    assert paths["key"].read_text() == "KEY-OLD"
    assert caught.value.result is not None
    assert caught.value.result.rolled_back
    assert leftovers(tmp_path) == []


def test_a_hook_crashing_with_any_exception_still_rolls_back(tmp_path: Path) -> None:
    paths = existing(tmp_path, cert="CERT-OLD")

    crashed: list[bool] = []

    def crash() -> None:
        if not crashed:
            crashed.append(True)
            raise KeyError("bug")

    with pytest.raises(ReloadFailed, match="KeyError") as caught:
        apply(Plan((PlannedFile(paths["cert"], b"CERT-NEW"),)), Hooks(reload=crash))
    assert paths["cert"].read_text() == "CERT-OLD"
    assert isinstance(caught.value.__cause__, StepFailed)
    assert isinstance(caught.value.__cause__.__cause__, KeyError)


def test_identical_bytes_everywhere_skip_hooks_backups_and_writes(tmp_path: Path) -> None:
    paths = existing(tmp_path, cert="CERT-NEW", chain="CHAIN-NEW", key="KEY-NEW")
    inodes = {p: os.stat(p).st_ino for p in paths.values()}
    calls = Calls()
    result = apply(three_files(paths), calls.hooks())
    assert result.outcome is DeployOutcome.UNCHANGED
    assert result.idempotent
    assert (calls.validate, calls.reload, calls.verify) == (0, 0, 0)
    assert {p: os.stat(p).st_ino for p in paths.values()} == inodes
    assert not any(BACKUP_MARKER in p.name for p in tmp_path.iterdir())


def test_one_file_new_and_one_identical_is_a_full_deploy(tmp_path: Path) -> None:
    paths = existing(tmp_path, cert="CERT-NEW")
    calls = Calls()
    plan = Plan((PlannedFile(paths["cert"], b"CERT-NEW"), PlannedFile(tmp_path / "key.pem", b"KEY", FileRole.KEY)))
    assert apply(plan, calls.hooks()).outcome is DeployOutcome.SUCCESS
    assert calls.validate == 1
    assert calls.reload == 1


def test_force_deploys_identical_bytes(tmp_path: Path) -> None:
    paths = existing(tmp_path, cert="CERT-NEW")
    calls = Calls()
    assert apply(Plan((PlannedFile(paths["cert"], b"CERT-NEW"),)), calls.hooks(), force=True).outcome.value == "success"
    assert calls.reload == 1


def test_an_existing_mode_is_kept_and_new_files_get_0644_or_0600_for_keys(tmp_path: Path) -> None:
    paths = existing(tmp_path, cert="CERT-OLD")
    os.chmod(paths["cert"], 0o640)
    plan = Plan(
        (
            PlannedFile(paths["cert"], b"CERT-NEW"),
            PlannedFile(tmp_path / "chain.pem", b"CHAIN", FileRole.CHAIN),
            PlannedFile(tmp_path / "key.pem", b"KEY", FileRole.KEY),
        )
    )
    apply(plan)
    modes = {name: os.stat(tmp_path / name).st_mode & 0o7777 for name in ("cert.pem", "chain.pem", "key.pem")}
    assert modes == {"cert.pem": 0o640, "chain.pem": 0o644, "key.pem": 0o600}


def test_an_explicit_mode_wins_over_the_existing_one_and_defaults_apply_to_new_files(tmp_path: Path) -> None:
    paths = existing(tmp_path, key="KEY-OLD")
    os.chmod(paths["key"], 0o600)
    plan = Plan(
        (
            PlannedFile(paths["key"], b"KEY-NEW", FileRole.KEY, mode=0o640),
            PlannedFile(tmp_path / "cert.pem", b"CERT"),
        ),
        defaults=FileDefaults(mode=0o604),
    )
    apply(plan)
    assert os.stat(paths["key"]).st_mode & 0o7777 == 0o640
    assert os.stat(tmp_path / "cert.pem").st_mode & 0o7777 == 0o604


@pytest.mark.skipif(os.geteuid() != 0, reason="giving files to another user needs root")
def test_existing_owner_and_group_are_kept_and_explicit_ones_applied(tmp_path: Path) -> None:
    paths = existing(tmp_path, cert="CERT-OLD", key="KEY-OLD")
    os.chown(paths["cert"], 65534, 65534)
    os.chmod(paths["cert"], 0o640)
    plan = Plan(
        (
            PlannedFile(paths["cert"], b"CERT-NEW"),
            PlannedFile(paths["key"], b"KEY-NEW", FileRole.KEY, owner="33", group="www-data"),
            PlannedFile(tmp_path / "chain.pem", b"CHAIN", FileRole.CHAIN),
        ),
        defaults=FileDefaults(owner="nobody", group="nogroup"),
    )
    apply(plan)
    cert, key, chain = (os.stat(tmp_path / n) for n in ("cert.pem", "key.pem", "chain.pem"))
    assert (cert.st_uid, cert.st_gid, cert.st_mode & 0o7777) == (65534, 65534, 0o640)
    assert (key.st_uid, key.st_gid) == (33, 33)
    assert (chain.st_uid, chain.st_gid) == (65534, 65534)  # new file: the defaults


@pytest.mark.skipif(os.geteuid() != 0, reason="giving files to another user needs root")
def test_a_rollback_restores_the_original_owner_and_mode(tmp_path: Path) -> None:
    paths = existing(tmp_path, cert="CERT-OLD")
    os.chown(paths["cert"], 65534, 65534)
    os.chmod(paths["cert"], 0o604)
    plan = Plan((PlannedFile(paths["cert"], b"CERT-NEW", mode=0o600, owner="0", group="0"),))
    with pytest.raises(ReloadFailed):
        apply(plan, Calls(reload_failures=1).hooks())
    info = os.stat(paths["cert"])
    assert (info.st_uid, info.st_gid, info.st_mode & 0o7777) == (65534, 65534, 0o604)


def test_an_unknown_owner_aborts_before_any_write(tmp_path: Path) -> None:
    paths = existing(tmp_path, cert="CERT-OLD")
    plan = Plan((PlannedFile(paths["cert"], b"CERT-NEW", owner="no-such-user-certctl", group="root"),))
    with pytest.raises(OwnershipError, match="unknown user"):
        apply(plan)
    assert paths["cert"].read_text() == "CERT-OLD"
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(("retention", "deploys", "kept"), [(2, 5, 2), (0, 6, 3), (3, 6, 3), (-1, 4, 0)])
def test_backups_are_pruned_to_the_retention(tmp_path: Path, retention: int, deploys: int, kept: int) -> None:
    cert = existing(tmp_path, cert="CERT-0")["cert"]
    for n in range(1, deploys + 1):
        apply(Plan((PlannedFile(cert, f"CERT-{n}".encode()),), backup_retention=retention))
    backups = backups_of(cert, None)
    assert len(backups) == kept
    if kept:  # the newest survive
        assert backups[-1].read_text() == f"CERT-{deploys - 1}"


def test_a_backup_directory_keeps_backups_away_from_the_served_files(tmp_path: Path) -> None:
    live, vault = tmp_path / "live", tmp_path / "backups"
    live.mkdir()
    cert = existing(live, cert="CERT-0")["cert"]
    for n in range(1, 4):
        apply(Plan((PlannedFile(cert, f"CERT-{n}".encode()),), backup_retention=2, backup_dir=vault))
    assert not any(BACKUP_MARKER in p.name for p in live.iterdir())
    assert [b.read_text() for b in backups_of(cert, vault)] == ["CERT-1", "CERT-2"]
    assert os.stat(vault).st_mode & 0o777 == 0o700


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: Plan(()), "no files"),
        (lambda d: Plan((PlannedFile(Path(""), b"x"),)), "empty path"),
        (lambda d: Plan((PlannedFile(d / "a", b"x"), PlannedFile(d / "sub/../a", b"y"))), "twice"),
        (lambda d: Plan((PlannedFile(d / "a", b"x"),), backup_retention=-2), "below -1"),
        (lambda d: PlannedFile(d / "a", b"x", mode=0o10000), "outside"),
    ],
)
def test_invalid_plans_are_refused_on_construction(tmp_path: Path, make: object, message: str) -> None:
    with pytest.raises(PlanInvalid, match=message):
        make(tmp_path)  # type: ignore[operator]


def test_a_directory_at_a_destination_is_refused(tmp_path: Path) -> None:
    (tmp_path / "cert.pem").mkdir()
    with pytest.raises(PlanInvalid, match="not a regular file"):
        apply(Plan((PlannedFile(tmp_path / "cert.pem", b"x"),)))


def test_concurrent_applies_to_one_file_serialise_and_never_tear(tmp_path: Path) -> None:
    cert = existing(tmp_path, cert="CERT-0")["cert"]
    inside, peak, guard = 0, 0, threading.Lock()
    contents = [f"CERT-{n}-".encode() * 2000 for n in range(8)]

    def slow_reload() -> None:
        nonlocal inside, peak
        with guard:
            inside += 1
            peak = max(peak, inside)
        time.sleep(0.02)
        with guard:
            inside -= 1

    threads = [
        threading.Thread(target=apply, args=(Plan((PlannedFile(cert, data),)), Hooks(reload=slow_reload)))
        for data in contents
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert peak == 1
    assert cert.read_bytes() in contents


def test_another_process_holding_the_lock_file_makes_apply_wait(tmp_path: Path) -> None:
    import fcntl

    from certctl.deploy.locks import lock_file_for

    cert = existing(tmp_path, cert="CERT-0")["cert"]
    holder = os.open(lock_file_for(cert), os.O_RDWR | os.O_CREAT, 0o600)  # its own open file description,
    fcntl.flock(holder, fcntl.LOCK_EX)  # so it conflicts exactly as another process's would
    done = threading.Event()

    def deploy() -> None:
        apply(Plan((PlannedFile(cert, b"CERT-1"),)))
        done.set()

    worker = threading.Thread(target=deploy)
    worker.start()
    try:
        assert not done.wait(0.3)
        assert cert.read_text() == "CERT-0"
    finally:
        os.close(holder)
    worker.join(5)
    assert done.is_set()
    assert cert.read_text() == "CERT-1"


def test_the_lock_times_out_with_a_clear_error(tmp_path: Path) -> None:
    import fcntl

    from certctl.deploy.errors import LockTimeout
    from certctl.deploy.locks import lock_file_for

    cert = existing(tmp_path, cert="CERT-0")["cert"]
    holder = os.open(lock_file_for(cert), os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(holder, fcntl.LOCK_EX)
    try:
        with pytest.raises(LockTimeout, match="held by another process"):
            apply(Plan((PlannedFile(cert, b"CERT-1"),)), lock_timeout_seconds=0.1)
    finally:
        os.close(holder)


def test_validate_staged_dry_run_never_touches_live_files(tmp_path: Path) -> None:
    paths = existing(tmp_path, cert="CERT-OLD")
    seen: list[str] = []
    validate_staged(
        Plan((PlannedFile(paths["cert"], b"CERT-NEW"),)), lambda s: seen.append(s[paths["cert"]].read_text())
    )
    assert seen == ["CERT-NEW"]
    assert paths["cert"].read_text() == "CERT-OLD"
    assert leftovers(tmp_path) == []
    with pytest.raises(ValidateFailed, match="nope"):
        validate_staged(Plan((PlannedFile(paths["cert"], b"X"),)), lambda s: (_ for _ in ()).throw(StepFailed("nope")))
    assert leftovers(tmp_path) == []


def test_the_primitive_counts_each_run(tmp_path: Path) -> None:
    counters = DeployCounters()
    cert = existing(tmp_path, cert="CERT-OLD")["cert"]
    apply(Plan((PlannedFile(cert, b"CERT-NEW"),)), counters=counters, target_type="NGINX")
    apply(Plan((PlannedFile(cert, b"CERT-NEW"),)), counters=counters, target_type="NGINX")
    with pytest.raises(ReloadFailed):
        apply(
            Plan((PlannedFile(cert, b"X"),)), Calls(reload_failures=1).hooks(), counters=counters, target_type="NGINX"
        )
    assert counters.value(ATTEMPTS, "NGINX", "success") == 2
    assert counters.value(ATTEMPTS, "NGINX", "failure") == 1
    assert counters.value(IDEMPOTENT_SKIPS, "NGINX") == 1
    assert counters.value(ROLLBACKS, "NGINX", "restored") == 1


def test_backup_suffixes_are_19_digits_and_increase() -> None:
    first, second = unique_suffix(), unique_suffix()
    assert len(first) == len(second) == 19
    assert second > first
