"""Every setting as people read it, rendered from its one description in app/settings.py.

`.env.example`, the `env` of `app.json` and the settings table in the README are all rendered
here from `Settings.model_fields` (the `description` of each field); `python -m app.settings_help`
writes them, and tests/test_settings_help.py fails when a file drifts from what this renders.
What is not a description — where each section starts, the placeholder a copied `.env.example`
must not start with, how Heroku's deploy button fills a value — is kept below, by setting.
"""

from __future__ import annotations

import json
import sys
import textwrap
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

from pydantic import SecretStr
from pydantic.fields import FieldInfo

from app.settings import DEFAULT_DATABASE_URL, REPO_ROOT, REQUIRED_SETTINGS, Settings
from app.settings_store import STORABLE

FIELDS: Final[dict[str, FieldInfo]] = {name.upper(): info for name, info in Settings.model_fields.items()}

# Environment name → its one sentence (derived; `woobird setup` and the tests read it here).
SETTING_HELP: Final[dict[str, str]] = {name: info.description or "" for name, info in FIELDS.items()}

SECTIONS: Final[dict[str, str]] = {
    "WOOCOMMERCE_URL": "WooCommerce",
    "MONEYBIRD_API_TOKEN": "Moneybird",
    "SYNC_ORDER_STATUSES": "What gets booked",
    "ORDER_CHANGES": "After booking",
    "REDIS_URL": "Infrastructure",
    "ALERT_WEBHOOK_URL": "Alerts (optional)",
    "WOOBIRD_SANDBOX": "Sandbox",
}
# What `.env.example` holds for a setting: placeholders that refuse to start until replaced.
EXAMPLE_VALUES: Final[dict[str, str]] = {
    "WOOCOMMERCE_CONSUMER_KEY": "ck_your_key",
    "WOOCOMMERCE_CONSUMER_SECRET": "cs_your_secret",
    "WOOCOMMERCE_WEBHOOK_SECRET": "change-me",
    "MONEYBIRD_API_TOKEN": "your-moneybird-token",
    "ADMIN_TOKEN": "change-me",
}
# Defaults that are a behaviour rather than a value.
DEFAULTS_SHOWN: Final[dict[str, str]] = {
    "MONEYBIRD_TAX_RATES": "found automatically",
    "SYNC_SINCE": "the moment woobird first ran",
    "DATABASE_URL": "SQLite woobird.db in the repo",
}
# The platform sets these; Heroku's deploy form does not ask for them.
PLATFORM_SET: Final = frozenset({"DATABASE_URL", "REDIS_URL", "PORT", "WOOBIRD_SANDBOX"})
# Heroku's deploy button asks for nothing (the set-up wizard at /admin does); `generator: secret`
# makes 64 random hex characters.
APP_JSON_EXTRA: Final[dict[str, dict[str, Any]]] = {
    "WOOCOMMERCE_WEBHOOK_SECRET": {"generator": "secret"},
    "ADMIN_TOKEN": {"generator": "secret"},
    "SECRET_KEY": {"generator": "secret"},
    "METRICS_TOKEN": {"generator": "secret"},
    "LOG_FORMAT": {"value": "json"},
}

ENV_EXAMPLE_HEAD: Final = """\
# woobird settings. Copy to .env and fill in; `woobird setup` fills the Moneybird part and makes the
# tokens, `woobird check` says what is still wrong. Left as they are, the placeholders make woobird
# refuse to start and name each one. Empty lines fall back to the default shown in the comment.
# Rendered from app/settings.py by `python -m app.settings_help`: edit the descriptions there.\
"""
README_START: Final = (
    "<!-- settings table: rendered from app/settings.py by `python -m app.settings_help` -->"
)
README_END: Final = "<!-- end of settings table -->"


def default_text(name: str) -> str:
    """The default as a person reads it; empty when there is none."""
    if name in DEFAULTS_SHOWN:
        return DEFAULTS_SHOWN[name]
    info = FIELDS[name]
    value = info.get_default(call_default_factory=True)
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if value is None or value in ("", {}, []) or value == DEFAULT_DATABASE_URL:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    if isinstance(value, int | float | Decimal | str):
        return str(value)
    raise TypeError(f"no way to show the default of {name}: {value!r}")


def _required(name: str) -> bool:
    return name.lower() in REQUIRED_SETTINGS


def env_example() -> str:
    lines = [ENV_EXAMPLE_HEAD]
    for name, help_text in SETTING_HELP.items():
        if name in SECTIONS:
            title = f"# --- {SECTIONS[name]} "
            lines.append("\n" + title + "-" * (100 - len(title)))
        default = default_text(name)
        note = " (required)" if _required(name) else f" (default: {default})" if default else ""
        lines += textwrap.wrap(f"{help_text}{note}", width=100, initial_indent="# ", subsequent_indent="# ")
        lines.append(f"{name}={EXAMPLE_VALUES.get(name, '')}")
    return "\n".join(lines) + "\n"


def app_json_env() -> dict[str, dict[str, Any]]:
    env: dict[str, dict[str, Any]] = {}
    for name, help_text in SETTING_HELP.items():
        if name in PLATFORM_SET:
            continue
        entry: dict[str, Any] = {"description": help_text}
        extra = APP_JSON_EXTRA.get(name, {})
        if "generator" not in extra:
            entry["required"] = False
        entry.update(extra)
        env[name] = entry
    return env


def readme_table() -> str:
    rows = ["| Setting | Default | What it is |", "|---|---|---|"]
    for name, help_text in SETTING_HELP.items():
        default = default_text(name)
        stored = "; the wizard stores it" if name in STORABLE else ""
        shown = f"— (required{stored})" if _required(name) else f"`{default}`" if default else "—"
        if name in DEFAULTS_SHOWN:
            shown = default
        cell = help_text.replace("|", "\\|")
        rows.append(f"| `{name}` | {shown} | {cell} |")
    return "\n".join([README_START, *rows, README_END])


def readme_with_table(readme: str) -> str:
    before, start, rest = readme.partition(README_START)
    _, end, after = rest.partition(README_END)
    if not (start and end):
        raise ValueError(f"the README has no settings table between {README_START!r} and {README_END!r}")
    return before + readme_table() + after


def app_json_with_env(document: dict[str, Any]) -> dict[str, Any]:
    return {**document, "env": app_json_env()}


def write(root: Path = REPO_ROOT) -> list[Path]:
    """Render the three files in `root`; the paths that changed."""
    app_json = root / "app.json"
    readme = root / "README.md"
    rendered = {
        root / ".env.example": env_example(),
        app_json: json.dumps(
            app_json_with_env(json.loads(app_json.read_text(encoding="utf-8"))), indent=2, ensure_ascii=False
        )
        + "\n",
        readme: readme_with_table(readme.read_text(encoding="utf-8")),
    }
    changed = []
    for path, text in rendered.items():
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed.append(path)
    return changed


if __name__ == "__main__":
    for path in write():
        sys.stdout.write(f"rewrote {path.relative_to(REPO_ROOT)}\n")
