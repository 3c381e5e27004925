"""The wizard's long tasks run in the worker: the web process queues them once and shows their progress."""

from __future__ import annotations

import asyncio
import html
import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from app.main import create_app
from app.sandbox.samples import sample_carts
from app.setup import task_jobs, tasks
from tests.setup.conftest import ADMIN_TOKEN, WOOBIRD_URL, Wizard
from tests.setup.test_later_steps import _form, through_moneybird


def lookups(wizard: Wizard) -> int:
    """Requests for a product by its SKU (found or not: the fake names no route for a 404)."""
    return sum(1 for request in wizard.moneybird.requests if "/products/identifier/" in request.path)


def stop_after(checks: int) -> Callable[[int], Callable[[], bool]]:
    """A slice deadline that says "out of time" after `checks` looks: a slice that runs out of time."""

    def deadline(_timeout: int) -> Callable[[], bool]:
        looks = itertools.count(1)
        return lambda: next(looks) > checks

    return deadline


async def job_ids(wizard: Wizard) -> set[str]:
    return {key.decode().removeprefix("arq:job:") for key in await wizard.redis.keys("arq:job:*")}


def shown_state(page: str, kind: str) -> str:
    marker = f'data-task="{kind}" data-state="'
    assert marker in page, page[:500]
    return page.split(marker, 1)[1].split('"', 1)[0]


def identifiers(wizard: Wizard) -> set[str]:
    return {product["identifier"] for product in wizard.moneybird.products.values()}


def revenue(wizard: Wizard) -> str:
    """The revenue ledger account the products are booked on (the fake administration has several)."""
    return wizard.moneybird.ledger_account_id("Omzet")


async def with_products(wizard: Wizard) -> None:
    wizard.shop.add_product("Mok", price="12.50", sku="MOK-1")
    wizard.shop.add_product("Theedoek", price="8.00", sku="DOEK-1", tax_class="reduced-rate")
    wizard.shop.add_product("Kaars", price="4.95", sku="KAARS-1")
    await through_moneybird(wizard)


async def test_the_web_queues_the_transfer_and_runs_nothing_until_a_worker_does(wizard: Wizard) -> None:
    await with_products(wizard)

    before = wizard.moneybird.calls()
    started = await wizard.post(
        "/admin/setup/products", {"action": "transfer", "ledger_account": revenue(wizard)}
    )
    await asyncio.sleep(0.2)  # room for a background task of the web process, were there one
    asked = wizard.moneybird.calls() - before
    page = (await wizard.web.get("/admin/setup/products")).text

    assert started.status_code == 303
    assert shown_state(page, "products") == "queued"
    assert "worker to take it up." in page, page[page.find("data-task") :][:1500]
    assert asked == 0
    assert wizard.moneybird.products == {}
    assert await job_ids(wizard) == {"setup-task:products:1"}

    assert await wizard.run_worker() == 1
    done = (await wizard.web.get("/admin/setup/products")).text

    status = await tasks.read_task(wizard.redis, "products")
    assert status is not None
    assert shown_state(done, "products") == "done"
    assert status.counts["created"] == len(wizard.moneybird.products) >= 3
    assert lookups(wizard) == status.counts["created"]  # each product looked up once
    assert {"DOEK-1", "KAARS-1", "MOK-1"} <= identifiers(wizard)


async def test_two_clicks_and_a_second_web_process_queue_one_job(wizard: Wizard) -> None:
    await with_products(wizard)

    # The first click also stores the revenue account (two settings writes at once collide).
    clicks = [
        wizard.post("/admin/setup/products", {"action": "preview", "ledger_account": revenue(wizard)}),
        wizard.post("/admin/setup/products", {"action": "preview"}),
    ]
    await asyncio.gather(*clicks, tasks.start_task(wizard.redis, "products-preview"))
    status = await tasks.read_task(wizard.redis, "products-preview")
    assert status is not None
    first_run = status.run

    assert await job_ids(wizard) == {"setup-task:products-preview:1"}
    assert await wizard.run_worker() == 1
    status = await tasks.read_task(wizard.redis, "products-preview")
    assert status is not None
    assert (status.state, status.run) == ("done", first_run)
    assert status.counts["created"] >= 3
    assert lookups(wizard) == status.counts["created"]  # one look-up per product: it ran once


async def test_a_task_between_slices_shows_running_to_a_restarted_web_process(
    wizard: Wizard, monkeypatch: pytest.MonkeyPatch
) -> None:
    await with_products(wizard)
    monkeypatch.setattr(task_jobs, "slice_deadline", stop_after(1))
    await wizard.post("/admin/setup/products", {"action": "transfer", "ledger_account": revenue(wizard)})

    assert await wizard.run_worker(max_jobs=1) == 1  # one slice: one product, then out of time
    restarted = create_app(wizard.base)
    async with restarted.router.lifespan_context(restarted):
        transport = httpx.ASGITransport(app=restarted)
        async with httpx.AsyncClient(transport=transport, base_url=WOOBIRD_URL) as web:
            await web.post("/admin/login", data={"token": ADMIN_TOKEN})
            page = (await web.get("/admin/setup/products")).text

    assert shown_state(page, "products") == "running"
    assert len(wizard.moneybird.products) == 1
    assert lookups(wizard) == 1
    assert await job_ids(wizard) == {"setup-task:products:2"}

    while await job_ids(wizard):
        await wizard.run_worker()
    status = await tasks.read_task(wizard.redis, "products")
    assert status is not None
    assert status.state == "done"
    assert status.counts["created"] == len(wizard.moneybird.products) == len(identifiers(wizard)) >= 3
    assert lookups(wizard) == status.counts["created"]  # no product looked at twice, none made twice


async def test_a_stopped_preview_ends_stopped_in_the_readers_language(wizard: Wizard) -> None:
    await through_moneybird(wizard)
    page = await wizard.web.get("/admin/setup/bookkeeping")
    await wizard.web.post("/admin/setup/bookkeeping", data=_form(page.text))
    for cart in sample_carts(datetime.now(UTC) - timedelta(days=3)):
        wizard.shop.add_order(cart)
    since = (datetime.now(UTC) - timedelta(days=10)).date().isoformat()
    await wizard.post("/admin/setup/history", {"action": "preview", "since": since})

    stopping = await wizard.post("/admin/setup/tasks/history-preview/cancel")
    shown = (await wizard.web.get("/admin/setup/history")).text
    await wizard.run_worker()
    dutch = (await wizard.web.get("/admin/setup/history", headers={"Accept-Language": "nl"})).text

    assert stopping.headers["location"] == "/admin/setup/history"
    assert shown_state(shown, "history-preview") == "cancelling"
    assert shown_state(dutch, "history-preview") == "cancelled"
    assert "gestopt" in dutch
    status = await tasks.read_task(wizard.redis, "history-preview")
    assert status is not None
    assert status.counts == {}  # stopped before it looked at an order
    assert (await wizard.post("/admin/setup/tasks/nothing/cancel")).status_code == 404


async def test_a_task_that_fails_says_why_in_the_readers_language(wizard: Wizard) -> None:
    await with_products(wizard)
    await wizard.post("/admin/setup/products", {"action": "preview", "ledger_account": revenue(wizard)})
    # Moneybird refuses the token from now on (revoked in Moneybird while the preview waited).
    wizard.moneybird.fail_next("*", kind="status", status=401, times=1000)

    await wizard.run_worker()
    english = (await wizard.web.get("/admin/setup/products")).text
    dutch = (await wizard.web.get("/admin/setup/products", headers={"Accept-Language": "nl"})).text

    assert shown_state(english, "products-preview") == "failed"
    assert "it stopped on an error:" in english
    assert "het stopte door een fout:" in dutch
    assert "mislukt" in dutch
    assert "it stopped on an error" not in dutch


async def test_a_previews_refusals_read_in_the_readers_language(wizard: Wizard) -> None:
    await through_moneybird(wizard)
    page = await wizard.web.get("/admin/setup/bookkeeping")
    await wizard.web.post("/admin/setup/bookkeeping", data=_form(page.text))
    for cart in sample_carts(datetime.now(UTC) - timedelta(days=3)):
        wizard.shop.add_order(cart)
    since = (datetime.now(UTC) - timedelta(days=10)).date().isoformat()
    await wizard.post("/admin/setup/history", {"action": "preview", "since": since})

    await wizard.run_worker()
    status = await tasks.read_task(wizard.redis, "history-preview")
    english = (await wizard.web.get("/admin/setup/history")).text
    dutch = (await wizard.web.get("/admin/setup/history", headers={"Accept-Language": "nl"})).text

    assert status is not None
    assert status.state == "done"
    reason = status.lines[0].partition(": ")[2]  # the sample German 7 % order has no rate
    assert "7" in reason
    assert reason in html.unescape(english)
    assert reason not in html.unescape(dutch)
    assert "Moneybird heeft geen" in html.unescape(dutch), html.unescape(dutch)[dutch.find("<details") :]


async def test_a_task_whose_jobs_were_given_up_is_shown_interrupted_and_starts_again(wizard: Wizard) -> None:
    await with_products(wizard)
    await wizard.post("/admin/setup/products", {"action": "preview", "ledger_account": revenue(wizard)})
    first = await tasks.read_task(wizard.redis, "products-preview")
    # Its claim expires (arq gave up on its job long ago, or Redis lost it).
    await wizard.redis.delete(tasks.claim_key("products-preview", 1))

    dutch = (await wizard.web.get("/admin/setup/products", headers={"Accept-Language": "nl"})).text
    await wizard.post("/admin/setup/products", {"action": "preview"})
    again = await tasks.read_task(wizard.redis, "products-preview")

    assert shown_state(dutch, "products-preview") == "interrupted"
    assert "start het opnieuw om verder te gaan" in dutch
    assert first is not None
    assert again is not None
    assert (again.state, again.run != first.run) == ("queued", True)
    assert await wizard.run_worker() == 1  # the job the first start left queued runs the second
    done = await tasks.read_task(wizard.redis, "products-preview")
    assert done is not None
    assert (done.state, done.run) == ("done", again.run)
