"""The invoice's contact: adopted from Moneybird only on an exact e-mail match, else created once.

Moneybird's contact search is fuzzy (a query for noor@example.nl also finds noor@example.nl.au),
and bookkeepers make contacts by hand, so each test seeds the administration with the contacts a
real one would have and books real orders through the harness.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from arq import Retry
from arq.connections import ArqRedis
from sqlalchemy import delete

from app import schema
from app.booking import ledger
from app.booking.contacts import _locked, ensure_contact
from app.constants import CONTACT_LOCK_PREFIX
from app.db import transaction
from app.invoicing.contact import PlanContact
from app.jobs import LOCK_MARGIN_SECONDS
from app.sandbox.woocommerce.cart import CartItem, Customer
from app.schema import OrderState
from tests.harness import Harness, open_harness

PAID_AT = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)
MUG = CartItem(name="Mok", price=Decimal("12.50"), quantity=2, sku="MOK-1")


def _customer(email: str, *, customer_id: int = 0) -> Customer:
    return Customer(
        first_name="Noor", last_name="Visser", email=email, city="Leiden", customer_id=customer_id
    )


async def _book(h: Harness, order_id: int, customer: Customer) -> dict[str, Any]:
    document = h.add_paid_order(
        order_id=order_id,
        customer=customer,
        items=[MUG],
        created_at=PAID_AT,
        paid_at=PAID_AT,
        completed_at=PAID_AT,
    )
    assert (await h.deliver(order_id)).status_code == 202
    await h.run_worker()
    record = await h.record(order_id)
    assert record is not None
    assert record.state == OrderState.BOOKED, record.error
    (invoice,) = h.invoices_for(str(document["number"]))
    assert invoice["state"] == "paid"
    assert Decimal(invoice["total_price_incl_tax"]) == Decimal(document["total"])
    return invoice


async def test_a_business_customers_vat_number_goes_onto_their_new_contact(harness: Harness) -> None:
    customer = Customer(
        first_name="Noor",
        last_name="Visser",
        company="Visser Keramiek B.V.",
        email="inkoop@visserkeramiek.nl",
        city="Leiden",
        vat_number="NL123456789B01",
    )
    invoice = await _book(harness, 6021, customer)

    contact = harness.moneybird.contacts[str(invoice["contact_id"])]
    assert (contact["company_name"], contact["tax_number"]) == ("Visser Keramiek B.V.", "NL123456789B01")


async def test_a_hand_made_contact_with_the_exact_address_is_adopted(harness: Harness) -> None:
    h = harness
    by_hand = h.moneybird.seed_contact(
        company_name="Visser Design", send_invoices_to_email="Noor@Example.nl", delivery_method="Manual"
    )
    # Addresses differ only in case between the shop and Moneybird: still the same address.
    invoice = await _book(h, 8201, _customer("noor@EXAMPLE.nl"))
    assert invoice["contact_id"] == by_hand["id"]
    assert list(h.moneybird.contacts) == [by_hand["id"]]
    async with h.sessions() as session:
        remembered = await session.get(schema.ContactRecord, (1, "noor@example.nl"))
    assert remembered is not None
    assert (remembered.contact_id, remembered.adopted) == (by_hand["id"], True)


async def test_contacts_the_search_finds_for_a_similar_address_are_not_adopted(harness: Harness) -> None:
    h = harness
    lookalikes = [
        h.moneybird.seed_contact(firstname="Noor", send_invoices_to_email="noor@example.nl.au"),
        h.moneybird.seed_contact(firstname="Noor", send_invoices_to_email="anoor@example.nl"),
        h.moneybird.seed_contact(firstname="Noor", email="noor@example.nl.invalid"),
    ]
    # They are what Moneybird's search answers for the address: adopting any hit would take one.
    found = await h.services.moneybird.search_contacts("noor@example.nl")
    assert {contact.id for contact in found} == {contact["id"] for contact in lookalikes}

    invoice = await _book(h, 8202, _customer("noor@example.nl"))
    assert invoice["contact_id"] not in {contact["id"] for contact in lookalikes}
    created = h.moneybird.contacts[invoice["contact_id"]]
    assert created["send_invoices_to_email"] == "noor@example.nl"
    # The customer's next order goes to the contact woobird made, not to a look-alike.
    again = await _book(h, 8203, _customer("noor@example.nl"))
    assert again["contact_id"] == invoice["contact_id"]
    assert len(h.moneybird.contacts) == 4


async def test_an_order_without_an_email_address_is_booked_to_the_customers_own_contact(
    harness: Harness,
) -> None:
    h = harness
    # A hand-made contact without an address must not be mistaken for the customer either.
    h.moneybird.seed_contact(firstname="Noor", lastname="Visser")
    first = await _book(h, 8204, _customer("", customer_id=31))
    contact = h.moneybird.contacts[first["contact_id"]]
    assert contact["customer_id"] == "woo-31"
    assert contact["delivery_method"] == "Manual"
    second = await _book(h, 8205, _customer("", customer_id=31))
    assert second["contact_id"] == first["contact_id"]
    # A guest without an address is a customer of one order: their contact is that order's.
    guest = await _book(h, 8206, _customer(""))
    assert guest["contact_id"] != first["contact_id"]
    assert h.moneybird.contacts[guest["contact_id"]]["customer_id"] == "woo-order-8206"
    assert len(h.moneybird.contacts) == 3


async def test_a_customer_whose_contact_was_archived_is_booked_to_a_new_contact(harness: Harness) -> None:
    h = harness
    first = await _book(h, 8207, _customer("noor@example.nl"))
    contact_id = first["contact_id"]
    h.moneybird.archive_contact(contact_id)  # the bookkeeper tidies up Moneybird's contact list
    async with transaction(h.sessions) as session:  # and woobird starts over on a new database
        await session.execute(delete(schema.ContactRecord))
    # The search no longer finds it, its customer_id is still taken, and Moneybird refuses invoices
    # for an archived contact ("Contact ID is invalid"): booking must not fail all the same.
    second = await _book(h, 8208, _customer("noor@example.nl"))
    assert second["contact_id"] != contact_id
    new = h.moneybird.contacts[second["contact_id"]]
    assert (new["archived"], new["send_invoices_to_email"]) == (False, "noor@example.nl")
    assert new["customer_id"] != h.moneybird.contacts[contact_id]["customer_id"]  # that one stays taken
    async with h.sessions() as session:
        events = await ledger.events_for(session, 8208)
    assert any("created" in event.message and second["contact_id"] in event.message for event in events)


async def test_a_contact_deleted_in_moneybird_is_replaced_and_the_order_booked(harness: Harness) -> None:
    h = harness
    document = h.add_paid_order(
        order_id=8209, customer=_customer("noor@example.nl"), items=[MUG], created_at=PAID_AT, paid_at=PAID_AT
    )
    h.moneybird.fail_next("POST /sales_invoices", kind="status", status=422)  # the first try fails
    assert (await h.deliver(8209)).status_code == 202
    await h.run_worker()
    record = await h.record(8209)
    assert record is not None
    assert record.state == OrderState.FAILED
    (stray,) = h.moneybird.contacts
    h.moneybird.delete_contact(stray)  # a contact without invoices: the bookkeeper deletes it

    h.shop.update_order(8209, customer_note="opnieuw")  # the next delivery books it after all
    assert (await h.deliver(8209)).status_code == 202
    await h.run_worker()
    record = await h.record(8209)
    assert record is not None
    assert record.state == OrderState.BOOKED, record.error
    (invoice,) = h.invoices_for(str(document["number"]))
    assert invoice["contact_id"] != stray
    assert h.moneybird.contacts[invoice["contact_id"]]["send_invoices_to_email"] == "noor@example.nl"
    # The customer's next order goes to the new contact straight away.
    again = await _book(h, 8210, _customer("noor@example.nl"))
    assert again["contact_id"] == invoice["contact_id"]


def _plan(email: str) -> PlanContact:
    return PlanContact(
        email=email,
        company_name="",
        firstname="Noor",
        lastname="Visser",
        address1="",
        address2="",
        zipcode="",
        city="Leiden",
        country="NL",
        phone="",
        tax_number="",
        customer_id=f"woo-guest-{email}",
    )


async def test_an_order_waits_seconds_not_its_job_time_while_the_customers_contact_is_busy(
    harness: Harness,
) -> None:
    # Another order of the customer is in the contact step, or a killed worker left its lock: the
    # job gives its worker slot back within seconds and comes again, instead of running out of time.
    busy = harness.redis.lock(f"{CONTACT_LOCK_PREFIX}noor@example.nl", timeout=60)
    assert await busy.acquire(blocking=False)
    before, started = harness.moneybird.calls(), time.monotonic()
    with pytest.raises(Retry):
        await ensure_contact(harness.services, _plan("noor@example.nl"), order_id=7001)
    assert time.monotonic() - started < 5  # seconds: far less than any job may run
    assert harness.moneybird.calls() == before  # nothing written while another held the step
    await busy.release()
    contact_id, done = await ensure_contact(harness.services, _plan("noor@example.nl"), order_id=7001)
    assert done == f"created contact {contact_id}"


async def test_a_killed_workers_contact_lock_expires_no_later_than_its_order_lock(
    database_url: str, redis: ArqRedis
) -> None:
    # The order lock outlives the job by LOCK_MARGIN_SECONDS; a contact lock that outlived it would
    # keep the customer's next orders (and the killed one, taken up again) waiting after it is free.
    async with open_harness(database_url=database_url, redis=redis, worker_job_timeout_seconds=20) as h:
        step = _locked(h.services, _plan("noor@example.nl"))
        async with step:
            left_ms = await h.redis.pttl(f"{CONTACT_LOCK_PREFIX}noor@example.nl")
    assert 0 < left_ms <= (20 + LOCK_MARGIN_SECONDS) * 1000


async def test_a_returning_customer_whose_contact_is_in_step_needs_no_contact_lock(
    database_url: str, redis: ArqRedis
) -> None:
    # The lock guards a create and an update; a returning customer with nothing to change needs
    # neither, so the step costs no round trips to Redis and never waits behind another order.
    async with open_harness(database_url=database_url, redis=redis, contact_updates=True) as h:
        contact_id, _ = await ensure_contact(h.services, _plan("noor@example.nl"), order_id=7001)
        busy = h.redis.lock(f"{CONTACT_LOCK_PREFIX}noor@example.nl", timeout=60)
        assert await busy.acquire(blocking=False)
        assert await ensure_contact(h.services, _plan("noor@example.nl"), order_id=7002) == (
            contact_id,
            f"cached contact {contact_id}",
        )
        moved = replace(_plan("noor@example.nl"), city="Delft")  # an update for Moneybird: under the lock
        before = h.moneybird.calls()
        with pytest.raises(Retry):
            await ensure_contact(h.services, moved, order_id=7003)
        assert h.moneybird.calls() == before
        await busy.release()
        assert await ensure_contact(h.services, moved, order_id=7003) == (
            contact_id,
            f"updated contact {contact_id} (city)",
        )
