"""What booking one order costs in Moneybird calls, and how long webhook → paid invoice takes (issues #4, #8).

(a) Calls per order, counted in the fake Moneybird's request log with the reference data already
    cached, for a new and a returning customer, in both INVOICE_KIND modes (in-process fakes,
    the real booking flow `app.booking.orders.book_order`).
(b) Webhook-to-paid latency over real HTTP: the fake Moneybird (answering every call after 50 ms)
    and the fake shop each served by uvicorn in a thread of this process, the real web process
    (`uvicorn --factory app.main:create_app`) and one real worker (`python -m workers`)
    as subprocesses. Orders are delivered one every 200 ms; each is timed from the moment its signed
    webhook is POSTed to the moment the fake Moneybird handed over its answer to the order's payment.
    The baseline, in the same run, is what the fake took to answer that order's calls, summed: each
    from reading the request to handing over the answer (its 50 ms and its own handling, measured;
    until 2026-12-07 the nominal calls × 50 ms, and paid as a watcher saw it every 5 ms).
    Peak resident memory (VmHWM) of the web and worker processes is printed for issue #8.

    .venv/bin/python bench/bench_booking.py            # 80 orders, ~1 minute
    .venv/bin/python bench/bench_booking.py --quick    # 20 orders, ~20 seconds
    .venv/bin/python bench/bench_booking.py --calls-only   # (a) alone: calls and ledger round trips

Redis db 8 (flushed before and after) and a temporary SQLite ledger; nothing leaves 127.0.0.1.
MONEYBIRD_RATE_LIMIT is raised for (b): at 5 orders a second the real 150 calls / 5 minutes would
be the only thing measured (that limit has its own tests).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import redis as sync_redis
from _common import (
    BENCH_REDIS_URL,
    PYTHON,
    base_env,
    child,
    free_port,
    header,
    peak_rss_mib,
    percentile,
    sqlite_database,
    table,
)
from sqlalchemy import event

from app.booking import ledger
from app.booking.contact_directory import ContactDirectory
from app.booking.orders import book_order
from app.constants import WEBHOOK_PATH
from app.db import transaction
from app.logs import configure_logging
from app.queue import connect
from app.runtime import build_services
from app.sandbox.moneybird import MoneybirdSandbox, RecordedRequest, sandbox_transport
from app.sandbox.moneybird import create_app as create_moneybird_app
from app.sandbox.woocommerce import ShopSandbox
from app.sandbox.woocommerce import create_app as create_shop_app
from app.sandbox.woocommerce.cart import CartItem, Coupon, Customer, ShippingMethod
from app.sandbox.woocommerce.checkout import build_order
from app.settings import Settings, load_settings
from app.tokens import new_token
from app.webhooks import sign
from tests.server import serve_in_thread

SECRET = "bench-booking-webhook-secret-93ab"
LATENCY_SECONDS = 0.05
INTERVAL_SECONDS = 0.2
WATCH_EVERY_SECONDS = 0.005
REGULARS = 10
KINDS = ("sales_invoice", "external_sales_invoice")
GOALS_CALLS = {("sales_invoice", "returning"): 3, ("sales_invoice", "new"): 4}
GOALS_CALLS |= {("external_sales_invoice", "returning"): 2, ("external_sales_invoice", "new"): 3}


def customer(number: int) -> Customer:
    return Customer(
        first_name=f"Klant{number}",
        last_name="van Dijk",
        email=f"klant{number}@example.com",
        address_1="Oudegracht 12",
        city="Utrecht",
        postcode="3511 AP",
        phone="06 98765432",
    )


def cart(*, order_id: int, number: int, buyer: Customer) -> dict[str, Any]:
    """A paid, completed order: two VAT rates, a coupon, shipping (as WooCommerce computes it)."""
    paid = datetime.now(UTC) - timedelta(minutes=5)
    return build_order(
        order_id=order_id,
        number=f"B{number}",
        customer=buyer,
        items=[
            CartItem("Wollen plaid Okergeel", Decimal("59.00"), sku="PLAID-WOL-OKER", product_id=2010),
            CartItem("Kookboek Koken met de seizoenen", Decimal("24.50"), 2, tax_class="reduced-rate"),
        ],
        coupons=[Coupon("welkom10", "percent", Decimal(10), 311)],
        shipping=[ShippingMethod("PostNL pakket", Decimal("4.95"))],
        created_at=paid - timedelta(minutes=1),
        paid_at=paid,
        completed_at=paid,
        transaction_id=f"tr_bench{number}",
    )


def settings_values(*, shop: ShopSandbox, moneybird: MoneybirdSandbox, moneybird_url: str) -> dict[str, str]:
    return {
        "WOOCOMMERCE_URL": shop.url,
        "WOOCOMMERCE_CONSUMER_KEY": shop.consumer_key,
        "WOOCOMMERCE_CONSUMER_SECRET": shop.consumer_secret,
        "WOOCOMMERCE_WEBHOOK_SECRET": SECRET,
        "MONEYBIRD_API_URL": moneybird_url,
        "MONEYBIRD_API_TOKEN": moneybird.token,
        "MONEYBIRD_ADMINISTRATION_ID": moneybird.administration_id,
        "ADMIN_TOKEN": new_token(),
        "REDIS_URL": BENCH_REDIS_URL,
        "SYNC_SINCE": "2020-01-01T00:00:00Z",
    }


def flush() -> None:
    client = sync_redis.Redis.from_url(BENCH_REDIS_URL)
    client.flushdb()
    client.close()


# -- (a) calls per order -----------------------------------------------------------------------


@dataclass(frozen=True)
class CallCount:
    kind: str
    customer: str
    calls: int
    routes: str
    # Round trips to the ledger (SQL statements, commits) before Moneybird's first call, between its
    # calls and after the last: the first two are waited for by the customer, whatever the machine.
    ledger_trips: tuple[int, int, int] = (0, 0, 0)
    commits: tuple[int, int, int] = (0, 0, 0)


@dataclass
class LedgerTrips:
    """How many Moneybird requests had been made at each SQL statement and commit of a booking."""

    moneybird: MoneybirdSandbox
    statements: list[int] = field(default_factory=list)
    commits: list[int] = field(default_factory=list)

    def statement(self, *_: Any) -> None:
        self.statements.append(len(self.moneybird.requests))

    def commit(self, *_: Any) -> None:
        self.commits.append(len(self.moneybird.requests))

    def split(self, marks: list[int], calls: int) -> tuple[int, int, int]:
        """(before the first call, between calls, after the last)."""
        before = sum(1 for m in marks if m == 0)
        after = sum(1 for m in marks if m >= calls)
        return before, len(marks) - before - after, after


async def count_calls(kind: str, *, database_url: str) -> list[CallCount]:
    """Book a new customer's order, then a returning customer's, counting what reaches Moneybird."""
    flush()
    shop = ShopSandbox(ping_on_create=False)
    moneybird = MoneybirdSandbox()
    values = settings_values(shop=shop, moneybird=moneybird, moneybird_url="https://moneybird.test/api/v2")
    settings = _settings(values, database_url=database_url, invoice_kind=kind)
    redis = connect(BENCH_REDIS_URL)
    services = await build_services(
        settings,
        redis,
        shop_transport=httpx.ASGITransport(app=create_shop_app(shop)),
        moneybird_transport=sandbox_transport(moneybird),
    )
    counts = []
    try:
        await services.reference.get(services.moneybird)  # reference data cached, as in steady state
        # The copy of the contacts compared, as in a backfill (app.booking.contact_directory).
        await ContactDirectory(
            redis, services.moneybird, administration_id=settings.moneybird_administration_id
        ).compare()
        buyer = customer(1)
        for position, who in enumerate(("new", "returning")):
            order = shop.add_order(cart(order_id=5000 + position, number=position, buyer=buyer))
            async with transaction(services.sessions) as session:  # as the webhook's intake does
                await ledger.record_delivery(
                    session,
                    order_id=int(order["id"]),
                    order_number=str(order["number"]),
                    date_modified=datetime.fromisoformat(str(order["date_modified_gmt"])).replace(tzinfo=UTC),
                    date_paid=datetime.fromisoformat(str(order["date_paid_gmt"])).replace(tzinfo=UTC),
                )
            moneybird.reset_requests()
            trips = LedgerTrips(moneybird)
            engine = services.engine.sync_engine
            event.listen(engine, "before_cursor_execute", trips.statement)
            event.listen(engine, "commit", trips.commit)
            try:
                state = await book_order(services, order_id=int(order["id"]), reason="bench")
            finally:
                event.remove(engine, "before_cursor_execute", trips.statement)
                event.remove(engine, "commit", trips.commit)
            if state != "booked":
                raise RuntimeError(f"order {order['id']} ended {state} instead of booked")
            routes = Counter(str(r.route) for r in moneybird.requests)
            summary = ", ".join(f"{route}{f' ×{n}' if n > 1 else ''}" for route, n in routes.items())
            calls = moneybird.calls()
            statements, commits = trips.split(trips.statements, calls), trips.split(trips.commits, calls)
            ledger_trips = (
                statements[0] + commits[0],
                statements[1] + commits[1],
                statements[2] + commits[2],
            )
            counts.append(CallCount(kind, who, calls, summary, ledger_trips, commits))
    finally:
        await services.aclose()
        await redis.aclose()
        flush()
    return counts


def _settings(values: dict[str, str], *, database_url: str, **overrides: Any) -> Settings:
    fields: dict[str, Any] = {key.lower(): value for key, value in values.items()}
    fields.update(database_url=database_url, **overrides)
    return load_settings(_env_file=None, **fields).require_complete()


# -- (b) webhook → paid ------------------------------------------------------------------------


@dataclass
class Watch:
    """Sees each invoice become paid in the fake Moneybird (by reference), from its own thread."""

    moneybird: MoneybirdSandbox
    paid_at: dict[str, float] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            with self.moneybird.lock:
                documents = [
                    *self.moneybird.sales_invoices.values(),
                    *self.moneybird.external_sales_invoices.values(),
                ]
                for document in documents:
                    reference = str(document.get("reference"))
                    if document.get("state") == "paid" and reference not in self.paid_at:
                        self.paid_at[reference] = time.time()
            self.stop.wait(WATCH_EVERY_SECONDS)


@contextlib.contextmanager
def watching(moneybird: MoneybirdSandbox) -> Iterator[Watch]:
    watch = Watch(moneybird)
    thread = threading.Thread(target=watch.run, name="paid-watch", daemon=True)
    thread.start()
    try:
        yield watch
    finally:
        watch.stop.set()
        thread.join(5)


@dataclass
class Delivered:
    order_id: int
    reference: str
    email: str
    new_customer: bool
    posted_at: float
    status: int = 0
    answered_at: float = 0.0


@dataclass
class LatencyRun:
    kind: str
    orders: list[Delivered]
    paid_at: dict[str, float]
    calls: dict[str, int]
    answers: dict[str, float]  # each order's calls' answer times summed (the fake's own, measured)
    first_call_at: dict[str, float]
    web_rss_mib: float
    worker_rss_mib: float
    booked_seconds: float
    redis_commands: int = 0  # sent to Redis by every process while the measured orders were booked
    # CPU the web and worker processes used for the measured orders (user + system), and the machine's
    # load average meanwhile: on a shared machine the latencies follow the load, CPU time much less.
    web_cpu_seconds: float = 0.0
    worker_cpu_seconds: float = 0.0
    load_average: float = 0.0

    def latency(self, order: Delivered) -> float | None:
        paid = self.paid_at.get(order.reference)
        return None if paid is None else paid - order.posted_at


def deliver(client: httpx.Client, shop: ShopSandbox, order: Delivered) -> None:
    body = shop.webhook_body(order.order_id)
    headers = {
        "content-type": "application/json",
        "x-wc-webhook-topic": "order.updated",
        "x-wc-webhook-signature": sign(SECRET, body),
        "x-wc-webhook-source": shop.url + "/",
    }
    order.posted_at = time.time()
    order.status = client.post(WEBHOOK_PATH, content=body, headers=headers).status_code
    order.answered_at = time.time()


def calls_per_order(
    requests: Sequence[RecordedRequest], moneybird: MoneybirdSandbox, orders: list[Delivered]
) -> dict[str, int]:
    """Attribute each logged call to its order: invoices by reference or id, contacts by e-mail."""
    return Counter(reference for reference, _ in attributed(requests, moneybird, orders))


def first_calls(
    requests: Sequence[RecordedRequest], moneybird: MoneybirdSandbox, orders: list[Delivered]
) -> dict[str, float]:
    """When the fake received each order's first call."""
    first: dict[str, float] = {}
    for reference, request in attributed(requests, moneybird, orders):
        first[reference] = min(request.time, first.get(reference, request.time))
    return first


def answer_seconds(
    requests: Sequence[RecordedRequest], moneybird: MoneybirdSandbox, orders: list[Delivered]
) -> dict[str, float]:
    """Each order's calls' answer times summed, as the fake measured them: from reading the request to
    handing over its answer (its LATENCY_SECONDS and its own handling). The floor no booking beats."""
    summed: dict[str, float] = {}
    for reference, request in attributed(requests, moneybird, orders):
        if request.answered is not None:
            summed[reference] = summed.get(reference, 0.0) + request.answered - request.time
    return summed


def payments_answered(
    requests: Sequence[RecordedRequest], moneybird: MoneybirdSandbox, orders: list[Delivered]
) -> dict[str, float]:
    """When the fake handed over the answer to each order's payment: the moment its invoice is paid."""
    paid: dict[str, float] = {}
    for reference, request in attributed(requests, moneybird, orders):
        route = request.route or ""
        if route.startswith("POST ") and route.endswith("/payments") and request.answered is not None:
            paid.setdefault(reference, request.answered)
    return paid


def attributed(
    requests: Sequence[RecordedRequest], moneybird: MoneybirdSandbox, orders: list[Delivered]
) -> list[tuple[str, RecordedRequest]]:
    by_invoice_id = {
        str(i["id"]): str(i.get("reference"))
        for i in [*moneybird.sales_invoices.values(), *moneybird.external_sales_invoices.values()]
    }
    first_for_email: dict[str, str] = {}
    for order in orders:
        first_for_email.setdefault(order.email, order.reference)
    found: list[tuple[str, RecordedRequest]] = []
    for request in requests:
        text = f"{request.path} {request.query} {request.json}"
        reference = next(
            (ref for ref in by_invoice_id.values() if f"'{ref}'" in text or f'"{ref}"' in text), None
        )
        if reference is None:
            parts = request.path.split("/")
            reference = by_invoice_id.get(parts[2]) if len(parts) > 2 else None
        if reference is None:
            reference = next((ref for email, ref in first_for_email.items() if email in text), None)
        found.append((reference or "?", request))
    return found


def latency_run(kind: str, *, orders: int, work: Path) -> LatencyRun:
    flush()
    moneybird = MoneybirdSandbox(latency_seconds=LATENCY_SECONDS)
    shop_port = free_port()
    shop = ShopSandbox(url=f"http://127.0.0.1:{shop_port}", ping_on_create=False)
    database_url = sqlite_database(work, f"{kind}.db")
    with (
        serve_in_thread(create_moneybird_app(moneybird)) as moneybird_url,
        serve_in_thread(create_shop_app(shop), shop_port),
    ):
        values = settings_values(shop=shop, moneybird=moneybird, moneybird_url=f"{moneybird_url}/api/v2")
        env = base_env(
            **values,
            DATABASE_URL=database_url,
            INVOICE_KIND=kind,
            MONEYBIRD_RATE_LIMIT="100000/300",
            RECONCILE_INTERVAL_SECONDS="3600",
        )
        web_port = free_port()
        web_command = [PYTHON, "-m", "uvicorn", "--factory", "app.main:create_app", "--host", "127.0.0.1"]
        web_command += ["--port", str(web_port), "--loop", "uvloop", "--http", "httptools", "--no-access-log"]
        worker_command = [PYTHON, "-m", "workers"]
        with (
            child(web_command, env=env, log_path=work / f"web-{kind}.log", port=web_port) as web,
            child(worker_command, env=env, log_path=work / f"worker-{kind}.log") as worker,
            httpx.Client(base_url=f"http://127.0.0.1:{web_port}", timeout=10) as client,
            watching(moneybird) as watch,
        ):
            # Not measured: the first order pays for the worker's start and the reference data, then
            # the ten regular customers each get a first order, so they come back as returning ones.
            seen: set[str] = set()
            first = _new_order(shop, sequence=0, buyer=customer(999), seen=seen)
            deliver(client, shop, first)
            _wait_paid(watch, [first], timeout=60)
            regulars = [
                _new_order(shop, sequence=1 + n, buyer=customer(n), seen=seen) for n in range(REGULARS)
            ]
            for order in regulars:
                deliver(client, shop, order)
            _wait_paid(watch, regulars, timeout=60)
            moneybird.reset_requests()
            commands_before = redis_commands()
            cpu_before = cpu_seconds(web.pid), cpu_seconds(worker.pid)
            delivered = []
            started = time.monotonic()
            for number in range(1, orders + 1):
                # Every third order is a new customer, the others one of the regulars coming back.
                buyer = customer(1000 + number if number % 3 == 0 else number % REGULARS)
                order = _new_order(shop, sequence=REGULARS + number, buyer=buyer, seen=seen)
                deliver(client, shop, order)
                delivered.append(order)
                time.sleep(max(0.0, started + number * INTERVAL_SECONDS - time.monotonic()))
            _wait_paid(watch, delivered, timeout=60)
            booked_seconds = time.monotonic() - started
            commands = redis_commands() - commands_before
            time.sleep(0.5)  # the last orders' own work after their payment (notes, ledger)
            web_cpu, worker_cpu = (
                cpu_seconds(web.pid) - cpu_before[0],
                cpu_seconds(worker.pid) - cpu_before[1],
            )
            web_rss, worker_rss = peak_rss_mib(web.pid), peak_rss_mib(worker.pid)
            load = os.getloadavg()[0]
    requests = list(moneybird.requests)
    calls = calls_per_order(requests, moneybird, delivered)
    first_at = first_calls(requests, moneybird, delivered)
    answers = answer_seconds(requests, moneybird, delivered)
    # Paid when the fake answered the payment; the watch (every 5 ms) only for one it did not log.
    paid_at = dict(watch.paid_at) | payments_answered(requests, moneybird, delivered)
    flush()
    return LatencyRun(
        kind,
        delivered,
        paid_at,
        calls,
        answers,
        first_at,
        web_rss,
        worker_rss,
        booked_seconds,
        commands,
        web_cpu,
        worker_cpu,
        load,
    )


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def redis_commands() -> int:
    """Commands the Redis server has run so far (INFO commandstats; Lua's inner ones included)."""
    client = sync_redis.Redis.from_url(BENCH_REDIS_URL)
    stats: dict[str, dict[str, int]] = client.info("commandstats")  # type: ignore[assignment]
    client.close()
    return sum(int(v["calls"]) for k, v in stats.items() if k not in ("cmdstat_info", "cmdstat_monitor"))


def _new_order(shop: ShopSandbox, *, sequence: int, buyer: Customer, seen: set[str]) -> Delivered:
    document = shop.add_order(cart(order_id=10_000 + sequence, number=sequence, buyer=buyer))
    email = buyer.email
    new = email not in seen
    seen.add(email)
    return Delivered(int(document["id"]), f"WooCommerce #{document['number']}", email, new, 0.0)


def _wait_paid(watch: Watch, orders: Sequence[Delivered], *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(order.reference in watch.paid_at for order in orders):
            return
        time.sleep(0.05)
    missing = [o.reference for o in orders if o.reference not in watch.paid_at]
    print(f"warning: {len(missing)} orders not paid within {timeout:.0f} s: {missing[:5]}")


# -- report ------------------------------------------------------------------------------------


def report_calls(counts: list[CallCount]) -> None:
    rows = []
    for count in counts:
        goal = GOALS_CALLS[(count.kind, count.customer)]
        verdict = "met" if count.calls <= goal else "MISSED"
        rows.append([count.kind, count.customer, str(count.calls), f"≤ {goal} {verdict}", count.routes])
    table(["INVOICE_KIND", "customer", "calls", "goal", "calls made"], rows)
    print("Round trips to the ledger per order (SQL statements and commits; of them commits): before")
    print(
        "Moneybird's first call and between its calls the customer waits for them; after the last call not."
    )
    rows = [
        [
            count.kind,
            count.customer,
            *(
                f"{trips} ({commits})"
                for trips, commits in zip(count.ledger_trips, count.commits, strict=True)
            ),
        ]
        for count in counts
    ]
    table(["INVOICE_KIND", "customer", "before 1st call", "between calls", "after last call"], rows)


def report_latency(runs: list[LatencyRun]) -> None:
    rows = []
    for run in runs:
        for label, wanted in (("all", None), ("new customer", True), ("returning", False)):
            group = [o for o in run.orders if wanted is None or o.new_customer is wanted]
            latencies = [v for o in group if (v := run.latency(o)) is not None]
            floors = [run.answers.get(o.reference, 0.0) for o in group]
            ratios = [
                v / f
                for o in group
                if (v := run.latency(o)) is not None and (f := run.answers.get(o.reference))
            ]
            if not latencies:
                continue
            median, p95 = percentile(latencies, 0.5), percentile(latencies, 0.95)
            rows.append(
                [
                    run.kind,
                    label,
                    f"{len(latencies)}/{len(group)}",
                    f"{median * 1000:.0f}",
                    f"{p95 * 1000:.0f}",
                    f"{max(latencies) * 1000:.0f}",
                    f"{percentile(floors, 0.5) * 1000:.0f}",
                    f"{percentile(ratios, 0.5):.2f}x",
                ]
            )
    table(
        [
            "INVOICE_KIND",
            "orders",
            "paid",
            "median ms",
            "p95 ms",
            "max ms",
            "fake's answers ms",
            "median vs fake",
        ],
        rows,
    )
    print("Where the time goes (medians, ms): the webhook's answer; from the POST to Moneybird's first call")
    print("(web intake, queue, worker pick-up, shop re-read, ledger); from the first call to paid less the")
    print("fake's answers (ledger steps and the client between calls); the fake's answer per call: its")
    print(f"{LATENCY_SECONDS * 1000:.0f} ms of latency plus its own handling, measured.")
    rows = []
    for run in runs:
        answer = [o.answered_at - o.posted_at for o in run.orders]
        to_first = [
            run.first_call_at[o.reference] - o.posted_at
            for o in run.orders
            if o.reference in run.first_call_at
        ]
        between = [
            run.paid_at[o.reference] - run.first_call_at[o.reference] - run.answers.get(o.reference, 0.0)
            for o in run.orders
            if o.reference in run.paid_at and o.reference in run.first_call_at
        ]
        per_call = [run.answers[o] / n for o, n in run.calls.items() if n and o in run.answers]
        rows.append(
            [
                run.kind,
                *(f"{percentile(values, 0.5) * 1000:.0f}" for values in (answer, to_first, between)),
                f"{percentile(per_call, 0.5) * 1000:.1f}",
            ]
        )
    table(["INVOICE_KIND", "webhook answered", "POST → first call", "between calls", "fake per call"], rows)
    for run in runs:
        latencies = [v for o in run.orders if (v := run.latency(o)) is not None]
        accepted = sum(1 for o in run.orders if o.status in (200, 202))
        median, p95 = percentile(latencies, 0.5), percentile(latencies, 0.95)
        print(
            f"{run.kind}: {accepted}/{len(run.orders)} webhooks accepted; goal median ≤ 1 s: "
            f"{'met' if median <= 1 else 'MISSED'} ({median:.2f} s), p95 ≤ 3 s: "
            f"{'met' if p95 <= 3 else 'MISSED'} ({p95:.2f} s); Redis commands per order "
            f"{run.redis_commands / max(1, len(run.orders)):.0f} (all processes); peak RSS (VmHWM) "
            f"web {run.web_rss_mib:.0f} MiB, worker {run.worker_rss_mib:.0f} MiB; CPU per order web "
            f"{run.web_cpu_seconds * 1000 / max(1, len(run.orders)):.1f} ms, worker "
            f"{run.worker_cpu_seconds * 1000 / max(1, len(run.orders)):.1f} ms; load average "
            f"{run.load_average:.1f}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="20 orders per invoice kind")
    parser.add_argument("--orders", type=int, help="orders per invoice kind in (b) (default 80, quick 20)")
    parser.add_argument("--calls-only", action="store_true", help="only (a): calls and ledger round trips")
    args = parser.parse_args(argv)
    orders = args.orders or (20 if args.quick else 80)
    configure_logging(level="WARNING")
    header(
        "bench_booking — Moneybird calls per order, webhook → paid invoice latency, peak RSS (issues #4, #8)",
        [
            "(a) in-process fakes, reference data cached; calls counted in the fake Moneybird's request log",
            f"(b) real HTTP: fake Moneybird answering after {LATENCY_SECONDS * 1000:.0f} ms and fake shop "
            "(uvicorn threads), web (uvicorn) + 1 arq worker (subprocesses), SQLite ledger, Redis db 8",
            f"    {orders} orders per invoice kind, one every {INTERVAL_SECONDS * 1000:.0f} ms, one in three "
            "a new customer; timed from webhook POST to the fake's answer to its payment, against the",
            "    fake's answers to the order's calls summed (measured: its latency and its own handling)",
        ],
    )
    with tempfile.TemporaryDirectory(prefix="bench-booking-") as directory:
        work = Path(directory)
        counts: list[CallCount] = []
        for kind in KINDS:
            counts += asyncio.run(count_calls(kind, database_url=sqlite_database(work, f"calls-{kind}.db")))
        print("(a) Moneybird calls per order")
        report_calls(counts)
        if args.calls_only:
            return 0
        runs = [latency_run(kind, orders=orders, work=work) for kind in KINDS]
    print("(b) webhook → paid invoice")
    report_latency(runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
