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
import shlex
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import typer
from pydantic import SecretStr
from rich.markup import escape
from rich.table import Table

from app.checks import Checker, CheckResult, percentage_text
from app.cli.support import (
    ConnectionOption,
    chosen_connection,
    chosen_connection_name,
    console,
    fail,
    ledger_sessions,
    require,
    run,
    settings_or_exit,
    styled,
    use_connection,
)
from app.clients import moneybird_client, shop_client
from app.connections import connection_path
from app.constants import ENVIRONMENT_CONNECTION_ID, WEBHOOK_PATH
from app.i18n import N_, Language, Message, ntranslate, said, shown, translate
from app.invoicing.reference import AdministrationReference
from app.moneybird.errors import MoneybirdAuthError, MoneybirdError
from app.moneybird.reference import load_reference
from app.payment_webhook import PaymentWebhook, payment_pushes_wanted, register_payment_webhook
from app.queue import connect
from app.settings import ConfigurationError, Settings, load_settings
from app.settings_store import STORABLE, write_settings
from app.setup.bookkeeping import ChoicesUnavailable, RateRow, propose_tax_rates, read_shop_tax_rates
from app.tokens import new_token
from app.woocommerce.errors import WooCommerceAuthError, WooCommerceError
from app.woocommerce.webhook_setup import install_webhook

Target = Literal["env", "heroku", "fly"]


def print_check_results(findings: list[CheckResult], *, language: Language) -> bool:
    ok = all(finding.ok for finding in findings)
    for finding in findings:
        mark = "[yellow]![/]" if finding.warning else ("[green]✓[/]" if finding.ok else "[bold red]✗[/]")
        subject, message = shown(finding.subject, language), shown(finding.message, language)
        console.print(f"{mark} [bold]{escape(subject)}[/]: {escape(message)}")
    wrong = sum(1 for finding in findings if not finding.ok)
    if ok:
        console.print(styled("green", translate(language, "All is well: paid orders will be booked.")))
    else:
        problems = ntranslate(
            language,
            "%(count)s problem to fix before woobird can book every order.",
            "%(count)s problems to fix before woobird can book every order.",
            wrong,
        )
        console.print(styled("bold red", problems))
    return ok


def check_command(connection: ConnectionOption = None) -> None:
    """Verify every setting against the live shop and Moneybird; exit 0 only when all is well."""
    use_connection(connection)
    settings = settings_or_exit()
    checker = Checker(settings, connection_id=chosen_connection(), connection_name=chosen_connection_name())
    findings = run(checker.run())
    if not print_check_results(findings, language=settings.language):
        raise typer.Exit(1)


# ── setup ────────────────────────────────────────────────────────────────────────────────────


@dataclass
class ChosenSettings:
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
    settings = settings_or_exit()
    language = settings.language
    if print_for and print_for not in ("env", "heroku", "fly"):
        fail(translate(language, "--print takes env, heroku or fly"))
    values: dict[str, str] = {}
    token = token or settings.moneybird_api_token.get_secret_value()
    if not token or "MONEYBIRD_API_TOKEN" in settings.problems():
        token = typer.prompt(
            translate(language, "Moneybird API token (Settings → External and AI integrations)"),
            hide_input=True,
        )
        values["MONEYBIRD_API_TOKEN"] = token
    elif token != settings.moneybird_api_token.get_secret_value():
        values["MONEYBIRD_API_TOKEN"] = token
    choices = run(_choose(settings, token=token, administration=administration, yes=yes))
    values |= choices.values
    # Missing, placeholder, weak or shared: a fresh one (app/tokens.py makes 256-bit tokens).
    for name in ("ADMIN_TOKEN", "WOOCOMMERCE_WEBHOOK_SECRET"):
        if name in settings.problems():
            values[name] = new_token()
    if print_for:
        print_settings(values, target=print_for)  # type: ignore[arg-type]
        return
    if store:
        _store(settings, values)
        return
    write_env(env_file, values)
    console.print(
        styled("green", "✓"),
        escape(
            translate(
                language,
                "wrote %(count)s setting(s) to %(file)s; now run woobird check",
                count=len(values),
                file=env_file,
            )
        ),
    )


def _store(settings: Settings, values: dict[str, str]) -> None:
    """Write the storable values to the settings store; the rest belong in the environment."""
    storable = {name: value for name, value in values.items() if name in STORABLE}
    actor = Message("woobird setup (%(user)s@%(host)s)", user=getpass.getuser(), host=socket.gethostname())

    async def write() -> list[str]:
        async with ledger_sessions(settings) as sessions:
            return await write_settings(sessions, base=settings, values=storable, actor=actor)

    try:
        changed = run(write())
    except ConfigurationError as exc:
        fail("; ".join(f"{name}: {shown(why, settings.language)}" for name, why in exc.problems.items()))
    console.print(
        styled("green", "✓"),
        translate(
            settings.language,
            "stored %(count)s changed setting(s) in the database; now run woobird check",
            count=len(changed),
        ),
    )
    for name in sorted(set(values) - set(storable)):
        console.print(
            styled("yellow", "!"),
            translate(
                settings.language,
                "%(name)s belongs in the environment (it is not stored): %(name)s=…",
                name=name,
            ),
        )


async def _choose(settings: Settings, *, token: str, administration: str, yes: bool) -> ChosenSettings:
    update = {"moneybird_api_token": SecretStr(token), "moneybird_administration_id": administration or "0"}
    probe = settings.model_copy(update=update)
    language = settings.language

    def _(message: str, /, **params: object) -> str:
        return escape(translate(language, message, **params))

    try:
        async with moneybird_client(probe) as moneybird:
            administrations = await moneybird.list_administrations()
    except MoneybirdAuthError as exc:
        fail(_("Moneybird refused the token (%(error)s); make a new one and run setup again", error=exc))
    except MoneybirdError as exc:
        fail(_("could not talk to Moneybird: %(error)s", error=exc))
    if not administrations:
        fail(_("this token reaches no administration"))
    table = Table("id", _("name"), _("country"), _("currency"), title=_("Moneybird administrations"))
    for adm in administrations:
        table.add_row(adm.id, adm.name, adm.country, adm.currency)
    console.print(table)
    ids = [adm.id for adm in administrations]
    chosen = administration or settings.moneybird_administration_id
    if chosen not in ids:
        chosen = ids[0] if len(ids) == 1 or yes else typer.prompt(_("Administration id"), default=ids[0])
    if chosen not in ids:
        fail(_("administration %(chosen)s is not one of %(ids)s", chosen=chosen, ids=", ".join(ids)))
    probe = probe.model_copy(update={"moneybird_administration_id": chosen})
    async with moneybird_client(probe) as moneybird:
        reference = await load_reference(moneybird)
    try:
        shop_rates = await read_shop_tax_rates(settings)
    except ChoicesUnavailable as exc:
        fail(
            translate(
                language,
                "%(error)s; set the shop's WOOCOMMERCE_* settings and run setup again",
                error=shown(said(exc), language),
            )
        )
    rows = propose_tax_rates(reference, shop_rates, current=settings.moneybird_tax_rates)
    values = {"MONEYBIRD_ADMINISTRATION_ID": chosen}
    values |= _choose_tax_rates(rows, reference, yes=yes, language=language)
    values |= _choose_reference(reference, settings=settings, yes=yes)
    return ChosenSettings(values)


def _choose_tax_rates(
    rows: tuple[RateRow, ...], reference: AdministrationReference, *, yes: bool, language: Language
) -> dict[str, str]:
    def _(message: str, /, **params: object) -> str:
        return escape(translate(language, message, **params))

    table = Table("id", _("name"), "%", _("country"), title=_("Moneybird sales tax rates"))
    for sales_rate in reference.sales_tax_rates():
        table.add_row(
            sales_rate.id, sales_rate.name, percentage_text(sales_rate.percentage), sales_rate.country or ""
        )
    console.print(table)
    mapping: dict[str, str] = {}
    for row in rows:
        question = (
            _("Moneybird tax rate for the shop's %(rate)s (%(key)s)", rate=row.name, key=row.key)
            if row.required
            else _("Moneybird tax rate for the %(rate)s", rate=shown(row.name, language))
        )
        mapping[row.key] = _ask(question, row.proposal, yes=yes)
    mapping = {key: value for key, value in mapping.items() if value}
    console.print(_("Proposed MONEYBIRD_TAX_RATES: %(mapping)s", mapping=json.dumps(mapping)))
    return {"MONEYBIRD_TAX_RATES": json.dumps(mapping, separators=(",", ":"))}


def _choose_reference(reference: AdministrationReference, *, settings: Settings, yes: bool) -> dict[str, str]:
    language = settings.language

    def _(message: str, /, **params: object) -> str:
        return escape(translate(language, message, **params))

    accounts = reference.revenue_accounts()
    table = Table("id", _("code"), _("name"), title=_("Revenue ledger accounts"))
    for account in accounts:
        table.add_row(account.id, account.account_id or "", account.name)
    console.print(table)
    workflows = [w for w in reference.workflows if w.type == "InvoiceWorkflow" and w.active]
    table = Table("id", _("name"), _("default"), _("prices incl. VAT"), title=_("Invoice workflows"))
    for workflow in workflows:
        table.add_row(
            workflow.id,
            workflow.name,
            _("yes") if workflow.default else "",
            _("yes") if workflow.prices_are_incl_tax else _("no"),
        )
    console.print(table)
    table = Table("id", _("name"), _("default"), title=_("Document styles"))
    for style in reference.document_styles:
        table.add_row(style.id, style.name, _("yes") if style.default else "")
    console.print(table)
    proposals = {
        "MONEYBIRD_LEDGER_ACCOUNT_ID": settings.moneybird_ledger_account_id or "",
        "MONEYBIRD_WORKFLOW_ID": settings.moneybird_workflow_id
        or next((w.id for w in workflows if w.default), ""),
        "MONEYBIRD_DOCUMENT_STYLE_ID": settings.moneybird_document_style_id
        or next((d.id for d in reference.document_styles if d.default), ""),
    }
    chosen = {
        name: _ask(_("%(name)s (empty: Moneybird's default)", name=name), value, yes=yes)
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
    connection: ConnectionOption = None,
) -> None:
    """Register (or repair) the shop's order.updated webhook pointing at woobird."""
    use_connection(connection)
    settings = settings_or_exit()
    language = settings.language
    require(settings, "WOOCOMMERCE_URL", "WOOCOMMERCE_CONSUMER_KEY", "WOOCOMMERCE_CONSUMER_SECRET")
    base = (url or settings.public_url or "").rstrip("/")
    if not base:
        fail(
            translate(
                language,
                "set PUBLIC_URL (where the shop reaches woobird, e.g. https://woobird.example.nl) "
                "or pass --url",
            )
        )
    if urlsplit(base).scheme not in ("http", "https"):
        fail(escape(translate(language, "%(url)r is not an http(s):// URL", url=base)))
    secret = settings.woocommerce_webhook_secret.get_secret_value()
    new_secret = "WOOCOMMERCE_WEBHOOK_SECRET" in settings.problems()
    if new_secret:
        secret = new_token()
    try:
        path = connection_path(WEBHOOK_PATH, connection_id=chosen_connection(), name=chosen_connection_name())
        message = run(_install_webhook(settings, delivery_url=base + path, secret=secret))
    except WooCommerceAuthError as exc:
        fail(
            escape(
                translate(
                    language,
                    "the shop refused the key (%(error)s); webhooks need a Read/Write key "
                    "of an administrator",
                    error=exc,
                )
            )
        )
    except WooCommerceError as exc:
        fail(escape(translate(language, "could not talk to the shop: %(error)s", error=exc)))
    console.print(styled("green", "✓"), escape(shown(message, language)))
    if chosen_connection() != ENVIRONMENT_CONNECTION_ID:
        _keep_connection_secrets(settings, woocommerce=secret if new_secret else None, base=base)
        return
    if new_secret:
        _keep_secret(
            {"WOOCOMMERCE_WEBHOOK_SECRET": secret}, print_for=print_for, env_file=env_file, language=language
        )
    if payment_pushes_wanted(settings):
        pushes = _register_payment_pushes(settings, base=base)
        if pushes is not None:
            _keep_secret(
                {"MONEYBIRD_WEBHOOK_SECRET": pushes},
                print_for=print_for,
                env_file=env_file,
                language=language,
            )


def _keep_connection_secrets(settings: Settings, *, woocommerce: str | None, base: str) -> None:
    """Another connection's webhooks: its Moneybird webhook at its own URL too, and both new secrets
    in the store (never in .env, which is connection 1's)."""
    values = {"WOOCOMMERCE_WEBHOOK_SECRET": woocommerce} if woocommerce else {}
    if payment_pushes_wanted(settings):
        pushes = _register_payment_pushes(settings, base=base)
        if pushes is not None:
            values["MONEYBIRD_WEBHOOK_SECRET"] = pushes
    if not values:
        return
    run(_store_secret(settings, values))
    console.print(
        styled("green", "✓"),
        escape(
            translate(
                settings.language,
                "stored the webhooks' new secrets for connection %(connection)s",
                connection=chosen_connection_name(),
            )
            if len(values) > 1
            else translate(
                settings.language,
                "stored the webhook's new secret for connection %(connection)s",
                connection=chosen_connection_name(),
            )
        ),
    )


async def _store_secret(settings: Settings, values: dict[str, str]) -> None:
    async with ledger_sessions(settings) as sessions:
        await write_settings(
            sessions,
            base=load_settings(),
            values=dict(values),
            actor=N_("woobird webhook install"),
            connection_id=chosen_connection(),
        )


def _keep_secret(values: dict[str, str], *, print_for: str, env_file: Path, language: Language) -> None:
    if print_for in ("heroku", "fly"):
        print_settings(values, target=print_for)  # type: ignore[arg-type]
        return
    write_env(env_file, values)
    stored = (
        translate(
            language,
            "stored Moneybird's webhook's new secret in %(file)s; restart woobird to use it",
            file=env_file,
        )
        if "MONEYBIRD_WEBHOOK_SECRET" in values
        else translate(
            language, "stored the webhook's new secret in %(file)s; restart woobird to use it", file=env_file
        )
    )
    console.print(styled("green", "✓"), escape(stored))


def _register_payment_pushes(settings: Settings, *, base: str) -> str | None:
    """Moneybird's webhook for open invoices; its secret, or None when Moneybird cannot reach woobird."""
    require(settings, "MONEYBIRD_API_TOKEN", "MONEYBIRD_ADMINISTRATION_ID")
    language = settings.language

    async def register() -> PaymentWebhook:
        redis = connect(settings.redis_url, tls_verify=settings.redis_tls_verify)
        try:
            return await register_payment_webhook(
                settings,
                redis=redis,
                public_url=base,
                connection_id=chosen_connection(),
                connection_name=chosen_connection_name(),
            )
        finally:
            await redis.aclose()

    try:
        registered = run(register())
    except MoneybirdAuthError as exc:
        fail(
            escape(
                translate(
                    language,
                    "Moneybird refused to register woobird's webhook (%(error)s): open invoices need a token "
                    "with the `settings` scope next to `sales_invoices` (Moneybird → Settings → External "
                    "and AI integrations)",
                    error=exc,
                )
            )
        )
    except MoneybirdError as exc:
        console.print(
            styled("yellow", "!"),
            escape(
                translate(
                    language,
                    "Moneybird could not register woobird's webhook (%(error)s). Payments of open invoices "
                    "are still found by each reconciliation pass; make PUBLIC_URL reachable from the "
                    "internet and run this again to hear them at once.",
                    error=exc,
                )
            ),
        )
        return None
    console.print(styled("green", "✓"), escape(shown(registered.message, language)))
    return registered.secret


async def _install_webhook(settings: Settings, *, delivery_url: str, secret: str) -> str:
    async with shop_client(settings) as shop:
        return await install_webhook(shop, delivery_url=delivery_url, secret=secret)
