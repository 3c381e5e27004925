"""Two real shops — WooCommerce 10.0.2 and 9.9.5 — as two connections of one woobird, at the same
time: connection 1 is the environment's shop, connection 2 is added with `woobird connections add`,
each books into its own Moneybird administration. Both shops hand out the same order ids, so
only the connection keeps their orders apart: each administration must hold its own shop's
invoices and nothing else, each ledger its own orders, and a delivery signed with one shop's
secret is refused at the other's URL.

One woobird (the Procfile's web and worker) on PostgreSQL, one Moneybird (the fake, two
administrations the same token reaches, as a bookkeeper's token reaches all of theirs).
"""

from __future__ import annotations

import asyncio
import re
import secrets
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from app.constants import SIGNATURE_HEADER, TOPIC_HEADER, WEBHOOK_PATH
from app.db import create_engine
from app.plan_options import reference_prefix
from app.settings import normalise_database_url
from app.webhooks import sign
from tests.conftest import _truncate
from tests.realshop.orders import Item, place_order, set_status
from tests.realshop.shop import RealShop
from tests.realshop.stack import NotYet, Stack, eventually, run_woobird, utc_now

# Two shops, a woobird with two connections and six bookings: longer than one test's usual 120 s
# on a busy machine, which the wait for the bookings alone may take.
pytestmark = [pytest.mark.realshop, pytest.mark.timeout(300)]

SECOND = "tweede-winkel"
# Different baskets in the two shops: an invoice booked into the wrong administration shows as a
# total (and a customer) that administration's shop never had.
BASKETS: dict[int, list[tuple[list[Item], str]]] = {
    1: [
        ([("mug", 1)], "eerste.een@example.com"),
        ([("tea", 2)], "eerste.twee@example.com"),
        ([("teapot", 1), ("tea", 3)], "eerste.drie@example.com"),
    ],
    2: [
        ([("candle", 2)], "tweede.een@example.com"),
        ([("plaid", 1)], "tweede.twee@example.com"),
        ([("cookbook", 1), ("liquorice", 2)], "tweede.drie@example.com"),
    ],
}


USED_POST_IDS = (
    'global $wpdb; return (int) $wpdb->get_var("SELECT COALESCE(MAX(ID), 0) FROM {$wpdb->posts}");'
)


def forget_webhooks(shop: RealShop) -> None:
    """Delete the webhooks earlier tests' woobirds left in the shop (they deliver to stopped ports)."""
    hooks = shop.rest.get("/wc/v3/webhooks", params={"per_page": 100})
    hooks.raise_for_status()
    for hook in hooks.json():
        shop.rest.delete(f"/wc/v3/webhooks/{hook['id']}", params={"force": "true"}).raise_for_status()


def next_order_ids_from(shops: tuple[RealShop, ...]) -> int:
    """Make every shop hand out the same next order id (HPOS reserves each order's id as a
    placeholder post, so `wp_posts`' counter is the order ids'); returns that id."""
    with ThreadPoolExecutor(max_workers=len(shops)) as pool:
        start = (
            max(int(used) for used in pool.map(lambda shop: shop.wp(USED_POST_IDS), shops)) // 1000 + 1
        ) * 1000
        alter = f'global $wpdb; return $wpdb->query("ALTER TABLE {{$wpdb->posts}} AUTO_INCREMENT = {start}");'
        list(pool.map(lambda shop: shop.wp(alter), shops))
    return start


def reference(order: dict[str, Any], *, connection: int) -> str:
    """The invoice's reference: `WooCommerce #1000` for connection 1, `WooCommerce c2 #1000` for 2."""
    return f"{reference_prefix(connection)}{order['number']}"


def invoices_in(stack: Stack, administration_id: str) -> list[dict[str, Any]]:
    """Every sales invoice of one administration of the Moneybird fake."""
    with stack.moneybird.lock:
        return [
            dict(invoice)
            for invoice in stack.moneybird.sales_invoices.values()
            if invoice["administration_id"] == administration_id
        ]


def customer_email(stack: Stack, invoice: dict[str, Any]) -> str:
    with stack.moneybird.lock:
        contact = stack.moneybird.contacts[invoice["contact_id"]]
        return str(contact["email"] or contact["send_invoices_to_email"])


async def _ledger_rows(database_url: str) -> list[dict[str, Any]]:
    engine = create_engine(normalise_database_url(database_url), pool_size=1)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                text(
                    "SELECT connection_id, order_id, state, invoice_id, order_total, error FROM orders"
                    " ORDER BY connection_id, order_id"
                )
            )
            return [dict(row._mapping) for row in rows]
    finally:
        await engine.dispose()


def ledger_rows(database_url: str) -> list[dict[str, Any]]:
    return asyncio.run(_ledger_rows(database_url))


def logged_orders(lines: list[str], event: str) -> set[tuple[int, int]]:
    """(connection, order id) of every `event` line of the processes' console logs."""
    found = set()
    for line in lines:
        order = re.search(r"\border_id=(\d+)", line)
        if event in line and order:
            connection = re.search(r"\bconnection=(\d+)", line)
            found.add((int(connection[1]) if connection else 1, int(order[1])))
    return found


def booking_jobs(lines: list[str]) -> dict[tuple[int, int], str]:
    """(connection, order id) → the reason its first booking job was queued with, from arq's lines
    in the worker's log (`c2:order:1000:…:book_order(1000, 'webhook', connection_id=2)`)."""
    found: dict[tuple[int, int], str] = {}
    for line in lines:
        job = re.search(r"\b(?:c(\d+):)?order:(\d+):\S*book_order\(\d+, '([^']+)'", line)
        if job:
            found.setdefault((int(job[1] or 1), int(job[2])), job[3])
    return found


def test_two_woocommerce_versions_book_into_their_own_administrations_with_the_same_order_ids(
    two_shops: tuple[RealShop, RealShop], postgres_url: str, tmp_path: Path
) -> None:
    shops = {1: two_shops[0], 2: two_shops[1]}
    for shop in shops.values():
        forget_webhooks(shop)
        shop.set_prices_include_tax(True)
    first_id = next_order_ids_from(tuple(shops.values()))
    asyncio.run(_truncate(postgres_url))
    since = utc_now()
    environment = {"DATABASE_URL": postgres_url, "SECRET_KEY": secrets.token_hex(32)}
    with run_woobird(shops[1], workdir=tmp_path / "woobird", since=since, **environment) as stack:
        administrations = {1: stack.env["MONEYBIRD_ADMINISTRATION_ID"]}
        administrations[2] = stack.moneybird.add_administration("Tweede Winkel B.V.")
        second_secret = f"wbs_{secrets.token_hex(16)}"
        env_file = tmp_path / "tweede-winkel.env"
        env_file.write_text(
            "\n".join(
                f"{key}={value}"
                for key, value in {
                    "WOOCOMMERCE_URL": shops[2].url,
                    "WOOCOMMERCE_CONSUMER_KEY": shops[2].consumer_key,
                    "WOOCOMMERCE_CONSUMER_SECRET": shops[2].consumer_secret,
                    "WOOCOMMERCE_WEBHOOK_SECRET": second_secret,
                    "MONEYBIRD_API_TOKEN": stack.env["MONEYBIRD_API_TOKEN"],
                    "MONEYBIRD_ADMINISTRATION_ID": administrations[2],
                    "SYNC_SINCE": stack.env["SYNC_SINCE"],
                    "PUBLIC_URL": stack.env["PUBLIC_URL"],
                }.items()
            )
            + "\n"
        )
        added = stack.woobird("connections", "add", SECOND, "--env-file", str(env_file))
        assert added.returncode == 0, added.stdout + added.stderr
        assert "(id 2)" in added.stdout, added.stdout
        installed = stack.woobird("webhook", "install", "--connection", SECOND)
        assert installed.returncode == 0, installed.stdout + installed.stderr
        assert f"{WEBHOOK_PATH}/{SECOND}" in installed.stdout

        # Each shop's customers order at the same time as the other's: the same ids in both.
        def place_all(connection: int) -> list[dict[str, Any]]:
            return [
                place_order(shops[connection], items=items, email=email, shipping="flat_nl")
                for items, email in BASKETS[connection]
            ]

        with ThreadPoolExecutor(max_workers=2) as pool:
            placed = dict(zip(shops, pool.map(place_all, shops), strict=True))
        ids = {connection: [order["id"] for order in orders] for connection, orders in placed.items()}
        assert ids[1] == ids[2] == list(range(first_id, first_id + len(BASKETS[1]))), ids
        totals = {c: {Decimal(order["total"]) for order in orders} for c, orders in placed.items()}
        assert not totals[1] & totals[2], "the baskets must tell the shops' invoices apart"

        # Both owners complete their orders at the same time.
        with ThreadPoolExecutor(max_workers=6) as pool:
            jobs = [
                (connection, pool.submit(set_status, shops[connection], order, "completed"))
                for connection, orders in placed.items()
                for order in orders
            ]
            completed: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
            for connection, job in jobs:
                completed[connection].append(job.result())

        wanted = {
            connection: sorted(
                (reference(order, connection=connection), Decimal(order["total"]), order["billing"]["email"])
                for order in orders
            )
            for connection, orders in completed.items()
        }

        def booked() -> dict[int, list[dict[str, Any]]]:
            rows = ledger_rows(postgres_url)
            failed = [row for row in rows if row["state"] == "failed"]
            assert not failed, failed
            found = {c: invoices_in(stack, administration) for c, administration in administrations.items()}
            for c, invoices in found.items():
                assert len(invoices) <= len(wanted[c]), f"administration of connection {c}: {invoices}"
            paid = all(
                len(found[c]) >= len(wanted[c]) and {i["state"] for i in found[c]} == {"paid"} for c in found
            )
            if not paid or sum(row["state"] == "booked" for row in rows) < sum(map(len, wanted.values())):
                raise NotYet(
                    f"invoices { ({c: [i['state'] for i in f] for c, f in found.items()}) }, ledger {rows}"
                )
            return found

        found = eventually(booked, within=120)

        # Each administration holds exactly its own shop's invoices, once each.
        for connection, invoices in found.items():
            held = sorted(
                (i["reference"], Decimal(i["total_price_incl_tax"]), customer_email(stack, i))
                for i in invoices
            )
            assert held == wanted[connection], f"administration of connection {connection}"

        # Each ledger holds its orders under its connection, booked on an invoice of its administration
        # (reconciliation also writes down the shops' earlier orders, paid before SYNC_SINCE or never).
        rows = ledger_rows(postgres_url)
        for connection, orders in completed.items():
            mine = {row["order_id"]: row for row in rows if row["connection_id"] == connection}
            assert sorted(i for i, row in mine.items() if row["state"] == "booked") == ids[connection]
            invoice_ids = {str(i["id"]) for i in found[connection]}
            for order in orders:
                row = mine[order["id"]]
                assert (row["state"], row["invoice_id"] in invoice_ids) == ("booked", True), row
                assert Decimal(row["order_total"]) == Decimal(order["total"]), row
        assert {row["connection_id"] for row in rows} == {1, 2}

        # The web's and the worker's lines about an order name its connection (none: the environment's).
        # An order the shop's own delivery queued has the web's "order queued" line; one the shop's
        # queue runner was too slow for is found by a reconciliation pass first and has none.
        every_order = {(c, order_id) for c, order_ids in ids.items() for order_id in order_ids}
        logs = stack.logs().splitlines()
        by_webhook = {key for key, reason in booking_jobs(logs).items() if reason == "webhook"}
        expected = {"order queued": every_order & by_webhook, "order booked": every_order}
        about = [
            line
            for line in logs
            if re.search(rf"\b(order_id=|book_order\()({'|'.join(map(str, ids[1]))})\b", line)
        ]
        for event, wanted_lines in expected.items():
            logged = {(c, order_id) for c, order_id in logged_orders(logs, event) if order_id >= first_id}
            assert logged == wanted_lines, (event, about)

        # Shop 2's delivery, signed with shop 2's secret: refused at connection 1's URL, taken at its own.
        delivery = shops[2].rest.get(f"/wc/v3/orders/{ids[2][0]}")
        delivery.raise_for_status()
        headers = {SIGNATURE_HEADER: sign(second_secret, delivery.content), TOPIC_HEADER: "order.updated"}
        wrong = httpx.post(f"{stack.web_url}{WEBHOOK_PATH}", content=delivery.content, headers=headers)
        assert wrong.status_code == 401, wrong.text
        assert ledger_rows(postgres_url) == rows
        right = httpx.post(
            f"{stack.web_url}{WEBHOOK_PATH}/{SECOND}", content=delivery.content, headers=headers
        )
        assert right.status_code in (200, 202), right.text
        assert invoices_in(stack, administrations[1]) == found[1]
