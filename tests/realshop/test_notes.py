"""The shop sees what was booked: woobird's private note on the real order, and that the note is no
change to the order — WooCommerce neither saves the order nor delivers it again, and woobird books
nothing twice."""

from __future__ import annotations

import contextlib
import re
import sqlite3
import time
from typing import Any

import httpx
import pytest

from tests.realshop.checks import check_booked
from tests.realshop.orders import get_order, place_order, set_status
from tests.realshop.stack import NotYet, Stack, eventually

pytestmark = pytest.mark.realshop

# Action Scheduler runs the webhook queue every ~0.5 s here (php/watch.php): a delivery the note
# caused would have arrived well within this.
QUIET_SECONDS = 5.0


def _deliveries(stack: Stack) -> float:
    """Every delivery the web process received, whatever became of it."""
    text = httpx.get(f"{stack.web_url}/metrics", timeout=10).text
    return sum(
        float(value) for value in re.findall(r"^woobird_webhook_deliveries_total\{[^}]*\} (\S+)$", text, re.M)
    )


def _events(stack: Stack, order_id: int) -> list[str]:
    with contextlib.closing(sqlite3.connect(stack.database)) as connection:
        rows = connection.execute(
            "SELECT step FROM ledger_events WHERE order_id = ? ORDER BY id", (order_id,)
        )
        return [row[0] for row in rows]


def test_a_booked_order_gets_one_private_note_that_books_nothing_again(stack: Stack) -> None:
    stack.shop.set_prices_include_tax(False)
    placed = place_order(stack.shop, items=[("mug", 2)], email="noor.jansen@example.com", shipping="flat_nl")
    completed = set_status(stack.shop, placed, "completed")
    invoice = check_booked(stack, completed, kind="excl. VAT: a private note on the order")
    link = f"/sales_invoices/{invoice['id']}"

    def noted() -> list[dict[str, Any]]:
        notes = stack.shop.rest.get(f"/wc/v3/orders/{completed['id']}/notes").json()
        ours = [note for note in notes if link in note["note"]]
        if not ours:
            raise NotYet(f"no note linking {link} yet: {[note['note'] for note in notes]}")
        return ours

    [note] = eventually(noted)
    assert note["customer_note"] is False
    assert invoice["invoice_id"] in note["note"]
    modified = get_order(stack.shop, completed["id"])["date_modified_gmt"]
    delivered = _deliveries(stack)

    time.sleep(QUIET_SECONDS)

    # The note did not save the order, so WooCommerce had nothing to deliver.
    assert get_order(stack.shop, completed["id"])["date_modified_gmt"] == modified
    assert _deliveries(stack) == delivered
    assert len(stack.invoices(invoice["reference"])) == 1
    assert _events(stack, completed["id"]).count("booked") == 1
    assert _events(stack, completed["id"]).count("shop_note") == 1
    assert len(noted()) == 1
