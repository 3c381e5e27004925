"""Verification reads back what was booked: deleted, changed and reopened invoices are found once.

Everything runs against the fake Moneybird through the real client, the shared rate limiter in
real Redis, and the ledger on SQLite and PostgreSQL. Changes to the books are made the way a
bookkeeper makes them: the API where it allows (remove a payment, delete an invoice), the web
app where only it does (edit a sent invoice's line).
"""

from __future__ import annotations

import copy
import math
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
import respx
from arq import Retry
from arq.connections import ArqRedis
from sqlalchemy import delete, select
from structlog.testing import capture_logs

from app import schema
from app.booking import ledger
from app.booking.verify import (
    VERIFY_LAST_ERROR,
    VERIFY_LAST_SUCCESS,
    VERIFY_MAX_TRIES,
    VERIFY_MINUTE,
    LastVerification,
    last_verification,
    recent_months,
    verification_cron,
    verification_due,
    verification_job,
    verify_month,
    verify_recent,
)
from app.constants import JOB_VERIFY, RATE_LIMIT_KEY, RATE_LIMIT_PAUSE_KEY
from app.db import transaction
from app.report import REPORT_TIMEZONE, monthly_report
from app.sandbox.moneybird import edit_in_web_app, sandbox_transport
from app.sandbox.woocommerce.cart import CartItem, Customer, ShippingMethod
from app.schema import Finding, FindingKind, FindingState
from tests.booking.test_order_changes import PLATE, edit_items
from tests.harness import Harness, open_harness

ALERT_HOOK = "https://alerts.example.test/verify-hook"
PAID_AT = datetime(2026, 3, 2, 10, 15, tzinfo=UTC)
MONTH = "2026-03"
CUSTOMER = Customer(first_name="Sem", last_name="Bakker", email="sem@example.nl", city="Zwolle")
MUG = CartItem(name="Mok aardewerk", price=Decimal("12.50"), quantity=2, sku="MOK-1")
PARCEL = ShippingMethod(title="PostNL pakket", cost=Decimal("4.95"))
DRIFT_KINDS = {FindingKind.INVOICE_DELETED, FindingKind.INVOICE_CHANGED, FindingKind.INVOICE_REOPENED}


@pytest.fixture
def alerts() -> Iterator[respx.Route]:
    with respx.mock(assert_all_called=False) as mock:
        yield mock.post(ALERT_HOOK).respond(200)


@pytest.fixture
async def h(database_url: str, redis: ArqRedis) -> AsyncIterator[Harness]:
    async with open_harness(database_url=database_url, redis=redis, alert_webhook_url=ALERT_HOOK) as wired:
        yield wired


async def _book(h: Harness, *order_ids: int, paid_at: datetime = PAID_AT) -> list[dict[str, Any]]:
    """Book these orders through webhook and worker; their invoices as the fake holds them."""
    for order_id in order_ids:
        h.add_paid_order(
            order_id=order_id,
            customer=CUSTOMER,
            items=[MUG],
            shipping=[PARCEL],
            created_at=paid_at,
            paid_at=paid_at,
            completed_at=paid_at,
        )
        await h.deliver(order_id)
    await h.run_worker()
    invoices = []
    for order_id in order_ids:
        (invoice,) = h.invoices_for(str(order_id))
        assert invoice["state"] == "paid"
        invoices.append(invoice)
    return invoices  # the fake's own records: they change as Moneybird's do


async def _moneybird(h: Harness, method: str, path: str, **body: Any) -> httpx.Response:
    """A bookkeeper's request to the fake Moneybird API (not through woobird's client)."""
    async with httpx.AsyncClient(
        transport=sandbox_transport(h.moneybird),
        base_url=f"https://moneybird.test/api/v2/{h.moneybird.administration_id}/",
        headers={"Authorization": f"Bearer {h.moneybird.token}"},
    ) as client:
        return await client.request(method, f"{path}.json", json=body or None)


async def _unpay(h: Harness, invoice: dict[str, Any]) -> None:
    for payment in list(invoice["payments"]):
        response = await _moneybird(h, "DELETE", f"sales_invoices/{invoice['id']}/payments/{payment['id']}")
        assert response.status_code == 204, response.text


async def _delete(h: Harness, invoice: dict[str, Any]) -> None:
    await _unpay(h, invoice)
    response = await _moneybird(h, "DELETE", f"sales_invoices/{invoice['id']}")
    assert response.status_code == 204, response.text


async def _findings(h: Harness) -> list[Finding]:
    async with h.sessions() as session:
        query = select(Finding).where(Finding.kind.in_([k.value for k in DRIFT_KINDS])).order_by(Finding.id)
        return list((await session.execute(query)).scalars().all())


async def _open(h: Harness) -> dict[str, str]:
    """Open drift findings: invoice id → kind (one kind per invoice in these tests, or joined)."""
    found: dict[str, list[str]] = {}
    for finding in await _findings(h):
        if finding.state == FindingState.OPEN:
            found.setdefault(finding.invoice_id or "", []).append(finding.kind)
    return {invoice_id: "+".join(sorted(kinds)) for invoice_id, kinds in found.items()}


def _money(amount: str | Decimal) -> str:
    """Two decimals, as every message shows money: independent of how the fake wrote it."""
    return f"{Decimal(amount):.2f}"


def _recently() -> datetime:
    """Paid an hour ago: within the months the periodic verification reads back."""
    return schema.utcnow() - timedelta(hours=1)


# ── nothing to find ──────────────────────────────────────────────────────────────────────────


async def test_books_as_booked_find_nothing_in_one_request(h: Harness, alerts: respx.Route) -> None:
    await _book(h, 9001, 9002, 9003)
    h.moneybird.reset_requests()

    result = await verify_month(h.services, MONTH)

    assert (result.checked, result.well, result.drifts) == (3, 3, [])
    assert result.requests == 1
    assert h.moneybird.calls("GET /sales_invoices") == 1
    (listed,) = h.moneybird.requests
    assert listed.query["filter"] == "period:20260301..20260331,state:all"
    assert await _findings(h) == []
    assert alerts.call_count == 0


async def test_a_month_without_bookings_asks_moneybird_nothing(h: Harness) -> None:
    await _book(h, 9005)
    h.moneybird.reset_requests()

    result = await verify_month(h.services, "2026-04")

    assert (result.checked, result.requests) == (0, 0)
    assert h.moneybird.calls() == 0


async def test_requests_grow_with_pages_not_with_invoices(h: Harness, redis: ArqRedis) -> None:
    (invoice, *_) = await _book(h, 9011, 9012, 9013)
    # 150 more invoices dated that month that woobird did not make (typed in by hand, say).
    for _ in range(150):
        other = copy.deepcopy(invoice)
        other["id"] = h.moneybird.ids.next()
        other["reference"] = "by hand"
        h.moneybird.sales_invoices[other["id"]] = other
    h.moneybird.reset_requests()
    slots_before = await redis.zcard(RATE_LIMIT_KEY)

    result = await verify_month(h.services, MONTH)

    assert (result.checked, result.well) == (3, 3)
    assert result.requests == math.ceil(153 / 100) == h.moneybird.calls("GET /sales_invoices")
    # Every request took a slot of the shared rate limiter first.
    assert await redis.zcard(RATE_LIMIT_KEY) - slots_before == result.requests


# ── each kind of drift ───────────────────────────────────────────────────────────────────────


async def test_a_deleted_invoice_is_found_recorded_alerted_once_and_reported(
    h: Harness, alerts: respx.Route
) -> None:
    kept, gone = await _book(h, 9021, 9022)
    await _delete(h, gone)

    first = await verify_month(h.services, MONTH)
    second = await verify_month(h.services, MONTH)

    assert [(d.kind, d.booked.invoice_id, d.news) for d in first.drifts] == [
        (FindingKind.INVOICE_DELETED, gone["id"], True)
    ]
    assert [d.news for d in second.drifts] == [False]
    assert await _open(h) == {gone["id"]: FindingKind.INVOICE_DELETED}
    (finding,) = await _findings(h)
    assert finding.order_id == 9022
    assert f"invoice {gone['invoice_id']} of order #9022" in finding.message
    assert f"(invoice, {_money(gone['total_price_incl_tax'])})" in finding.message
    assert alerts.call_count == 1
    assert "no longer in Moneybird" in alerts.calls.last.request.content.decode()
    # A deleted invoice is looked up by id once (not in the month's list), in one request.
    assert first.requests == 2
    report = await monthly_report(h.sessions, month=MONTH)
    assert [(d.order_id, d.what) for d in report.differences] == [(9022, "deleted in Moneybird")]
    assert not report.in_balance
    assert kept["id"] not in await _open(h)
    signed_in = await h.web.post("/admin/login", data={"token": h.settings.admin_token.get_secret_value()})
    assert signed_in.status_code == 303
    page = (await h.web.get("/admin")).text
    assert 'data-finding="invoice_deleted"' in page
    assert f"invoice {gone['invoice_id']} of order #9022" in page


async def test_a_changed_total_is_found_and_resolved_when_it_is_changed_back(
    h: Harness, alerts: respx.Route
) -> None:
    (invoice,) = copy.deepcopy(await _book(h, 9031))
    line = invoice["details"][0]
    edited = copy.deepcopy(edit_in_web_app(h.moneybird, invoice["id"], line=0, price="10.00"))
    assert edited["total_price_incl_tax"] != invoice["total_price_incl_tax"]

    result = await verify_month(h.services, MONTH)

    kinds = {d.kind for d in result.drifts}
    assert FindingKind.INVOICE_CHANGED in kinds
    (changed,) = [f for f in await _findings(h) if f.kind == FindingKind.INVOICE_CHANGED]
    before, after = Decimal(invoice["total_price_incl_tax"]), Decimal(edited["total_price_incl_tax"])
    assert (
        f"now totals {_money(after)} in Moneybird, booked as {_money(before)} "
        f"(difference {_money(after - before)})"
    ) in changed.message, changed.message
    # The payment stayed while the total moved: it is no longer paid either.
    assert kinds == {FindingKind.INVOICE_CHANGED, FindingKind.INVOICE_REOPENED}
    assert alerts.call_count == 2

    edit_in_web_app(h.moneybird, invoice["id"], line=0, price=line["price"])
    again = await verify_month(h.services, MONTH)

    assert again.drifts == []
    assert again.resolved == 2
    assert await _open(h) == {}
    assert all(f.resolution and "as booked again" in f.resolution for f in await _findings(h))
    report = await monthly_report(h.sessions, month=MONTH)
    assert report.in_balance


async def test_a_reopened_invoice_is_found_and_resolved_when_paid_again(
    h: Harness, alerts: respx.Route
) -> None:
    (invoice,) = await _book(h, 9041)
    await _unpay(h, invoice)

    await verify_month(h.services, MONTH)
    await verify_month(h.services, MONTH)

    assert await _open(h) == {invoice["id"]: FindingKind.INVOICE_REOPENED}
    (finding,) = await _findings(h)
    unpaid = _money(invoice["total_price_incl_tax"])
    assert f"no longer paid in Moneybird (state late, {unpaid} unpaid)" in finding.message, finding.message
    assert alerts.call_count == 1
    report = await monthly_report(h.sessions, month=MONTH)
    assert [d.what for d in report.differences] == ["reopened in Moneybird"]

    paid = await _moneybird(
        h,
        "POST",
        f"sales_invoices/{invoice['id']}/payments",
        payment={"payment_date": "2026-03-03", "price": invoice["total_price_incl_tax"]},
    )
    assert paid.status_code == 201, paid.text
    result = await verify_month(h.services, MONTH)

    assert (result.drifts, result.resolved) == ([], 1)
    assert await _open(h) == {}


async def test_a_refunds_credit_invoice_is_verified_in_the_month_it_was_made(h: Harness) -> None:
    await _book(h, 9051)
    h.shop.add_refund(9051, amount="5.00")
    await h.deliver(9051)
    await h.run_worker()
    (credit,) = [i for i in h.moneybird.sales_invoices.values() if Decimal(i["total_price_incl_tax"]) < 0]
    assert credit["state"] == "paid"
    await _unpay(h, credit)
    this_month = schema.utcnow().astimezone(REPORT_TIMEZONE).strftime("%Y-%m")

    result = await verify_month(h.services, this_month)

    assert result.credit_invoices == 1
    assert [(d.kind, d.booked.refund_id is not None) for d in result.drifts] == [
        (FindingKind.INVOICE_REOPENED, True)
    ]
    assert "credit invoice" in result.drifts[0].message


async def test_a_rebooked_invoice_dated_another_month_is_looked_up_not_called_deleted(
    database_url: str, redis: ArqRedis
) -> None:
    async with open_harness(database_url=database_url, redis=redis, order_changes="rebook") as h:
        await _book(h, 9101)
        edit_items(h, 9101, [MUG, PLATE])
        await h.deliver(9101)
        await h.run_worker()
        record = await h.record(9101)
        assert record is not None
        assert record.invoice_version == 2
        h.moneybird.reset_requests()

        paid_month = await verify_month(h.services, MONTH)
        rebooked_month = await verify_month(
            h.services, schema.utcnow().astimezone(REPORT_TIMEZONE).strftime("%Y-%m")
        )

        # The new invoice is dated the day of the rebooking: not in March's list, found by its id.
        assert (paid_month.checked, paid_month.well, paid_month.drifts) == (1, 1, [])
        assert paid_month.requests == 2
        assert h.moneybird.calls("POST /sales_invoices/synchronization") == 1
        # The rebooking's credit invoice belongs to the month it was made in.
        assert (rebooked_month.credit_invoices, rebooked_month.well, rebooked_month.drifts) == (1, 1, [])
        assert await _findings(h) == []


async def test_a_finding_about_an_invoice_woobird_no_longer_books_is_resolved(h: Harness) -> None:
    (invoice,) = await _book(h, 9111)
    await _unpay(h, invoice)
    await verify_month(h.services, MONTH)
    assert await _open(h) == {invoice["id"]: FindingKind.INVOICE_REOPENED}
    # The order is booked again under another invoice (what a rebooking writes down).
    async with h.sessions() as session, session.begin():
        await ledger.update_order(session, 9111, invoice_id="1" + invoice["id"])

    result = await verify_month(h.services, "2026-04")

    assert result.resolved == 1
    assert await _open(h) == {}
    (finding,) = await _findings(h)
    assert finding.resolution is not None
    assert "no longer books this invoice" in finding.resolution


async def test_external_invoices_are_verified_from_their_own_list(database_url: str, redis: ArqRedis) -> None:
    async with open_harness(
        database_url=database_url, redis=redis, invoice_kind="external_sales_invoice"
    ) as h:
        await _book_external(h, 9121)
        (external,) = h.moneybird.external_sales_invoices.values()
        (payment,) = external["payments"]
        removed = await _moneybird(
            h, "DELETE", f"external_sales_invoices/{external['id']}/payments/{payment['id']}"
        )
        assert removed.status_code == 204
        h.moneybird.reset_requests()

        result = await verify_month(h.services, MONTH)

        assert [d.kind for d in result.drifts] == [FindingKind.INVOICE_REOPENED]
        assert h.moneybird.calls("GET /external_sales_invoices") == result.requests == 1
        assert h.moneybird.calls("GET /sales_invoices") == 0


async def _book_external(h: Harness, order_id: int) -> None:
    h.add_paid_order(
        order_id=order_id,
        customer=CUSTOMER,
        items=[MUG],
        shipping=[PARCEL],
        created_at=PAID_AT,
        paid_at=PAID_AT,
        completed_at=PAID_AT,
    )
    await h.deliver(order_id)
    await h.run_worker()
    record = await h.record(order_id)
    assert record is not None
    assert record.invoice_id in h.moneybird.external_sales_invoices


# ── faults half way ──────────────────────────────────────────────────────────────────────────


async def test_a_lost_answer_on_the_list_is_read_again_and_finds_the_truth(h: Harness) -> None:
    _, gone = await _book(h, 9061, 9062)
    await _delete(h, gone)
    h.moneybird.fail_next("GET /sales_invoices", kind="lost")

    result = await verify_month(h.services, MONTH)

    assert [(d.kind, d.booked.invoice_id) for d in result.drifts] == [
        (FindingKind.INVOICE_DELETED, gone["id"])
    ]
    assert result.well == 1


async def test_a_lost_lookup_records_nothing_and_the_job_tries_again(h: Harness) -> None:
    _, gone = await _book(h, 9071, 9072, paid_at=_recently())
    await _delete(h, gone)
    h.moneybird.fail_next("POST /sales_invoices/synchronization", kind="lost")

    with pytest.raises(Retry):
        await verification_job({"services": h.services, "job_try": 1})

    assert await _findings(h) == []  # not called deleted because an answer went missing
    async with h.sessions() as session:
        assert await ledger.get_state(session, VERIFY_LAST_SUCCESS) is None

    outcome = await verification_job({"services": h.services, "job_try": 2})

    assert outcome["ok"] is True
    assert await _open(h) == {gone["id"]: FindingKind.INVOICE_DELETED}


async def test_a_429_half_way_defers_the_job_until_moneybirds_reset(h: Harness) -> None:
    _, gone = await _book(h, 9081, 9082, paid_at=_recently())
    await _delete(h, gone)
    # From now on Moneybird takes one request in five minutes: the list, then a 429 for the lookup.
    h.moneybird.rate_limit = (1, 300.0)

    with pytest.raises(Retry) as deferred:
        await verification_job({"services": h.services, "job_try": 1})

    assert h.moneybird.count_429 == 1
    assert deferred.value.defer_score is not None
    assert deferred.value.defer_score / 1000 >= 290  # not before the reset, however small the backoff
    assert await _findings(h) == []

    h.moneybird.rate_limit = None
    await h.redis.delete(RATE_LIMIT_KEY, RATE_LIMIT_PAUSE_KEY)
    outcome = await verification_job({"services": h.services, "job_try": 2})

    assert outcome["ok"] is True
    assert await _open(h) == {gone["id"]: FindingKind.INVOICE_DELETED}


async def test_the_last_try_of_a_verification_gives_up_until_its_next_turn_and_says_why(h: Harness) -> None:
    _, gone = await _book(h, 9083, 9084, paid_at=_recently())
    await _delete(h, gone)
    h.moneybird.rate_limit = (1, 300.0)  # one request in five minutes: the list, then only 429s

    with capture_logs() as logs, pytest.raises(Retry):
        await verification_job({"services": h.services, "job_try": VERIFY_MAX_TRIES - 1})
    assert [(e["event"], e["job_try"]) for e in logs if e["event"] == "verification will retry"] == [
        ("verification will retry", VERIFY_MAX_TRIES - 1)
    ]
    with capture_logs() as logs:
        outcome = await verification_job({"services": h.services, "job_try": VERIFY_MAX_TRIES})

    assert outcome["ok"] is False
    assert "429" in outcome["error"] or "rate limit" in outcome["error"], outcome
    gave_up = [e for e in logs if e["event"] == "verification gave up until its next turn"]
    assert [(e["job_try"], e["error"]) for e in gave_up] == [(VERIFY_MAX_TRIES, outcome["error"])]
    async with h.sessions() as session:
        assert await ledger.get_state(session, VERIFY_LAST_SUCCESS) is None  # due again at the next hour
        assert await ledger.get_state(session, VERIFY_LAST_ERROR) is not None
    assert await _findings(h) == []  # a failed read records nothing


def test_the_months_verified_are_this_one_and_those_before_it_in_amsterdam() -> None:
    # 31 January 23:30 UTC is already February in Amsterdam.
    now = datetime(2026, 1, 31, 23, 30, tzinfo=UTC)
    assert recent_months(3, now=now) == ["2026-02", "2026-01", "2025-12"]
    assert recent_months(1, now=now) == ["2026-02"]
    assert recent_months(0, now=now) == ["2026-02"]  # at least this month
    assert recent_months(14, now=now)[-1] == "2025-01"


@pytest.mark.parametrize("hours", [1, 24])
async def test_a_verification_is_due_once_its_interval_has_passed_give_or_take_the_hourly_look(
    h: Harness, hours: int
) -> None:
    h.services.settings = h.services.settings.model_copy(update={"verify_interval_hours": hours})
    now = schema.utcnow()
    assert await verification_due(h.services, now=now)  # never verified: due at once

    async def finished(ago: timedelta) -> bool:
        async with transaction(h.sessions) as session:
            await ledger.set_state(session, VERIFY_LAST_SUCCESS, (now - ago).isoformat())
        return await verification_due(h.services, now=now)

    # The cron looks hourly at minute 17: last time's run, a minute or two late, is still due now.
    assert await finished(timedelta(hours=hours) - timedelta(minutes=5))
    assert not await finished(timedelta(hours=hours) - timedelta(minutes=5, seconds=30))
    assert not await finished(timedelta(minutes=1))


async def test_what_the_dashboard_is_told_about_the_last_verification(h: Harness) -> None:
    finished = datetime(2026, 11, 30, 3, 17, tzinfo=UTC)
    async with h.sessions() as session:
        assert await last_verification(session, interval_hours=1) == LastVerification(
            on=True, finished=None, error=None
        )
        assert (await last_verification(session, interval_hours=0)).on is False
    async with transaction(h.sessions) as session:
        await ledger.set_state(session, VERIFY_LAST_SUCCESS, finished.isoformat())
        await ledger.set_state(session, VERIFY_LAST_ERROR, f"{finished.isoformat()} Moneybird said 503")
    async with h.sessions() as session:  # the error of the try that then succeeded is over
        assert await last_verification(session, interval_hours=24) == LastVerification(
            on=True, finished=finished, error=None
        )
    async with transaction(h.sessions) as session:
        later = finished + timedelta(hours=1)
        await ledger.set_state(session, VERIFY_LAST_ERROR, f"{later.isoformat()} Moneybird said 503")
    async with h.sessions() as session:
        assert await last_verification(session, interval_hours=24) == LastVerification(
            on=True, finished=finished, error="Moneybird said 503"
        )


async def test_the_verification_cron_wakes_once_an_hour_at_its_minute_and_skips_before_set_up() -> None:
    (job,) = verification_cron(timeout_seconds=300)
    assert (job.name, job.minute, job.second, job.hour) == (JOB_VERIFY, {VERIFY_MINUTE}, 0, None)
    assert (job.timeout_s, job.max_tries, job.unique) == (300, VERIFY_MAX_TRIES, True)
    # Not set up yet: this hour's look is skipped (the next comes in an hour), not retried.
    assert await job.coroutine({"services": None}) == "woobird is not set up yet"


async def test_a_verification_reads_the_months_of_the_moment_it_is_given(h: Harness) -> None:
    h.services.settings = h.services.settings.model_copy(update={"verify_months": 2})
    then = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)

    results = await verify_recent(h.services, now=then)

    assert [result.month for result in results] == ["2025-03", "2025-02"]
    async with h.sessions() as session:
        assert await ledger.get_state(session, VERIFY_LAST_SUCCESS) == then.isoformat()


# ── the periodic verification ────────────────────────────────────────────────────────────────


async def test_the_periodic_verification_runs_once_per_interval(h: Harness) -> None:
    h.services.settings = h.services.settings.model_copy(update={"verify_months": 1})
    await _book(h, 9091, paid_at=_recently())
    h.moneybird.reset_requests()

    first = await verification_job({"services": h.services, "job_try": 1})
    second = await verification_job({"services": h.services, "job_try": 1})

    assert first["ok"] is True
    assert "months" in first
    assert second == {"ok": True, "skipped": "not due"}
    off = h.services.settings.model_copy(update={"verify_interval_hours": 0})
    h.services.settings = off
    async with h.sessions() as session, session.begin():
        await session.execute(delete(schema.ServiceState))
    assert await verification_job({"services": h.services, "job_try": 1}) == {
        "ok": True,
        "skipped": "not due",
    }


def test_the_worker_looks_hourly_whether_a_verification_is_due() -> None:
    from workers.settings import WorkerSettings

    (job,) = [job for job in WorkerSettings.cron_jobs if job.name == JOB_VERIFY]
    assert (job.minute, job.second, job.hour) == ({17}, 0, None)
    assert job.unique
    assert job.max_tries == VERIFY_MAX_TRIES > 1  # a 429 half way is tried again, not dropped
