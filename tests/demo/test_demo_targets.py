"""Every demo target carries a config its connector accepts, so a demo agent can deploy to it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from certctl.demo.inventory import deployment_targets
from certctl.targets.config import validate_target_config


@pytest.mark.parametrize("target", deployment_targets(datetime.now(UTC)), ids=lambda target: target.id)
def test_demo_target_configs_pass_the_servers_validation(target: object) -> None:
    validate_target_config(target.config, target.type.value)  # type: ignore[attr-defined]
