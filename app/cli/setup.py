"""`woobird check`, `woobird setup` and `woobird webhook install`: getting a shop owner from an empty
`.env` to a working connection without reading code.

`check` asks the live APIs, not just the settings, and says for every problem what to do about it.
`setup` reads the administration's reference data, proposes the choices and writes them down.
`webhook install` makes the shop's `order.updated` webhook point at woobird, with a secret we know.
"""

from __future__ import annotations

import getpass
import json
import re
import secrets
import shlex
import socket
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import typer
from pydantic import SecretStr
from rich.table import Table
from sqlalchemy import text

from app.cli.support import console, fail, moneybird_client, require, run, settings_or_exit, shop_client
from app.constants import QUEUE_NAME, WEBHOOK_PATH
from app.db import create_engine, session_factory
from app.invoicing.reference import AdministrationReference, TaxRate
from app.invoicing.vat import EXPORT, REVERSE_CHARGE, RateBook, VatRefusal, describe_key
from app.moneybird.errors import MoneybirdAuthError, MoneybirdConfigurationError, MoneybirdError
from app.moneybird.reference import load_reference
from app.queue import connect
from app.settings import ConfigurationError, Settings, normalise_tax_key
from app.settings_store import STORABLE, write_settings
from app.woocommerce.client import WooCommerceClient
from app.woocommerce.errors import AuthProblem, WooCommerceAuthError, WooCommerceError
from app.woocommerce.webhook_setup import WEBHOOK_TOPIC, install_webhook, our_webhooks

# The setting `check` names for each way the shop refuses the key (the message says the fix).
AUTH_PROBLEM_SETTING: dict[AuthProblem, str] = {
    "not_authenticated": "WooCommerce authentication",
    "unknown_key": "WOOCOMMERCE_CONSUMER_KEY",
    "wrong_secret": "WOOCOMMERCE_CONSUMER_SECRET",
    "clock": "clock",
    "no_rights": "WOOCOMMERCE_CONSUMER_KEY",
}
Target = Literal["env", "heroku", "fly"]


# ── check ────────────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class Finding:
    """One thing `check` looked at: fine, or wrong with the fix in plain words."""

    subject: str
    ok: bool
    message: str
    warning: bool = False


class Checker:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.findings: list[Finding] = []

    def good(self, subject: str, message: str) -> None:
        self.findings.append(Finding(subject, True, message))

    def bad(self, subject: str, message: str) -> None:
        self.findings.append(Finding(subject, False, message))

    def note(self, subject: str, message: str) -> None:
        self.findings.append(Finding(subject, True, message, warning=True))

    async def run(self) -> list[Finding]:
        problems = self.settings.problems()
        for name, why in problems.items():
            self.bad(name, why)
        shop_ready = not {"WOOCOMMERCE_URL", "WOOCOMMERCE_CONSUMER_KEY", "WOOCOMMERCE_CONSUMER_SECRET"} & set(
            problems
        )
        moneybird_ready = not {"MONEYBIRD_API_TOKEN", "MONEYBIRD_ADMINISTRATION_ID"} & set(problems)
        shop_rates: list[tuple[str, Decimal, str]] | None = None
        if shop_ready:
            shop_rates = await self.check_shop()
        reference = await self.check_moneybird() if moneybird_ready else None
        if reference is not None and shop_rates is not None:
            self.check_tax_rates(shop_rates, reference)
        await self.check_services()
        return self.findings

    async def check_shop(self) -> list[tuple[str, Decimal, str]] | None:
        url = self.settings.woocommerce_url
        if urlsplit(url).scheme != "https":
            self.note(
                "WOOCOMMERCE_URL",
                f"{url} uses plain HTTP: woobird signs every request (OAuth 1.0a), so the secret never "
                "travels, but orders and customer data do, unencrypted — fine on this machine or a LAN, "
                "use the https:// address for a shop on the internet",
            )
        async with shop_client(self.settings) as shop:
            try:
                await shop.get_json("/system_status")
                self.good("WooCommerce", f"{url} answers and accepts the consumer key")
                rates = await shop_tax_rates(shop)
                await self.check_webhook(shop)
            except WooCommerceAuthError as exc:
                self.bad(AUTH_PROBLEM_SETTING[exc.problem], f"the shop refused woobird: {exc}")
                return None
            except WooCommerceError as exc:
                self.bad("WOOCOMMERCE_URL", f"could not talk to the shop at {url}: {exc}")
                return None
        return rates

    async def check_webhook(self, shop: WooCommerceClient) -> None:
        hooks = [hook for hook in await shop.list_webhooks() if hook.topic == WEBHOOK_TOPIC]
        wanted = self.settings.webhook_url
        ours = our_webhooks(hooks, wanted)
        if not ours:
            where = wanted or f"…{WEBHOOK_PATH}"
            self.bad(
                "webhook",
                f"the shop has no {WEBHOOK_TOPIC} webhook delivering to {where}: "
                "run `woobird webhook install`" + ("" if wanted else " after setting PUBLIC_URL"),
            )
            return
        hook = ours[0]
        if hook.status != "active":
            self.bad(
                "webhook",
                f"webhook #{hook.id} is {hook.status} (WooCommerce disables a webhook after repeated failed "
                "deliveries): run `woobird webhook install` to switch it back on; reconciliation has been "
                "covering for it",
            )
        elif wanted and hook.delivery_url != wanted:
            self.bad(
                "webhook",
                f"webhook #{hook.id} delivers to {hook.delivery_url}, but PUBLIC_URL says {wanted}: "
                "run `woobird webhook install` to point it at this woobird",
            )
        else:
            self.good(
                "webhook", f"#{hook.id} {hook.status}, delivering {WEBHOOK_TOPIC} to {hook.delivery_url}"
            )
        if not wanted:
            self.note("PUBLIC_URL", "not set, so the webhook's address could not be compared with woobird's")

    async def check_moneybird(self) -> AdministrationReference | None:
        try:
            async with moneybird_client(self.settings) as moneybird:
                reference = await load_reference(moneybird)
        except MoneybirdAuthError as exc:
            self.bad(
                "MONEYBIRD_API_TOKEN",
                f"Moneybird refused the token ({exc}). Make a new personal API token under Moneybird → "
                "Settings → External and AI integrations and put it in MONEYBIRD_API_TOKEN.",
            )
            return None
        except MoneybirdConfigurationError as exc:
            self.bad("MONEYBIRD_ADMINISTRATION_ID", f"{exc}. `woobird setup` lists the administrations.")
            return None
        except MoneybirdError as exc:
            self.bad("Moneybird", f"could not talk to Moneybird: {exc}")
            return None
        name = reference.extra.get("administration_name", reference.administration_id)
        self.good("Moneybird", f"token accepted, administration {reference.administration_id} ({name})")
        self.check_choices(reference)
        return reference

    def check_choices(self, reference: AdministrationReference) -> None:
        s = self.settings
        accounts = {a.id for a in reference.revenue_accounts()}
        for name, value in (
            ("MONEYBIRD_LEDGER_ACCOUNT_ID", s.moneybird_ledger_account_id),
            ("MONEYBIRD_SHIPPING_LEDGER_ACCOUNT_ID", s.moneybird_shipping_ledger_account_id),
        ):
            if value and value not in accounts:
                self.bad(
                    name,
                    f"{value} is not an active revenue ledger account for sales invoices: `woobird setup`",
                )
        workflows = {w.id for w in reference.workflows if w.type == "InvoiceWorkflow" and w.active}
        if s.moneybird_workflow_id and s.moneybird_workflow_id not in workflows:
            self.bad("MONEYBIRD_WORKFLOW_ID", f"{s.moneybird_workflow_id} is not an active invoice workflow")
        styles = {d.id for d in reference.document_styles}
        if s.moneybird_document_style_id and s.moneybird_document_style_id not in styles:
            self.bad(
                "MONEYBIRD_DOCUMENT_STYLE_ID", f"{s.moneybird_document_style_id} is not a document style"
            )

    def check_tax_rates(
        self, shop_rates: list[tuple[str, Decimal, str]], reference: AdministrationReference
    ) -> None:
        """Every VAT rate the shop charges, and both zero-rate treatments, must find one Moneybird rate."""
        book = RateBook(reference=reference, overrides=self.settings.moneybird_tax_rates)
        keys = [(key, f"the shop's {label} ({_pct(percentage)} %)") for key, percentage, label in shop_rates]
        keys += [(key, describe_key(key)) for key in (REVERSE_CHARGE, EXPORT) if key in book.overrides]
        wrong = 0
        for key, what in keys:
            try:
                book.rate(key)
            except VatRefusal as refusal:
                wrong += 1
                self.bad("MONEYBIRD_TAX_RATES", f"{what}: {refusal.reason}. To fix: {refusal.fix}")
        if keys and not wrong:
            rates = ", ".join(f"{key} → {book.rate(key).name}" for key, _ in keys)
            self.good("tax rates", f"every VAT rate of the shop has its Moneybird tax rate ({rates})")

    async def check_services(self) -> None:
        redis = connect(self.settings.redis_url, tls_verify=self.settings.redis_tls_verify)
        try:
            await redis.ping()
            depth = await redis.zcard(QUEUE_NAME)
            self.good("Redis", f"answers; {depth} job(s) queued")
        except Exception as exc:
            self.bad(
                "REDIS_URL", f"Redis does not answer ({type(exc).__name__}: {exc}); start it or fix REDIS_URL"
            )
        finally:
            await redis.aclose()
        engine = create_engine(self.settings.database_url)
        try:
            async with engine.connect() as connection:
                await connection.execute(text("SELECT count(*) FROM orders"))
            self.good("database", "reachable and migrated")
        except Exception as exc:
            self.bad(
                "DATABASE_URL", f"the ledger is not usable ({type(exc).__name__}); run `woobird migrate`"
            )
        finally:
            await engine.dispose()


async def shop_tax_rates(shop: WooCommerceClient) -> list[tuple[str, Decimal, str]]:
    """The shop's VAT rates as (mapping key, percentage, label), one per distinct key."""
    found: dict[str, tuple[str, Decimal, str]] = {}
    base_country = await _base_country(shop)
    for raw in await shop.get_json("/taxes", per_page=100):
        percentage = Decimal(str(raw.get("rate") or "0"))
        country = str(raw.get("country") or "").upper()
        foreign = bool(country) and country != base_country
        key = normalise_tax_key(f"{country}:{percentage}" if foreign else str(percentage))
        found.setdefault(key, (key, percentage, str(raw.get("name") or key)))
    return list(found.values())


async def _base_country(shop: WooCommerceClient) -> str:
    try:
        setting = await shop.get_json("/settings/general/woocommerce_default_country")
    except WooCommerceError:
        return "NL"
    return str(setting.get("value") or "NL").split(":")[0].upper()


def propose_tax_rate(key: str, reference: AdministrationReference) -> TaxRate | None:
    """The one active sales tax rate that books a shop rate (or treatment), found as the worker would."""
    try:
        return RateBook(reference=reference).rate(key)
    except VatRefusal:
        return None


def _rate_id(rate: TaxRate | None) -> str:
    return rate.id if rate is not None else ""


def _pct(value: Decimal) -> str:
    return format(value.normalize(), "f")


def print_findings(findings: list[Finding]) -> bool:
    ok = all(finding.ok for finding in findings)
    for finding in findings:
        mark = "[yellow]![/]" if finding.warning else ("[green]✓[/]" if finding.ok else "[bold red]✗[/]")
        console.print(f"{mark} [bold]{finding.subject}[/]: {finding.message}")
    wrong = sum(1 for finding in findings if not finding.ok)
    if ok:
        console.print("[green]All is well: paid orders will be booked.[/]")
    else:
        console.print(f"[bold red]{wrong} problem(s) to fix before woobird can book every order.[/]")
    return ok


def check_command() -> None:
    """Verify every setting against the live shop and Moneybird; exit 0 only when all is well."""
    settings = settings_or_exit()
    findings = run(Checker(settings).run())
    if not print_findings(findings):
        raise typer.Exit(1)


# ── setup ────────────────────────────────────────────────────────────────────────────────────


@dataclass
class Choices:
    values: dict[str, str]


def setup_command(
    token: str = typer.Option("", help="Moneybird API token (default: MONEYBIRD_API_TOKEN)"),
    administration: str = typer.Option("", help="Administration id (default: asked, or the only one)"),
    yes: bool = typer.Option(False, "--yes", "-y", help="Accept every proposal without asking"),
    print_for: str = typer.Option(
        "", "--print", help="Print the settings instead of writing .env: env, heroku or fly"
    ),
    env_file: Path = typer.Option(Path(".env"), help="The .env file to write"),
    store: bool = typer.Option(
        False, "--store", help="Write to the database's settings store (as the set-up wizard does)"
    ),
) -> None:
    """List the Moneybird administration's choices, propose the mapping and write the settings."""
    if print_for and print_for not in ("env", "heroku", "fly"):
        fail("--print takes env, heroku or fly")
    settings = settings_or_exit()
    values: dict[str, str] = {}
    token = token or settings.moneybird_api_token.get_secret_value()
    if not token or "MONEYBIRD_API_TOKEN" in settings.problems():
        token = typer.prompt("Moneybird API token (Settings → External and AI integrations)", hide_input=True)
        values["MONEYBIRD_API_TOKEN"] = token
    elif token != settings.moneybird_api_token.get_secret_value():
        values["MONEYBIRD_API_TOKEN"] = token
    choices = run(_choose(settings, token=token, administration=administration, yes=yes))
    values |= choices.values
    for name in ("ADMIN_TOKEN", "WOOCOMMERCE_WEBHOOK_SECRET"):
        if name in settings.problems():
            values[name] = secrets.token_urlsafe(32)
    if print_for:
        print_settings(values, target=print_for)  # type: ignore[arg-type]
        return
    if store:
        _store(settings, values)
        return
    write_env(env_file, values)
    console.print(f"[green]✓[/] wrote {len(values)} setting(s) to {env_file}; now run [bold]woobird check[/]")


def _store(settings: Settings, values: dict[str, str]) -> None:
    """Write the storable values to the settings store; the rest belong in the environment."""
    storable = {name: value for name, value in values.items() if name in STORABLE}
    actor = f"woobird setup ({getpass.getuser()}@{socket.gethostname()})"

    async def write() -> list[str]:
        engine = create_engine(settings.database_url)
        try:
            return await write_settings(session_factory(engine), base=settings, values=storable, actor=actor)
        finally:
            await engine.dispose()

    try:
        changed = run(write())
    except ConfigurationError as exc:
        fail("; ".join(f"{name}: {why}" for name, why in exc.problems.items()))
    console.print(
        f"[green]✓[/] stored {len(changed)} changed setting(s) in the database; now run woobird check"
    )
    for name in sorted(set(values) - set(storable)):
        console.print(f"[yellow]![/] {name} belongs in the environment (it is not stored): {name}=…")


async def _choose(settings: Settings, *, token: str, administration: str, yes: bool) -> Choices:
    update = {"moneybird_api_token": SecretStr(token), "moneybird_administration_id": administration or "0"}
    probe = settings.model_copy(update=update)
    try:
        async with moneybird_client(probe) as moneybird:
            administrations = await moneybird.list_administrations()
    except MoneybirdAuthError as exc:
        fail(f"Moneybird refused the token ({exc}); make a new one and run setup again")
    except MoneybirdError as exc:
        fail(f"could not talk to Moneybird: {exc}")
    if not administrations:
        fail("this token reaches no administration")
    table = Table("id", "name", "country", "currency", title="Moneybird administrations")
    for adm in administrations:
        table.add_row(adm.id, adm.name, adm.country, adm.currency)
    console.print(table)
    ids = [adm.id for adm in administrations]
    chosen = administration or settings.moneybird_administration_id
    if chosen not in ids:
        chosen = ids[0] if len(ids) == 1 or yes else typer.prompt("Administration id", default=ids[0])
    if chosen not in ids:
        fail(f"administration {chosen} is not one of {', '.join(ids)}")
    probe = probe.model_copy(update={"moneybird_administration_id": chosen})
    async with moneybird_client(probe) as moneybird:
        reference = await load_reference(moneybird)
    shop_rates = await _shop_rates_or_defaults(settings)
    values = {"MONEYBIRD_ADMINISTRATION_ID": chosen}
    values |= _choose_tax_rates(reference, shop_rates, current=settings.moneybird_tax_rates, yes=yes)
    values |= _choose_reference(reference, settings=settings, yes=yes)
    return Choices(values)


async def _shop_rates_or_defaults(settings: Settings) -> list[tuple[str, Decimal, str]]:
    defaults = [
        ("21", Decimal(21), "21 % (standard)"),
        ("9", Decimal(9), "9 % (reduced)"),
        ("0", Decimal(0), "0 %"),
    ]
    if {"WOOCOMMERCE_URL", "WOOCOMMERCE_CONSUMER_KEY", "WOOCOMMERCE_CONSUMER_SECRET"} & set(
        settings.problems()
    ):
        console.print(
            "[yellow]![/] the shop is not configured yet: proposing the Dutch rates 21 %, 9 % and 0 %"
        )
        return defaults
    try:
        async with shop_client(settings) as shop:
            rates = await shop_tax_rates(shop)
    except WooCommerceError as exc:
        console.print(
            f"[yellow]![/] could not read the shop's tax rates ({exc}): proposing 21 %, 9 % and 0 %"
        )
        return defaults
    return rates or defaults


def _choose_tax_rates(
    reference: AdministrationReference,
    shop_rates: list[tuple[str, Decimal, str]],
    *,
    current: dict[str, str],
    yes: bool,
) -> dict[str, str]:
    table = Table("id", "name", "%", "country", title="Moneybird sales tax rates")
    for sales_rate in reference.sales_tax_rates():
        table.add_row(sales_rate.id, sales_rate.name, _pct(sales_rate.percentage), sales_rate.country or "")
    console.print(table)
    mapping: dict[str, str] = {}
    for key, _, label in shop_rates:
        proposal = current.get(key) or _rate_id(propose_tax_rate(key, reference))
        mapping[key] = _ask(f"Moneybird tax rate for the shop's {label} ({key})", proposal, yes=yes)
    for key in (REVERSE_CHARGE, EXPORT):
        proposal = current.get(key) or _rate_id(propose_tax_rate(key, reference))
        mapping[key] = _ask(f"Moneybird tax rate for the {describe_key(key)}", proposal, yes=yes)
    mapping = {key: value for key, value in mapping.items() if value}
    console.print("Proposed MONEYBIRD_TAX_RATES: " + json.dumps(mapping))
    return {"MONEYBIRD_TAX_RATES": json.dumps(mapping, separators=(",", ":"))}


def _choose_reference(reference: AdministrationReference, *, settings: Settings, yes: bool) -> dict[str, str]:
    accounts = reference.revenue_accounts()
    table = Table("id", "code", "name", title="Revenue ledger accounts")
    for account in accounts:
        table.add_row(account.id, account.account_id or "", account.name)
    console.print(table)
    workflows = [w for w in reference.workflows if w.type == "InvoiceWorkflow" and w.active]
    table = Table("id", "name", "default", "prices incl. VAT", title="Invoice workflows")
    for workflow in workflows:
        table.add_row(
            workflow.id, workflow.name, "yes" if workflow.default else "", str(workflow.prices_are_incl_tax)
        )
    console.print(table)
    table = Table("id", "name", "default", title="Document styles")
    for style in reference.document_styles:
        table.add_row(style.id, style.name, "yes" if style.default else "")
    console.print(table)
    proposals = {
        "MONEYBIRD_LEDGER_ACCOUNT_ID": settings.moneybird_ledger_account_id or "",
        "MONEYBIRD_WORKFLOW_ID": settings.moneybird_workflow_id
        or next((w.id for w in workflows if w.default), ""),
        "MONEYBIRD_DOCUMENT_STYLE_ID": settings.moneybird_document_style_id
        or next((d.id for d in reference.document_styles if d.default), ""),
    }
    chosen = {
        name: _ask(name + " (empty: Moneybird's default)", value, yes=yes)
        for name, value in proposals.items()
    }
    return {name: value for name, value in chosen.items() if value}


def _ask(question: str, proposal: str, *, yes: bool) -> str:
    if yes:
        return proposal
    answer: str = typer.prompt(question, default=proposal, show_default=True)
    return answer.strip()


def write_env(path: Path, values: dict[str, str]) -> None:
    """Set these keys in a .env file, keeping every other line (comments included) as it was."""
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    pending = dict(values)
    output: list[str] = []
    for line in lines:
        name = line.split("=", 1)[0].strip().removeprefix("export ").strip()
        if "=" in line and not line.lstrip().startswith("#") and name in pending:
            output.append(f"{name}={_env_quote(pending.pop(name))}")
        else:
            output.append(line)
    output.extend(f"{name}={_env_quote(value)}" for name, value in pending.items())
    path.write_text("\n".join(output) + "\n", encoding="utf-8")


def _env_quote(value: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9_./:@+,-]*", value):
        return value
    return "'" + value.replace("'", "\\'") + "'"


def print_settings(values: dict[str, str], *, target: Target) -> None:
    assignments = " ".join(f"{name}={shlex.quote(value)}" for name, value in values.items())
    if target == "heroku":
        typer.echo(f"heroku config:set {assignments}")
    elif target == "fly":
        typer.echo(f"fly secrets set {assignments}")
    else:
        for name, value in values.items():
            typer.echo(f"{name}={_env_quote(value)}")


# ── webhook install ──────────────────────────────────────────────────────────────────────────


def webhook_install_command(
    url: str = typer.Option("", help="woobird's public base URL (default: PUBLIC_URL)"),
    print_for: str = typer.Option(
        "", "--print", help="Print the new secret for heroku or fly instead of writing .env"
    ),
    env_file: Path = typer.Option(Path(".env"), help="The .env file that receives a new secret"),
) -> None:
    """Register (or repair) the shop's order.updated webhook pointing at woobird."""
    settings = settings_or_exit()
    require(settings, "WOOCOMMERCE_URL", "WOOCOMMERCE_CONSUMER_KEY", "WOOCOMMERCE_CONSUMER_SECRET")
    base = (url or settings.public_url or "").rstrip("/")
    if not base:
        fail("set PUBLIC_URL (where the shop reaches woobird, e.g. https://woobird.example.nl) or pass --url")
    if urlsplit(base).scheme not in ("http", "https"):
        fail(f"{base!r} is not an http(s):// URL")
    secret = settings.woocommerce_webhook_secret.get_secret_value()
    new_secret = "WOOCOMMERCE_WEBHOOK_SECRET" in settings.problems()
    if new_secret:
        secret = secrets.token_urlsafe(32)
    try:
        message = run(_install_webhook(settings, delivery_url=base + WEBHOOK_PATH, secret=secret))
    except WooCommerceAuthError as exc:
        fail(f"the shop refused the key ({exc}); webhooks need a Read/Write key of an administrator")
    except WooCommerceError as exc:
        fail(f"could not talk to the shop: {exc}")
    console.print(f"[green]✓[/] {message}")
    if new_secret:
        values = {"WOOCOMMERCE_WEBHOOK_SECRET": secret}
        if print_for in ("heroku", "fly"):
            print_settings(values, target=print_for)  # type: ignore[arg-type]
        else:
            write_env(env_file, values)
            console.print(
                f"[green]✓[/] stored the webhook's new secret in {env_file}; restart woobird to use it"
            )


async def _install_webhook(settings: Settings, *, delivery_url: str, secret: str) -> str:
    async with shop_client(settings) as shop:
        return await install_webhook(shop, delivery_url=delivery_url, secret=secret)
