"""Every `woobird` command against the fake shop and the fake Moneybird, real Redis and real SQL.

The commands build their clients through `app.clients`, whose transports these tests point at
the fakes in process; everything else (settings from the environment, the ledger, the queue) is
what a person's terminal gets.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import redis as sync_redis
from dotenv import dotenv_values
from typer.testing import CliRunner, Result

from app import clients
from app.alerts import alert_key
from app.booking import ledger
from app.booking.verify import VERIFY_LAST_ERROR, VERIFY_LAST_SUCCESS
from app.cli import cli
from app.constants import QUEUE_NAME, WEBHOOK_PATH
from app.db import create_engine, migrate, session_factory, transaction
from app.i18n import when
from app.sandbox.moneybird import MoneybirdSandbox, sandbox_transport
from app.sandbox.moneybird import create_app as create_moneybird_app
from app.sandbox.samples import FIRST_ORDER_ID, sample_carts
from app.sandbox.woocommerce import ShopSandbox
from app.sandbox.woocommerce import create_app as create_shop_app
from app.schema import Finding, FindingKind, FindingState, OrderState
from app.settings import REQUIRED_SETTINGS, Settings, load_settings, normalise_database_url
from app.settings_help import SETTING_HELP
from app.settings_live import get_settings, load_with_store
from app.settings_store import recent_changes
from app.tokens import weakness
from tests.conftest import ADMIN_TOKEN, WEBHOOK_SECRET
from tests.server import serve_in_thread
from tests.services import redis_database

PUBLIC_URL = "https://woobird.example.nl"
SHOP_URL = "https://shop.sandbox.test"
REPO_ROOT = Path(__file__).resolve().parent.parent
# Its own database: these tests count queue entries and must not share them with other suites.
TEST_REDIS_URL = os.environ.get("CLI_TEST_REDIS_URL", redis_database(11))


@dataclass
class Fakes:
    shop: ShopSandbox
    moneybird: MoneybirdSandbox
    env: dict[str, str]
    runner: CliRunner
    monkeypatch: pytest.MonkeyPatch

    def invoke(self, *args: str, **env: str) -> Result:
        for name, value in env.items():
            self.monkeypatch.setenv(name, value)
        return self.runner.invoke(cli, list(args), catch_exceptions=False)

    def install_webhook(self, url: str = PUBLIC_URL + WEBHOOK_PATH) -> dict[str, Any]:
        return self.shop.add_webhook(delivery_url=url, secret=WEBHOOK_SECRET)


@pytest.fixture
def queue_redis() -> Iterator[sync_redis.Redis]:
    client = sync_redis.Redis.from_url(TEST_REDIS_URL)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def fakes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str, queue_redis: sync_redis.Redis
) -> Fakes:
    """Fake shop + fake Moneybird, the CLI's transports pointed at them, settings in the environment."""
    shop = ShopSandbox(url=SHOP_URL, ping_on_create=False)
    moneybird = MoneybirdSandbox()
    monkeypatch.setattr(
        clients,
        "transports",
        clients.Transports(
            shop=httpx.ASGITransport(app=create_shop_app(shop)), moneybird=sandbox_transport(moneybird)
        ),
    )
    # One finding per line, as in a wide terminal. Through COLUMNS, which Rich reads on every print:
    # setting `width` would pin it, and undoing that pins the old value for every later test.
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.chdir(tmp_path)  # no .env from the developer's checkout
    for name in SETTING_HELP:
        monkeypatch.delenv(name, raising=False)
    env = {
        "WOOCOMMERCE_URL": SHOP_URL,
        "WOOCOMMERCE_CONSUMER_KEY": shop.consumer_key,
        "WOOCOMMERCE_CONSUMER_SECRET": shop.consumer_secret,
        "WOOCOMMERCE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "MONEYBIRD_API_TOKEN": moneybird.token,
        "MONEYBIRD_ADMINISTRATION_ID": moneybird.administration_id,
        "MONEYBIRD_API_URL": "https://moneybird.sandbox.test/api/v2",
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "PUBLIC_URL": PUBLIC_URL,
        "REDIS_URL": TEST_REDIS_URL,
        "DATABASE_URL": database_url,
        "SYNC_SINCE": "2020-01-01T00:00:00Z",
        "LANGUAGE": "en",  # the tests that read wording read English; the Dutch ones set nl
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Fakes(shop=shop, moneybird=moneybird, env=env, runner=CliRunner(), monkeypatch=monkeypatch)


def _settings() -> Settings:
    return load_settings()


async def _with_ledger(database_url: str, action: Any) -> Any:
    engine = create_engine(normalise_database_url(database_url))
    try:
        async with transaction(session_factory(engine)) as session:
            return await action(session)
    finally:
        await engine.dispose()


def ledger_do(fakes: Fakes, action: Any) -> Any:
    return asyncio.run(_with_ledger(fakes.env["DATABASE_URL"], action))


def add_failed_order(fakes: Fakes, order_id: int, *, error: str) -> datetime:
    modified = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)

    async def action(session: Any) -> None:
        await ledger.record_delivery(
            session, order_id=order_id, order_number=str(order_id), date_modified=modified, date_paid=modified
        )
        await ledger.update_order(
            session, order_id, state=OrderState.FAILED.value, error=error, failure_kind="rejected"
        )

    ledger_do(fakes, action)
    return modified


def order_state(fakes: Fakes, order_id: int) -> str | None:
    async def action(session: Any) -> str | None:
        record = await ledger.get_order(session, order_id)
        return None if record is None else record.state

    result: str | None = ledger_do(fakes, action)
    return result


def shop_order(fakes: Fakes, index: int = 0) -> int:
    document = sample_carts(datetime.now(UTC) - timedelta(hours=1))[index]
    return int(fakes.shop.add_order(document)["id"])


# ── check ────────────────────────────────────────────────────────────────────────────────────


def test_check_passes_when_everything_is_in_place(fakes: Fakes) -> None:
    fakes.install_webhook()

    result = fakes.invoke("check")

    assert result.exit_code == 0, result.output
    assert "All is well" in result.output
    assert "21 → 21% btw" in result.output


def test_check_names_a_wrong_consumer_secret(fakes: Fakes) -> None:
    fakes.install_webhook()

    result = fakes.invoke("check", WOOCOMMERCE_CONSUMER_SECRET="cs_" + "0" * 40)

    assert result.exit_code == 1
    assert "✗ WOOCOMMERCE_CONSUMER_SECRET" in result.output
    assert "the key exists but the secret does not match" in result.output


def test_check_over_https_says_an_unknown_key_and_a_key_that_never_arrived_look_alike(fakes: Fakes) -> None:
    """WooCommerce answers an unknown key over HTTPS as if none came: check says both causes."""
    fakes.install_webhook()

    result = fakes.invoke("check", WOOCOMMERCE_CONSUMER_KEY="ck_" + "0" * 40)

    assert result.exit_code == 1
    assert "✗ WooCommerce authentication" in result.output
    assert "check WOOCOMMERCE_CONSUMER_KEY" in result.output
    assert "Authorization header" in result.output


def test_check_signs_for_a_plain_http_shop_and_names_an_unknown_key(served: Fakes) -> None:
    served.shop.add_webhook(delivery_url=PUBLIC_URL + WEBHOOK_PATH, secret=WEBHOOK_SECRET)

    good = served.invoke("check")
    unknown = served.invoke("check", WOOCOMMERCE_CONSUMER_KEY="ck_" + "0" * 40)

    assert good.exit_code == 0, good.output
    assert "uses plain HTTP: woobird signs every request (OAuth 1.0a)" in good.output
    assert unknown.exit_code == 1
    assert "✗ WOOCOMMERCE_CONSUMER_KEY" in unknown.output
    assert "the shop has no such key" in unknown.output


def test_check_names_a_bad_moneybird_token(fakes: Fakes) -> None:
    fakes.install_webhook()

    result = fakes.invoke("check", MONEYBIRD_API_TOKEN="revoked-token-4242")

    assert result.exit_code == 1
    assert "MONEYBIRD_API_TOKEN" in result.output
    assert "Moneybird refused the token" in result.output


def test_check_names_an_unknown_administration(fakes: Fakes) -> None:
    fakes.install_webhook()

    result = fakes.invoke("check", MONEYBIRD_ADMINISTRATION_ID="999999999999999999")

    assert result.exit_code == 1
    assert "MONEYBIRD_ADMINISTRATION_ID" in result.output
    assert fakes.moneybird.administration_id in result.output  # the ones it can reach


def test_check_names_a_shop_rate_moneybird_lacks(fakes: Fakes) -> None:
    fakes.install_webhook()
    fakes.shop.add_tax_rate(rate="7", name="MwSt ermäßigt", country="DE", tax_class="reduced-rate")

    result = fakes.invoke("check")

    assert result.exit_code == 1
    assert "MONEYBIRD_TAX_RATES" in result.output
    assert "7 % rate for consumers in DE" in result.output
    assert "create that tax rate in Moneybird" in result.output


def test_check_names_a_mapping_to_a_purchase_rate(fakes: Fakes) -> None:
    fakes.install_webhook()
    purchase = fakes.moneybird.tax_rate_id(21, tax_rate_type="purchase_invoice")

    result = fakes.invoke("check", MONEYBIRD_TAX_RATES=json.dumps({"21": purchase}))

    assert result.exit_code == 1
    assert purchase in result.output


def test_check_names_an_unknown_open_invoice_payment_method_with_the_shops_gateways(fakes: Fakes) -> None:
    fakes.install_webhook()

    result = fakes.invoke("check", OPEN_INVOICE_PAYMENT_METHODS="bacs,cheque,bank_transfer")

    assert result.exit_code == 1
    assert "✗ OPEN_INVOICE_PAYMENT_METHODS" in result.output
    assert "no payment method 'bank_transfer'" in result.output
    assert "bacs, cheque, cod" in result.output  # the shop's own ids, to pick from
    assert "bacs (Direct bank transfer) orders get an open invoice" in result.output
    assert "cheque (Check payments) is switched off" in result.output


def test_check_says_a_disabled_webhook_needs_installing(fakes: Fakes) -> None:
    webhook = fakes.install_webhook()
    fakes.shop.disable_webhook(webhook["id"])

    result = fakes.invoke("check")

    assert result.exit_code == 1
    assert f"webhook #{webhook['id']} is disabled" in result.output
    assert "woobird webhook install" in result.output


def test_check_compares_the_webhook_with_public_url(fakes: Fakes) -> None:
    fakes.install_webhook("https://old-host.example.nl" + WEBHOOK_PATH)

    result = fakes.invoke("check")

    assert result.exit_code == 1
    assert "old-host.example.nl" in result.output
    assert f"PUBLIC_URL says {PUBLIC_URL}" in result.output


def test_check_says_when_there_is_no_webhook(fakes: Fakes) -> None:
    result = fakes.invoke("check")

    assert result.exit_code == 1
    assert "no order.updated webhook" in result.output


# ── setup ────────────────────────────────────────────────────────────────────────────────────


def test_setup_writes_the_choices_to_env_and_keeps_other_lines(fakes: Fakes, tmp_path: Path) -> None:
    env_file = tmp_path / "custom.env"
    env_file.write_text("# my shop\nLOG_LEVEL=DEBUG\nMONEYBIRD_ADMINISTRATION_ID=1\n", encoding="utf-8")
    fakes.monkeypatch.delenv("MONEYBIRD_ADMINISTRATION_ID")

    result = fakes.invoke("setup", "--yes", "--env-file", str(env_file))

    assert result.exit_code == 0, result.output
    text = env_file.read_text(encoding="utf-8")
    assert text.startswith("# my shop\nLOG_LEVEL=DEBUG\n")
    assert text.count("MONEYBIRD_ADMINISTRATION_ID=") == 1
    written = Settings(_env_file=env_file)
    moneybird = fakes.moneybird
    assert written.moneybird_administration_id == moneybird.administration_id
    assert written.moneybird_tax_rates == {
        "21": moneybird.tax_rate_id(21),
        "9": moneybird.tax_rate_id(9),
        "reverse_charge": moneybird.tax_rate_id(0, name_contains="verlegd"),
        "export": moneybird.tax_rate_id(0, name_contains="buiten"),
    }
    assert written.moneybird_workflow_id == moneybird.administration().default_workflow()["id"]
    assert written.moneybird_document_style_id == moneybird.administration().default_document_style()["id"]
    assert "Moneybird sales tax rates" in result.output


def test_setup_speaks_dutch(fakes: Fakes, tmp_path: Path) -> None:
    env_file = tmp_path / "dutch.env"

    result = fakes.invoke("setup", "--yes", "--env-file", str(env_file), LANGUAGE="nl")

    assert result.exit_code == 0, result.output
    assert "Administraties in Moneybird" in result.output
    assert "Btw-tarieven voor verkoop in Moneybird" in result.output
    assert "Voorgestelde MONEYBIRD_TAX_RATES:" in result.output
    assert "Factuurworkflows" in result.output
    assert "Huisstijlen" in result.output
    assert f"geschreven naar {env_file}; voer nu woobird check uit" in " ".join(result.output.split())
    assert "Moneybird sales tax rates" not in result.output


def test_setup_prints_heroku_config_instead_of_writing(fakes: Fakes, tmp_path: Path) -> None:
    result = fakes.invoke("setup", "--yes", "--print", "heroku")

    assert result.exit_code == 0, result.output
    command = next(line for line in result.output.splitlines() if line.startswith("heroku config:set"))
    assert f"MONEYBIRD_ADMINISTRATION_ID={fakes.moneybird.administration_id}" in command
    assert "MONEYBIRD_TAX_RATES='{" in command
    assert not (tmp_path / ".env").exists()


def test_setup_replaces_weak_tokens_with_strong_ones(fakes: Fakes, tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    result = fakes.invoke(
        "setup", "--yes", "--env-file", str(env_file), ADMIN_TOKEN="a", WOOCOMMERCE_WEBHOOK_SECRET="b" * 40
    )
    assert result.exit_code == 0, result.output
    written = dotenv_values(env_file)
    for name in ("ADMIN_TOKEN", "WOOCOMMERCE_WEBHOOK_SECRET"):
        assert weakness(written[name] or "") is None, name
    assert written["ADMIN_TOKEN"] != written["WOOCOMMERCE_WEBHOOK_SECRET"]


def test_setup_stores_the_choices_where_the_wizard_does(fakes: Fakes, tmp_path: Path) -> None:
    fakes.monkeypatch.delenv("MONEYBIRD_ADMINISTRATION_ID")
    fakes.monkeypatch.setenv("SECRET_KEY", "5b1f9e3c7a2d8046e1c9b7f3a5d2e8c04f6a1b9d3e7c2")

    result = fakes.invoke("setup", "--yes", "--store")

    assert result.exit_code == 0, result.output
    assert not (tmp_path / ".env").exists()
    stored = load_with_store(load_settings())
    assert stored.moneybird_administration_id == fakes.moneybird.administration_id
    assert stored.moneybird_tax_rates["21"] == fakes.moneybird.tax_rate_id(21)

    async def changes(session: Any) -> list[tuple[str, str]]:
        return [(change.name, change.actor) for change in await recent_changes(session)]

    recorded = ledger_do(fakes, changes)
    assert ("MONEYBIRD_ADMINISTRATION_ID", recorded[0][1]) in recorded
    assert all(actor.startswith("woobird setup (") for _, actor in recorded)
    checked = fakes.invoke("check")  # `check` reads the administration from the store
    assert f"administration {fakes.moneybird.administration_id}" in checked.output


def test_setup_with_a_bad_token_changes_nothing(fakes: Fakes, tmp_path: Path) -> None:
    result = fakes.invoke("setup", "--yes", "--token", "revoked-token-4242")

    assert result.exit_code == 1
    assert "Moneybird refused the token" in result.output
    assert not (tmp_path / ".env").exists()


def test_setup_without_the_shops_rates_proposes_none_and_writes_nothing(fakes: Fakes, tmp_path: Path) -> None:
    """The wizard's rule: a shop that cannot be read gets no guessed rates (21/9/0 may not be its)."""
    refused = fakes.invoke("setup", "--yes", WOOCOMMERCE_CONSUMER_SECRET="cs_" + "0" * 40)

    assert refused.exit_code == 1
    assert "could not read the shop's tax rates" in refused.output
    assert "MONEYBIRD_TAX_RATES" not in refused.output
    assert not (tmp_path / ".env").exists()


# ── webhook install ──────────────────────────────────────────────────────────────────────────


def test_webhook_install_creates_then_repairs(fakes: Fakes) -> None:
    created = fakes.invoke("webhook", "install")

    assert created.exit_code == 0, created.output
    assert "created webhook" in created.output
    [webhook] = fakes.shop.webhooks.values()
    assert (webhook["status"], webhook["topic"]) == ("active", "order.updated")
    assert webhook["delivery_url"] == PUBLIC_URL + WEBHOOK_PATH
    assert webhook["secret"] == WEBHOOK_SECRET

    fakes.shop.disable_webhook(webhook["id"])
    webhook["delivery_url"] = "https://old-host.example.nl" + WEBHOOK_PATH
    webhook["secret"] = "lost-secret"
    repaired = fakes.invoke("webhook", "install")

    assert repaired.exit_code == 0, repaired.output
    assert f"repaired webhook #{webhook['id']}" in repaired.output
    assert list(fakes.shop.webhooks) == [webhook["id"]]
    assert webhook["status"] == "active"
    assert webhook["delivery_url"] == PUBLIC_URL + WEBHOOK_PATH
    assert webhook["secret"] == WEBHOOK_SECRET
    assert fakes.invoke("check").exit_code == 0


def test_webhook_install_makes_and_stores_a_secret_when_none_is_set(fakes: Fakes, tmp_path: Path) -> None:
    result = fakes.invoke("webhook", "install", WOOCOMMERCE_WEBHOOK_SECRET="change-me")

    assert result.exit_code == 0, result.output
    [webhook] = fakes.shop.webhooks.values()
    assert len(webhook["secret"]) >= 32
    fakes.monkeypatch.delenv("WOOCOMMERCE_WEBHOOK_SECRET")
    assert load_settings().woocommerce_webhook_secret.get_secret_value() == webhook["secret"]  # from .env
    assert "stored the webhook's new secret" in result.output


def test_webhook_install_needs_public_url(fakes: Fakes) -> None:
    fakes.monkeypatch.delenv("PUBLIC_URL")

    result = fakes.invoke("webhook", "install")

    assert result.exit_code == 1
    assert "PUBLIC_URL" in result.output
    assert not fakes.shop.webhooks


# ── status, sync, retry, report ──────────────────────────────────────────────────────────────


def test_status_shows_counts_queue_and_failures(fakes: Fakes, queue_redis: sync_redis.Redis) -> None:
    add_failed_order(fakes, 7001, error="Moneybird rejected the order: contact e-mail is invalid")
    queue_redis.zadd(QUEUE_NAME, {"order:1:1": 1, "order:2:1": 2})

    result = fakes.invoke("status")

    assert result.exit_code == 0, result.output
    assert "failed" in result.output
    assert "contact e-mail is invalid" in result.output
    assert "Queue: 2 job(s) waiting" in result.output
    assert "Last reconciliation: never" in result.output


def test_status_without_accounts_reads_the_running_sandbox(fakes: Fakes, tmp_path: Path) -> None:
    sandbox_db = tmp_path / "sandbox" / "woobird-sandbox.db"
    sandbox_db.parent.mkdir()
    migrate(f"sqlite:///{sandbox_db}")
    for name in fakes.env:
        fakes.monkeypatch.delenv(name)
    fakes.monkeypatch.setenv("SANDBOX_DIR", str(sandbox_db.parent))
    fakes.env["DATABASE_URL"] = f"sqlite:///{sandbox_db}"
    add_failed_order(fakes, 5008, error="no tax rate for DE:7")

    result = fakes.invoke("status")

    assert result.exit_code == 0, result.output
    assert "SANDBOX" in result.output
    assert "no tax rate for DE:7" in result.output


def test_sync_dry_run_prints_the_plan_and_books_nothing(fakes: Fakes) -> None:
    order_id = shop_order(fakes, 2)  # coupons over two VAT rates

    result = fakes.invoke("sync", str(order_id), "--dry-run")

    assert result.exit_code == 0, result.output
    assert f"Order #{order_id}" in result.output
    assert "Korting" in result.output
    assert str(fakes.shop.orders[order_id]["total"]) in result.output
    assert "nothing was booked" in result.output
    assert not fakes.moneybird.sales_invoices
    assert order_state(fakes, order_id) is None


def test_sync_dry_run_of_a_refused_order_says_why(fakes: Fakes) -> None:
    order_id = shop_order(fakes, 7)  # German 7 %, which the fake Moneybird has no rate for

    result = fakes.invoke("sync", str(order_id), "--dry-run")

    assert result.exit_code == 1
    assert "refused" in result.output
    assert "DE:7" in result.output
    assert not fakes.moneybird.sales_invoices


def test_sync_books_the_order_now(fakes: Fakes) -> None:
    order_id = shop_order(fakes, 0)

    result = fakes.invoke("sync", str(order_id))

    assert result.exit_code == 0, result.output
    [invoice] = fakes.moneybird.sales_invoices.values()
    assert invoice["reference"] == f"WooCommerce #{order_id}"
    assert Decimal(invoice["total_price_incl_tax"]) == Decimal(fakes.shop.orders[order_id]["total"])
    assert order_state(fakes, order_id) == OrderState.BOOKED
    assert "is booked" in result.output


def test_sync_of_an_unknown_order_says_so(fakes: Fakes) -> None:
    result = fakes.invoke("sync", "424242", "--dry-run")

    assert result.exit_code == 1
    assert "the shop has no order 424242" in result.output


def test_retry_requeues_a_failed_order(fakes: Fakes, queue_redis: sync_redis.Redis) -> None:
    modified = add_failed_order(fakes, 7002, error="Moneybird was down")
    add_failed_order(fakes, 7003, error="still broken")

    result = fakes.invoke("retry", "7002")

    assert result.exit_code == 0, result.output
    assert order_state(fakes, 7002) == OrderState.QUEUED
    assert order_state(fakes, 7003) == OrderState.FAILED
    assert queue_redis.zcard(QUEUE_NAME) == 1
    # A job id of its own: arq would refuse the first try's id while it keeps that job's result.
    [job_id] = cast(list[bytes], queue_redis.zrange(QUEUE_NAME, 0, -1))
    assert job_id.decode().startswith(f"order:7002:{int(modified.timestamp())}:retry:")

    everything = fakes.invoke("retry", "--failed")

    assert "1 order(s) queued again" in everything.output
    assert order_state(fakes, 7003) == OrderState.QUEUED
    assert queue_redis.zcard(QUEUE_NAME) == 2


def test_retry_is_the_dashboards_retry(fakes: Fakes, queue_redis: sync_redis.Redis) -> None:
    """`woobird retry` queues failed orders only, and clears the order's alert as the dashboard does."""
    add_failed_order(fakes, 7004, error="Moneybird was down")
    queue_redis.set(alert_key("order-failed:7004"), "sent")
    add_failed_order(fakes, 7005, error="no longer paid")

    async def skip(session: Any) -> None:
        await ledger.update_order(session, 7005, state=OrderState.SKIPPED.value)

    ledger_do(fakes, skip)

    retried = fakes.invoke("retry", "7004")
    skipped = fakes.invoke("retry", "7005")

    assert retried.exit_code == 0, retried.output
    assert not queue_redis.exists(alert_key("order-failed:7004"))
    assert "7005 is skipped: only failed orders are retried" in skipped.output
    assert order_state(fakes, 7005) == OrderState.SKIPPED
    assert queue_redis.zcard(QUEUE_NAME) == 1


def test_retry_wants_an_order_or_failed(fakes: Fakes) -> None:
    result = fakes.invoke("retry")

    assert result.exit_code == 1
    assert "ORDER_ID or pass --failed" in result.output


def test_report_lists_totals_and_differences(fakes: Fakes) -> None:
    paid = datetime(2026, 10, 14, 12, 0, tzinfo=UTC)

    async def action(session: Any) -> None:
        for order_id, booked in ((8001, "36.00"), (8002, "36.01")):
            await ledger.record_delivery(
                session, order_id=order_id, order_number=str(order_id), date_modified=paid, date_paid=paid
            )
            report = [{"tax_rate_id": "111", "shop": "6.25", "moneybird": "6.25", "difference": "0.00"}]
            await ledger.update_order(
                session,
                order_id,
                state=OrderState.BOOKED.value,
                order_total=Decimal("36.00"),
                invoice_total=Decimal(booked),
                invoice_number=f"2026-{order_id}",
                vat_report=json.dumps(report),
            )

    ledger_do(fakes, action)

    result = fakes.invoke("report", "--month", "2026-10")

    assert result.exit_code == 0, result.output
    assert "Month report 2026-10" in result.output
    assert "€72.01" in result.output  # Moneybird's total of the two invoices
    assert "8002" in result.output  # the one-cent difference is listed
    assert "€12.50" in result.output  # VAT of rate 111 over both orders

    dutch = fakes.invoke("report", "--month", "2026-10", LANGUAGE="nl")

    assert dutch.exit_code == 0, dutch.output
    assert "Maandrapport 2026-10 (betaald in Nederlandse tijd)" in dutch.output
    assert "€\xa072,01" in dutch.output
    assert "€\xa012,50" in dutch.output
    assert "factuurtotaal wijkt af van wat de klant betaalde" in dutch.output
    assert "Month report" not in dutch.output


def test_report_refuses_a_malformed_month(fakes: Fakes) -> None:
    result = fakes.invoke("report", "--month", "oktober")

    assert result.exit_code == 2
    assert "YYYY-MM" in result.output


# ── migrate, run ─────────────────────────────────────────────────────────────────────────────


def test_migrate_creates_the_ledger(fakes: Fakes, tmp_path: Path) -> None:
    path = tmp_path / "fresh.db"

    result = fakes.invoke("migrate", DATABASE_URL=f"sqlite:///{path}")

    assert result.exit_code == 0, result.output
    with sqlite3.connect(path) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"orders", "refunds", "contacts", "ledger_events", "service_state", "alembic_version"} <= tables


def test_run_refuses_half_configured_accounts(fakes: Fakes) -> None:
    for name in fakes.env:
        fakes.monkeypatch.delenv(name)

    result = fakes.invoke("run", WOOCOMMERCE_URL="https://shop.example.nl")

    assert result.exit_code == 2
    assert "WOOCOMMERCE_URL is set" in result.output
    for name in ("MONEYBIRD_API_TOKEN", "WOOCOMMERCE_CONSUMER_KEY", "ADMIN_TOKEN"):
        assert name in result.output
    assert "never mixed" in result.output


def test_run_refuses_an_env_file_copied_unedited(fakes: Fakes, tmp_path: Path) -> None:
    for name in fakes.env:
        fakes.monkeypatch.delenv(name)
    (tmp_path / ".env").write_text((REPO_ROOT / ".env.example").read_text(encoding="utf-8"), encoding="utf-8")

    result = fakes.invoke("run")

    assert result.exit_code == 2
    assert "still a placeholder" in result.output


# ── the settings are described everywhere ───────────────────────────────────────────────────


def test_every_setting_is_described() -> None:
    fields = {name.upper() for name in Settings.model_fields}
    assert set(SETTING_HELP) == fields
    example = (REPO_ROOT / ".env.example").read_text(encoding="utf-8")
    assert {
        line.split("=", 1)[0] for line in example.splitlines() if line and not line.startswith("#")
    } == fields
    app_json = json.loads((REPO_ROOT / "app.json").read_text(encoding="utf-8"))
    platform_set = {"DATABASE_URL", "REDIS_URL", "PORT", "WOOBIRD_SANDBOX"}
    assert set(app_json["env"]) == fields - platform_set


def test_an_unedited_env_example_refuses_to_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SETTING_HELP:
        monkeypatch.delenv(name, raising=False)
    settings = Settings(_env_file=REPO_ROOT / ".env.example")

    assert set(settings.problems()) == {name.upper() for name in REQUIRED_SETTINGS}


# ── commands provided by other modules, through the same CLI ────────────────────────────────


def test_plan_prints_the_invoice_for_an_order_file(fakes: Fakes, tmp_path: Path) -> None:
    order_file = tmp_path / "order.json"
    order_file.write_text(json.dumps(sample_carts(datetime.now(UTC))[1]), encoding="utf-8")

    result = fakes.invoke("plan", str(order_file))

    assert result.exit_code == 0, result.output
    assert f"Order #{FIRST_ORDER_ID + 1}" in result.output
    assert "74.99" in result.output


@pytest.fixture
def served(fakes: Fakes) -> Iterator[Fakes]:
    """The fakes over real HTTP, for commands that build their clients from the settings alone."""
    with (
        serve_in_thread(create_shop_app(fakes.shop)) as shop_url,
        serve_in_thread(create_moneybird_app(fakes.moneybird)) as moneybird_url,
    ):
        # A signature covers the shop's own address, as WordPress knows it: the URL it is served at.
        fakes.shop.url = shop_url
        fakes.monkeypatch.setenv("WOOCOMMERCE_URL", shop_url)
        fakes.monkeypatch.setenv("MONEYBIRD_API_URL", moneybird_url + "/api/v2")
        get_settings.cache_clear()
        yield fakes
    get_settings.cache_clear()


def test_backfill_dry_run_plans_history_and_books_nothing(served: Fakes) -> None:
    order_ids = [served.shop.add_order(document)["id"] for document in sample_carts(datetime.now(UTC))[:3]]
    since = (datetime.now(UTC) - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S")

    result = served.invoke("backfill", "--since", since, "--dry-run")

    assert result.exit_code == 0, result.output
    assert "would book 3" in result.output
    assert not served.moneybird.sales_invoices
    assert all(order_state(served, order_id) is None for order_id in order_ids)


def test_products_dry_run_lists_what_it_would_create(served: Fakes) -> None:
    result = served.invoke("products", "--dry-run")

    assert result.exit_code == 0, result.output
    assert "would be created" in result.output
    assert not served.moneybird.products


def test_status_shows_what_to_look_at_after_booking(fakes: Fakes) -> None:
    async def action(session: Any) -> None:
        session.add(
            Finding(
                kind=FindingKind.ORDER_CHANGED.value,
                subject="order:7002:abc",
                state=FindingState.OPEN.value,
                order_id=7002,
                message="order #7002 changed after it was booked as 2026-0009: total 10 → 12 (kq8-marker)",
            )
        )

    before = fakes.invoke("status")
    ledger_do(fakes, action)
    after = fakes.invoke("status")

    assert "After booking: nothing to look at." in before.output
    assert after.exit_code == 0, after.output
    assert "After booking (1 open)" in after.output
    assert "kq8-marker" in after.output


def test_status_says_when_verification_last_finished_and_why_it_failed_since(fakes: Fakes) -> None:
    finished = datetime.now(UTC) - timedelta(hours=2)

    async def verified(session: Any) -> None:
        await ledger.set_state(session, VERIFY_LAST_SUCCESS, finished.isoformat())

    async def failed(session: Any) -> None:
        failed_at = finished + timedelta(hours=1)
        await ledger.set_state(
            session, VERIFY_LAST_ERROR, f"{failed_at.isoformat()} Moneybird answered 500 (pm3)"
        )

    never = fakes.invoke("status")
    ledger_do(fakes, verified)
    done = fakes.invoke("status")
    ledger_do(fakes, failed)
    failing = fakes.invoke("status")

    assert "Last verification: never" in never.output
    # The moment as the date filter writes it (Amsterdam time, the English month).
    assert f"Last verification: {when(finished, 'en')} (120 min ago)" in done.output
    assert "Last verification error" not in done.output
    assert "Last verification error: Moneybird answered 500 (pm3)" in failing.output
    assert failing.exit_code == 0, failing.output

    dutch = fakes.invoke("status", LANGUAGE="nl")

    assert f"Laatste verificatie: {when(finished, 'nl')} (120 min geleden)" in dutch.output
    assert "Laatste fout van de verificatie: Moneybird answered 500 (pm3)" in dutch.output
    assert "Bestellingen in het logboek" in dutch.output
    assert "Geen mislukte bestellingen." in dutch.output
    assert "Last verification" not in dutch.output


def test_webhook_install_for_open_invoices_names_the_settings_scope_it_lacks(fakes: Fakes) -> None:
    fakes.moneybird.token_scopes = frozenset({"sales_invoices"})

    result = fakes.invoke("webhook", "install", OPEN_INVOICE_PAYMENT_METHODS="bacs")

    assert result.exit_code == 1
    assert "`settings` scope" in result.output
    assert fakes.moneybird.webhooks == {}


def test_webhook_install_without_open_invoices_registers_nothing_in_moneybird(fakes: Fakes) -> None:
    result = fakes.invoke("webhook", "install")

    assert result.exit_code == 0, result.output
    assert fakes.moneybird.calls("POST /webhooks") == 0


def test_webhook_install_that_moneybird_cannot_reach_keeps_the_shop_webhook_and_says_so(
    fakes: Fakes, tmp_path: Path
) -> None:
    # PUBLIC_URL is not reachable from Moneybird: its check of the url gets no answer.
    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("no route to host", request=request)

    fakes.moneybird.push_client = httpx.AsyncClient(transport=httpx.MockTransport(unreachable))
    result = fakes.invoke("webhook", "install", OPEN_INVOICE_PAYMENT_METHODS="bacs")

    assert result.exit_code == 0, result.output
    assert "Moneybird could not register woobird's webhook" in result.output
    assert "reconciliation pass" in result.output
    assert fakes.moneybird.webhooks == {}
    assert len(fakes.shop.webhooks) == 1
    assert (
        "MONEYBIRD_WEBHOOK_SECRET" not in (tmp_path / ".env").read_text(encoding="utf-8")
        if (tmp_path / ".env").exists()
        else True
    )


def test_webhook_install_for_another_connection_points_at_its_url_and_stores_its_secret(
    fakes: Fakes, database_url: str, tmp_path: Path
) -> None:
    import asyncio

    from app.db import create_engine, session_factory
    from app.settings import normalise_database_url
    from app.settings_live import load_with_store
    from app.settings_store import write_settings

    fakes.monkeypatch.setenv("SECRET_KEY", "5b1f9e3c7a2d8046e1c9b7f3a5d2e8c04f6a1b9d3e7c2")
    environment = load_settings()

    async def add_second() -> None:
        engine = create_engine(normalise_database_url(database_url))
        try:
            await write_settings(
                session_factory(engine),
                base=environment,
                values={
                    "WOOCOMMERCE_URL": SHOP_URL,
                    "WOOCOMMERCE_CONSUMER_KEY": fakes.shop.consumer_key,
                    "WOOCOMMERCE_CONSUMER_SECRET": fakes.shop.consumer_secret,
                    "MONEYBIRD_API_TOKEN": fakes.moneybird.token,
                    "MONEYBIRD_ADMINISTRATION_ID": fakes.moneybird.administration_id,
                    "PUBLIC_URL": PUBLIC_URL,
                },
                actor="test",
                connection_id=2,
                connection_name="second",
            )
        finally:
            await engine.dispose()

    asyncio.run(add_second())
    env_before = (tmp_path / ".env").read_text(encoding="utf-8") if (tmp_path / ".env").exists() else None

    result = fakes.invoke("webhook", "install", "--connection", "second")

    assert result.exit_code == 0, result.output
    [webhook] = fakes.shop.webhooks.values()
    assert webhook["delivery_url"] == PUBLIC_URL + WEBHOOK_PATH + "/second"
    assert "stored the webhook's new secret for connection second" in result.output
    second = load_with_store(environment, connection_id=2)
    assert second.woocommerce_webhook_secret.get_secret_value() == webhook["secret"]
    assert webhook["secret"] != WEBHOOK_SECRET
    # .env describes connection 1: untouched.
    current = (tmp_path / ".env").read_text(encoding="utf-8") if (tmp_path / ".env").exists() else None
    assert current == env_before


def test_check_names_the_settings_scope_open_invoices_need(fakes: Fakes) -> None:
    fakes.moneybird.token_scopes = frozenset({"sales_invoices"})
    fakes.install_webhook()

    result = fakes.invoke("check", OPEN_INVOICE_PAYMENT_METHODS="bacs")

    said = " ".join(result.output.split())  # Rich wraps long lines
    assert result.exit_code == 1
    assert "✗ MONEYBIRD_API_TOKEN" in said
    assert "`settings` scope" in said


def test_check_says_when_moneybird_cannot_push_payments(fakes: Fakes) -> None:
    fakes.install_webhook()

    result = fakes.invoke("check", OPEN_INVOICE_PAYMENT_METHODS="bacs")

    said = " ".join(result.output.split())  # Rich wraps long lines
    assert "no active webhook delivers to https://woobird.example.nl/webhooks/moneybird" in said
    assert "reconciliation pass" in said
