"""Java keystore connector against the real keytool (JDK 17), PKCS#12 and JKS (A4 #63, #80; stack.md §C.8).

Keystores are created and read back with keytool itself; the only stand-ins are a runner that makes
one keytool import fail (to prove the live keystore is left byte-identical) and a scripted probe for
the verify path (no Java TLS server here).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from certctl.deploy.commands import CommandOutcome, SubprocessRunner
from certctl.deploy.connectors import ConnectorDeps, DeployRequest, JavaKeystoreConnector, build_connector
from certctl.deploy.connectors.base import TargetConnector
from certctl.deploy.connectors.keystore import STORE_PASSWORD_ENV
from certctl.deploy.errors import TargetConfigError, ValidateFailed, VerifyFailed, WriteFailed
from certctl.deploy.locks import TargetLocks
from certctl.deploy.metrics import ATTEMPTS, IDEMPOTENT_SKIPS, ROLLBACKS, DeployCounters
from certctl.deploy.result import DeployOutcome, DeployStage
from tests.deploy.conftest import RecordingRunner
from tests.deploy.material import Material, TestCA
from tests.deploy.servers import require_binary
from tests.deploy.test_connectors import FakeProbe

PASSWORD = "changeit-please"


@pytest.fixture(scope="module")
def keytool() -> str:
    return require_binary("keytool", "default-jre-headless")


@pytest.fixture(scope="module")
def seed(keytool: str, tmp_path_factory: pytest.TempPathFactory, cert_a: Material) -> Path:
    """A PKCS#12 keystore whose `server` entry holds cert A, made once by a deploy; tests copy it."""
    keystore = tmp_path_factory.mktemp("seed") / "seed.p12"
    result = target(keystore, RecordingRunner(), DeployCounters(), keytool_path=keytool).deploy(request(cert_a))
    assert result.success, result.message
    return keystore


def existing(seed: Path, directory: Path, name: str = "tomcat.p12") -> Path:
    keystore = directory / name
    shutil.copy2(seed, keystore)
    return keystore


def subcommands(calls: Sequence[tuple[str, ...]]) -> list[str]:
    """keytool's command of each call (`-list`, `-importkeystore`, …), past the `-J` JVM options."""
    return [next(arg for arg in call[1:] if not arg.startswith("-J")) for call in calls if "keytool" in call[0]]


def fails_once(directory: Path) -> str:
    """A reload command that fails the first time it runs and succeeds afterwards."""
    script = directory / "reload-once.sh"
    script.write_text('#!/bin/sh\nif [ -e "$0.ran" ]; then exit 0; fi\n: > "$0.ran"\nexit 1\n')
    os.chmod(script, 0o700)
    return str(script)


@dataclass
class ImportFails:
    """The real runner, except that `keytool -importkeystore` fails (as a full disk or a bad JDK would)."""

    inner: SubprocessRunner = field(default_factory=SubprocessRunner)
    calls: list[tuple[str, ...]] = field(default_factory=list)

    def run(self, argv: Sequence[str], *, env: Mapping[str, str], timeout_seconds: float) -> CommandOutcome:
        self.calls.append(tuple(argv))
        if "-importkeystore" in argv:
            return CommandOutcome(tuple(argv), 1, "keytool error: java.io.IOException: No space left on device", 0.0)
        return self.inner.run(argv, env=env, timeout_seconds=timeout_seconds)


def target(
    keystore: Path,
    runner: Any,
    counters: DeployCounters,
    *,
    probe: FakeProbe | None = None,
    keytool_path: str = "keytool",
    **overrides: Any,
) -> TargetConnector:
    config: dict[str, Any] = {
        "keystore_path": str(keystore),
        "keystore_password": PASSWORD,
        "keytool_path": keytool_path,
    }
    config.update(overrides)
    deps = ConnectorDeps(
        runner=runner,
        counters=counters,
        target_locks=TargetLocks(),
        probe=probe or FakeProbe(["unused"]),
        sleep=lambda _: None,
    )
    connector = build_connector("JavaKeystore", config, deps)
    connector.validate_config()
    return connector


def request(material: Material) -> DeployRequest:
    return DeployRequest(material.cert_pem, material.chain_pem, material.key_pem, "tgt-tomcat")


def listing(keytool: str, keystore: Path, store_type: str = "PKCS12") -> str:
    """`keytool -list -v` of the whole keystore, as an operator would run it."""
    return subprocess.run(
        [keytool, "-list", "-v", "-keystore", str(keystore), "-storetype", store_type, "-storepass:env", "PW"],
        env={**os.environ, "PW": PASSWORD},
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def colon_hex(fingerprint: str) -> str:
    return ":".join(fingerprint[i : i + 2] for i in range(0, len(fingerprint), 2)).upper()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def operator_keystore(keytool: str, path: Path, store_type: str) -> None:
    """A keystore made the way an operator would: keytool -genkeypair for `server`, plus another entry."""
    for alias in ("server", "other"):
        subprocess.run(
            [keytool, "-genkeypair", "-alias", alias, "-keyalg", "EC", "-groupname", "secp256r1",
             "-dname", f"CN={alias}.example", "-validity", "2", "-keystore", str(path), "-storetype", store_type,
             "-storepass:env", "PW", "-keypass:env", "PW"],
            env={**os.environ, "PW": PASSWORD},
            capture_output=True,
            check=True,
        )  # fmt: skip


def test_a_first_deploy_creates_a_pkcs12_keystore_that_keytool_lists(
    keytool: str, tmp_path: Path, cert_a: Material, runner: RecordingRunner, counters: DeployCounters
) -> None:
    keystore = tmp_path / "tomcat.p12"
    result = target(keystore, runner, counters, keytool_path=keytool).deploy(request(cert_a))
    assert result.success, result.message
    assert result.outcome is DeployOutcome.SUCCESS
    assert result.deployment_id == colon_hex(result.metadata["thumbprint"]).replace(":", "")
    assert len(result.deployment_id) == 40
    assert result.deployment_id.isupper()
    assert "backup_path" not in result.metadata
    assert os.stat(keystore).st_mode & 0o7777 == 0o600
    listed = listing(keytool, keystore)
    assert "Alias name: server" in listed
    assert f"SHA256: {colon_hex(cert_a.fingerprint)}" in listed
    assert "Certificate chain length: 2" in listed  # the chain went in with the key
    assert not any("-exportkeystore" in call for call in runner.calls)
    assert all(PASSWORD not in " ".join(call) for call in runner.calls)  # passwords travel in the environment
    assert all(env.get(STORE_PASSWORD_ENV) == PASSWORD for env in runner.envs)
    leftovers = {p.name for p in tmp_path.iterdir()} - {"tomcat.p12", "tomcat.p12.certctl-lock"}
    assert leftovers == set()  # no temp keystore or PKCS#12 left behind, no backup of a file that was not there
    assert counters.value(ATTEMPTS, "JavaKeystore", "success") == 1


def test_an_existing_jks_keystore_gets_the_new_entry_keeps_the_others_and_is_backed_up(
    keytool: str, tmp_path: Path, cert_b: Material, runner: RecordingRunner, counters: DeployCounters
) -> None:
    keystore = tmp_path / "tomcat.jks"
    operator_keystore(keytool, keystore, "JKS")
    os.chmod(keystore, 0o640)
    before = keystore.read_bytes()
    result = target(keystore, runner, counters, keytool_path=keytool, keystore_type="JKS").deploy(request(cert_b))
    assert result.success, result.message
    (imported,) = [call for call in runner.calls if "-importkeystore" in call]
    assert imported[imported.index("-deststoretype") + 1] == "JKS"
    assert imported[imported.index("-srcalias") + 1] == "1"
    listed = listing(keytool, keystore, "JKS")
    assert "Keystore type: JKS" in listed
    assert f"SHA256: {colon_hex(cert_b.fingerprint)}" in listed
    assert "Alias name: other" in listed  # the other entry survives
    assert os.stat(keystore).st_mode & 0o7777 == 0o640  # the existing mode is kept
    backup = Path(result.metadata["backup_path"])
    assert backup.name.startswith("tomcat.jks.certctl-bak.")
    assert backup.read_bytes() == before  # byte-for-byte, not a keytool export
    # the JKS key password is the store password, as Tomcat expects: keytool can read the key with it
    subprocess.run(
        [keytool, "-importkeystore", "-srckeystore", str(keystore), "-srcstoretype", "JKS", "-srcalias", "server",
         "-srcstorepass:env", "PW", "-srckeypass:env", "PW", "-destkeystore", str(tmp_path / "out.p12"),
         "-deststoretype", "PKCS12", "-deststorepass:env", "PW", "-noprompt"],
        env={**os.environ, "PW": PASSWORD},
        capture_output=True,
        check=True,
    )  # fmt: skip


def test_an_alias_that_already_holds_the_certificate_is_unchanged_after_one_keytool_list(
    keytool: str, seed: Path, tmp_path: Path, cert_a: Material, runner: RecordingRunner, counters: DeployCounters
) -> None:
    keystore = existing(seed, tmp_path)
    connector = target(keystore, runner, counters, keytool_path=keytool)
    bytes_before = keystore.read_bytes()
    result = connector.deploy(request(cert_a))
    assert result.outcome is DeployOutcome.UNCHANGED
    assert result.metadata["idempotent"] == "true"
    assert result.deployment_id.startswith("jks-idem-")
    assert subcommands(runner.calls) == ["-list"]
    assert "-v" in runner.calls[0]
    assert keystore.read_bytes() == bytes_before
    assert counters.value(IDEMPOTENT_SKIPS, "JavaKeystore") == 1


def test_a_failed_import_leaves_the_keystore_byte_identical(
    keytool: str, seed: Path, tmp_path: Path, cert_b: Material, counters: DeployCounters
) -> None:
    keystore = existing(seed, tmp_path)
    before, inode = digest(keystore), os.stat(keystore).st_ino
    failing = ImportFails()
    result = target(keystore, failing, counters, keytool_path=keytool).deploy(request(cert_b))
    assert isinstance(result.error, WriteFailed)
    assert result.outcome is DeployOutcome.FAILED
    assert "No space left on device" in result.message
    assert (digest(keystore), os.stat(keystore).st_ino) == (before, inode)
    assert not [p for p in tmp_path.iterdir() if ".certctl-tmp." in p.name or ".certctl-bak." in p.name]
    assert subcommands(failing.calls) == ["-list", "-delete", "-importkeystore"]
    assert counters.value(ATTEMPTS, "JavaKeystore", "failure") == 1


def test_a_failing_reload_is_a_warning_unless_configured_fatal_which_restores_the_backup(
    keytool: str,
    seed: Path,
    tmp_path: Path,
    cert_a: Material,
    cert_b: Material,
    runner: RecordingRunner,
    counters: DeployCounters,
) -> None:
    keystore = existing(seed, tmp_path)
    warned = target(keystore, runner, counters, keytool_path=keytool, reload_command="false")
    result = warned.deploy(request(cert_b))
    assert result.success, result.message
    assert "not fatal" in result.metadata["warnings"]
    assert result.as_report()["reloaded"] is False

    before = keystore.read_bytes()
    reload = fails_once(tmp_path)
    fatal = target(keystore, runner, counters, keytool_path=keytool, reload_command=reload, reload_failure_fatal=True)
    failed = fatal.deploy(request(cert_a))
    assert failed.outcome is DeployOutcome.ROLLED_BACK
    assert failed.stage is DeployStage.RELOAD
    assert keystore.read_bytes() == before
    assert sum(1 for call in runner.calls if call[0] == reload) == 2  # the reload, then the rollback's
    assert counters.value(ROLLBACKS, "JavaKeystore", "restored") == 1


def test_a_failed_probe_restores_the_backup_and_reloads_again(
    keytool: str,
    seed: Path,
    tmp_path: Path,
    cert_a: Material,
    cert_b: Material,
    runner: RecordingRunner,
    counters: DeployCounters,
) -> None:
    keystore = existing(seed, tmp_path)
    before = keystore.read_bytes()
    probe = FakeProbe([cert_a.fingerprint])  # Tomcat still serves the old certificate
    connector = target(
        keystore,
        runner,
        counters,
        probe=probe,
        keytool_path=keytool,
        reload_command="true",
        post_deploy_verify={"endpoint": "tomcat.internal:8443"},
        post_deploy_verify_attempts=2,
    )
    result = connector.deploy(request(cert_b))
    assert isinstance(result.error, VerifyFailed)
    assert keystore.read_bytes() == before
    assert sum(1 for call in runner.calls if call[0] == "true") == 2
    assert len(probe.calls) == 2


def test_backups_are_pruned_to_the_retention_and_minus_one_keeps_them_all(
    keytool: str, seed: Path, tmp_path: Path, ca: TestCA, runner: RecordingRunner, counters: DeployCounters
) -> None:
    keystore = existing(seed, tmp_path, "ks.p12")
    deps = ConnectorDeps(runner=runner, counters=counters, default_backup_retention=1)

    def deploy(retention: int) -> None:
        config = {
            "keystore_path": str(keystore),
            "keystore_password": PASSWORD,
            "keytool_path": keytool,
            "backup_retention": retention,
        }
        assert build_connector("JavaKeystore", config, deps).deploy(request(ca.issue())).success

    deploy(-1)
    deploy(-1)
    assert len(list(tmp_path.glob("ks.p12.certctl-bak.*"))) == 2  # -1: never pruned, even below the default of 1
    deploy(1)
    assert len(list(tmp_path.glob("ks.p12.certctl-bak.*"))) == 1


def test_missing_key_invalid_certificate_and_wrong_password_fail_cleanly(
    keytool: str, seed: Path, tmp_path: Path, cert_a: Material, runner: RecordingRunner, counters: DeployCounters
) -> None:
    keystore = tmp_path / "tomcat.p12"
    connector = target(keystore, runner, counters, keytool_path=keytool)
    no_key = connector.deploy(DeployRequest(cert_a.cert_pem, cert_a.chain_pem))
    assert isinstance(no_key.error, ValidateFailed)
    assert "private key" in no_key.message
    garbage = connector.deploy(DeployRequest("-----BEGIN CERTIFICATE-----\nnope\n", "", cert_a.key_pem))
    assert isinstance(garbage.error, ValidateFailed)
    assert runner.calls == []
    assert not keystore.exists()

    existing(seed, tmp_path)
    wrong = target(keystore, runner, counters, keytool_path=keytool, keystore_password="not-the-password")
    before = keystore.read_bytes()
    refused = wrong.deploy(request(cert_a))
    assert not refused.success
    assert "password was incorrect" in refused.message
    assert keystore.read_bytes() == before
    assert not wrong.test().ok


def test_validate_only_builds_the_new_keystore_without_touching_the_live_one(
    keytool: str,
    seed: Path,
    tmp_path: Path,
    cert_a: Material,
    cert_b: Material,
    runner: RecordingRunner,
    counters: DeployCounters,
) -> None:
    keystore = existing(seed, tmp_path)
    connector = target(keystore, runner, counters, keytool_path=keytool)
    before = keystore.read_bytes()
    connector.validate_only(request(cert_b))
    assert keystore.read_bytes() == before
    wrong = target(keystore, runner, counters, keytool_path=keytool, keystore_password="not-the-password")
    with pytest.raises(ValidateFailed, match="ValidateOnly"):
        wrong.validate_only(request(cert_b))
    check = connector.test()
    assert check.ok
    assert [item.name for item in check.items] == ["config", "keystore_path", "keystore"]


def test_defaults_are_applied_when_the_config_is_read(tmp_path: Path) -> None:
    connector = JavaKeystoreConnector.from_config(
        {"keystore_path": str(tmp_path / "ks"), "keystore_password": "s3cret-Pa55", "create_keystore": True}
    )
    settings = connector.settings
    assert (settings.keystore_type, settings.alias, settings.keytool_path) == ("PKCS12", "server", "keytool")
    assert "s3cret-Pa55" not in repr(settings)
    build_connector("JavaKeystore", None)
    with pytest.raises(TargetConfigError, match="not JSON"):
        build_connector("JavaKeystore", "{invalid json}")


@pytest.mark.parametrize(
    ("overrides", "field_name", "problem"),
    [
        ({"keystore_path": ""}, "keystore_path", "is required"),
        ({"keystore_path": "/srv/../etc/ks.p12"}, "keystore_path", "'..'"),
        ({"keystore_path": "relative.p12"}, "keystore_path", "absolute"),
        ({"keystore_path": "/nonexistent-certctl/ks.p12"}, "keystore_path", "does not exist"),
        ({"keystore_password": ""}, "keystore_password", "is required"),
        ({"keystore_type": "JCEKS"}, "keystore_type", "PKCS12, JKS"),
        ({"alias": "my alias"}, "alias", "must match"),
        ({"reload_command": "systemctl restart tomcat && id"}, "reload_command", "'&'"),
        ({"keytool_path": "bin/keytool"}, "keytool_path", "absolute"),
        ({"keystore_file_owner": "tomcat"}, "keystore_file_owner", "or neither"),
    ],
)
def test_config_errors_name_the_field(tmp_path: Path, overrides: dict[str, Any], field_name: str, problem: str) -> None:
    config = {"keystore_path": str(tmp_path / "ks.p12"), "keystore_password": PASSWORD, **overrides}
    with pytest.raises(TargetConfigError) as caught:
        build_connector("JavaKeystore", config).validate_config()
    assert caught.value.field == field_name
    assert problem in str(caught.value)
