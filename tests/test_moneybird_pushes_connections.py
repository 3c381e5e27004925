"""Moneybird's pushes for a connection other than the environment's: its own webhook URL
(/webhooks/moneybird/<name>), registered in its own administration, verified with its own secret,
and the invoice looked up in its own ledger only — the same order id and the same invoice id in two
connections never touch each other. Two connections need PostgreSQL: these tests run on it."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from arq.connections import ArqRedis
from prometheus_client import REGISTRY

from app import clients, schema
from app.booking import ledger
from app.clients import Transports
from app.connections import remove_connection
from app.constants import MONEYBIRD_WEBHOOK_PATH, MONEYBIRD_WEBHOOK_REGISTERING_KEY, QUEUE_NAME
from app.db import session_factory, transaction
from app.moneybird.push_signature import sign_push
from app.moneybird.webhook_setup import PUSH_EVENTS
from app.sandbox.moneybird import MoneybirdSandbox, sandbox_transport
from app.schema import OrderState
from app.settings_store import write_settings
from tests.conftest import _truncate, make_settings
from tests.harness import Harness, open_harness

FIRST_SECRET = "whsec_first_5e2a9c41"
SECOND_SECRET = "whsec_second_0b7d3f68"
SECRET_KEY = "3c2b1a0ffeeddccbbaa99887766554433221100f9e8d7c6b5a49382716051a2b3"
BASE = "https://woobird.example"
ORDER_ID = 7301
INVOICE_ID = "471000000000000017"  # booked in both administrations under the same id
FIRST_ONLY_INVOICE = "471000000000000029"


@pytest.fixture
async def h(postgres_url: str, redis: ArqRedis) -> AsyncIterator[Harness]:
    await _truncate(postgres_url)
    async with open_harness(
        database_url=postgres_url, redis=redis, secret_key=SECRET_KEY, moneybird_webhook_secret=FIRST_SECRET
    ) as wired:
        yield wired


async def _add_second(h: Harness, books: MoneybirdSandbox, *, push_secret: str | None) -> None:
    values = {
        "WOOCOMMERCE_URL": "https://second-shop.test",
        "WOOCOMMERCE_CONSUMER_KEY": "ck_" + "c3" * 20,
        "WOOCOMMERCE_CONSUMER_SECRET": "cs_" + "d4" * 20,
        "WOOCOMMERCE_WEBHOOK_SECRET": "wbs_second_shop_7d1e0c9b8a6f5e4d3c2b1a0f9e8d7c6b",
        "MONEYBIRD_API_TOKEN": books.token,
        "MONEYBIRD_ADMINISTRATION_ID": books.administration_id,
        "SYNC_SINCE": "2020-01-01T00:00:00Z",
    }
    if push_secret:
        values["MONEYBIRD_WEBHOOK_SECRET"] = push_secret
    await write_settings(
        h.sessions, base=h.settings, values=values, actor="test", connection_id=2, connection_name="second"
    )


async def _booked_open(h: Harness, connection_id: int, *, order_id: int, invoice_id: str) -> None:
    """An order booked as an open invoice in this connection's ledger."""
    moment = schema.utcnow() - timedelta(hours=2)
    async with transaction(session_factory(h.services.engine, connection_id=connection_id)) as session:
        await ledger.record_delivery(
            session, order_id=order_id, order_number=str(order_id), date_modified=moment, date_paid=None
        )
        await ledger.update_order(
            session,
            order_id,
            state=OrderState.AWAITING_PAYMENT.value,
            invoice_id=invoice_id,
            invoice_number=f"2026-{connection_id:04d}",
        )


async def _push_events(h: Harness, connection_id: int, order_id: int) -> list[str]:
    async with session_factory(h.services.engine, connection_id=connection_id)() as session:
        return [e.message for e in await ledger.events_for(session, order_id) if e.step == "moneybird_push"]


def _body(administration_id: str, invoice_id: str) -> bytes:
    return json.dumps(
        {
            "administration_id": administration_id,
            "entity_type": "SalesInvoice",
            "entity_id": invoice_id,
            "action": "sales_invoice_state_changed_to_paid",
        }
    ).encode()


async def _post(h: Harness, path: str, body: bytes, *, secret: str | None, key: str) -> tuple[int, str]:
    headers = {"content-type": "application/json", "idempotency-key": key}
    if secret is not None:
        headers["moneybird-signature"] = sign_push(secret, body, timestamp=int(time.time()))
    answer = await h.web.post(path, content=body, headers=headers)
    return answer.status_code, answer.text


def _counted(outcome: str, connection: str) -> float:
    labels = {"outcome": outcome, "connection": connection}
    return REGISTRY.get_sample_value("woobird_moneybird_pushes_total", labels) or 0.0


async def _job_ids(h: Harness) -> list[str]:
    return sorted(raw.decode() for raw in await h.redis.zrange(QUEUE_NAME, 0, -1))


async def test_a_connection_registers_its_own_moneybird_webhook_at_its_own_url(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.payment_webhook import register_payment_webhook

    # Two shops booking into one administration: each has a webhook of its own there.
    books = h.moneybird
    books.push_client = h.web
    books.push_retry_seconds = 0.0
    await _add_second(h, books, push_secret=None)
    monkeypatch.setattr(clients, "transports", Transports(moneybird=sandbox_transport(books)))
    settings = make_settings(
        database_url=h.settings.database_url,
        moneybird_api_token=books.token,
        moneybird_administration_id=books.administration_id,
    )
    first = await register_payment_webhook(settings, redis=h.redis, public_url=BASE)
    # Moneybird's check of the new URL (unsigned, inside the create) is answered by connection 2's window.
    second = await register_payment_webhook(
        settings, redis=h.redis, public_url=BASE + "/", connection_id=2, connection_name="second"
    )

    hooks = {hook["url"]: hook for hook in books.webhooks.values()}
    assert set(hooks) == {BASE + MONEYBIRD_WEBHOOK_PATH, f"{BASE}{MONEYBIRD_WEBHOOK_PATH}/second"}
    assert hooks[f"{BASE}{MONEYBIRD_WEBHOOK_PATH}/second"]["secret"] == second.secret
    assert hooks[BASE + MONEYBIRD_WEBHOOK_PATH]["secret"] == first.secret != second.secret
    assert hooks[f"{BASE}{MONEYBIRD_WEBHOOK_PATH}/second"]["enabled_events"] == list(PUSH_EVENTS)
    # Both windows closed again.
    assert not await h.redis.exists(
        MONEYBIRD_WEBHOOK_REGISTERING_KEY, f"c2:{MONEYBIRD_WEBHOOK_REGISTERING_KEY}"
    )


async def test_a_push_is_taken_only_at_its_connections_url_and_settles_only_its_order(h: Harness) -> None:
    second_books = MoneybirdSandbox()
    await _add_second(h, second_books, push_secret=SECOND_SECRET)
    # The same order id in both shops, booked under the same invoice id in both administrations.
    await _booked_open(h, 1, order_id=ORDER_ID, invoice_id=INVOICE_ID)
    await _booked_open(h, 2, order_id=ORDER_ID, invoice_id=INVOICE_ID)
    await _booked_open(h, 1, order_id=ORDER_ID + 1, invoice_id=FIRST_ONLY_INVOICE)
    second_path = f"{MONEYBIRD_WEBHOOK_PATH}/second"
    pushed = _body(second_books.administration_id, INVOICE_ID)
    queued_before = _counted("queued", "2")

    # Signed for connection 2, sent to connection 1's URL; signed for connection 1, sent to 2's.
    assert (await _post(h, MONEYBIRD_WEBHOOK_PATH, pushed, secret=SECOND_SECRET, key="k1"))[0] == 401
    first_pushed = _body(h.moneybird.administration_id, INVOICE_ID)
    assert (await _post(h, second_path, first_pushed, secret=FIRST_SECRET, key="k2"))[0] == 401
    # Connection 1's registration window lets no unsigned push through to connection 2's URL.
    await h.redis.set(MONEYBIRD_WEBHOOK_REGISTERING_KEY, "1", ex=60)
    assert (await _post(h, second_path, pushed, secret=None, key="k3"))[0] == 401
    await h.redis.delete(MONEYBIRD_WEBHOOK_REGISTERING_KEY)
    assert (await _post(h, f"{MONEYBIRD_WEBHOOK_PATH}/nowhere", pushed, secret=SECOND_SECRET, key="k4"))[
        0
    ] == 404
    assert await _job_ids(h) == []

    status, text = await _post(h, second_path, pushed, secret=SECOND_SECRET, key="k5")
    assert status == 200, text
    assert json.loads(text) == {"invoice_id": INVOICE_ID, "outcome": "queued"}
    # Connection 2's order settles under its own job id; connection 1's order of that id is untouched.
    assert await _job_ids(h) == [f"c2:settle-invoice:{INVOICE_ID}"]
    assert len(await _push_events(h, 2, ORDER_ID)) == 1
    assert await _push_events(h, 1, ORDER_ID) == []
    assert _counted("queued", "2") - queued_before == 1
    # The same key again at connection 2 is a duplicate; at connection 1 it is news of its own.
    assert json.loads((await _post(h, second_path, pushed, secret=SECOND_SECRET, key="k5"))[1]) == {
        "invoice_id": INVOICE_ID,
        "outcome": "duplicate",
    }
    status, text = await _post(h, MONEYBIRD_WEBHOOK_PATH, first_pushed, secret=FIRST_SECRET, key="k5")
    assert json.loads(text)["outcome"] == "queued", text
    assert await _job_ids(h) == [f"c2:settle-invoice:{INVOICE_ID}", f"settle-invoice:{INVOICE_ID}"]

    # An invoice only connection 1 booked is not connection 2's, whoever signs for 2.
    only_first = _body(second_books.administration_id, FIRST_ONLY_INVOICE)
    status, text = await _post(h, second_path, only_first, secret=SECOND_SECRET, key="k6")
    assert (status, json.loads(text)["outcome"]) == (200, "ignored")
    assert await _push_events(h, 1, ORDER_ID + 1) == []

    # A removed connection's URL takes nothing more.
    await remove_connection(h.sessions, "second")
    assert (await _post(h, second_path, pushed, secret=SECOND_SECRET, key="k7"))[0] == 410
