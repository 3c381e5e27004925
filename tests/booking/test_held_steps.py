"""Fewer ledger writes while the customer waits, none of the durable ones given up.

A booking writes its intent before each call that makes something in Moneybird (a contact, the
invoice, the payment); the steps in between (the booking began, the contact, the invoice created
and sent) are held and written in that intent's transaction. A try that dies with steps held has
made nothing the next try cannot adopt by reference: one invoice, sent once, paid once.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast

import pytest
from arq.connections import ArqRedis
from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session

from app.booking import ledger
from app.booking.orders import book_order
from app.booking.walk import LedgerProgress
from app.sandbox.woocommerce.cart import CartItem, Customer
from app.schema import LedgerEvent, OrderState, OrderStep
from tests.harness import Harness, open_harness

PAID_AT = datetime(2026, 3, 2, 10, 15, tzinfo=UTC)
CUSTOMER = Customer(first_name="Joris", last_name="Bakker", email="joris@example.nl", city="Deventer")
MUG = CartItem(name="Mok Delfts blauw", price=Decimal("14.95"), quantity=2, sku="MOK-DB")


def _add(h: Harness, order_id: int) -> None:
    h.add_paid_order(
        order_id=order_id,
        customer=CUSTOMER,
        items=[MUG],
        created_at=PAID_AT,
        paid_at=PAID_AT,
        completed_at=PAID_AT,
    )


@contextmanager
def ledger_writes(h: Harness) -> Iterator[list[tuple[list[str], list[str]]]]:
    """Each write of ledger events (ORM rows flushed, or rows inserted at once): the Moneybird calls
    that make something (not the reads) since the previous one, and the events (step: message)."""
    writes: list[tuple[list[str], list[str]]] = []
    seen = [len(h.moneybird.requests)]

    def wrote(events: list[tuple[str, str]]) -> None:
        calls = [str(r.route) for r in h.moneybird.requests[seen[0] :] if r.method != "GET"]
        seen[0] = len(h.moneybird.requests)
        writes.append((calls, [f"{step}: {message}" for step, message in events]))

    def flushed(session: Session, *_: Any) -> None:
        rows = sorted((o for o in session.new if isinstance(o, LedgerEvent)), key=lambda e: e.at)
        if rows:
            wrote([(e.step, e.message) for e in rows])

    def executed(state: ORMExecuteState) -> None:
        table = getattr(state.statement, "table", None)
        if state.is_insert and table is not None and table.name == LedgerEvent.__tablename__:
            given = state.parameters
            rows: list[Mapping[str, Any]] = list(given) if isinstance(given, list) else [cast(Any, given)]
            wrote([(str(row["step"]), str(row["message"])) for row in rows])

    event.listen(Session, "before_flush", flushed)
    event.listen(Session, "do_orm_execute", executed)
    try:
        yield writes
    finally:
        event.remove(Session, "before_flush", flushed)
        event.remove(Session, "do_orm_execute", executed)


def _create(kind: str) -> str:
    return "POST /sales_invoices" if kind == "sales_invoice" else "POST /external_sales_invoices"


def _pay(kind: str) -> str:
    return f"{_create(kind)}/{{id}}/payments"


@pytest.mark.parametrize("kind", ["sales_invoice", "external_sales_invoice"])
async def test_a_returning_customers_order_writes_the_ledger_once_before_each_call_that_makes_something(
    database_url: str, redis: ArqRedis, kind: str
) -> None:
    async with open_harness(database_url=database_url, redis=redis, invoice_kind=kind) as h:
        _add(h, 6301)
        assert await book_order(h.services, order_id=6301, reason="first") == OrderState.BOOKED
        _add(h, 6302)
        await h.deliver(6302)
        with ledger_writes(h) as writes:
            assert await book_order(h.services, order_id=6302, reason="webhook") == OrderState.BOOKED

        sent = ["PATCH /sales_invoices/{id}/send_invoice"] if kind == "sales_invoice" else []
        calls = [c for c, _ in writes]
        # Nothing before the intent; the create (and the send) before the payment's intent; the
        # payment before its outcome; then the booking's outcome.
        assert calls[:4] == [[], [_create(kind), *sent], [_pay(kind)], []]
        started, created, paid, booked = (w for _, w in writes[:4])
        assert [e.split(":")[0] for e in started] == ["started", "contact", "invoice"]
        assert started[-1] == "invoice: creating"
        assert created[0].startswith("invoice: created")
        assert created[-1] == "payment: registering"
        assert created[1:-1] == (["sent: sent (Manual) as " + created[1].rsplit(" ", 1)[1]] if sent else [])
        assert paid[0].startswith("payment: paid")
        assert booked[0].startswith("booked: booked as")
        # Every step is still in the order's history, in the order it happened.
        async with h.sessions() as session:
            history = [e.step for e in await ledger.events_for(session, 6302)]
        steps = ["started", "contact", "invoice", "invoice", *(["sent"] if sent else []), "payment"]
        assert history[-len(steps) - 2 :] == [*steps, "payment", "booked"]


async def test_a_new_customers_booking_is_written_down_before_the_contact_is_created(
    database_url: str, redis: ArqRedis
) -> None:
    async with open_harness(database_url=database_url, redis=redis) as h:
        _add(h, 6311)
        await h.deliver(6311)
        with ledger_writes(h) as writes:
            assert await book_order(h.services, order_id=6311, reason="webhook") == OrderState.BOOKED
        calls, events = writes[0]
        assert (calls, [e.split(":")[0] for e in events]) == ([], ["started"])
        assert writes[1][0] == ["POST /contacts"]  # then the contact is remembered by its e-mail


class Died(BaseException):
    """The worker process is gone: nothing after this is written."""


@pytest.mark.parametrize("kind", ["sales_invoice", "external_sales_invoice"])
async def test_a_try_that_dies_with_steps_held_leaves_one_invoice_sent_and_paid_once(
    database_url: str, redis: ArqRedis, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with open_harness(database_url=database_url, redis=redis, invoice_kind=kind) as h:
        _add(h, 6321)
        await h.deliver(6321)
        flush = LedgerProgress.flush
        dead: list[bool] = []

        async def dying(self: LedgerProgress) -> None:
            # The process dies the moment it would write the payment's intent: the invoice is made
            # (and sent), but the ledger never heard of it.
            if dead or any(held.values.get("step") == OrderStep.PAYING for held in self.held):
                dead.append(True)
                raise Died
            await flush(self)

        monkeypatch.setattr(LedgerProgress, "flush", dying)
        with pytest.raises(Died):
            await book_order(h.services, order_id=6321, reason="webhook")
        monkeypatch.setattr(LedgerProgress, "flush", flush)
        record = await h.record(6321)
        assert record is not None
        assert (record.state, record.step, record.invoice_id) == (
            OrderState.BOOKING,
            OrderStep.INVOICE_CREATING,
            None,
        )

        assert await book_order(h.services, order_id=6321, reason="retry") == OrderState.BOOKED
        documents = (
            h.moneybird.sales_invoices if kind == "sales_invoice" else h.moneybird.external_sales_invoices
        )
        (invoice,) = documents.values()
        assert invoice["state"] == "paid"
        assert len(invoice["payments"]) == 1
        assert h.moneybird.calls(_create(kind)) == 1
        assert h.moneybird.calls(_pay(kind)) == 1
        if kind == "sales_invoice":
            assert h.moneybird.calls("PATCH /sales_invoices/{id}/send_invoice") == 1
        record = await h.record(6321)
        assert record is not None
        assert record.invoice_id == str(invoice["id"])
        assert record.payment_id == str(invoice["payments"][0]["id"])
        async with h.sessions() as session:
            history = [e.step for e in await ledger.events_for(session, 6321)]
        assert "adopted" in history  # found by reference, not made again
