"""Operator commands: the guard, splitting, placeholders, and running without a shell (§A2.3)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from certctl.deploy.commands import OperatorCommand, SubprocessRunner, run_command
from certctl.deploy.errors import CommandFailed


def test_a_command_is_split_into_words_without_a_shell() -> None:
    command = OperatorCommand.parse("  /usr/sbin/nginx -s reload   -c /etc/nginx/nginx.conf ")
    assert command.words == ("/usr/sbin/nginx", "-s", "reload", "-c", "/etc/nginx/nginx.conf")
    assert command.environment == ()
    assert command.placeholders == frozenset()


def test_leading_assignments_become_environment_variables() -> None:
    command = OperatorCommand.parse("APACHE_CONFDIR=/srv/apache LANG=C apachectl configtest")
    assert command.words == ("apachectl", "configtest")
    assert command.env({}) == {"APACHE_CONFDIR": "/srv/apache", "LANG": "C"}


@pytest.mark.parametrize(
    "text",
    ["nginx -s reload; rm -rf /", "nginx -t | tee /tmp/x", "echo $(id)", "echo `id`", "a && b", "x > /etc/passwd"],
)
def test_injection_attempts_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="shell metacharacter"):
        OperatorCommand.parse(text)


def test_only_assignments_is_not_a_command() -> None:
    with pytest.raises(ValueError, match="no program"):
        OperatorCommand.parse("A=1 B=2")


def test_placeholders_are_substituted_inside_words_and_stay_one_argument() -> None:
    command = OperatorCommand.parse("check --cert={cert_path} {key_path} PEM={pem_path}")
    paths = {"{cert_path}": "/tmp/dir with space/c.pem", "{key_path}": "/k.pem", "{pem_path}": "/p.pem"}
    assert command.placeholders == {"{cert_path}", "{key_path}", "{pem_path}"}
    assert command.argv(paths) == ["check", "--cert=/tmp/dir with space/c.pem", "/k.pem", "PEM=/p.pem"]


def test_placeholders_in_assignments_mark_the_command_staged_and_fill_the_variable() -> None:
    command = OperatorCommand.parse("STAGED={pem_path} haproxy -c -f /etc/haproxy/staged.cfg")
    assert command.placeholders == {"{pem_path}"}
    env = command.env({"{pem_path}": "/etc/haproxy/site.pem.certctl-tmp.1"}, staged=True)
    assert env == {
        "STAGED": "/etc/haproxy/site.pem.certctl-tmp.1",
        "CERTCTL_STAGED_PEM": "/etc/haproxy/site.pem.certctl-tmp.1",
    }


def test_staged_variables_are_exported_only_for_staged_runs() -> None:
    command = OperatorCommand.parse("nginx -t")
    assert command.env({"{cert_path}": "/etc/c.pem"}) == {}
    assert command.env({"{cert_path}": "/t"}, staged=True) == {"CERTCTL_STAGED_CERT": "/t"}


def test_a_placeholder_without_a_file_fails_the_step() -> None:
    with pytest.raises(CommandFailed, match=r"\{chain_path\} names no file"):
        OperatorCommand.parse("check {chain_path}").argv({"{cert_path}": "/c"})


def test_the_runner_reports_exit_status_and_output() -> None:
    runner = SubprocessRunner()
    assert runner.run(["true"], env={}, timeout_seconds=5).ok
    outcome = runner.run(["ls", "/nonexistent-certctl-path"], env={}, timeout_seconds=5)
    assert outcome.returncode not in (0, None)
    assert "nonexistent-certctl-path" in outcome.output


def test_a_missing_program_is_exit_127() -> None:
    outcome = SubprocessRunner().run(["/nonexistent/certctl-binary"], env={}, timeout_seconds=5)
    assert outcome.returncode == 127
    assert "cannot run" in outcome.output


def test_a_command_past_its_timeout_is_killed() -> None:
    started = time.monotonic()
    outcome = SubprocessRunner().run(["sleep", "30"], env={}, timeout_seconds=0.2)
    assert outcome.returncode is None
    assert time.monotonic() - started < 5


def test_a_daemon_left_holding_stdout_does_not_block_the_runner(tmp_path: Path) -> None:
    script = tmp_path / "start-daemon"
    pid_file = tmp_path / "daemon.pid"
    script.write_text(f"#!/bin/sh\nsleep 30 &\necho $! > {pid_file}\necho started\n")
    script.chmod(0o755)
    started = time.monotonic()
    outcome = SubprocessRunner().run([str(script)], env={}, timeout_seconds=10)
    try:
        assert outcome.ok
        assert outcome.output == "started"
        assert time.monotonic() - started < 5
    finally:
        os.kill(int(pid_file.read_text()), signal.SIGKILL)


def test_environment_reaches_the_program() -> None:
    outcome = SubprocessRunner().run(["env"], env={"CERTCTL_STAGED_CERT": "/x"}, timeout_seconds=5)
    assert "CERTCTL_STAGED_CERT=/x" in outcome.output.splitlines()


def test_run_command_names_the_step_and_quotes_the_output() -> None:
    command = OperatorCommand.parse("ls /nonexistent-certctl-path")
    with pytest.raises(CommandFailed, match=r"^nginx -t failed: exit status \d+ \(output: .*nonexistent") as caught:
        run_command(SubprocessRunner(), command, what="nginx -t", paths={})
    assert caught.value.returncode not in (0, None)


def test_run_command_reports_a_timeout() -> None:
    with pytest.raises(CommandFailed, match=r"timed out after 0\.2 s"):
        run_command(SubprocessRunner(), OperatorCommand.parse("sleep 30"), what="reload", paths={}, timeout_seconds=0.2)
