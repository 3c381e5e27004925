"""What the Moneybird fake lets a bookkeeper do to a booked invoice, and what it refuses, as Moneybird.

Verification (app.booking.verify) is only as good as the changes the fake can make: remove a payment
(reopened), delete an invoice (only without payments, never in a locked period), edit a sent
invoice's line (the web app does; the API refuses), and look invoices up by id whatever their date.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import httpx
import pytest

from app.sandbox.moneybird import MoneybirdSandbox, edit_in_web_app
from tests.sandbox.test_moneybird_fake import (
    JsonDict,
    _contact,
    _invoice,
    _line,
    _pay,
    _send,
    client,
    sandbox,
)

__all__ = ["client", "sandbox"]  # fixtures


async def _paid(sandbox: MoneybirdSandbox, client: httpx.AsyncClient, *, invoice_date: str) -> JsonDict:
    contact = await _contact(client)
    draft = await _invoice(client, contact["id"], [_line(sandbox, "10.00")], invoice_date=invoice_date)
    sent = await _send(client, draft["id"])
    assert (await _pay(client, sent["id"], sent["total_price_incl_tax"])).status_code == 201
    invoice = sandbox.sales_invoices[sent["id"]]
    assert invoice["state"] == "paid"
    return invoice


async def test_removing_the_payment_reopens_and_then_the_invoice_may_be_deleted(
    sandbox: MoneybirdSandbox, client: httpx.AsyncClient
) -> None:
    invoice = await _paid(sandbox, client, invoice_date="2026-03-02")

    refused = await client.delete(f"/sales_invoices/{invoice['id']}.json")
    assert refused.status_code == 422
    (payment,) = invoice["payments"]
    removed = await client.delete(f"/sales_invoices/{invoice['id']}/payments/{payment['id']}.json")
    assert removed.status_code == 204
    reopened = (await client.get(f"/sales_invoices/{invoice['id']}.json")).json()
    assert reopened["state"] in {"open", "late"}
    assert Decimal(reopened["total_unpaid"]) == Decimal("12.10")
    deleted = await client.delete(f"/sales_invoices/{invoice['id']}.json")

    assert deleted.status_code == 204
    assert (await client.get(f"/sales_invoices/{invoice['id']}.json")).status_code == 404


async def test_an_invoice_in_a_locked_period_is_not_deleted(
    sandbox: MoneybirdSandbox, client: httpx.AsyncClient
) -> None:
    invoice = await _paid(sandbox, client, invoice_date="2026-03-02")
    (payment,) = invoice["payments"]
    await client.delete(f"/sales_invoices/{invoice['id']}/payments/{payment['id']}.json")
    sandbox.lock_period(date(2026, 3, 31))

    refused = await client.delete(f"/sales_invoices/{invoice['id']}.json")

    assert refused.status_code == 400
    assert refused.json()["symbolic"] == {"sales_invoice": "period_locked"}
    assert invoice["id"] in sandbox.sales_invoices
    with pytest.raises(ValueError, match="locked"):
        edit_in_web_app(sandbox, invoice["id"], price="8.00")


async def test_a_sent_invoice_is_edited_in_the_web_app_not_through_the_api(
    sandbox: MoneybirdSandbox, client: httpx.AsyncClient
) -> None:
    invoice = await _paid(sandbox, client, invoice_date="2026-03-02")
    line = invoice["details"][0]

    refused = await client.patch(
        f"/sales_invoices/{invoice['id']}.json",
        json={"sales_invoice": {"details_attributes": [{"id": line["id"], "price": "8.00"}]}},
    )
    assert refused.status_code == 422
    edited = edit_in_web_app(sandbox, invoice["id"], price="8.00")

    assert Decimal(edited["total_price_incl_tax"]) == Decimal("9.68")
    assert edited["state"] != "paid"  # the payment of 12.10 stayed
    assert Decimal(edited["total_unpaid"]) == Decimal("-2.42")
    back = edit_in_web_app(sandbox, invoice["id"], price="10.00")
    assert back["state"] == "paid"


async def test_synchronization_by_id_answers_whatever_the_date(
    sandbox: MoneybirdSandbox, client: httpx.AsyncClient
) -> None:
    old = await _paid(sandbox, client, invoice_date="2019-06-30")  # outside the default this_year

    listed = await client.get("/sales_invoices.json")
    fetched = await client.post("/sales_invoices/synchronization.json", json={"ids": [old["id"], "1"]})

    assert old["id"] not in {i["id"] for i in listed.json()}
    assert fetched.status_code == 200
    assert [i["id"] for i in fetched.json()] == [old["id"]]
    missing = await client.post("/sales_invoices/synchronization.json", json={})
    assert missing.status_code == 400
