from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from certctl.errors import ValidationFailed
from certctl.targets.config import is_command_key, is_path_key, validate_target_config


@pytest.mark.parametrize("name", ["command", "reload_command", "VALIDATE_COMMAND", "post_deploy_cmd", "pre_cmd"])
def test_command_keys(name: str) -> None:
    assert is_command_key(name)


@pytest.mark.parametrize("name", ["commander", "commands", "cmdline", "description", "command_timeout"])
def test_keys_that_only_look_like_commands(name: str) -> None:
    assert not is_command_key(name)


@pytest.mark.parametrize("name", ["cert_path", "KEY_PATH", "remote_chain_path"])
def test_path_keys(name: str) -> None:
    assert is_path_key(name)
    assert not is_path_key(name + "s")


@pytest.mark.parametrize(
    "config",
    [
        {},
        {"cert_path": "/etc/ssl/a.crt", "reload_command": "systemctl reload nginx"},
        {"description": "web; primary & backup", "labels": {"app": "$web"}},  # not commands: free text
        {"pfx_path": "D:\\certs\\site.pfx", "share_path": "\\\\fs01\\certs\\site.pfx"},
        {"keytool_path": "keytool"},
        {"keytool_path": "/usr/lib/jvm/bin/keytool"},
        {"cert_path": None, "reload_command": ""},
    ],
)
def test_accepted_configs(config: dict[str, Any]) -> None:
    validate_target_config(config)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"keytool_path": "bin/keytool"}, "config.keytool_path must be an absolute path"),
        ({"keytool_path": "keytool; id"}, "config.keytool_path must be an absolute path"),
        ({"cert_path": "C:relative.crt"}, "config.cert_path must be an absolute path"),
        ({"cert_path": "/etc/ssl\x00/a"}, "config.cert_path contains a NUL"),
        ({"cert_path": "C:\\certs\\..\\secrets"}, "must not contain '..'"),
        ({"winrm": {"cert_path": "certs"}}, "config.winrm.cert_path"),
        ({"reload_command": {"run": "x"}}, "config.reload_command must be a string"),
    ],
)
def test_refused_configs(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        validate_target_config(config)
    assert message in str(caught.value)


@given(path=st.lists(st.text(alphabet="abcxyz019._-", min_size=1, max_size=12), min_size=1, max_size=5).map("/".join))
def test_every_relative_posix_path_is_refused(path: str) -> None:
    with pytest.raises(ValidationFailed, match="absolute"):
        validate_target_config({"cert_path": path})
