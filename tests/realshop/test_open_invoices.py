"""Open invoices on the real shop: a bank-transfer order on hold becomes an open invoice; its payment
reaches the real order (paid, processing) once, and an order marked paid by hand pays the invoice once.

These run their own woobird with OPEN_INVOICE_PAYMENT_METHODS=bacs (the shared one must never book an
order on hold) and point the shop's webhook at it; the shared woobird gets it back afterwards. Its
`woobird webhook install` also registers woobird's webhook in the Moneybird fake (which checks the url
first), and the fake, served over HTTP, pushes the bank's payment to the web process, signed.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from app.constants import INVOICE_REFERENCE_PREFIX
from tests.realshop.orders import get_order, place_order, set_status
from tests.realshop.stack import NotYet, Stack, eventually, run_woobird, utc_now

pytestmark = pytest.mark.realshop

# Action Scheduler runs the webhook queue every ~0.5 s here (php/watch.php): what a write caused has
# arrived well within this.
QUIET_SECONDS = 5.0


@pytest.fixture(scope="module")
def open_stack(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("woobird-open")
    with run_woobird(
        stack.shop, workdir=workdir, since=utc_now(), OPEN_INVOICE_PAYMENT_METHODS="bacs"
    ) as own:
        assert "created Moneybird webhook" in own.install_output, own.install_output
        # The secret Moneybird showed once went to the processes' .env: the web process reads it at start.
        assert "MONEYBIRD_WEBHOOK_SECRET=" in (workdir / ".env").read_text(encoding="utf-8")
        own.restart("web")
        yield own
    restored = stack.woobird("webhook", "install")
    assert restored.returncode == 0, restored.stdout + restored.stderr


def _pushes(stack: Stack, outcome: str) -> float:
    text = httpx.get(f"{stack.web_url}/metrics", timeout=10).text
    found = re.search(
        rf'^woobird_moneybird_pushes_total{{connection="1",outcome="{outcome}"}} (\S+)$', text, re.M
    )
    return float(found.group(1)) if found else 0.0


def _events(stack: Stack, order_id: int) -> list[str]:
    with contextlib.closing(sqlite3.connect(stack.database)) as connection:
        rows = connection.execute(
            "SELECT step FROM ledger_events WHERE order_id = ? ORDER BY id", (order_id,)
        )
        return [row[0] for row in rows]


def _open_invoice(stack: Stack, order: dict[str, Any]) -> dict[str, Any]:
    reference = f"{INVOICE_REFERENCE_PREFIX}{order['number']}"

    def booked_open() -> dict[str, Any]:
        found = stack.invoices(reference)
        record = stack.ledger(order["id"])
        if record is not None and record["state"] == "failed":
            raise AssertionError(f"order {order['id']} failed: {record['error']}")
        if len(found) != 1 or record is None or record["state"] != "awaiting_payment":
            raise NotYet(f"order {order['id']}: invoices {[i['state'] for i in found]}, ledger {record}")
        return found[0]

    return eventually(booked_open)


# The processes run with LANGUAGE unset: they write the shop's notes in Dutch, the default.
PAID_NOTE = "is betaald in Moneybird, dus de bestelling is als betaald gemarkeerd"


def _notes(stack: Stack, order_id: int, words: str) -> list[str]:
    notes = stack.shop.rest.get(f"/wc/v3/orders/{order_id}/notes").json()
    return [note["note"] for note in notes if words in note["note"]]


def test_a_bank_transfer_on_hold_is_paid_in_moneybird_and_the_real_order_is_marked_paid_once(
    open_stack: Stack,
) -> None:
    stack = open_stack
    stack.shop.set_prices_include_tax(True)
    order = place_order(stack.shop, items=[("mug", 2)], email="bank.klant@example.com", status="on-hold")
    invoice = _open_invoice(stack, order)
    assert invoice["state"] in ("open", "late")
    assert invoice["payments"] == []
    assert Decimal(invoice["total_price_incl_tax"]) == Decimal(order["total"])
    assert get_order(stack.shop, order["id"])["status"] == "on-hold"

    # The bank's transfer, matched to the invoice in Moneybird, which pushes it (payment registered,
    # then the invoice paid: two pushes for one payment).
    stack.moneybird.register_payment_from_bank(invoice["id"], invoice["total_price_incl_tax"])

    def marked_paid() -> dict[str, Any]:
        current = get_order(stack.shop, order["id"])
        record = stack.ledger(order["id"])
        if current["status"] != "processing" or record is None or record["state"] != "booked":
            raise NotYet(f"order {current['status']}, ledger {record}")
        return current

    paid = eventually(marked_paid)
    assert paid["date_paid_gmt"]  # WooCommerce set it on the move to processing
    eventually(lambda: _notes(stack, order["id"], PAID_NOTE) or _raise("no paid note yet"))
    time.sleep(QUIET_SECONDS)  # the save's order.updated delivery arrives, and changes nothing

    assert _events(stack, order["id"]).count("settled") == 1
    assert _events(stack, order["id"]).count("marking_paid") == 1
    assert get_order(stack.shop, order["id"])["date_modified_gmt"] == paid["date_modified_gmt"]
    (invoice_now,) = stack.invoices(invoice["reference"])
    assert invoice_now["state"] == "paid"
    assert len(invoice_now["payments"]) == 1
    assert len(_notes(stack, order["id"], PAID_NOTE)) == 1
    assert "booked" not in _events(stack, order["id"])  # the delivery booked nothing
    assert _pushes(stack, "queued") >= 1  # heard from Moneybird's push, not from a poll
    assert _pushes(stack, "unauthorized") == 0


def test_an_order_marked_paid_by_hand_gets_one_payment_in_moneybird(open_stack: Stack) -> None:
    stack = open_stack
    stack.shop.set_prices_include_tax(True)
    order = place_order(stack.shop, items=[("mug", 1)], email="hand.klant@example.com", status="on-hold")
    invoice = _open_invoice(stack, order)
    set_status(stack.shop, order, "processing")  # the owner saw the transfer in the bank
    paid = stack.invoice_for(order)
    assert paid["id"] == invoice["id"]
    time.sleep(QUIET_SECONDS)

    (invoice_now,) = stack.invoices(invoice["reference"])
    assert [Decimal(p["price"]) for p in invoice_now["payments"]] == [Decimal(order["total"])]
    assert get_order(stack.shop, order["id"])["status"] == "processing"
    assert stack.ledger(order["id"])["state"] == "booked"  # type: ignore[index]


def _raise(message: str) -> list[str]:
    raise NotYet(message)


def test_check_names_a_payment_method_the_real_shop_does_not_have(open_stack: Stack) -> None:
    result = open_stack.woobird("check", env={"OPEN_INVOICE_PAYMENT_METHODS": "bacs,bank_transfer"})
    assert result.returncode == 1, result.stdout
    assert "no payment method 'bank_transfer'" in result.stdout
    assert "bacs (" in result.stdout  # the real gateway, named by its title
