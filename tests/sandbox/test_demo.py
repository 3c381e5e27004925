"""The sandbox demo: its fakes over real HTTP, its sample orders, and the whole flow end to end.

The last two tests run the real thing: once in process (fakes, the real web app over HTTP and a
real arq worker), once as `woobird run` itself — three processes under honcho — on free ports.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from arq.worker import Worker

from app.db import migrate
from app.invoicing.plan import PlanOptions, PlanRefused, plan_invoice
from app.main import create_app
from app.moneybird.client import MoneybirdClient
from app.moneybird.reference import load_reference
from app.queue import connect
from app.runtime import build_services
from app.sandbox import demo
from app.sandbox.moneybird import MoneybirdSandbox, sandbox_transport
from app.sandbox.moneybird import create_app as create_moneybird_app
from app.sandbox.samples import FIRST_ORDER_ID, expected_failures, sample_carts, samples
from app.sandbox.server import serve
from app.schema import OrderRecord, OrderState
from app.settings import Settings, load_settings
from app.woocommerce.client import OAuth1Signature
from app.woocommerce.models import Order
from tests.harness import running
from tests.services import redis_database
from workers.functions import job_functions

REPO_ROOT = Path(__file__).resolve().parents[2]
# The demo's own Redis database in these tests (the real demo uses 15), flushed by each test.
DEMO_TEST_REDIS_URL = os.environ.get("DEMO_TEST_REDIS_URL", redis_database(13))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def demo_settings(tmp_path: Path, **ports: int) -> Settings:
    env = demo.sandbox_env(
        database_path=tmp_path / "sandbox.db",
        redis_url=DEMO_TEST_REDIS_URL,
        web_port=ports.get("web", free_port()),
        shop_port=ports.get("shop", free_port()),
        moneybird_port=ports.get("moneybird", free_port()),
    )
    return load_settings(_env_file=None, **{name.lower(): value for name, value in env.items()})


@pytest.fixture
async def demo_redis() -> AsyncIterator[None]:
    redis = connect(DEMO_TEST_REDIS_URL)
    await redis.flushdb()
    yield
    await redis.flushdb()
    await redis.aclose()


def test_sandbox_settings_are_complete_and_apart_from_real_ones(tmp_path: Path) -> None:
    settings = demo_settings(tmp_path).require_complete()

    assert settings.woobird_sandbox is True
    assert settings.woocommerce_url.startswith("http://127.0.0.1:")
    assert settings.moneybird_api_url.startswith("http://127.0.0.1:")
    assert settings.sync_since is not None
    assert settings.sync_since < datetime.now(UTC)
    assert demo.sandbox_redis_url("redis://10.0.0.2:6380/0") == "redis://10.0.0.2:6380/15"
    assert demo.sandbox_redis_url(None) == "redis://127.0.0.1:6379/15"
    other = demo_settings(tmp_path)
    assert other.woocommerce_webhook_secret != settings.woocommerce_webhook_secret  # fresh every run


def test_the_sandbox_refuses_real_settings(tmp_path: Path) -> None:
    settings = demo_settings(tmp_path).model_copy(update={"woobird_sandbox": False})

    with pytest.raises(RuntimeError, match="WOOBIRD_SANDBOX"):
        demo.build_sandbox(settings)


async def test_the_sandbox_serves_both_fakes_and_its_overview(tmp_path: Path) -> None:
    settings = demo_settings(tmp_path)
    sandbox = demo.build_sandbox(settings)
    key, secret = sandbox.shop.consumer_key, sandbox.shop.consumer_secret

    async with (
        serve(demo.shop_server_app(sandbox)) as shop_url,
        serve(create_moneybird_app(sandbox.moneybird)) as moneybird_url,
        httpx.AsyncClient() as http,
    ):
        sandbox.shop.url = shop_url  # the address WordPress knows itself by, which signatures cover
        # A plain-HTTP shop, like the real one: OAuth 1.0a signatures, never Basic auth.
        taxes = await http.get(f"{shop_url}/wp-json/wc/v3/taxes", auth=OAuth1Signature(key, secret))
        refused = await http.get(f"{shop_url}/wp-json/wc/v3/orders", auth=OAuth1Signature(key, "cs_wrong"))
        basic = await http.get(f"{shop_url}/wp-json/wc/v3/orders", auth=(key, secret))
        token = settings.moneybird_api_token.get_secret_value()
        administrations = await http.get(
            f"{moneybird_url}/api/v2/administrations.json", headers={"Authorization": f"Bearer {token}"}
        )
        page = await http.get(f"{shop_url}/sandbox")
        listing = await http.get(f"{shop_url}/sandbox/invoices.json")

    assert taxes.status_code == 200
    assert {(rate["country"], rate["rate"]) for rate in taxes.json()} >= {
        ("NL", "21.0000"),
        ("DE", "19.0000"),
    }
    assert refused.status_code == 401
    assert (basic.status_code, basic.json()["code"]) == (401, "woocommerce_rest_cannot_view")
    assert [adm["id"] for adm in administrations.json()] == [settings.moneybird_administration_id]
    assert "SANDBOX" in page.text
    assert "Facturen in de gesimuleerde Moneybird" in page.text  # LANGUAGE: nl, the default
    assert "<th>totaal incl. btw</th>" in page.text
    assert listing.json() == {"sandbox": True, "invoices": []}


async def test_sample_orders_are_valid_orders_of_every_kind() -> None:
    documents = sample_carts(datetime.now(UTC))
    orders = [Order.model_validate(document) for document in documents]
    reference_source = MoneybirdSandbox()
    async with MoneybirdClient(
        base_url="https://moneybird.sandbox.test/api/v2",
        token=reference_source.token,
        administration_id=reference_source.administration_id,
        transport=sandbox_transport(reference_source),
    ) as client:
        reference = await load_reference(client)

    assert [order.id for order in orders] == list(range(FIRST_ORDER_ID, FIRST_ORDER_ID + len(samples())))
    assert all(order.status == "completed" and order.date_paid_gmt for order in orders)
    assert any(order.prices_include_tax for order in orders)
    assert any(order.coupon_lines for order in orders)
    assert any(order.fee_lines for order in orders)
    assert any(order.meta("_billing_vat_number") for order in orders)
    assert any(order.billing.country not in ("NL", "DE", "BE") for order in orders)
    for order in orders:
        items = sum((item.total + item.total_tax for item in order.line_items), Decimal(0))
        shipping = sum((line.total + line.total_tax for line in order.shipping_lines), Decimal(0))
        fees = sum((line.total + line.total_tax for line in order.fee_lines), Decimal(0))
        assert items + shipping + fees == order.total, order.id
        if order.id in expected_failures():
            with pytest.raises(PlanRefused, match="7 % rate for consumers in DE"):
                plan_invoice(order, reference=reference, options=PlanOptions())
        else:
            assert plan_invoice(order, reference=reference, options=PlanOptions()).total == order.total


async def test_the_demo_flows_through_web_and_worker_in_process(tmp_path: Path, demo_redis: None) -> None:
    settings = demo_settings(tmp_path)
    await asyncio.to_thread(migrate, settings.database_url)  # alembic runs its own event loop
    redis = connect(settings.redis_url)
    services = await build_services(settings, redis)
    worker = Worker(
        functions=job_functions(),
        redis_pool=redis,
        ctx={"services": services, "owns_services": False},
        handle_signals=False,
        poll_delay=0.05,
        keep_result=0,
    )
    web_port = int(settings.public_url.rsplit(":", 1)[1]) if settings.public_url else 0
    try:
        async with running(worker), serve(create_app(settings), port=web_port):
            records = await asyncio.wait_for(
                demo.run_demo(settings, stay=False, booking_timeout=60), timeout=90
            )
    finally:
        await services.aclose()
        await redis.aclose()

    failures = expected_failures()
    assert len(records) == len(samples())
    for order_id, record in records.items():
        if order_id in failures:
            assert record.state == OrderState.FAILED
            assert "MONEYBIRD_TAX_RATES" in (record.error or "")
        else:
            assert record.state == OrderState.BOOKED, (order_id, record.error)
            assert record.invoice_total == record.order_total


def test_the_summary_shows_amounts_with_two_decimals(tmp_path: Path) -> None:
    # What the ledger hands back: SQLite's 36.0 and Moneybird's 64.7 (as the invoice total).
    booked = OrderRecord(
        order_id=FIRST_ORDER_ID,
        order_number=str(FIRST_ORDER_ID),
        state=OrderState.BOOKED.value,
        invoice_number="2026-0001",
        invoice_total=Decimal("64.7"),
        order_total=Decimal("64.70"),
    )
    other = OrderRecord(
        order_id=FIRST_ORDER_ID + 1,
        order_number=str(FIRST_ORDER_ID + 1),
        state=OrderState.BOOKED.value,
        invoice_number="2026-0002",
        invoice_total=Decimal("36.0"),
        order_total=Decimal("36"),
    )
    records = {booked.order_id: booked, other.order_id: other}
    english = demo_settings(tmp_path).model_copy(update={"language": "en"})
    with demo.console.capture() as captured:
        demo.print_summary(english, records, order_ids=list(records))
    text = captured.get()
    assert f"order {FIRST_ORDER_ID}: invoice 2026-0001, paid €64.70 (order total €64.70)" in text
    assert f"order {FIRST_ORDER_ID + 1}: invoice 2026-0002, paid €36.00 (order total €36.00)" in text
    assert "Stop with Ctrl-C" in text

    with demo.console.capture() as captured:
        demo.print_summary(demo_settings(tmp_path), records, order_ids=list(records))  # LANGUAGE: nl
    dutch = captured.get()
    assert f"bestelling {FIRST_ORDER_ID}: factuur 2026-0001, betaald € 64,70 (totaal bestelling € 64,70)" in (
        dutch.replace("\xa0", " ")
    )
    assert "Dashboard:" in dutch
    assert "Stoppen met Ctrl-C." in dutch


def _run_env(tmp_path: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in demo_account_names()}
    env.update(
        PORT=str(free_port()),
        SANDBOX_SHOP_PORT=str(free_port()),
        SANDBOX_MONEYBIRD_PORT=str(free_port()),
        SANDBOX_DIR=str(tmp_path / "sandbox"),
        REDIS_URL=redis_database(0),
        PYTHONUNBUFFERED="1",
    )
    return env


def demo_account_names() -> set[str]:
    return {name.upper() for name in Settings.model_fields} - {"REDIS_URL"}


def test_woobird_run_without_accounts_runs_the_demo(tmp_path: Path) -> None:
    """`woobird run` on a fresh checkout: three processes, sample orders booked, summary printed."""
    woobird = Path(sys.executable).parent / "woobird"
    process = subprocess.Popen(
        [str(woobird), "run"],
        cwd=tmp_path,
        env=_run_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Stoppen met Ctrl-C" in line:  # a fresh checkout speaks Dutch (LANGUAGE=nl by default)
                break
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            rest, _ = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            rest, _ = process.communicate()
        lines.append(rest or "")
    output = "".join(lines)

    assert "SANDBOX" in output
    numbers = range(FIRST_ORDER_ID, FIRST_ORDER_ID + len(samples()))
    booked = [n for n in numbers if f"✓ bestelling {n}:" in output]
    assert len(booked) == len(samples()) - len(expected_failures()), output[-4000:]
    assert all(f"✗ bestelling {n}:" in output for n in expected_failures())
    assert "/admin" in output
    assert "Maandrapport" in output
