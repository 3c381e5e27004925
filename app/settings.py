"""woobird's configuration: one class, read from the environment and `.env`.

A process refuses to start on a missing or placeholder setting and names it: a connector that
starts half-configured books nothing and says nothing, which is the failure we exist to prevent.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from dotenv import dotenv_values
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

_PACKAGE_PARENT = Path(__file__).resolve().parent.parent
# In a checkout (or an editable install) the ledger lives in the repo; installed into
# site-packages (the Docker image) it lives in the working directory instead.
REPO_ROOT = _PACKAGE_PARENT if (_PACKAGE_PARENT / "pyproject.toml").exists() else Path.cwd()
DEFAULT_DATABASE_URL = f"sqlite:///{REPO_ROOT / 'woobird.db'}"

# Values people leave in place when they copy an example file.
_PLACEHOLDER = re.compile(
    r"^(|change[-_ ]?me|change[-_ ]?this|changeit|secret|token|password|xxx+|todo|none|null"
    r"|your[-_ ].*|.*[-_]your[-_].*|<.*>|\.\.\.|example)$",
    re.IGNORECASE,
)

# The settings without which nothing can be booked, with the fix a person needs to read.
REQUIRED_SETTINGS: dict[str, str] = {
    "woocommerce_url": "the shop's base URL, e.g. https://shop.example.nl",
    "woocommerce_consumer_key": "WooCommerce → Settings → Advanced → REST API → Add key (read/write)",
    "woocommerce_consumer_secret": "shown once next to the consumer key",
    "woocommerce_webhook_secret": "the order.updated webhook's secret (`woobird webhook install` makes one)",
    "moneybird_api_token": "Moneybird → Settings → External and AI integrations → personal API token",
    "moneybird_administration_id": "the number in the Moneybird URL; `woobird setup` lists them",
    "admin_token": "any long random string; it protects /admin (e.g. `openssl rand -hex 24`)",
}


# The web process starts with just these: the set-up wizard at /admin asks for the rest.
WEB_REQUIRED = ("ADMIN_TOKEN",)


class ConfigurationError(RuntimeError):
    """The configuration cannot work; the message names every setting to fix."""

    def __init__(self, problems: dict[str, str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  {name}: {why}" for name, why in problems.items())
        super().__init__(f"woobird cannot start, fix these settings (environment or .env):\n{lines}")


def _is_placeholder(value: str) -> bool:
    return bool(_PLACEHOLDER.match(value.strip()))


def _env_name(field: str) -> str:
    return field.upper()


def normalise_database_url(url: str) -> str:
    """Turn the URLs platforms hand out into SQLAlchemy async driver URLs.

    Heroku gives `postgres://…`; SQLAlchemy wants `postgresql+asyncpg://…`, and asyncpg spells
    libpq's `sslmode` as `ssl`.
    """
    parts = urlsplit(url)
    scheme = parts.scheme
    if scheme in {"postgres", "postgresql", "postgresql+psycopg", "postgresql+psycopg2"}:
        scheme = "postgresql+asyncpg"
    elif scheme == "sqlite":
        scheme = "sqlite+aiosqlite"
    if scheme not in {"postgresql+asyncpg", "sqlite+aiosqlite"}:
        raise ValueError(f"unsupported database {parts.scheme!r}: use postgres://… or sqlite:///path")
    if scheme == "sqlite+aiosqlite":
        # urlunsplit would fold sqlite's empty host ("sqlite:////abs/path") into a relative path.
        return scheme + url[len(parts.scheme) :]
    query = dict(parse_qsl(parts.query))
    if "sslmode" in query:
        query["ssl"] = query.pop("sslmode")
    return urlunsplit((scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


# Values the set-up wizard keeps in the database (app/settings_store.py), as environment text.
_STORED: ContextVar[Mapping[str, str] | None] = ContextVar("woobird_stored_settings", default=None)


@contextmanager
def stored_values(values: Mapping[str, str]) -> Iterator[None]:
    """Settings built inside this block see `values` (env names) below the environment and .env."""
    token = _STORED.set(values)
    try:
        yield
    finally:
        _STORED.reset(token)


class StoredSettingsSource(EnvSettingsSource):
    """The stored values, parsed exactly as the same text in an environment variable would be."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {name.lower(): value for name, value in (_STORED.get() or {}).items() if value}


def parse_rate_limit(value: str) -> tuple[int, float]:
    """`"150/300"` → 150 requests per 300 seconds."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)\s*", value)
    if not match or int(match[1]) < 1 or float(match[2]) <= 0:
        raise ValueError(f"expected REQUESTS/SECONDS such as 150/300, got {value!r}")
    return int(match[1]), float(match[2])


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", env_ignore_empty=True
    )

    # WooCommerce
    woocommerce_url: str = ""
    woocommerce_consumer_key: SecretStr = SecretStr("")
    woocommerce_consumer_secret: SecretStr = SecretStr("")
    woocommerce_webhook_secret: SecretStr = SecretStr("")
    woocommerce_vat_number_meta_keys: Annotated[list[str], NoDecode] = Field(
        default=[
            "_billing_vat_number",
            "_vat_number",
            "vat_number",
            "billing_vat",
            "_billing_vat",
            "_billing_eu_vat_number",
            "billing_eu_vat_number",
        ]
    )

    # Moneybird
    moneybird_api_token: SecretStr = SecretStr("")
    moneybird_administration_id: str = ""
    moneybird_api_url: str = "https://moneybird.com/api/v2"
    moneybird_rate_limit: str = "150/300"
    moneybird_tax_rates: dict[str, str] = Field(default_factory=dict)
    moneybird_ledger_account_id: str | None = None
    moneybird_shipping_ledger_account_id: str | None = None
    moneybird_workflow_id: str | None = None
    moneybird_document_style_id: str | None = None
    moneybird_timeout_seconds: float = 20.0
    # OAuth (the set-up wizard's "Connect with Moneybird"); the access token is MONEYBIRD_API_TOKEN.
    moneybird_client_id: str | None = None
    moneybird_client_secret: SecretStr | None = None
    moneybird_refresh_token: SecretStr | None = None
    moneybird_oauth_url: str = "https://moneybird.com/oauth"

    # What gets booked, and how
    sync_order_statuses: Annotated[list[str], NoDecode] = Field(default=["completed"])
    sync_since: datetime | None = None
    invoice_kind: Literal["sales_invoice", "external_sales_invoice"] = "sales_invoice"
    invoice_exact_vat: bool = False
    reconcile_interval_seconds: int = Field(default=300, ge=30)
    # A job that runs longer is cancelled; a worker killed mid-job hands its job on after this + 10 s.
    worker_job_timeout_seconds: int = Field(default=120, ge=10, le=3600)

    # Infrastructure
    redis_url: str = "redis://localhost:6379/0"
    redis_tls_verify: bool = False
    database_url: str = DEFAULT_DATABASE_URL
    port: int = 8000
    public_url: str | None = None
    admin_token: SecretStr = SecretStr("")
    # Encrypts the secrets the set-up wizard stores in the database (app/settings_store.py).
    secret_key: SecretStr = SecretStr("")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["console", "json"] = "console"

    # Alerts
    alert_webhook_url: str | None = None
    alert_email_to: str | None = None
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str | None = None
    smtp_starttls: bool = True

    # Set by `woobird run` when it starts the built-in sandbox; shown on every page and log line.
    woobird_sandbox: bool = False

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment wins over what the wizard stored (12-factor); the store over defaults.
        stored = StoredSettingsSource(settings_cls)
        return init_settings, env_settings, dotenv_settings, stored, file_secret_settings

    @field_validator("sync_order_statuses", "woocommerce_vat_number_meta_keys", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("sync_order_statuses")
    @classmethod
    def _known_statuses(cls, value: list[str]) -> list[str]:
        statuses = [status.removeprefix("wc-").lower() for status in value]
        if not statuses:
            raise ValueError("name at least one order status, e.g. completed")
        return statuses

    @field_validator("woocommerce_url", "public_url", "moneybird_api_url", "moneybird_oauth_url")
    @classmethod
    def _strip_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().rstrip("/")
        if value and urlsplit(value).scheme not in {"http", "https"}:
            raise ValueError(f"expected an http(s):// URL, got {value!r}")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        return normalise_database_url(value)

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        if urlsplit(value).scheme not in {"redis", "rediss", "unix"}:
            raise ValueError(f"expected redis:// or rediss://, got {value!r}")
        return value

    @field_validator("moneybird_rate_limit")
    @classmethod
    def _rate_limit(cls, value: str) -> str:
        parse_rate_limit(value)
        return value

    @field_validator("moneybird_tax_rates")
    @classmethod
    def _tax_rates(cls, value: dict[str, str]) -> dict[str, str]:
        cleaned: dict[str, str] = {}
        for key, rate_id in value.items():
            rate_id = str(rate_id).strip()
            if not rate_id.isdigit():
                raise ValueError(f"tax rate id for {key!r} must be a Moneybird id (digits), got {rate_id!r}")
            cleaned[normalise_tax_key(key)] = rate_id
        return cleaned

    @field_validator("sync_since")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value

    @field_validator("moneybird_administration_id")
    @classmethod
    def _administration_is_an_id(cls, value: str) -> str:
        value = value.strip()
        if value and not value.isdigit():
            raise ValueError("must be the number from the Moneybird URL (`woobird setup` lists them)")
        return value

    @property
    def rate_limit(self) -> tuple[int, float]:
        return parse_rate_limit(self.moneybird_rate_limit)

    @property
    def woocommerce_api_url(self) -> str:
        return self.woocommerce_url + "/wp-json/wc/v3"

    @property
    def webhook_url(self) -> str | None:
        return f"{self.public_url}/webhooks/woocommerce" if self.public_url else None

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def problems(self) -> dict[str, str]:
        """Every setting that is missing or still a placeholder, by environment name."""
        found: dict[str, str] = {}
        for field, fix in REQUIRED_SETTINGS.items():
            raw = getattr(self, field)
            value = raw.get_secret_value() if isinstance(raw, SecretStr) else str(raw or "")
            if not value.strip():
                found[_env_name(field)] = f"missing — {fix}"
            elif _is_placeholder(value):
                found[_env_name(field)] = f"still a placeholder — {fix}"
        if self.alert_email_to and not (self.smtp_host and self.smtp_from):
            found["SMTP_HOST"] = "ALERT_EMAIL_TO is set, so SMTP_HOST and SMTP_FROM are needed too"
        return found

    def require(self, *names: str) -> Settings:
        """Raise ConfigurationError when one of these (environment names) is missing or a placeholder."""
        problems = {name: why for name, why in self.problems().items() if name in names}
        if problems:
            raise ConfigurationError(problems)
        return self

    def require_complete(self) -> Settings:
        """Raise ConfigurationError naming every unusable setting; return self when all is well."""
        problems = self.problems()
        if problems:
            raise ConfigurationError(problems)
        return self


def normalise_tax_key(key: str) -> str:
    """`"21.0"` → `"21"`, `"de:19"` → `"DE:19"`; named treatments stay lower-case."""
    key = key.strip()
    if ":" in key:
        country, pct = key.split(":", 1)
        return f"{country.strip().upper()}:{_percentage_key(pct)}"
    if key.lower() in {"reverse_charge", "export"}:
        return key.lower()
    return _percentage_key(key)


def _percentage_key(text: str) -> str:
    try:
        value = Decimal(text.strip().rstrip("%"))
    except ArithmeticError as exc:
        raise ValueError(f"not a percentage: {text!r}") from exc
    normalised = value.normalize()
    return format(normalised, "f")


def load_settings(**overrides: Any) -> Settings:
    """Read the settings; a malformed value becomes a ConfigurationError naming it."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems: dict[str, str] = {}
        for error in exc.errors():
            name = _env_name(str(error["loc"][0])) if error["loc"] else "settings"
            problems[name] = error["msg"].removeprefix("Value error, ")
        raise ConfigurationError(problems) from None


# The two settings that mean "real accounts are configured": without both, `run` starts the sandbox.
ACCOUNT_SETTINGS = ("WOOCOMMERCE_URL", "MONEYBIRD_API_TOKEN")


def configured_accounts(env_file: Path) -> list[str]:
    """Which of the account settings are set, in the environment or the .env file."""
    from_file = dotenv_values(env_file) if env_file.exists() else {}
    return [name for name in ACCOUNT_SETTINGS if (os.environ.get(name) or from_file.get(name) or "").strip()]
