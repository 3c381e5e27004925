"""Moneybird's pushes: the signature, the endpoint that records and queues them, the fake that makes
them (signed, an Idempotency-Key per push kept across its retries, retried when not answered 200), and
registering woobird's webhook (Moneybird checks the url before it tells the secret)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from arq.connections import ArqRedis
from starlette.requests import Request
from starlette.responses import Response

from app.booking import ledger
from app.constants import MONEYBIRD_WEBHOOK_PATH, MONEYBIRD_WEBHOOK_REGISTERING_KEY
from app.moneybird.errors import MoneybirdError
from app.moneybird.push_signature import PushSignatureError, sign_push, verify_push
from app.moneybird.webhook_setup import PUSH_EVENTS, install_moneybird_webhook
from app.sandbox.moneybird.webhooks import PUSH_RETRIES, deliver_pushes
from tests.harness import Harness, open_harness
from tests.invoicing.reference_carts import order_document

SECRET = "whsec_test_9c1d7f2a"
URL = "https://woobird.example" + MONEYBIRD_WEBHOOK_PATH


# ── the signature ─────────────────────────────────────────────────────────────────────────────


def test_the_documented_test_vector() -> None:
    header = "t=1765100000,v1=d5f56bcd2d0015822d9b5cbedce457d6603b7a846cd8dc8fea735ed2cd06abd4"
    assert sign_push("whsec_test_5b1f", b'{"entity_id":"1"}', timestamp=1765100000) == header
    verify_push("whsec_test_5b1f", b'{"entity_id":"1"}', header, now=1765100000)


@pytest.mark.parametrize(
    ("header", "now", "says"),
    [
        (None, 1000, "missing"),
        ("v1=abc", 1000, "no timestamp"),
        ("t=1000", 1000, "no v1"),
        ("t=1000,v0=" + "0" * 64, 1000, "no v1"),  # an unknown scheme is ignored, not trusted
        ("t=1000,v1=" + "0" * 64, 1000, "does not match"),
        ("t=1000,v1=SIGNED", 1000 + 301, "5 minutes"),
        ("t=1000,v1=SIGNED", 1000 - 301, "5 minutes"),
        ("t=1000,v1=" + "a" * 2000, 1000, "too long"),
    ],
)
def test_a_push_not_signed_now_with_the_secret_is_refused(header: str | None, now: int, says: str) -> None:
    body = b'{"entity_id":"7"}'
    if header is not None:
        header = header.replace("SIGNED", sign_push(SECRET, body, timestamp=1000).split("v1=")[1])
    with pytest.raises(PushSignatureError, match=says):
        verify_push(SECRET, body, header, now=now)


def test_during_a_secret_rotation_any_v1_may_match() -> None:
    body = b'{"entity_id":"7"}'
    ours = sign_push(SECRET, body, timestamp=2000).split(",")[1]
    verify_push(SECRET, body, f"t=2000,v1={'f' * 64},{ours}", now=2000)
    verify_push(SECRET, body, f"t=2000,{ours},v1={'f' * 64}", now=2000)
    with pytest.raises(PushSignatureError, match="no Moneybird webhook secret"):
        verify_push("", body, f"t=2000,{ours}", now=2000)


def test_an_altered_body_is_refused() -> None:
    header = sign_push(SECRET, b'{"entity_id":"7"}', timestamp=3000)
    with pytest.raises(PushSignatureError, match="does not match"):
        verify_push(SECRET, b'{"entity_id":"8"}', header, now=3000)


# ── the endpoint, fed by the fake's pushes ────────────────────────────────────────────────────


@pytest.fixture
async def h(database_url: str, redis: ArqRedis) -> AsyncIterator[Harness]:
    async with open_harness(
        database_url=database_url, redis=redis, moneybird_webhook_secret=SECRET
    ) as harness:
        harness.moneybird.push_client = harness.web
        harness.moneybird.push_retry_seconds = 0.0
        yield harness


def _subscribe(h: Harness, *, secret: str = SECRET, url: str = URL) -> str:
    """A webhook registered earlier, whose secret woobird holds."""
    hook_id = h.moneybird.ids.next()
    h.moneybird.webhooks[hook_id] = {
        "id": hook_id,
        "administration_id": h.moneybird.administration_id,
        "url": url,
        "enabled_events": list(PUSH_EVENTS),
        "last_http_status": None,
        "last_http_body": None,
        "token": "token-" + hook_id,
        "secret": secret,
        "deactivated_at": None,
    }
    return hook_id


async def _booked_invoice(h: Harness) -> tuple[int, str]:
    order_id = int(h.shop.add_order(order_document("a"))["id"])
    await h.deliver(order_id)
    await h.run_worker()
    record = await h.record(order_id)
    assert record is not None
    assert record.invoice_id is not None
    return order_id, record.invoice_id


async def _settle_jobs(h: Harness) -> list[str]:
    return sorted(job_id for job_id in await _job_ids(h) if job_id.startswith("settle-invoice:"))


async def _job_ids(h: Harness) -> set[str]:
    return {key.decode().removeprefix("arq:job:") for key in await h.redis.keys("arq:job:*")}


async def _pushed_events(h: Harness, order_id: int) -> list[str]:
    async with h.sessions() as session:
        return [e.message for e in await ledger.events_for(session, order_id) if e.step == "moneybird_push"]


def _post(h: Harness, body: bytes, **headers: str) -> Any:
    return h.web.post(
        MONEYBIRD_WEBHOOK_PATH, content=body, headers={"content-type": "application/json", **headers}
    )


async def test_a_payment_pushed_by_moneybird_is_recorded_and_queued_for_settling(h: Harness) -> None:
    order_id, invoice_id = await _booked_invoice(h)
    _subscribe(h)
    h.moneybird.pushes.clear()
    # Moneybird undoes the payment and it is registered again: pushes for the invoice woobird booked.
    invoice = h.moneybird.sales_invoices[invoice_id]
    invoice["state"] = "open"
    h.moneybird.touch(invoice, "sales_invoice_state_changed_to_paid")
    assert await deliver_pushes(h.moneybird) == 1
    assert await _settle_jobs(h) == [f"settle-invoice:{invoice_id}"]
    assert len(await _pushed_events(h, order_id)) == 1
    [push] = h.moneybird.pushes
    assert push.statuses == [200]


async def test_a_push_delivered_twice_is_acted_on_once(h: Harness) -> None:
    order_id, invoice_id = await _booked_invoice(h)
    _subscribe(h)
    h.moneybird.pushes.clear()
    h.moneybird.touch(h.moneybird.sales_invoices[invoice_id], "payment_registered")
    await deliver_pushes(h.moneybird)
    [push] = h.moneybird.pushes
    # Moneybird's retry of the same push (its answer lost on the way back): same key, re-signed.
    now = int(time.time())
    again = await _post(
        h,
        push.body,
        **{
            "idempotency-key": push.idempotency_key,
            "moneybird-signature": sign_push(SECRET, push.body, timestamp=now),
        },
    )
    assert again.status_code == 200
    assert again.json()["outcome"] == "duplicate"
    assert len(await _pushed_events(h, order_id)) == 1


async def test_a_push_that_could_not_be_recorded_is_not_taken_for_a_duplicate_on_its_retry(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    order_id, invoice_id = await _booked_invoice(h)
    _subscribe(h)
    h.moneybird.pushes.clear()
    h.moneybird.touch(h.moneybird.sales_invoices[invoice_id], "payment_registered")

    async def queue_down(*args: object, **kwargs: object) -> None:
        raise ConnectionError("Redis is restarting")

    with monkeypatch.context() as patch:
        patch.setattr(ArqRedis, "enqueue_job", queue_down)
        assert await deliver_pushes(h.moneybird) == 0
    [push] = h.moneybird.pushes
    assert push.statuses == [503]
    assert await _settle_jobs(h) == []
    # Moneybird tries again (the same Idempotency-Key): now it is queued.
    assert await deliver_pushes(h.moneybird) == 1
    assert push.statuses == [503, 200]
    assert await _settle_jobs(h) == [f"settle-invoice:{invoice_id}"]
    assert len(await _pushed_events(h, order_id)) >= 1


@pytest.mark.parametrize("secret", ["whsec_someone_else", ""])
async def test_a_push_signed_otherwise_is_refused_and_changes_nothing(h: Harness, secret: str) -> None:
    order_id, invoice_id = await _booked_invoice(h)
    body = json.dumps(
        {
            "administration_id": h.moneybird.administration_id,
            "entity_type": "SalesInvoice",
            "entity_id": invoice_id,
        }
    ).encode()
    headers = {"idempotency-key": "k1"}
    if secret:
        headers["moneybird-signature"] = sign_push(secret, body, timestamp=int(time.time()))
    answer = await _post(h, body, **headers)
    assert answer.status_code == 401
    assert await _settle_jobs(h) == []
    assert await _pushed_events(h, order_id) == []
    # Nor does the refused key count as seen: Moneybird's genuine push with it would still be heard.
    assert not await h.redis.exists("woobird:moneybird:push:k1")


async def test_a_replayed_push_is_refused(h: Harness) -> None:
    _, invoice_id = await _booked_invoice(h)
    body = json.dumps(
        {
            "administration_id": h.moneybird.administration_id,
            "entity_type": "SalesInvoice",
            "entity_id": invoice_id,
        }
    ).encode()
    stale = sign_push(SECRET, body, timestamp=int(time.time()) - 600)
    answer = await _post(h, body, **{"moneybird-signature": stale})
    assert answer.status_code == 401
    assert "5 minutes" in answer.json()["detail"]


@pytest.mark.parametrize(
    ("payload", "outcome"),
    [
        ({"entity_type": "Contact", "entity_id": "1"}, "ignored"),
        ({"entity_type": "SalesInvoice", "entity_id": "999"}, "ignored"),  # an invoice woobird did not book
        ({"entity_type": "SalesInvoice", "entity_id": "OURS", "administration_id": "42"}, "ignored"),
    ],
)
async def test_pushes_about_other_things_are_acknowledged_and_left_alone(
    h: Harness, payload: dict[str, str], outcome: str
) -> None:
    order_id, invoice_id = await _booked_invoice(h)
    document = {"administration_id": h.moneybird.administration_id, **payload}
    document["entity_id"] = document["entity_id"].replace("OURS", invoice_id)
    body = json.dumps(document).encode()
    answer = await _post(
        h, body, **{"moneybird-signature": sign_push(SECRET, body, timestamp=int(time.time()))}
    )
    assert answer.status_code == 200
    assert (answer.json().get("outcome") or "ignored") == outcome
    assert await _settle_jobs(h) == []
    assert await _pushed_events(h, order_id) == []


async def test_a_payment_entity_names_its_invoice(h: Harness) -> None:
    order_id, invoice_id = await _booked_invoice(h)
    body = json.dumps(
        {
            "administration_id": h.moneybird.administration_id,
            "entity_type": "Payment",
            "entity_id": "5",
            "action": "payment_registered",
            "entity": {"invoice_id": invoice_id},
        }
    ).encode()
    answer = await _post(
        h, body, **{"moneybird-signature": sign_push(SECRET, body, timestamp=int(time.time()))}
    )
    assert answer.json()["outcome"] == "queued"
    assert await _settle_jobs(h) == [f"settle-invoice:{invoice_id}"]
    assert len(await _pushed_events(h, order_id)) == 1


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (b"not json", {}, 400),
        (b"x" * (1024 * 1024 + 1), {}, 413),
        (b"{}", {"idempotency-key": "k" * 500}, 400),
    ],
)
async def test_bad_pushes_get_a_clear_answer(
    h: Harness, body: bytes, headers: dict[str, str], status: int
) -> None:
    signed = {"moneybird-signature": sign_push(SECRET, body, timestamp=int(time.time())), **headers}
    assert (await _post(h, body, **signed)).status_code == status


# ── the fake's pushes ─────────────────────────────────────────────────────────────────────────


class _Flaky:
    """A receiver that answers 503 a number of times, then 200, and remembers what it was sent."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.seen: list[dict[str, str]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        request = Request(scope, receive)
        await request.body()
        self.seen.append(dict(request.headers))
        status = 503 if len(self.seen) <= self.failures else 200
        await Response(status_code=status)(scope, receive, send)


async def test_the_fake_retries_a_push_ten_times_with_the_same_key_and_growing_waits(h: Harness) -> None:
    receiver = _Flaky(failures=PUSH_RETRIES + 5)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=receiver), base_url="https://hook.test"
    ) as client:
        h.moneybird.push_client = client
        h.moneybird.push_retry_seconds = 0.0
        _subscribe(h, url="https://hook.test/x")
        _, invoice_id = await _booked_invoice(h)
        h.moneybird.pushes.clear()
        h.moneybird.touch(h.moneybird.sales_invoices[invoice_id], "payment_registered")
        for _ in range(PUSH_RETRIES + 5):
            await deliver_pushes(h.moneybird)
    [push] = h.moneybird.pushes
    assert push.attempts == PUSH_RETRIES + 1
    assert push.given_up
    assert {seen["idempotency-key"] for seen in receiver.seen} == {push.idempotency_key}
    assert all(seen["moneybird-signature"].startswith("t=") for seen in receiver.seen)


async def test_the_fake_waits_longer_before_each_retry(h: Harness) -> None:
    receiver = _Flaky(failures=3)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=receiver), base_url="https://hook.test"
    ) as client:
        h.moneybird.push_client = client
        h.moneybird.push_retry_seconds = 10.0
        _subscribe(h, url="https://hook.test/x")
        _, invoice_id = await _booked_invoice(h)
        h.moneybird.pushes.clear()
        h.moneybird.touch(h.moneybird.sales_invoices[invoice_id], "payment_registered")
        start = time.time()
        await deliver_pushes(h.moneybird)
        [push] = h.moneybird.pushes
        first_wait = push.due - start
        await deliver_pushes(h.moneybird)  # not due yet: nothing is sent
        assert push.attempts == 1
        retry_at = push.due + 0.001
        h.moneybird.clock.now = lambda: retry_at
        await deliver_pushes(h.moneybird)
        second_wait = push.due - retry_at
    assert push.attempts == 2
    assert second_wait > first_wait >= 10.0


# ── registering the webhook ───────────────────────────────────────────────────────────────────


async def test_registering_needs_the_url_to_answer_moneybirds_check(h: Harness) -> None:
    # Without the registration window woobird cannot verify the check (it has no secret yet): 401.
    with pytest.raises(MoneybirdError, match="did not respond with 200"):
        await install_moneybird_webhook(h.services.moneybird, url=URL)
    assert h.moneybird.webhooks == {}


async def test_registering_replaces_our_old_webhook_and_hands_back_the_new_secret(h: Harness) -> None:
    old = _subscribe(h, secret="whsec_lost_long_ago")
    other = _subscribe(h, url="https://someone-else.example/hook")
    await h.redis.set(MONEYBIRD_WEBHOOK_REGISTERING_KEY, "1", ex=60)
    installed = await install_moneybird_webhook(h.services.moneybird, url=URL)
    assert set(h.moneybird.webhooks) == {other, installed.webhook_id}
    assert old not in h.moneybird.webhooks
    assert installed.secret == h.moneybird.webhooks[installed.webhook_id]["secret"]
    assert f"replaced #{old}" in installed.message
    # The secret is never shown again.
    listed = await h.services.moneybird.list_webhooks()
    assert all(hook.secret is None for hook in listed)
    assert h.moneybird.webhooks[installed.webhook_id]["enabled_events"] == list(PUSH_EVENTS)


async def test_a_token_without_the_settings_scope_cannot_register(database_url: str, redis: ArqRedis) -> None:
    async with open_harness(database_url=database_url, redis=redis) as harness:
        harness.moneybird.token_scopes = frozenset({"sales_invoices"})
        with pytest.raises(MoneybirdError, match="No access to settings"):
            await install_moneybird_webhook(harness.services.moneybird, url=URL)


async def test_the_fake_refuses_what_moneybird_refuses(h: Harness) -> None:
    api = h.services.moneybird._http
    with pytest.raises(MoneybirdError, match="use 'enabled_events'"):
        await api.request("POST", "webhooks", body={"url": URL, "events": ["x"]})
    with pytest.raises(MoneybirdError, match="Url is required"):
        await api.request("POST", "webhooks", body={"enabled_events": ["x"]})
    assert h.moneybird.webhooks == {}
