"""The sandbox demo that `woobird run` starts when no accounts are configured.

Three processes, like production plus a stand-in for the outside world:

    web, worker         the Procfile's real processes, pointed at the fakes below
    sandbox             `python -m app.sandbox.demo`: the fake shop (with a /sandbox overview) and
                        the fake Moneybird over real HTTP on 127.0.0.1, then sample orders of every
                        kind, delivered as signed webhooks to the real web process

Everything the three share travels as ordinary settings in the environment (`sandbox_env`), so the
web and worker processes cannot tell the fakes from the real services — except that
WOOBIRD_SANDBOX=true labels every page and log line. The sandbox keeps its own SQLite file and its
own Redis database, so it never touches the ledger or the queue of a real installation.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import os
import secrets
import shutil
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from rich.console import Console
from rich.markup import escape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from app.booking import ledger
from app.db import create_engine, migrate, session_factory
from app.i18n import DEFAULT_LANGUAGE, Language, money_text, translate, word
from app.preflight import redis_problem
from app.processes import process_env, start_processes
from app.sandbox.moneybird import MoneybirdSandbox
from app.sandbox.moneybird import create_app as create_moneybird_app
from app.sandbox.samples import expected_failures, sample_carts
from app.sandbox.server import serve
from app.sandbox.woocommerce import ShopSandbox
from app.sandbox.woocommerce import create_app as create_shop_app
from app.schema import OrderRecord, OrderState
from app.settings import (
    REPO_ROOT,
    Settings,
    configured_accounts,
    language_setting,
    load_settings,
    normalise_database_url,
)
from app.tokens import new_token
from app.woocommerce.client import WooCommerceClient
from app.woocommerce.webhook_setup import install_webhook

SHOP_PORT = 8010
MONEYBIRD_PORT = 8020
WEB_PORT = 8000
SANDBOX_REDIS_DB = 15
SANDBOX_DIR = REPO_ROOT / ".sandbox"
BOOKING_TIMEOUT_SECONDS = 120.0
WEB_START_TIMEOUT_SECONDS = 60.0

# Wide enough for the report's tables behind honcho's "12:00:00 sandbox | " prefix.
console = Console(highlight=False, width=110)


# ── the settings the three processes share ──────────────────────────────────────────────────


def sandbox_redis_url(base: str | None) -> str:
    """The sandbox's own Redis database on the same server, so its jobs never meet real ones."""
    parts = urlsplit(base or "redis://127.0.0.1:6379/0")
    return urlunsplit((parts.scheme, parts.netloc, f"/{SANDBOX_REDIS_DB}", parts.query, ""))


def sandbox_env(
    *,
    database_path: Path,
    redis_url: str,
    web_port: int = WEB_PORT,
    shop_port: int = SHOP_PORT,
    moneybird_port: int = MONEYBIRD_PORT,
) -> dict[str, str]:
    """Fresh secrets and local addresses: everything web, worker and the fakes need to agree on."""
    # An 18-digit id like Moneybird's, fixed here so the fake can be created with it.
    administration_id = str(secrets.randbelow(9 * 10**17) + 10**17)
    return {
        "WOOBIRD_SANDBOX": "true",
        "WOOCOMMERCE_URL": f"http://127.0.0.1:{shop_port}",
        "WOOCOMMERCE_CONSUMER_KEY": f"ck_{secrets.token_hex(20)}",
        "WOOCOMMERCE_CONSUMER_SECRET": f"cs_{secrets.token_hex(20)}",
        "WOOCOMMERCE_WEBHOOK_SECRET": secrets.token_urlsafe(32),
        "MONEYBIRD_API_TOKEN": f"sandbox-{secrets.token_hex(16)}",
        "MONEYBIRD_ADMINISTRATION_ID": administration_id,
        "MONEYBIRD_API_URL": f"http://127.0.0.1:{moneybird_port}/api/v2",
        "ADMIN_TOKEN": new_token(),
        "PUBLIC_URL": f"http://127.0.0.1:{web_port}",
        "PORT": str(web_port),
        "DATABASE_URL": f"sqlite:///{database_path}",
        "REDIS_URL": redis_url,
        "SYNC_SINCE": (datetime.now(UTC) - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        # Reconcile often: the demo shows that a dropped webhook heals within a minute.
        "RECONCILE_INTERVAL_SECONDS": "30",
        "LOG_FORMAT": "console",
    }


def sandbox_directory() -> Path:
    return Path(os.environ.get("SANDBOX_DIR") or SANDBOX_DIR)


def sandbox_settings_overrides(env_file: Path = Path(".env")) -> dict[str, Any]:
    """Where a running sandbox keeps its ledger and queue, when this shell has no accounts and no
    database of its own configured; empty otherwise (so real settings always win)."""
    database = sandbox_directory() / "woobird-sandbox.db"
    if configured_accounts(env_file) or os.environ.get("DATABASE_URL") or not database.exists():
        return {}
    return {
        "database_url": normalise_database_url(f"sqlite:///{database}"),
        "redis_url": sandbox_redis_url(os.environ.get("REDIS_URL")),
        "woobird_sandbox": True,
    }


# ── `woobird run` without accounts ──────────────────────────────────────────────────────────


def run_sandbox() -> int:
    """Prepare a fresh sandbox ledger and queue, then run web + worker + the fakes under honcho."""
    redis_url = sandbox_redis_url(os.environ.get("REDIS_URL"))
    problem = redis_problem(redis_url)
    if problem:
        console.print(f"[bold red]✗[/] {problem}")
        return 1
    directory = sandbox_directory()
    database_path = directory / "woobird-sandbox.db"
    _fresh_directory(directory)
    env = sandbox_env(
        database_path=database_path,
        redis_url=redis_url,
        web_port=int(os.environ.get("PORT") or WEB_PORT),
        shop_port=int(os.environ.get("SANDBOX_SHOP_PORT") or SHOP_PORT),
        moneybird_port=int(os.environ.get("SANDBOX_MONEYBIRD_PORT") or MONEYBIRD_PORT),
    )
    migrate(env["DATABASE_URL"])
    asyncio.run(_clear_queue(redis_url))
    language = _language()
    console.print(
        "[bold magenta]SANDBOX[/] —",
        translate(
            language,
            "no WooCommerce or Moneybird account is configured, so woobird runs against a simulated shop "
            "and a simulated Moneybird on this machine. Nothing real is booked.",
        ),
    )
    console.print(
        " ",
        translate(
            language,
            "Configure real accounts with `woobird setup` (or .env) and `woobird run` uses them instead.",
        ),
    )
    demo = f"{sys.executable} -m app.sandbox.demo"
    # Run from the sandbox directory, where no .env can slip real settings into the demo.
    return start_processes(process_env(env), names=("web", "worker"), cwd=directory, extra={"sandbox": demo})


def _language() -> Language:
    """LANGUAGE from the environment, before any settings are read (the sandbox has none yet)."""
    try:
        return language_setting(os.environ.get("LANGUAGE") or DEFAULT_LANGUAGE)
    except ValueError:
        return DEFAULT_LANGUAGE


def _fresh_directory(path: Path) -> None:
    # Each run starts from nothing: the fakes are in memory, so yesterday's ledger would lie.
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    (path / ".gitignore").write_text("*\n", encoding="utf-8")


async def _clear_queue(redis_url: str) -> None:
    from app.queue import connect

    redis = connect(redis_url)
    try:
        keys = [key async for key in redis.scan_iter(match="arq:*")]
        keys += [key async for key in redis.scan_iter(match="woobird:*")]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()


# ── the fakes ───────────────────────────────────────────────────────────────────────────────


@dataclass
class Sandbox:
    shop: ShopSandbox
    moneybird: MoneybirdSandbox
    language: Language = DEFAULT_LANGUAGE  # of the /sandbox overview: the LANGUAGE setting's


def build_sandbox(settings: Settings) -> Sandbox:
    """The fake shop and Moneybird, with the credentials and ids web and worker were given."""
    if not settings.woobird_sandbox:
        raise RuntimeError("refusing to start the sandbox: WOOBIRD_SANDBOX is not true")
    shop = ShopSandbox(
        url=settings.woocommerce_url,
        consumer_key=settings.woocommerce_consumer_key.get_secret_value(),
        consumer_secret=settings.woocommerce_consumer_secret.get_secret_value(),
    )
    # The shop's tax table as an OSS-registered Dutch shop has it: what `woobird check` compares.
    shop.add_tax_rate(rate="19", name="MwSt", country="DE")
    shop.add_tax_rate(rate="7", name="MwSt ermäßigt", country="DE", tax_class="reduced-rate")
    moneybird = MoneybirdSandbox(
        token=settings.moneybird_api_token.get_secret_value(),
        administration_id=settings.moneybird_administration_id,
        administration_name="Sandbox Webwinkel B.V.",
    )
    return Sandbox(shop=shop, moneybird=moneybird, language=settings.language)


def invoice_rows(moneybird: MoneybirdSandbox) -> list[dict[str, Any]]:
    """The fake Moneybird's invoices as a bookkeeper would list them."""
    rows = []
    for invoice in [*moneybird.sales_invoices.values(), *moneybird.external_sales_invoices.values()]:
        contact = invoice.get("contact") or {}
        rows.append(
            {
                "id": invoice.get("id"),
                "number": invoice.get("invoice_id") or invoice.get("reference"),
                "reference": invoice.get("reference"),
                "state": invoice.get("state"),
                "date": invoice.get("invoice_date"),
                "contact": contact.get("company_name")
                or " ".join(filter(None, (contact.get("firstname"), contact.get("lastname")))),
                "total_incl_vat": invoice.get("total_price_incl_tax"),
                "vat": invoice.get("total_tax"),
                "lines": [
                    {
                        "description": detail.get("description"),
                        "amount": detail.get("amount"),
                        "price": detail.get("price"),
                        "tax_rate_id": detail.get("tax_rate_id"),
                    }
                    for detail in invoice.get("details") or []
                ],
            }
        )
    return rows


def overview_app(sandbox: Sandbox) -> Starlette:
    """`/sandbox`: what the fake Moneybird holds, as a page and as JSON."""

    async def invoices_json(request: Request) -> JSONResponse:
        return JSONResponse({"sandbox": True, "invoices": invoice_rows(sandbox.moneybird)})

    async def page(request: Request) -> HTMLResponse:
        language = sandbox.language

        def _(message: str, /, **params: object) -> str:
            return html.escape(translate(language, message, **params))

        rows = invoice_rows(sandbox.moneybird)
        cells = "".join(
            "<tr>"
            + "".join(
                f"<td>{html.escape(str(row[key] or ''))}</td>"
                for key in ("number", "reference", "date", "contact", "total_incl_vat", "vat", "state")
            )
            + "</tr>"
            for row in rows
        )
        headings = (
            _("number"),
            _("reference"),
            _("date"),
            _("contact"),
            _("total incl. VAT"),
            _("VAT"),
            _("state"),
        )
        title = _("Invoices in the simulated Moneybird")
        counts = _(
            "%(invoices)s invoice(s), %(orders)s order(s) in the simulated shop.",
            invoices=len(rows),
            orders=len(sandbox.shop.orders),
        )
        body = (
            f"<!doctype html><html lang={language}><meta charset=utf-8>"
            f"<title>woobird sandbox — {title}</title>"
            "<style>body{font:15px system-ui;margin:2em}td,th{padding:.3em .8em;border-bottom:1px solid #ddd}"
            ".tag{background:#a0f;color:#fff;padding:.2em .5em;border-radius:.3em}</style>"
            f"<h1><span class=tag>SANDBOX</span> {title}</h1>"
            f"<p>{counts} JSON: <a href=/sandbox/invoices.json>/sandbox/invoices.json</a></p>"
            "<table><tr>" + "".join(f"<th>{heading}</th>" for heading in headings) + f"</tr>{cells}</table>"
        )
        return HTMLResponse(body)

    return Starlette(routes=[Route("/sandbox", page), Route("/sandbox/invoices.json", invoices_json)])


def shop_server_app(sandbox: Sandbox) -> ASGIApp:
    """The fake shop's REST API, with the /sandbox overview beside it."""
    shop_app = create_shop_app(sandbox.shop)
    overview = overview_app(sandbox)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and str(scope.get("path", "")).startswith("/sandbox"):
            await overview(scope, receive, send)
        else:
            await shop_app(scope, receive, send)

    return app


# ── sample orders ───────────────────────────────────────────────────────────────────────────


def sample_orders(paid_at: datetime) -> list[dict[str, Any]]:
    """One completed, paid order of every kind woobird has to book right."""
    return sample_carts(paid_at)


async def populate(settings: Settings, sandbox: Sandbox) -> list[int]:
    """Register the webhook the way a user would, then check out the sample orders and deliver them."""
    assert settings.webhook_url is not None
    async with WooCommerceClient.from_settings(settings) as shop:
        message = await install_webhook(
            shop,
            delivery_url=settings.webhook_url,
            secret=settings.woocommerce_webhook_secret.get_secret_value(),
        )
    console.print("[magenta]sandbox[/] woobird webhook install:", escape(message))
    order_ids = []
    for document in sample_orders(sandbox.shop.now()):
        order = sandbox.shop.add_order(document)
        order_ids.append(int(order["id"]))
    async with httpx.AsyncClient() as client:
        for order_id in order_ids:
            status = await sandbox.shop.deliver(order_id, client=client)
            said = translate(
                settings.language,
                "order %(order)s delivered to woobird: HTTP %(status)s",
                order=order_id,
                status=status,
            )
            console.print("[magenta]sandbox[/]", said)
    return order_ids


async def wait_for(url: str, *, within: float) -> None:
    """Until `url` answers 200 (the web process has started)."""
    deadline = asyncio.get_running_loop().time() + within
    async with httpx.AsyncClient(timeout=2) as client:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url)).status_code == 200:
                    return
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"{url} did not answer within {within:.0f} s")
            await asyncio.sleep(0.3)


async def wait_until_settled(
    settings: Settings, order_ids: list[int], *, within: float = BOOKING_TIMEOUT_SECONDS
) -> dict[int, OrderRecord]:
    """Until every order is booked or failed (or the time is up): the ledger rows, by order id."""
    engine = create_engine(settings.database_url)
    sessions = session_factory(engine)
    settled = {OrderState.BOOKED.value, OrderState.FAILED.value, OrderState.SKIPPED.value}
    deadline = asyncio.get_running_loop().time() + within
    try:
        while True:
            async with sessions() as session:
                records = {oid: r for oid in order_ids if (r := await ledger.get_order(session, oid))}
            if len(records) == len(order_ids) and all(r.state in settled for r in records.values()):
                return records
            if asyncio.get_running_loop().time() > deadline:
                return records
            await asyncio.sleep(0.5)
    finally:
        await engine.dispose()


def _amount(value: Decimal | None, language: Language) -> str:
    return "—" if value is None else money_text(value, language)


def print_summary(settings: Settings, records: dict[int, OrderRecord], *, order_ids: list[int]) -> None:
    language = settings.language

    def _(message: str, /, **params: object) -> str:
        return escape(translate(language, message, **params))

    console.rule("[bold magenta]woobird sandbox[/]")
    for order_id in order_ids:
        record = records.get(order_id)
        if record is None:
            console.print(" ", _("order %(order)s: not received yet", order=order_id))
        elif record.state == OrderState.BOOKED:
            line = _(
                "order %(order)s: invoice %(invoice)s, paid %(paid)s (order total %(total)s)",
                order=record.order_number,
                invoice=record.invoice_number or record.invoice_id,
                paid=_amount(record.invoice_total, language),
                total=_amount(record.order_total, language),
            )
            console.print("  [green]✓[/]", line)
        else:
            line = _(
                "order %(order)s: %(state)s — %(error)s",
                order=record.order_number,
                state=word(record.state, language),
                error=record.error or "",
            )
            console.print("  [red]✗[/]", line)
            if order_id in expected_failures():
                console.print(
                    "   ", _("(on purpose: this is how woobird tells you an order could not be booked)")
                )
    web = settings.public_url
    month = datetime.now(UTC).strftime("%Y-%m")
    token = settings.admin_token.get_secret_value()
    guide = {
        _("Dashboard:"): _("%(url)s/admin  (sign in with the token %(token)s)", url=web, token=token),
        _("Invoices:"): _(
            "%(url)s/sandbox  (what the simulated Moneybird holds)", url=settings.woocommerce_url
        ),
        _("Health:"): f"{web}/readyz",
        _("Month report:"): _(
            ".venv/bin/woobird report --month %(month)s   (in another terminal)", month=month
        ),
        _("Status:"): ".venv/bin/woobird status",
    }
    console.print()
    for label, text in guide.items():
        console.print(f"  {label:<16}{text}")
    console.print(" ", _("Stop with Ctrl-C. Nothing here is real; configure accounts to book for real."))


async def print_report(settings: Settings) -> None:
    from app.report import monthly_report, render_report

    engine = create_engine(settings.database_url)
    try:
        report = await monthly_report(
            session_factory(engine),
            month=datetime.now(UTC).strftime("%Y-%m"),
            tax_rates=settings.moneybird_tax_rates,
        )
    finally:
        await engine.dispose()
    render_report(report, console, language=settings.language)


async def run_demo(
    settings: Settings,
    *,
    ready: Callable[[Sandbox], Awaitable[None]] | None = None,
    stay: bool = True,
    booking_timeout: float = BOOKING_TIMEOUT_SECONDS,
) -> dict[int, OrderRecord]:
    """Serve both fakes on the settings' ports, push the sample orders through woobird, report."""
    sandbox = build_sandbox(settings)
    shop_port = urlsplit(settings.woocommerce_url).port or SHOP_PORT
    moneybird_port = urlsplit(settings.moneybird_api_url).port or MONEYBIRD_PORT
    async with (
        serve(shop_server_app(sandbox), port=shop_port),
        serve(create_moneybird_app(sandbox.moneybird), port=moneybird_port),
    ):
        console.print(
            "[magenta]sandbox[/]",
            escape(
                translate(
                    settings.language,
                    "simulated shop on %(shop)s, simulated Moneybird on %(moneybird)s; "
                    "waiting for woobird's web process",
                    shop=settings.woocommerce_url,
                    moneybird=settings.moneybird_api_url,
                )
            ),
        )
        if ready is not None:
            await ready(sandbox)
        await wait_for(f"{settings.public_url}/healthz", within=WEB_START_TIMEOUT_SECONDS)
        order_ids = await populate(settings, sandbox)
        records = await wait_until_settled(settings, order_ids, within=booking_timeout)
        print_summary(settings, records, order_ids=order_ids)
        await print_report(settings)
        if stay:
            await asyncio.Event().wait()
    return records


def main() -> int:
    settings = load_settings()
    if not settings.woobird_sandbox:
        console.print(
            "[red]app.sandbox.demo runs only under `woobird run` without accounts (WOOBIRD_SANDBOX)[/]"
        )
        return 2
    try:
        asyncio.run(run_demo(settings))
    except KeyboardInterrupt:
        return 0
    return 0


def _json_default(value: Any) -> str:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(type(value).__name__)


def dump_invoices(moneybird: MoneybirdSandbox) -> str:
    return json.dumps(invoice_rows(moneybird), default=_json_default, indent=2)


if __name__ == "__main__":
    sys.exit(main())
