"""Each setting is described once, in app/settings.py; the files people read are rendered from it.

When a description, a default or a setting changes and `python -m app.settings_help` was not run,
these fail and say which file drifted.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app import settings_help
from app.settings import REPO_ROOT, Settings
from app.settings_help import (
    APP_JSON_EXTRA,
    DEFAULTS_SHOWN,
    EXAMPLE_VALUES,
    FIELDS,
    PLATFORM_SET,
    SECTIONS,
    SETTING_HELP,
)

DRIFTED = "{} drifted from the descriptions in app/settings.py: run `python -m app.settings_help`"


def test_every_setting_has_one_description() -> None:
    missing = [name for name, info in Settings.model_fields.items() if not (info.description or "").strip()]
    assert missing == []
    assert set(SETTING_HELP) == {name.upper() for name in Settings.model_fields}


def test_the_notes_beside_the_descriptions_name_real_settings() -> None:
    for table in (SECTIONS, EXAMPLE_VALUES, DEFAULTS_SHOWN, APP_JSON_EXTRA):
        assert set(table) <= set(FIELDS)
    assert set(FIELDS) >= PLATFORM_SET


def test_env_example_is_rendered_from_the_descriptions() -> None:
    assert (REPO_ROOT / ".env.example").read_text(encoding="utf-8") == settings_help.env_example(), (
        DRIFTED.format(".env.example")
    )


def test_app_json_is_rendered_from_the_descriptions() -> None:
    document = json.loads((REPO_ROOT / "app.json").read_text(encoding="utf-8"))
    assert document["env"] == settings_help.app_json_env(), DRIFTED.format("app.json")
    # The deploy form asks for nothing: the set-up wizard does. Guard tokens are generated.
    assert not [name for name, entry in document["env"].items() if entry.get("required")]
    for name in ("ADMIN_TOKEN", "WOOCOMMERCE_WEBHOOK_SECRET", "SECRET_KEY"):
        assert document["env"][name]["generator"] == "secret"


def test_readme_settings_table_is_rendered_from_the_descriptions() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert settings_help.readme_table() in readme, DRIFTED.format("README.md's settings table")


def test_a_changed_description_is_noticed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(SETTING_HELP, "SMTP_HOST", "Somewhere mail goes.")
    assert (REPO_ROOT / ".env.example").read_text(encoding="utf-8") != settings_help.env_example()
    assert settings_help.readme_table() not in (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert settings_help.app_json_env()["SMTP_HOST"]["description"] == "Somewhere mail goes."


def test_write_renders_all_three_files(tmp_path: Path) -> None:
    root = tmp_path
    (root / "app.json").write_text(json.dumps({"name": "woobird", "env": {}}), encoding="utf-8")
    (root / "README.md").write_text(
        f"# x\n\n{settings_help.README_START}\nan old table\n{settings_help.README_END}\n\nafter\n",
        encoding="utf-8",
    )
    changed = settings_help.write(root)
    assert {path.name for path in changed} == {".env.example", "app.json", "README.md"}
    assert json.loads((root / "app.json").read_text(encoding="utf-8"))["name"] == "woobird"
    assert "an old table" not in (root / "README.md").read_text(encoding="utf-8")
    assert (root / "README.md").read_text(encoding="utf-8").endswith("\n\nafter\n")
    assert settings_help.write(root) == []  # rendering again changes nothing


def test_defaults_are_shown_as_people_write_them() -> None:
    assert settings_help.default_text("MONEYBIRD_TIMEOUT_SECONDS") == "20"
    assert settings_help.default_text("SMTP_STARTTLS") == "true"
    assert settings_help.default_text("SYNC_ORDER_STATUSES") == "completed"
    assert settings_help.default_text("SMTP_HOST") == ""
