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
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from dotenv import dotenv_values
from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from app.constants import VAT_NUMBER_META_KEYS
from app.i18n import DEFAULT_LANGUAGE, LANGUAGES, N_, Language, Message
from app.invoicing.vat import normalise_tax_key
from app.redaction import REDACTED, safe_url
from app.tokens import weakness

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
    "woocommerce_url": N_("the shop's base URL, e.g. https://shop.example.nl"),
    "woocommerce_consumer_key": N_("WooCommerce → Settings → Advanced → REST API → Add key (read/write)"),
    "woocommerce_consumer_secret": N_("shown once next to the consumer key"),
    "woocommerce_webhook_secret": N_(
        "the order.updated webhook's secret (`woobird webhook install` makes one)"
    ),
    "moneybird_api_token": N_("Moneybird → Settings → External and AI integrations → personal API token"),
    "moneybird_administration_id": N_("the number in the Moneybird URL; `woobird setup` lists them"),
    "admin_token": N_("at least 32 random characters; it protects /admin (`woobird setup` makes one)"),
}


# The web process starts with just these: the set-up wizard at /admin asks for the rest.
WEB_REQUIRED = ("ADMIN_TOKEN",)


# The secrets that guard woobird's own endpoints: strong, and each its own.
GUARD_TOKENS: dict[str, str] = {
    "admin_token": "make one with `woobird setup` (or `openssl rand -hex 32`)",
    "woocommerce_webhook_secret": "`woobird webhook install` makes a new one and gives it to the shop",
    "metrics_token": "make one with `openssl rand -hex 32` and give the same to Prometheus",
    "secret_key": "make one with `openssl rand -hex 32`; keep it, the stored secrets need it",
}


class Credentialed(str):
    """A URL or login that can carry a password: the plain string to every client that connects
    with it, but its repr — what a traceback, a log of the settings or `repr(settings)` shows —
    keeps only the scheme and host."""

    __slots__ = ()

    def __repr__(self) -> str:
        parts = urlsplit(self)
        if not (parts.scheme and parts.hostname):
            return repr(REDACTED)
        port = f":{parts.port}" if parts.port else ""
        return repr(f"{parts.scheme}://{parts.hostname}{port}/{REDACTED}")


def _credentialed(value: str | None) -> str | None:
    return None if value is None else Credentialed(value)


class ConfigurationError(RuntimeError):
    """The configuration cannot work; the message names every setting to fix."""

    def __init__(self, problems: dict[str, str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  {name}: {why}" for name, why in problems.items())
        super().__init__(f"woobird cannot start, fix these settings (environment or .env):\n{lines}")


def one_line(error: ConfigurationError) -> str:
    """The refusal as one log line: `woobird cannot start: SECRET_KEY: …; ADMIN_TOKEN: …`."""
    return "woobird cannot start: " + "; ".join(f"{name}: {why}" for name, why in error.problems.items())


# WooCommerce payment gateway ids are plugin slugs: bacs, cheque, cod, mollie_wc_gateway_ideal, ….
_PAYMENT_METHOD_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}", re.IGNORECASE)
# Orders in these statuses are finished without payment: they never wait for one.
_NOT_OPEN_STATUSES = frozenset({"cancelled", "refunded", "failed", "trash", "checkout-draft"})


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


# Settings another connection keeps of its own (env names): the environment's describe connection 1.
_OWN: ContextVar[frozenset[str]] = ContextVar("woobird_connection_own_settings", default=frozenset())


@contextmanager
def stored_values(values: Mapping[str, str], *, own: frozenset[str] = frozenset()) -> Iterator[None]:
    """Settings built inside this block see `values` (env names) below the environment and .env;
    for the names in `own` (another connection's), only `values`: never the environment's."""
    token = _STORED.set(values)
    own_token = _OWN.set(own)
    try:
        yield
    finally:
        _OWN.reset(own_token)
        _STORED.reset(token)


class _LeavingOutOwn(PydanticBaseSettingsSource):
    """The environment (or .env) without the settings the connection being built keeps of its own."""

    def __init__(self, inner: PydanticBaseSettingsSource) -> None:
        super().__init__(inner.settings_cls)
        self._inner = inner

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        values = self._inner()
        own = _OWN.get()
        return {name: value for name, value in values.items() if name.upper() not in own} if own else values


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

    # Each setting's one description is the `description` below: app/settings_help.py renders
    # `.env.example`, `app.json` and the README's table from it.

    # WooCommerce
    woocommerce_url: str = Field(
        "",
        description="The shop's base URL, e.g. https://shop.example.nl (the API is under /wp-json/wc/v3); "
        "empty: the set-up wizard at /admin asks for it.",
    )
    woocommerce_consumer_key: SecretStr = Field(
        SecretStr(""),
        description="WooCommerce → Settings → Advanced → REST API → Add key, Read/Write (ck_…); "
        "sent as Basic auth over HTTPS, as OAuth 1.0a signatures to an http:// shop.",
    )
    woocommerce_consumer_secret: SecretStr = Field(
        SecretStr(""), description="The cs_… secret shown once next to the consumer key."
    )
    woocommerce_webhook_secret: SecretStr = Field(
        SecretStr(""),
        description="Secret of the order.updated webhook: at least 32 random characters, not ADMIN_TOKEN; "
        "`woobird webhook install`, the wizard and the Heroku button make one.",
    )
    woocommerce_vat_number_meta_keys: Annotated[list[str], NoDecode] = Field(
        default=list(VAT_NUMBER_META_KEYS),
        description="Order meta keys that may hold the customer's VAT number, comma-separated "
        "(VAT plugins differ).",
    )

    # Moneybird
    moneybird_api_token: SecretStr = Field(
        SecretStr(""),
        description="Moneybird → Settings → External and AI integrations → personal API token "
        "(scope sales_invoices; settings too for `woobird products`).",
    )
    moneybird_administration_id: str = Field(
        "", description="The number in the Moneybird URL; `woobird setup` lists them."
    )
    moneybird_api_url: str = Field(
        "https://moneybird.com/api/v2",
        description="Moneybird's API base URL; change it only for a test server.",
    )
    moneybird_rate_limit: str = Field(
        "150/300",
        description="Requests per seconds woobird may spend, shared by every process through Redis.",
    )
    moneybird_tax_rates: dict[str, str] = Field(
        default_factory=dict,
        description='Shop VAT rate → Moneybird tax rate id, JSON: {"21": "…", "9": "…", "0": "…", '
        '"reverse_charge": "…", "export": "…", "DE:19": "…"}. Without it each percentage maps to the one '
        "active sales tax rate of that percentage; an ambiguous or missing rate refuses the order and "
        "names the key to set.",
    )
    moneybird_ledger_account_id: str | None = Field(
        None, description="Revenue ledger account for order lines (empty: Moneybird's default)."
    )
    moneybird_shipping_ledger_account_id: str | None = Field(
        None, description="Revenue ledger account for shipping and fees (empty: the order lines' account)."
    )
    moneybird_workflow_id: str | None = Field(
        None, description="Invoice workflow (empty: the administration's default invoice workflow)."
    )
    moneybird_document_style_id: str | None = Field(
        None, description="Document style (invoice profile) of the invoices (empty: the default style)."
    )
    moneybird_timeout_seconds: float = Field(
        20.0, description="Seconds one Moneybird request may take before it counts as failed."
    )
    # OAuth (the set-up wizard's "Connect with Moneybird"); the access token is MONEYBIRD_API_TOKEN.
    moneybird_client_id: str | None = Field(
        None,
        description="Client id of your Moneybird OAuth app (moneybird.com/user/applications, redirect URI "
        "https://<woobird>/admin/setup/moneybird/callback): the wizard then offers Connect with Moneybird "
        "instead of a pasted token.",
    )
    moneybird_client_secret: SecretStr | None = Field(None, description="Client secret of that OAuth app.")
    moneybird_refresh_token: SecretStr | None = Field(
        None,
        description="Stored by the wizard after Connect with Moneybird (never set it by hand); a 401 on the "
        "access token is answered by one refresh, stored for every process.",
    )
    moneybird_webhook_secret: SecretStr | None = Field(
        None,
        description="Stored by `woobird webhook install` and the wizard when they register woobird's webhook "
        "in Moneybird (never set it by hand): Moneybird signs its pushes with it and shows it only once.",
    )
    moneybird_oauth_url: str = Field(
        "https://moneybird.com/oauth",
        description="Moneybird's OAuth base URL; change it only for a test server.",
    )

    # What gets booked, and how
    sync_order_statuses: Annotated[list[str], NoDecode] = Field(
        default=["completed"],
        description="Order statuses that are booked once paid, comma-separated, e.g. completed,processing.",
    )
    sync_since: datetime | None = Field(
        None,
        description="Book orders paid from this moment (ISO 8601); older ones are marked before_since "
        "unless backfilled.",
    )
    invoice_kind: Literal["sales_invoice", "external_sales_invoice"] = Field(
        "sales_invoice",
        description="sales_invoice (Moneybird numbers it) or external_sales_invoice (the shop's number), "
        "see Which invoice kind.",
    )
    invoice_exact_vat: bool = Field(
        False,
        description="true: correction lines make the VAT per rate match the shop's to the cent, "
        "see The invoice plan.",
    )
    reconcile_interval_seconds: int = Field(
        300, ge=30, description="Seconds between polls of the shop for orders a webhook missed (at least 30)."
    )
    worker_job_timeout_seconds: int = Field(
        120,
        ge=10,
        le=3600,
        description="Longest a booking job may run, in seconds; a killed worker's job is taken up again "
        "after this + 10 s.",
    )

    # After booking
    order_changes: Literal["report", "rebook"] = Field(
        "report",
        description="An order changed in the shop after its invoice was booked: report it (dashboard, "
        "status, alert), or rebook it — credit the invoice in full and book the order as it is now; see "
        "After booking.",
    )
    contact_updates: bool = Field(
        False,
        description="true: a customer's new name, company, address, VAT number or phone in the shop updates "
        "their Moneybird contact, and a registered customer's new e-mail address is shown for you to decide; "
        "see After booking.",
    )
    shop_notes: bool = Field(
        True,
        description="Add a private note to each booked order in WooCommerce with its Moneybird invoice "
        "(number, total, link), and likewise for credit invoices; false: write nothing to the shop. See "
        "The shop sees its invoices.",
    )
    # Open invoices, paid later
    open_invoice_payment_methods: Annotated[list[str], NoDecode] = Field(
        default=[],
        description="WooCommerce payment method ids whose orders are booked unpaid, as open invoices, once "
        "they reach OPEN_INVOICE_STATUSES, e.g. bacs,cheque,cod; empty: off. See Open invoices, paid later.",
    )
    open_invoice_statuses: Annotated[list[str], NoDecode] = Field(
        default=["on-hold", "processing"],
        description="Order statuses in which an unpaid order of OPEN_INVOICE_PAYMENT_METHODS is booked as an "
        "open invoice, comma-separated.",
    )
    open_invoice_delivery: Literal["Manual", "Email"] = Field(
        "Manual",
        description="How Moneybird sends an open invoice: Manual (numbered, not sent), or Email (Moneybird "
        "e-mails it to the customer with its payment details, and its reminders follow).",
    )
    paid_order_status: str = Field(
        "processing",
        description="The status woobird gives an order whose open invoice was paid in Moneybird (with its "
        "paid date and a note).",
    )
    verify_interval_hours: int = Field(
        24,
        ge=0,
        le=24 * 31,
        description="Hours between verifications that every booked invoice is still in Moneybird, at its "
        "booked total and paid (0: never; `woobird verify --month` still works); see After booking.",
    )
    verify_months: int = Field(
        3,
        ge=1,
        le=24,
        description="How many months each verification reads back: this month and the ones before it.",
    )

    # Infrastructure
    redis_url: str = Field(
        "redis://localhost:6379/0",
        description="Redis for the queue and the shared rate limiter; rediss:// works. Heroku and Fly set it "
        "with their Redis add-on.",
    )
    redis_tls_verify: bool = Field(
        False,
        description="Verify Redis's TLS certificate (Heroku's Key-Value Store is self-signed: leave false).",
    )
    database_url: str = Field(
        DEFAULT_DATABASE_URL,
        description="The ledger: postgres://… as Heroku and Fly give it (?sslmode=require honoured), or "
        "sqlite:///path.",
    )
    port: int = Field(8000, description="Port of the web process; Heroku and Fly set it.")
    public_url: str | None = Field(
        None,
        description="Where the shop reaches woobird, e.g. https://woobird.example.nl (for the webhook); "
        "empty: the set-up wizard shows the address you opened it at for you to confirm or correct.",
    )
    admin_token: SecretStr = Field(
        SecretStr(""),
        description="Protects /admin: at least 32 random characters, not the webhook secret; "
        "`woobird setup` makes one. The one setting the web process cannot start without.",
    )
    secret_key: SecretStr = Field(
        SecretStr(""),
        description="Encrypts the keys and tokens the set-up wizard stores in the database: at least 32 "
        "random characters (`openssl rand -hex 32`; the Heroku button generates it), required once the "
        "wizard stores a secret.",
    )
    metrics_token: SecretStr | None = Field(
        None,
        description="When set, /metrics answers only requests with `Authorization: Bearer <it>` "
        "(Prometheus: authorization.credentials); at least 32 random characters.",
    )
    trusted_proxy: Literal["auto", "heroku", "fly", "none"] = Field(
        "auto",
        description="Whose word on the client's address and scheme counts: heroku (the last X-Forwarded-For "
        "hop, X-Forwarded-Proto), fly (Fly-Client-IP, X-Forwarded-Proto), none (the connection's own address "
        "and scheme); auto picks by the platform's variables.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="DEBUG, INFO, WARNING or ERROR."
    )
    log_format: Literal["console", "json"] = Field(
        "console", description="console (readable) or json (for log services; the Docker image sets it)."
    )
    language: Language = Field(
        DEFAULT_LANGUAGE,
        description="nl (Nederlands) or en (English): the language of alerts, the month report and the CLI; "
        "the dashboard follows each browser's language.",
    )

    # Alerts
    alert_webhook_url: str | None = Field(
        None, description="A Slack/Teams-compatible incoming webhook that hears when an order fails to book."
    )
    alert_email_to: str | None = Field(
        None, description="E-mail address that hears about failed orders (needs SMTP_HOST and SMTP_FROM)."
    )
    smtp_host: str | None = Field(None, description="Mail server for alert e-mails.")
    smtp_port: int = Field(587, description="Mail server port (587 with STARTTLS).")
    smtp_username: str | None = Field(None, description="Mail server login.")
    smtp_password: SecretStr | None = Field(None, description="Mail server password.")
    smtp_from: str | None = Field(None, description="Sender address of alert e-mails.")
    smtp_starttls: bool = Field(True, description="Use STARTTLS with the mail server.")

    woobird_sandbox: bool = Field(
        False, description="Set by `woobird run` for the built-in demo only; never set it yourself."
    )

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
        environment, dotenv = _LeavingOutOwn(env_settings), _LeavingOutOwn(dotenv_settings)
        return init_settings, environment, dotenv, stored, file_secret_settings

    @field_validator(
        "sync_order_statuses",
        "woocommerce_vat_number_meta_keys",
        "open_invoice_payment_methods",
        "open_invoice_statuses",
        mode="before",
    )
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

    @field_validator("open_invoice_payment_methods")
    @classmethod
    def _payment_method_ids(cls, value: list[str], info: ValidationInfo) -> list[str]:
        if value and info.data.get("invoice_kind") == "external_sales_invoice":
            raise ValueError(
                "open invoices are sales invoices (Moneybird sends them and takes their payments): leave "
                "it empty with INVOICE_KIND=external_sales_invoice"
            )
        for method in value:
            if not _PAYMENT_METHOD_ID.fullmatch(method):
                raise ValueError(
                    f"{method[:40]!r} is not a payment method id: use the ids WooCommerce shows under "
                    "Payments (bacs, cheque, cod, …), comma-separated"
                )
        return value

    @field_validator("open_invoice_statuses")
    @classmethod
    def _open_invoice_statuses(cls, value: list[str]) -> list[str]:
        statuses = [status.removeprefix("wc-").lower() for status in value]
        refused = sorted(set(statuses) & _NOT_OPEN_STATUSES)
        if refused:
            raise ValueError(
                f"{', '.join(refused)} cannot hold an open invoice: name statuses of orders awaiting "
                "payment, e.g. on-hold,processing"
            )
        if not statuses:
            raise ValueError("name at least one order status, e.g. on-hold")
        return statuses

    @field_validator("paid_order_status")
    @classmethod
    def _paid_order_status(cls, value: str) -> str:
        status = value.strip().removeprefix("wc-").lower()
        if status in _NOT_OPEN_STATUSES | {"pending", "on-hold", ""}:
            raise ValueError(f"{status or 'empty'!r} is not a paid status: use processing or completed")
        return status

    @field_validator("woocommerce_url", "public_url", "moneybird_api_url", "moneybird_oauth_url")
    @classmethod
    def _strip_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().rstrip("/")
        if value and urlsplit(value).scheme not in {"http", "https"}:
            raise ValueError(f"expected an http(s):// URL, got {safe_url(value)!r}")
        return value

    @field_validator("language", mode="before")
    @classmethod
    def _language(cls, value: Any) -> Any:
        return language_setting(str(value))

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        return Credentialed(normalise_database_url(value))

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        if urlsplit(value).scheme not in {"redis", "rediss", "unix"}:
            raise ValueError(f"expected redis:// or rediss://, got {safe_url(value)!r}")
        return Credentialed(value)

    @field_validator("alert_webhook_url", "smtp_username")
    @classmethod
    def _keep_credentials_out_of_repr(cls, value: str | None) -> str | None:
        return _credentialed(value)

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
                found[_env_name(field)] = Message("missing — %(fix)s", fix=Message(fix))
            elif _is_placeholder(value):
                found[_env_name(field)] = Message("still a placeholder — %(fix)s", fix=Message(fix))
        for field, problem in self._weak_tokens().items():
            found.setdefault(_env_name(field), problem)
        if self.alert_email_to and not (self.smtp_host and self.smtp_from):
            found["SMTP_HOST"] = Message("ALERT_EMAIL_TO is set, so SMTP_HOST and SMTP_FROM are needed too")
        return found

    def _weak_tokens(self) -> dict[str, str]:
        """The guard tokens that are short, predictable, or the same as another secret."""
        others = {
            "woocommerce_consumer_secret": self.woocommerce_consumer_secret.get_secret_value(),
            "moneybird_api_token": self.moneybird_api_token.get_secret_value(),
        }
        found: dict[str, str] = {}
        seen: dict[str, str] = {}
        for field, fix in GUARD_TOKENS.items():
            raw = getattr(self, field)
            value = raw.get_secret_value().strip() if isinstance(raw, SecretStr) else ""
            if not value:
                continue  # missing: named by problems() when required
            same = next((name for name, other in {**seen, **others}.items() if other == value), None)
            reason = weakness(value)
            if same is not None:
                found[field] = f"the same as {_env_name(same)}: each secret must be its own — {fix}"
            elif reason is not None:
                found[field] = f"{reason} — {fix}"
            seen[field] = value
        return found

    def require(self, *names: str) -> Settings:
        """Raise ConfigurationError when one of these (environment names) is missing or a placeholder,
        or when any guard token that is set is weak: a process never runs with one."""
        weak = {_env_name(field) for field in self._weak_tokens()}
        problems = {name: why for name, why in self.problems().items() if name in names or name in weak}
        if problems:
            raise ConfigurationError(problems)
        return self

    def require_complete(self) -> Settings:
        """Raise ConfigurationError naming every unusable setting; return self when all is well."""
        problems = self.problems()
        if problems:
            raise ConfigurationError(problems)
        return self


def language_setting(value: str) -> Language:
    """LANGUAGE's value. GNU gettext reads LANGUAGE too, as a list like `nl_NL:en`, so a desktop's own
    value is read as its first language woobird speaks; ValueError when it names none."""
    for part in value[:200].split(":"):
        code = part.strip().split(".")[0].split("_")[0].split("-")[0].lower()
        for language in LANGUAGES:
            if code == language:
                return language
    raise ValueError(f"LANGUAGE must be one of {', '.join(LANGUAGES)}, not {value[:20]!r}")


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
