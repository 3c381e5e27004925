"""The reconciliation poll heals what webhooks lose: dropped deliveries, Redis flushes, downtime."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import httpx
import pytest
from arq.connections import ArqRedis
from structlog.testing import capture_logs

from app import schema
from app.booking import ledger
from app.booking import reconcile as reconcile_module
from app.booking.reconcile import reconcile, reconcile_job
from app.constants import RECONCILE_OVERLAP_SECONDS, RECONCILE_STALE_BOOKING_SECONDS
from app.db import transaction
from app.queue import order_job_id
from app.runtime import build_services
from app.schema import OrderState
from app.woocommerce.errors import WooCommerceTransient
from tests.booking._wiring import Wired, wired


def _modified(document: dict[str, object]) -> datetime:
    return datetime.fromisoformat(str(document["date_modified_gmt"])).replace(tzinfo=UTC)


async def test_an_order_whose_webhook_never_came_is_queued_by_the_next_pass(
    database_url: str, redis: ArqRedis
) -> None:
    async with wired(database_url=database_url, redis=redis) as w:
        order = w.add_order(2001)
        report = await reconcile(w.services)
        record = await w.record(2001)
        assert report.queued == 1
        assert record is not None
        assert record.state == OrderState.QUEUED
        assert order_job_id(2001, _modified(order)) in await w.job_ids()

        again = await reconcile(w.services)
        assert (again.queued, again.duplicates, again.requeued) == (0, 1, 0)


async def test_booked_orders_are_not_queued_again(database_url: str, redis: ArqRedis) -> None:
    async with wired(database_url=database_url, redis=redis) as w:
        w.add_order(2002)
        await reconcile(w.services)
        async with transaction(w.services.sessions) as session:
            await ledger.update_order(session, 2002, state=OrderState.BOOKED.value)
        await redis.flushdb()
        report = await reconcile(w.services)
        assert (report.queued, report.requeued) == (0, 0)
        assert await w.job_ids() == set()


async def test_orders_not_paid_or_in_another_status_are_ignored(database_url: str, redis: ArqRedis) -> None:
    async with wired(database_url=database_url, redis=redis, sync_order_statuses="completed,processing") as w:
        w.add_order(2003, status="processing", paid=None)
        w.add_order(2004, status="on-hold")
        report = await reconcile(w.services)
        assert (report.seen, report.queued, report.ignored) == (1, 0, 1)
        assert await w.record(2003) is None


async def test_watermark_survives_a_restart_and_a_redis_flush(database_url: str, redis: ArqRedis) -> None:
    async with wired(database_url=database_url, redis=redis) as w:
        early = w.add_order(2005)
        await reconcile(w.services)
        w.shop.advance(3600)
        late = w.add_order(2011)
        first = await reconcile(w.services)
        assert first.watermark == _modified(late)

        await redis.flushdb()  # Redis restarted empty: both queued jobs are gone
        transport = w.services.shop._http._transport
        restarted = await build_services(w.services.settings, redis, shop_transport=transport)
        try:
            w.shop.requests.clear()
            second = await reconcile(restarted)
        finally:
            await restarted.aclose()
        listing = parse_qs(w.shop.calls("GET /orders")[0].query)
        expected = first.watermark - timedelta(seconds=RECONCILE_OVERLAP_SECONDS)
        assert listing["modified_after"] == [expected.strftime("%Y-%m-%dT%H:%M:%S")]
        assert listing["dates_are_gmt"] == ["true"]
        # 2011 is inside the window and comes back through intake; 2005 only the ledger remembers.
        assert (second.queued_ids, second.requeued) == ([2011], 1)
        assert {
            order_job_id(2005, _modified(early)),
            order_job_id(2011, _modified(late)),
        } <= await w.job_ids()


async def test_first_pass_starts_at_sync_since_and_downtime_heals(database_url: str, redis: ArqRedis) -> None:
    async with wired(database_url=database_url, redis=redis, sync_since="2026-11-01T00:00:00Z") as w:
        w.shop.requests.clear()
        await reconcile(w.services)
        first_listing = parse_qs(w.shop.calls("GET /orders")[0].query)
        assert first_listing["modified_after"] == ["2026-10-31T23:50:00"]

        w.add_order(2006)
        await reconcile(w.services)
        w.shop.advance(7 * 24 * 3600)  # a week without woobird
        w.add_order(2007)
        report = await reconcile(w.services)
        assert report.queued_ids == [2007]


async def test_pages_through_every_page(database_url: str, redis: ArqRedis) -> None:
    async with wired(database_url=database_url, redis=redis) as w:
        for number in range(250):
            w.add_order(3000 + number, email=f"klant{number}@example.nl")
        report = await reconcile(w.services)
        assert report.pages == 3
        assert (report.seen, report.queued) == (250, 250)
        assert len(await w.job_ids()) == 250
        pages = [parse_qs(call.query)["page"] for call in w.shop.calls("GET /orders")]
        assert pages == [["1"], ["2"], ["3"]]


async def test_a_failed_pass_keeps_the_watermark_and_records_why(database_url: str, redis: ArqRedis) -> None:
    async with wired(database_url=database_url, redis=redis) as w:
        w.add_order(2008)
        first = await reconcile(w.services)
        w.shop.advance(60)
        w.add_order(2009)
        w.shop.fail_next("GET /orders", status=503)
        with pytest.raises(WooCommerceTransient):
            await reconcile(w.services)
        async with w.services.sessions() as session:
            assert await ledger.get_state(session, ledger.RECONCILE_WATERMARK) == first.watermark.isoformat()
            assert "503" in (await ledger.get_state(session, ledger.RECONCILE_LAST_ERROR) or "")
        assert (await reconcile_job({"services": w.services}))["queued_ids"] == [2009]


async def test_a_booking_abandoned_by_a_killed_worker_is_queued_again(
    database_url: str, redis: ArqRedis
) -> None:
    async with wired(database_url=database_url, redis=redis) as w:
        w.add_order(2010)
        await reconcile(w.services)
        async with transaction(w.services.sessions) as session:
            await ledger.update_order(session, 2010, state=OrderState.BOOKING.value)
        await redis.flushdb()
        fresh = await reconcile(w.services)
        assert fresh.requeued == 0  # might still be running: left alone
        later = schema.utcnow() + timedelta(seconds=RECONCILE_STALE_BOOKING_SECONDS + 1)
        with capture_logs() as logs:
            stale = await reconcile(w.services, now=later)
        assert stale.requeued == 1
        # Said for the order, so the owner can tell which one a dead worker left behind.
        assert [
            entry["order_id"]
            for entry in logs
            if entry["event"] == "order was waiting without a job; queued again"
        ] == [2010]


async def test_a_disabled_webhook_is_reactivated(database_url: str, redis: ArqRedis) -> None:
    async with wired(database_url=database_url, redis=redis, public_url="https://woobird.example") as w:
        ours = w.shop.add_webhook(delivery_url="https://woobird.example/webhooks/woocommerce")
        other = w.shop.add_webhook(delivery_url="https://crm.example/webhooks/woocommerce")
        w.shop.disable_webhook(ours["id"])
        w.shop.disable_webhook(other["id"])
        report = await reconcile(w.services)
        assert report.webhook is not None
        assert (report.webhook.webhook_id, report.webhook.status, report.webhook.reactivated) == (
            ours["id"],
            "disabled",
            True,
        )
        assert w.shop.webhooks[ours["id"]]["status"] == "active"
        assert w.shop.webhooks[other["id"]]["status"] == "disabled"  # not ours: not touched

        healthy = await reconcile(w.services)
        assert healthy.webhook is not None
        assert not healthy.webhook.reactivated


async def test_a_missing_webhook_is_reported(database_url: str, redis: ArqRedis) -> None:
    async with wired(database_url=database_url, redis=redis) as w:
        report = await reconcile(w.services)
        assert report.webhook is not None
        assert not report.webhook.found
        assert "webhook install" in (report.webhook.problem or "")


class _SavesAnOrderAfterPageOne(httpx.AsyncBaseTransport):
    """The shop's REST transport, with a shop manager saving an order while woobird pages."""

    def __init__(self, inner: httpx.AsyncBaseTransport, save: Callable[[], object]) -> None:
        self._inner = inner
        self._save = save
        self.saved = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        if request.url.path.endswith("/orders") and request.url.params.get("page") == "1" and not self.saved:
            self.saved = True
            self._save()
        return response


def _spread_orders(w: Wired, first_id: int, count: int) -> None:
    for number in range(count):
        w.add_order(first_id + number, email=f"klant{number}@example.nl")
        w.shop.advance(60)  # one a minute: far more than the pass's overlap apart, end to end


async def test_an_order_pushed_onto_a_page_already_read_keeps_the_watermark(
    database_url: str, redis: ArqRedis
) -> None:
    async with wired(database_url=database_url, redis=redis, start=datetime(2026, 11, 2, 8, tzinfo=UTC)) as w:
        _spread_orders(w, 6000, 150)

        def save_the_oldest() -> None:
            # Order 6000 moves to the end of the listing: 6100 slides onto page 1, already read.
            w.shop.advance(3 * 3600)
            w.shop.update_order(6000, customer_note="Graag inpakken")

        hook = _SavesAnOrderAfterPageOne(w.services.shop._http._transport, save_the_oldest)
        services = await build_services(w.services.settings, redis, shop_transport=hook)
        try:
            shifted = await reconcile(services)
            assert hook.saved
            assert not shifted.complete
            assert 6100 not in shifted.queued_ids
            assert shifted.seen == 149
            async with services.sessions() as session:
                assert (
                    await ledger.get_state(session, ledger.RECONCILE_WATERMARK)
                    == shifted.watermark.isoformat()
                )
            assert shifted.watermark == services.settings.sync_since  # not moved past the missed order

            healed = await reconcile(services)
        finally:
            await services.aclose()
        # 6100, missed, and the version of 6000 saved meanwhile (the pass had read its older one).
        assert healed.queued_ids == [6100, 6000]
        assert healed.complete
        record = await w.record(6100)
        assert record is not None
        assert record.state == OrderState.QUEUED


async def test_a_pass_out_of_time_keeps_what_it_read_and_the_next_pass_goes_on(
    database_url: str, redis: ArqRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with wired(database_url=database_url, redis=redis, start=datetime(2026, 11, 2, 8, tzinfo=UTC)) as w:
        _spread_orders(w, 6200, 150)
        monkeypatch.setattr(reconcile_module, "RECONCILE_PASS_BUDGET_SECONDS", 0)
        short = await reconcile(w.services)
        assert (short.pages, short.complete) == (1, False)
        assert short.queued_ids == list(range(6200, 6300))
        # What was read counts: the watermark moves to the last order of the page.
        assert short.watermark == _modified(w.shop.orders[6299])

        monkeypatch.undo()
        rest = await reconcile(w.services)
    assert rest.complete
    assert rest.queued_ids == list(range(6300, 6350))
