from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from certctl.bootstrap import prepare, seed_env_issuers
from certctl.config import Settings
from tests.conftest import client_for


def test_an_empty_issuers_table_gets_the_local_ca_from_the_environment(
    settings_factory: Callable[..., Settings],
) -> None:
    context = prepare(settings_factory(), run_migrations=False)
    try:
        with client_for(context) as client:
            issuers = client.get("/api/v1/issuers").json()
            assert [(i["id"], i["type"], i["source"], i["enabled"]) for i in issuers["data"]] == [
                ("iss-local", "GenericCA", "env", True)
            ]
            assert client.post("/api/v1/issuers/iss-local/test").json()["status"] == "success"
            assert client.get("/api/v1/issuers/iss-local").json()["test_status"] == "success"
        seed_env_issuers(context)  # idempotent: never a second row, never an overwrite
        with client_for(context) as client:
            assert client.get("/api/v1/issuers").json()["total"] == 1
    finally:
        context.db.dispose()


def test_sub_ca_paths_come_from_the_environment(settings_factory: Callable[..., Settings], tmp_path: Path) -> None:
    settings: Any = settings_factory(ca_cert_path=tmp_path / "ca.pem", ca_key_path=tmp_path / "ca.key")
    context = prepare(settings, run_migrations=False)
    try:
        with client_for(context) as client:
            config = client.get("/api/v1/issuers/iss-local").json()["config"]
            # "key" in a field name masks it in responses, as the original does.
            assert config == {"ca_cert_path": str(tmp_path / "ca.pem"), "ca_key_path": "********"}
            failed = client.post("/api/v1/issuers/iss-local/test").json()
            assert failed["status"] == "failed"
            assert "ca_cert_path" in failed["message"]
    finally:
        context.db.dispose()
