"""`certctl issuers …` and `certctl issuers intermediates …` against a real HTTPS server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cryptography import x509
from typer.testing import CliRunner

from certctl.cli.main import app as cli
from certctl.context import AppContext
from tests.conftest import API_KEYS
from tests.hsm import new_label, token_ref
from tests.intermediates.helpers import load, make_root


def run(env: dict[str, str], *args: str) -> Any:
    return CliRunner().invoke(cli, list(args), env=env)


def _root(context: AppContext, env: dict[str, str], tmp_path: Path) -> dict[str, Any]:
    cert_pem, key_pem = make_root(context.clock.now(), permitted=("corp.example",))
    (tmp_path / "root.pem").write_text(cert_pem)
    (tmp_path / "root.key").write_text(key_pem)
    created = run(
        env,
        *("issuers", "intermediates", "create", "iss-local", "--name", "Corp Root"),
        *("--root-cert", str(tmp_path / "root.pem"), "--key", str(tmp_path / "root.key"), "--json"),
    )
    assert created.exit_code == 0, created.output
    root: dict[str, Any] = json.loads(created.stdout)
    return root


def test_issuers_list_and_get(served: tuple[AppContext, dict[str, str]]) -> None:
    _, env = served
    listed = run(env, "issuers", "list")
    assert listed.exit_code == 0, listed.output
    assert "iss-local" in listed.stdout
    assert "HIERARCHY" in listed.stdout
    shown = run(env, "issuers", "get", "iss-local")
    assert shown.exit_code == 0, shown.output
    assert "Hierarchy:" in shown.stdout
    assert "single" in shown.stdout
    assert json.loads(run(env, "issuers", "get", "iss-local", "--json").stdout)["id"] == "iss-local"
    missing = run(env, "issuers", "get", "iss-nope")
    assert (missing.exit_code, "HTTP 404" in missing.output) == (1, True)


def test_create_list_get_and_retire_intermediates(served: tuple[AppContext, dict[str, str]], tmp_path: Path) -> None:
    context, env = served
    root = _root(context, env, tmp_path)
    assert (root["parent_ca_id"], root["key_driver_id"], root["state"]) == (None, "db", "active")

    created = run(
        env,
        *("issuers", "intermediates", "create", "iss-local", "--name", "eng-issuing", "--parent", root["id"]),
        *("--common-name", "Eng Issuing CA", "--organization", "Corp", "--algorithm", "ECDSA-P384"),
        *("--ttl-days", "365", "--path-len", "0", "--permit", "eng.corp.example"),
        *("--exclude", "bad.eng.corp.example", "--ocsp-url", "http://ocsp.corp.example/eng", "-o", "json"),
    )
    assert created.exit_code == 0, created.output
    child = json.loads(created.stdout)
    assert (child["parent_ca_id"], child["path_len_constraint"]) == (root["id"], 0)
    assert child["name_constraints"] == [{"permitted": ["eng.corp.example"], "excluded": ["bad.eng.corp.example"]}]
    certificate = load(child["cert_pem"])[0]
    subject = certificate.subject
    assert [a.value for a in subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)] == ["Eng Issuing CA"]
    assert [a.value for a in subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)] == ["Corp"]
    assert certificate.issuer == load(root["cert_pem"])[0].subject
    constraints = certificate.extensions.get_extension_for_class(x509.NameConstraints)
    assert constraints.critical
    assert constraints.value.permitted_subtrees == [x509.DNSName("eng.corp.example")]

    listed = run(env, "issuers", "intermediates", "list", "iss-local")
    assert listed.exit_code == 0, listed.output
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["ID", "NAME", "PARENT", "STATE", "PATH", "LEN", "PERMITTED", "NOT", "AFTER", "KEY"]
    assert any(line.split()[:5] == [root["id"], "Corp", "Root", "(root)", "active"] for line in lines)
    assert any(
        line.split()[:6] == [child["id"], "eng-issuing", root["id"], "active", "0", "eng.corp.example"]
        for line in lines
    )
    assert "Total: 2" in listed.stdout
    as_json = json.loads(run(env, "issuers", "intermediates", "list", "iss-local", "--json").stdout)
    assert [ca["id"] for ca in as_json["data"]] == [root["id"], child["id"]]

    shown = run(env, "issuers", "intermediates", "get", child["id"])
    assert shown.exit_code == 0, shown.output
    for expected in ("State:       active", "Permitted:   eng.corp.example", "Excluded:    bad.eng.corp.example"):
        assert expected in shown.stdout
    assert "OCSP URL:    http://ocsp.corp.example/eng" in shown.stdout

    retiring = run(env, "issuers", "intermediates", "retire", child["id"], "--note", "rotating")
    assert retiring.exit_code == 0, retiring.output
    assert "retiring" in retiring.stdout
    assert "--confirm" in retiring.stdout
    retired = run(env, "issuers", "intermediates", "retire", child["id"], "--confirm")
    assert retired.exit_code == 0, retired.output
    assert retired.stdout.strip() == f"CA {child['id']} is retired"
    again = run(env, "issuers", "intermediates", "retire", child["id"], "--confirm")
    assert again.exit_code == 1
    assert "HTTP 409" in again.output
    assert "already retired" in again.output


def test_refusals_are_printed_with_the_servers_reason(
    served: tuple[AppContext, dict[str, str]], tmp_path: Path
) -> None:
    context, env = served
    root = _root(context, env, tmp_path)
    create = ("issuers", "intermediates", "create", "iss-local")

    wider = run(env, *create, "--name", "evil", "--parent", root["id"], "--permit", "evil.example")
    assert wider.exit_code == 1
    assert "HTTP 400" in wider.output
    assert "'evil.example' is not within" in wider.output

    keyless = run(env, *create, "--name", "again", "--root-cert", str(tmp_path / "root.pem"))
    assert keyless.exit_code == 1
    assert "HTTP 400" in keyless.output
    assert "a root needs its key" in keyless.output
    files = ("--root-cert", str(tmp_path / "root.pem"), "--key", str(tmp_path / "root.key"))
    second_root = run(env, *create, "--name", "again", *files)
    assert second_root.exit_code == 1
    assert "HTTP 409" in second_root.output
    assert "already has an active root" in second_root.output

    unreadable = run(env, *create, "--name", "x", "--root-cert", str(tmp_path / "absent.pem"))
    assert unreadable.exit_code == 1
    assert "--root-cert" in unreadable.output
    assert "cannot read it" in unreadable.output

    operator = env | {"CERTCTL_API_KEY": API_KEYS["operator"][0]}
    refused = run(operator, "issuers", "intermediates", "list", "iss-local")
    assert refused.exit_code == 1
    assert "HTTP 403" in refused.output
    assert run(env, "issuers", "intermediates", "get", "ica-nope").exit_code == 1


def test_a_child_ca_key_made_in_a_pkcs11_token(
    served: tuple[AppContext, dict[str, str]], tmp_path: Path, pin: str
) -> None:
    context, env = served
    root = _root(context, env, tmp_path)
    reference = token_ref(new_label())
    created = run(
        env,
        *("issuers", "intermediates", "create", "iss-local", "--name", "hsm-ca", "--parent", root["id"]),
        *("--key-driver", reference),
    )
    assert created.exit_code == 0, created.output
    assert created.stdout.startswith("Created child CA ica-")
    assert f"Key Driver:  {reference}" in created.stdout
