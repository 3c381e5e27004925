"""Contacts that stay true: replaced when Moneybird lost them, updated with CONTACT_UPDATES, never merged.

A contact archived or deleted in Moneybird refuses new invoices ("Contact ID is invalid", as the
fake answers too): the order is booked all the same, to a re-adopted or recreated contact, and the
owner is told. With CONTACT_UPDATES=true the shop's changes to a customer's details reach their
contact, and a registered customer's new e-mail address is shown, not silently merged.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from arq.connections import ArqRedis
from sqlalchemy import select

from app.booking.orders import book_order
from app.constants import ORDER_LOCK_PREFIX
from app.moneybird.errors import MoneybirdTimeout
from app.sandbox.woocommerce.cart import CartItem, Customer
from app.schema import (
    ContactRecord,
    Finding,
    FindingKind,
    FindingState,
    OrderState,
    RefundRecord,
    RefundState,
)
from tests.harness import Harness, open_harness

PAID_AT = datetime(2026, 3, 2, 10, 15, tzinfo=UTC)
JOOST = Customer(
    first_name="Joost",
    last_name="de Wit",
    email="joost@example.nl",
    city="Gouda",
    address_1="Markt 1",
    postcode="2801 AA",
    phone="0182 123456",
    customer_id=42,
)
CHEESE = CartItem(name="Kaasschaaf", price=Decimal("14.95"), quantity=1, sku="KS-1")


class WorkerKilled(BaseException):
    """Stands for SIGKILL: nothing after the write runs."""


@pytest.fixture(params=["sales_invoice", "external_sales_invoice"])
async def h(request: pytest.FixtureRequest, database_url: str, redis: ArqRedis) -> AsyncIterator[Harness]:
    async with open_harness(database_url=database_url, redis=redis, invoice_kind=request.param) as wired:
        yield wired


def _order(h: Harness, order_id: int, customer: Customer = JOOST) -> None:
    h.add_paid_order(
        order_id=order_id,
        customer=customer,
        items=[CHEESE],
        created_at=PAID_AT,
        paid_at=PAID_AT,
        completed_at=PAID_AT,
    )


async def _book(h: Harness, order_id: int, customer: Customer = JOOST) -> str:
    _order(h, order_id, customer)
    await h.deliver(order_id)
    await h.run_worker()
    record = await h.record(order_id)
    assert record is not None
    assert record.state == OrderState.BOOKED, record.error
    assert record.contact_id is not None
    return record.contact_id


def _invoice(h: Harness, order_id: int) -> dict[str, Any]:
    store = (
        h.moneybird.sales_invoices
        if h.settings.invoice_kind == "sales_invoice"
        else h.moneybird.external_sales_invoices
    )
    (invoice,) = [doc for doc in store.values() if doc.get("reference") == f"WooCommerce #{order_id}"]
    return invoice


async def _findings(h: Harness, kind: FindingKind) -> list[Finding]:
    async with h.sessions() as session:
        return list(
            (await session.execute(select(Finding).where(Finding.kind == kind.value))).scalars().all()
        )


async def _cached_contact(h: Harness, email: str) -> ContactRecord:
    async with h.sessions() as session:
        record = await session.get(ContactRecord, email)
    assert record is not None
    return record


def _with_email(h: Harness, contact_id: str) -> list[str]:
    emails = {
        contact_id: str(c.get("send_invoices_to_email")) for contact_id, c in h.moneybird.contacts.items()
    }
    wanted = emails[contact_id]
    return sorted(cid for cid, email in emails.items() if email == wanted)


# ── gone ─────────────────────────────────────────────────────────────────────────────────────


async def test_an_archived_contact_is_recreated_and_the_order_booked(h: Harness) -> None:
    first = await _book(h, 8301)
    h.moneybird.archive_contact(first)  # the bookkeeper archived Joost in Moneybird

    second = await _book(h, 8302)

    assert second != first
    invoice = _invoice(h, 8302)
    assert (invoice["state"], invoice["contact_id"]) == ("paid", second)
    assert _invoice(h, 8301)["contact_id"] == first  # earlier invoices stay where they were
    assert (await _cached_contact(h, "joost@example.nl")).contact_id == second
    (finding,) = await _findings(h, FindingKind.CONTACT_REPLACED)
    assert finding.state == FindingState.OPEN
    assert f"contact {first} was archived in Moneybird" in finding.message
    assert f"created contact {second}" in finding.message
    assert "joost@example.nl" not in finding.message
    third = await _book(h, 8303)  # the next order goes straight to the new contact
    assert third == second
    assert len(await _findings(h, FindingKind.CONTACT_REPLACED)) == 1


async def test_a_deleted_contact_gives_way_to_the_customers_other_active_contact(h: Harness) -> None:
    first = await _book(h, 8311)
    for store in (h.moneybird.sales_invoices, h.moneybird.external_sales_invoices):
        store.clear()  # the bookkeeper deleted the invoice, then the contact
    h.moneybird.delete_contact(first)
    by_hand = await h.services.moneybird.create_contact(
        _contact_create_by_hand("joost@example.nl")
    )  # and made Joost again by hand

    second = await _book(h, 8312)

    assert second == by_hand.id
    (finding,) = await _findings(h, FindingKind.CONTACT_REPLACED)
    assert f"contact {first} was deleted in Moneybird" in finding.message
    assert f"re-adopted contact {by_hand.id}" in finding.message


def _contact_create_by_hand(email: str) -> Any:
    from app.moneybird.models import ContactCreate

    return ContactCreate(firstname="Joost", lastname="de Wit", send_invoices_to_email=email)


def _after_nth(h: Harness, method: str, nth: int, error: BaseException) -> list[int]:
    real: Callable[..., Awaitable[Any]] = getattr(h.services.moneybird, method)
    seen = [0]

    async def then_fail(*args: Any) -> Any:
        result = await real(*args)
        seen[0] += 1
        if seen[0] == nth:
            raise error
        return result

    setattr(h.services.moneybird, method, then_fail)
    return seen


async def test_a_lost_answer_to_the_replacement_contact_is_adopted(h: Harness) -> None:
    first = await _book(h, 8321)
    h.moneybird.archive_contact(first)
    seen = _after_nth(h, "create_contact", 1, MoneybirdTimeout("no answer; it may have been carried out"))

    second = await _book(h, 8322)

    assert seen[0] == 1
    assert _with_email(h, second) == sorted([first, second])  # the archived one and one replacement
    assert _invoice(h, 8322)["contact_id"] == second


async def test_a_worker_killed_after_creating_the_replacement_resumes_with_it(h: Harness) -> None:
    first = await _book(h, 8331)
    h.moneybird.archive_contact(first)
    _order(h, 8332)
    seen = _after_nth(h, "create_contact", 1, WorkerKilled())
    with pytest.raises(WorkerKilled):
        await book_order(h.services, order_id=8332, reason="test")

    await h.redis.delete(f"{ORDER_LOCK_PREFIX}8332")
    assert await book_order(h.services, order_id=8332, reason="resumed") == OrderState.BOOKED
    record = await h.record(8332)
    assert record is not None
    assert seen[0] == 1
    assert _with_email(h, str(record.contact_id)) == sorted([first, str(record.contact_id)])
    assert _invoice(h, 8332)["contact_id"] == record.contact_id


async def test_a_refund_to_an_archived_contact_is_credited_to_its_replacement(h: Harness) -> None:
    first = await _book(h, 8341)
    h.moneybird.archive_contact(first)
    refund = h.shop.add_refund(8341, amount="4.95", reason="Bot")
    await h.deliver(8341)
    await h.run_worker()

    async with h.sessions() as session:
        credited = await session.get(RefundRecord, refund["id"])
    assert credited is not None
    assert credited.state == RefundState.BOOKED, credited.error
    record = await h.record(8341)
    assert record is not None
    assert record.contact_id != first
    assert len(await _findings(h, FindingKind.CONTACT_REPLACED)) == 1


async def test_an_archived_business_contacts_replacement_keeps_the_company_and_vat_number(h: Harness) -> None:
    business = replace(JOOST, company="De Vries Fietsen B.V.", vat_number="NL123456789B01")
    first = await _book(h, 8342, business)
    h.moneybird.archive_contact(first)
    h.shop.add_refund(8342, amount="4.95", reason="Bot")  # the credit needs a contact that takes it
    await h.deliver(8342)
    await h.run_worker()

    record = await h.record(8342)
    assert record is not None
    assert record.contact_id not in (None, first)
    replacement = h.moneybird.contacts[str(record.contact_id)]
    assert (replacement["company_name"], replacement["tax_number"]) == (
        "De Vries Fietsen B.V.",
        "NL123456789B01",
    )


# ── CONTACT_UPDATES ──────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
@pytest.mark.parametrize("updates", [True, False])
async def test_a_customers_new_details_update_their_contact_only_when_asked(
    database_url: str, redis: ArqRedis, updates: bool
) -> None:
    async with open_harness(database_url=database_url, redis=redis, contact_updates=updates) as h:
        contact_id = await _book(h, 8351)
        moved = Customer(
            **{**_fields(JOOST), "city": "Delft", "address_1": "Oude Delft 7", "phone": "015 765432"}
        )
        assert await _book(h, 8352, moved) == contact_id

        contact = h.moneybird.contacts[contact_id]
        patches = h.moneybird.calls("PATCH /contacts/{id}")
        if updates:
            assert (contact["city"], contact["address1"], contact["phone"]) == (
                "Delft",
                "Oude Delft 7",
                "015 765432",
            )
            assert patches == 1
            sent = [r.json for r in h.moneybird.requests if (r.route or "").startswith("PATCH /contacts")][
                -1
            ]["contact"]
            assert set(sent) == {"city", "address1", "phone"}
            assert (
                json.loads((await _cached_contact(h, "joost@example.nl")).details or "{}")["city"] == "Delft"
            )
        else:
            assert (contact["city"], patches) == ("Gouda", 0)
        again = await _book(h, 8353, moved)  # nothing new: nothing sent
        assert again == contact_id
        assert h.moneybird.calls("PATCH /contacts/{id}") == patches


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
@pytest.mark.parametrize("failure", ["lost", "killed"])
async def test_a_contact_update_survives_a_lost_answer_and_a_killed_worker(
    database_url: str, redis: ArqRedis, failure: str
) -> None:
    async with open_harness(database_url=database_url, redis=redis, contact_updates=True) as h:
        contact_id = await _book(h, 8361)
        moved = Customer(**{**_fields(JOOST), "city": "Zwolle"})
        _order(h, 8362, moved)
        if failure == "lost":
            _after_nth(h, "update_contact", 1, MoneybirdTimeout("no answer; it may have been carried out"))
            await h.deliver(8362)
            await h.run_worker()
        else:
            _after_nth(h, "update_contact", 1, WorkerKilled())
            with pytest.raises(WorkerKilled):
                await book_order(h.services, order_id=8362, reason="test")
            await h.redis.delete(f"{ORDER_LOCK_PREFIX}8362")
            assert await book_order(h.services, order_id=8362, reason="resumed") == OrderState.BOOKED
        record = await h.record(8362)
        assert record is not None
        assert (record.state, record.contact_id) == (OrderState.BOOKED, contact_id)
        assert h.moneybird.contacts[contact_id]["city"] == "Zwolle"
        assert len(h.invoices_for("8362")) == 1


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
@pytest.mark.parametrize("updates", [True, False])
async def test_a_new_email_address_is_shown_never_merged(
    database_url: str, redis: ArqRedis, updates: bool
) -> None:
    async with open_harness(database_url=database_url, redis=redis, contact_updates=updates) as h:
        first = await _book(h, 8371)
        renamed = Customer(**{**_fields(JOOST), "email": "joost.dewit@example.com"})
        second = await _book(h, 8372, renamed)

        assert second != first  # the new address's own contact: one contact per e-mail, as always
        assert h.moneybird.contacts[first]["send_invoices_to_email"] == "joost@example.nl"
        findings = await _findings(h, FindingKind.EMAIL_CHANGED)
        if not updates:
            assert findings == []
            return
        (finding,) = findings
        assert finding.order_id == 8372
        assert (
            "customer woo-42 orders under a new e-mail address (j…@example.com; before: j…@example.nl)"
            in (finding.message)
        )
        assert f"earlier invoices stay with contact {first}" in finding.message
        await _book(h, 8373, renamed)
        assert len(await _findings(h, FindingKind.EMAIL_CHANGED)) == 1


def _fields(customer: Customer) -> dict[str, Any]:
    return {name: getattr(customer, name) for name in customer.__dataclass_fields__}
