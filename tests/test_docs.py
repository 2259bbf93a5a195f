from __future__ import annotations

from pathlib import Path

from certctl.config import ENV_PREFIX, Settings

DOCS = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def test_every_setting_is_documented() -> None:
    text = DOCS.read_text()
    missing = [name for name in Settings.model_fields if f"{ENV_PREFIX}{name.upper()}" not in text]
    assert missing == [], f"add these to docs/configuration.md: {missing}"
