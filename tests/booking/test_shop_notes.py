"""The shop sees what was booked: one private note per booked document, never a second booking.

Every test runs the real web app, Redis, SQL and worker against the fake shop, whose notes behave as
WooCommerce's (`WC_Order::add_order_note()`: a comment, the order not saved, no delivery).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import httpx
import respx
from arq.connections import ArqRedis

from app.booking import ledger
from app.booking.shop_notes import (
    NOTE_REFUSED_EVENT,
    NOTE_WRITTEN_EVENT,
    note_markers,
    note_text,
    write_shop_note,
)
from app.i18n import Language, money_text
from app.sandbox.woocommerce import create_app as create_shop_app
from app.schema import OrderRecord, OrderState
from app.woocommerce.client import WooCommerceClient
from tests.harness import Harness, open_harness
from tests.invoicing.reference_carts import order_document

HOOK = "https://hooks.slack.test/services/T000/B000/woobird"


def _link(harness: Harness, document_id: str) -> str:
    return f"https://moneybird.com/{harness.moneybird.administration_id}/sales_invoices/{document_id}"


def _add(harness: Harness) -> dict[str, Any]:
    """A paid order (reference cart "a"), numbered by the shop."""
    document = order_document("a")
    document.update(id=None, number=None)
    return harness.shop.add_order(document)


async def _booked(harness: Harness) -> tuple[int, OrderRecord]:
    order = _add(harness)
    assert (await harness.deliver(order["id"])).status_code == 202
    await harness.run_worker()
    record = await harness.record(order["id"])
    assert record is not None
    assert record.state == OrderState.BOOKED, record.error
    return int(order["id"]), record


async def _events(harness: Harness, order_id: int, step: str) -> list[str]:
    async with harness.sessions() as session:
        return [event.message for event in await ledger.events_for(session, order_id) if event.step == step]


async def test_a_booked_order_gets_one_private_note_with_its_invoice(harness: Harness) -> None:
    order_id, record = await _booked(harness)
    assert record.invoice_id is not None
    notes = harness.shop.notes[order_id]
    assert len(notes) == 1
    note = notes[0]
    assert note["customer_note"] is False  # never e-mailed to the customer
    assert f"invoice {record.invoice_number}" in note["note"]
    assert record.invoice_total is not None
    assert money_text(record.invoice_total, "en") in note["note"]
    assert _link(harness, record.invoice_id) in note["note"]
    assert len(await _events(harness, order_id, NOTE_WRITTEN_EVENT)) == 1


async def test_the_note_changes_nothing_about_the_order_and_books_nothing_again(harness: Harness) -> None:
    order = _add(harness)
    before = dict(harness.shop.orders[order["id"]])
    await harness.deliver(order["id"])
    await harness.run_worker()
    assert harness.shop.notes[order["id"]]
    # WooCommerce does not save the order for a note: nothing to deliver, nothing modified.
    assert harness.shop.orders[order["id"]]["date_modified_gmt"] == before["date_modified_gmt"]
    assert harness.shop.deliveries == []
    # And should a plugin save it and deliver it anyway, the order is found booked and unchanged.
    invoices = len(harness.moneybird.sales_invoices)
    assert (await harness.deliver(order["id"])).status_code in (200, 202)
    await harness.run_worker()
    assert len(harness.moneybird.sales_invoices) == invoices
    assert len(harness.shop.notes[order["id"]]) == 1
    record = await harness.record(order["id"])
    assert record is not None
    assert record.state == OrderState.BOOKED


def test_the_note_speaks_the_language_setting_with_its_amount_as_the_reader_writes_it() -> None:
    def note(language: Language) -> str:
        return note_text(
            kind="invoice", number="2026-0041", total="1234.56", currency="EUR", link="L", language=language
        )

    total = money_text(Decimal("1234.56"), "nl")
    assert (
        note("nl")
        == f"woobird heeft deze bestelling in Moneybird geboekt als factuur 2026-0041, totaal {total}: L"
    )
    assert note("en") == "woobird booked this order in Moneybird as invoice 2026-0041, total €1,234.56: L"


def test_a_second_note_is_found_by_its_words_in_either_language() -> None:
    paid = {
        language: note_text(
            kind="invoice_paid", number="7", total="5.00", currency="EUR", link="L", language=language
        )
        for language in ("nl", "en")
    }
    markers = note_markers("invoice_paid", "L")
    assert all(any(marker in text for marker in markers) for text in paid.values())
    first = note_text(kind="invoice", number="7", total="5.00", currency="EUR", link="L", language="nl")
    assert not any(marker in first for marker in markers)


async def test_a_note_whose_answer_was_lost_is_adopted_not_written_twice(harness: Harness) -> None:
    order_id, record = await _booked(harness)
    assert record.invoice_id is not None
    link = _link(harness, record.invoice_id)
    # The try whose answer was lost left its note; the next try finds it by the invoice's link.
    outcome = await write_shop_note(
        harness.services,
        order_id=order_id,
        document_id=record.invoice_id,
        markers=(link,),
        text=f"again {link}",
    )
    assert "already on the order" in outcome
    assert len(harness.shop.notes[order_id]) == 1


async def test_a_shop_that_is_away_gets_the_note_later_and_the_booking_does_not_wait(
    harness: Harness,
) -> None:
    order = _add(harness)
    harness.shop.fail_next("POST /orders/{id}/notes", status=503, times=2)
    await harness.deliver(order["id"])
    await harness.run_worker()
    record = await harness.record(order["id"])
    assert record is not None
    assert record.state == OrderState.BOOKED
    assert len(harness.shop.notes[order["id"]]) == 1
    posts = harness.shop.calls("POST /orders/{id}/notes")
    assert [call.status for call in posts] == [503, 503, 201]


async def test_a_read_only_key_books_alerts_once_and_writes_no_note(
    database_url: str, redis: ArqRedis
) -> None:
    with respx.mock(assert_all_called=False) as mock:
        hook = mock.post(HOOK).mock(return_value=httpx.Response(200, text="ok"))
        async with open_harness(database_url=database_url, redis=redis, alert_webhook_url=HOOK) as harness:
            harness.shop.key_permissions = "read"
            first, _ = await _booked(harness)
            second, _ = await _booked(harness)
            assert harness.shop.notes == {}
            for order_id in (first, second):
                [refused] = await _events(harness, order_id, NOTE_REFUSED_EVENT)
                assert "write permissions" in refused
    # One alert for the cause, not one per order, saying how to stop it.
    [sent] = [json.loads(call.request.content)["text"] for call in hook.calls]
    assert "SHOP_NOTES=false" in sent
    assert "Read/Write" in sent


async def test_shop_notes_false_writes_nothing(database_url: str, redis: ArqRedis) -> None:
    async with open_harness(database_url=database_url, redis=redis, shop_notes=False) as harness:
        order_id, _ = await _booked(harness)
        assert harness.shop.notes == {}
        assert harness.shop.calls("GET /orders/{id}/notes") == []
        assert await _events(harness, order_id, NOTE_WRITTEN_EVENT) == []


async def test_a_refund_gets_a_note_with_its_credit_invoice(harness: Harness) -> None:
    order_id, record = await _booked(harness)
    harness.shop.add_refund(order_id, amount=Decimal("5.00"), reason="damaged")
    await harness.deliver(order_id)
    await harness.run_worker()
    credits = [
        invoice
        for invoice in harness.moneybird.sales_invoices.values()
        if invoice["id"] != record.invoice_id and Decimal(invoice["total_price_incl_tax"]) < 0
    ]
    assert len(credits) == 1
    notes = harness.shop.notes[order_id]
    assert len(notes) == 2
    credit_note = next(note for note in notes if "credit invoice" in note["note"])
    assert _link(harness, credits[0]["id"]) in credit_note["note"]
    assert money_text(Decimal("-5.00"), "en") in credit_note["note"]


async def test_the_fake_shop_refuses_a_note_as_woocommerce_does(harness: Harness) -> None:
    order = _add(harness)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_shop_app(harness.shop)), base_url=harness.shop.url
    ) as raw:
        auth = (harness.shop.consumer_key, harness.shop.consumer_secret)
        path = f"/wp-json/wc/v3/orders/{order['id']}/notes"
        missing = await raw.post(path, json={"customer_note": False}, auth=auth)
        assert missing.status_code == 400
        assert missing.json()["code"] == "rest_missing_callback_param"
        unknown = await raw.post("/wp-json/wc/v3/orders/999999/notes", json={"note": "x"}, auth=auth)
        assert unknown.status_code == 404
        assert unknown.json()["code"] == "woocommerce_rest_order_invalid_id"
    assert order["id"] not in harness.shop.notes


async def test_woobird_reads_only_the_private_notes(harness: Harness) -> None:
    order = _add(harness)
    harness.shop.add_note(order["id"], "private")
    harness.shop.add_note(order["id"], "to the customer", customer_note=True)
    client: WooCommerceClient = harness.services.shop
    notes = await client.list_order_notes(order["id"])
    # A customer's note never counts as woobird's, whatever link it carries.
    assert [note.note for note in notes] == ["private"]
