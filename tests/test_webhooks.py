"""The webhook endpoint: one test per way a delivery can be good or bad."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from structlog.testing import capture_logs

from app import schema
from app.booking import ledger
from app.constants import QUEUE_NAME, WEBHOOK_MAX_BODY_BYTES, WEBHOOK_PATH
from app.main import create_app
from app.settings import Settings
from app.webhooks import SignatureError, sign, verify
from tests.conftest import WEBHOOK_SECRET, make_settings
from tests.factories import order_document, signed_headers, wc_body

VECTOR_SECRET = "wb_test_secret_2f9c"
VECTOR_BODY = b'{"id":1042,"status":"completed"}'
VECTOR_SIGNATURE = "Z6bnSOtxGB9PoX1fktUFeZqtStE8bLi4rhdHFVVM5gs="


def test_published_vector_matches_an_independent_hmac() -> None:
    independent = base64.b64encode(
        hmac.new(VECTOR_SECRET.encode(), VECTOR_BODY, hashlib.sha256).digest()
    ).decode()
    assert sign(VECTOR_SECRET, VECTOR_BODY) == independent == VECTOR_SIGNATURE
    verify(VECTOR_SECRET, VECTOR_BODY, VECTOR_SIGNATURE)


MISSING = "the X-WC-Webhook-Signature header is missing"
NOT_BASE64 = "the signature is not base64"
MISMATCH = "the signature does not match the body (wrong secret, or the body was altered)"


@pytest.mark.parametrize(
    ("secret", "body", "signature", "reason"),
    [
        (VECTOR_SECRET, VECTOR_BODY, None, MISSING),
        (VECTOR_SECRET, VECTOR_BODY, "", MISSING),
        (VECTOR_SECRET, VECTOR_BODY, "not base64 at all!", NOT_BASE64),
        # The right signature with junk in it: a lenient decoder would drop the junk and accept it.
        (VECTOR_SECRET, VECTOR_BODY, VECTOR_SIGNATURE[:10] + "!" + VECTOR_SIGNATURE[10:], NOT_BASE64),
        (VECTOR_SECRET, VECTOR_BODY, VECTOR_SIGNATURE[:10] + "*" + VECTOR_SIGNATURE[10:], NOT_BASE64),
        ("another-secret", VECTOR_BODY, VECTOR_SIGNATURE, MISMATCH),
        (VECTOR_SECRET, VECTOR_BODY + b" ", VECTOR_SIGNATURE, MISMATCH),
        (VECTOR_SECRET, VECTOR_BODY, sign(VECTOR_SECRET, b'{"id":1043}'), MISMATCH),
        ("", VECTOR_BODY, VECTOR_SIGNATURE, "no webhook secret is configured"),
    ],
)
def test_each_signature_failure_is_named(
    secret: str, body: bytes, signature: str | None, reason: str
) -> None:
    with pytest.raises(SignatureError) as caught:
        verify(secret, body, signature)
    assert str(caught.value) == reason


def test_surrounding_whitespace_in_the_signature_header_is_not_a_failure() -> None:
    verify(VECTOR_SECRET, VECTOR_BODY, f"  {VECTOR_SIGNATURE}\n")


async def _queued(redis: ArqRedis) -> int:
    return int(await redis.zcard(QUEUE_NAME))


async def test_ping_gets_exactly_200_and_queues_nothing(web: httpx.AsyncClient, redis: ArqRedis) -> None:
    response = await web.post(
        WEBHOOK_PATH, content=b"webhook_id=7", headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 200
    assert await _queued(redis) == 0


async def test_signed_order_is_recorded_and_queued(
    web: httpx.AsyncClient, redis: ArqRedis, sessions: async_sessionmaker[AsyncSession]
) -> None:
    body = wc_body(order_document(1042))
    response = await web.post(WEBHOOK_PATH, content=body, headers=signed_headers(body, secret=WEBHOOK_SECRET))
    assert response.status_code == 202, response.text
    assert response.json()["outcome"] == "queued"
    assert await _queued(redis) == 1
    async with sessions() as session:
        record = await ledger.get_order(session, 1042)
    assert record is not None
    assert record.state == schema.OrderState.QUEUED
    assert record.date_modified == datetime(2026, 11, 2, 9, 35, tzinfo=UTC)


@pytest.mark.parametrize("bad", ["missing", "wrong", "other-body"])
async def test_bad_signature_is_401_and_records_nothing(
    web: httpx.AsyncClient, redis: ArqRedis, sessions: async_sessionmaker[AsyncSession], bad: str
) -> None:
    body = wc_body(order_document(1042))
    headers = signed_headers(body, secret=WEBHOOK_SECRET)
    if bad == "missing":
        del headers["x-wc-webhook-signature"]
    elif bad == "wrong":
        headers["x-wc-webhook-signature"] = sign("consumer-secret-by-mistake", body)
    else:
        headers["x-wc-webhook-signature"] = sign(WEBHOOK_SECRET, wc_body(order_document(1043)))
    with capture_logs() as logs:
        response = await web.post(WEBHOOK_PATH, content=body, headers=headers)
    assert response.status_code == 401
    assert response.json()["detail"] == (MISSING if bad == "missing" else MISMATCH)
    assert await _queued(redis) == 0
    async with sessions() as session:
        assert await ledger.get_order(session, 1042) is None
    (rejected,) = [entry for entry in logs if entry["event"] == "webhook rejected"]
    assert rejected["log_level"] == "warning"
    assert rejected["reason"] == response.json()["detail"]
    assert rejected["source"] == "https://shop.test/"


async def test_a_post_without_woocommerce_headers_is_logged_without_a_source(web: httpx.AsyncClient) -> None:
    # Not from a shop at all: the warning must not name a source the request never gave.
    with capture_logs() as logs:
        response = await web.post(WEBHOOK_PATH, content=wc_body(order_document(1042)))
    assert response.status_code == 401
    (rejected,) = [entry for entry in logs if entry["event"] == "webhook rejected"]
    assert rejected["source"] == ""


async def test_oversize_body_is_413(web: httpx.AsyncClient, redis: ArqRedis) -> None:
    body = b'{"id": 1, "padding": "' + b"x" * (1024 * 1024) + b'"}'
    response = await web.post(WEBHOOK_PATH, content=body, headers=signed_headers(body, secret=WEBHOOK_SECRET))
    assert response.status_code == 413
    assert response.json() == {"detail": "body larger than 1 MiB"}
    assert await _queued(redis) == 0


async def test_a_declared_length_over_1_mib_is_refused_before_the_body_is_read(
    web: httpx.AsyncClient, redis: ArqRedis
) -> None:
    body = wc_body(order_document(4002))
    headers = signed_headers(body, secret=WEBHOOK_SECRET) | {
        "content-length": str(WEBHOOK_MAX_BODY_BYTES + 1)
    }
    response = await web.post(WEBHOOK_PATH, content=body, headers=headers)
    # Had the body been read, its valid signature would have queued it.
    assert response.status_code == 413
    assert response.json() == {"detail": "body larger than 1 MiB"}
    assert await _queued(redis) == 0


@pytest.mark.parametrize("chunked", [False, True])
async def test_a_body_of_exactly_1_mib_is_read(
    web: httpx.AsyncClient, redis: ArqRedis, chunked: bool
) -> None:
    document = order_document(4003)
    padding = WEBHOOK_MAX_BODY_BYTES - len(wc_body({**document, "customer_note": ""}))
    body = wc_body({**document, "customer_note": "x" * padding})
    assert len(body) == WEBHOOK_MAX_BODY_BYTES

    async def stream() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 65536):
            yield body[start : start + 65536]

    headers = signed_headers(body, secret=WEBHOOK_SECRET)
    response = await web.post(WEBHOOK_PATH, content=stream() if chunked else body, headers=headers)
    assert response.status_code == 202, response.text
    assert await _queued(redis) == 1


async def test_a_chunked_body_over_1_mib_is_413_before_it_is_read_whole(
    web: httpx.AsyncClient, redis: ArqRedis, sessions: async_sessionmaker[AsyncSession]
) -> None:
    chunk = b"x" * 65536
    body = b'{"id": 4001, "padding": "' + chunk * 64 + b'"}'  # 4 MiB, signed as a whole
    sent: list[int] = []

    async def stream() -> AsyncIterator[bytes]:
        for start in range(0, len(body), len(chunk)):
            sent.append(start)
            yield body[start : start + len(chunk)]

    headers = signed_headers(body, secret=WEBHOOK_SECRET)
    response = await web.post(WEBHOOK_PATH, content=stream(), headers=headers)
    assert response.status_code == 413
    assert response.json() == {"detail": "body larger than 1 MiB"}
    assert "content-length" not in {name.lower() for name in response.request.headers}
    # It stopped reading just past the limit: a client cannot make it buffer 4 MiB.
    assert len(sent) * len(chunk) <= 1024 * 1024 + 2 * len(chunk)
    assert await _queued(redis) == 0
    async with sessions() as session:
        assert await ledger.get_order(session, 4001) is None


@pytest.mark.parametrize(
    "body",
    [
        b"this is not json",
        b"[1, 2, 3]",
        b'{"code":"woocommerce_rest_cannot_view","message":"Sorry"}',
        b'{"id":"x"}',
    ],
)
async def test_garbage_is_400(web: httpx.AsyncClient, redis: ArqRedis, body: bytes) -> None:
    response = await web.post(WEBHOOK_PATH, content=body, headers=signed_headers(body, secret=WEBHOOK_SECRET))
    assert response.status_code == 400
    assert response.json()["detail"]
    assert await _queued(redis) == 0


async def test_unknown_topic_is_acknowledged_and_ignored(web: httpx.AsyncClient, redis: ArqRedis) -> None:
    body = b'{"id":5,"name":"Mok"}'
    response = await web.post(
        WEBHOOK_PATH,
        content=body,
        headers=signed_headers(body, secret=WEBHOOK_SECRET, topic="product.updated"),
    )
    assert response.status_code == 200
    assert "product.updated" in response.json()["ignored"]
    assert await _queued(redis) == 0


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        (order_document(7, status="processing"), "SYNC_ORDER_STATUSES"),
        (order_document(8, paid=None), "not paid"),
        (order_document(9, paid=datetime(2019, 6, 1, tzinfo=UTC)), "before SYNC_SINCE"),
    ],
)
async def test_orders_that_do_not_qualify_are_acknowledged_with_the_reason(
    web: httpx.AsyncClient, redis: ArqRedis, document: dict[str, object], reason: str
) -> None:
    body = wc_body(document)
    response = await web.post(WEBHOOK_PATH, content=body, headers=signed_headers(body, secret=WEBHOOK_SECRET))
    assert response.status_code == 200
    assert response.json()["outcome"] == "ignored"
    assert reason in response.json()["reason"]
    assert await _queued(redis) == 0


async def test_paid_before_since_is_marked_in_the_ledger(
    web: httpx.AsyncClient, redis: ArqRedis, sessions: async_sessionmaker[AsyncSession]
) -> None:
    body = wc_body(order_document(9, paid=datetime(2019, 6, 1, tzinfo=UTC)))
    await web.post(WEBHOOK_PATH, content=body, headers=signed_headers(body, secret=WEBHOOK_SECRET))
    async with sessions() as session:
        record = await ledger.get_order(session, 9)
    assert record is not None
    assert record.state == schema.OrderState.BEFORE_SINCE


async def test_duplicate_and_out_of_order_deliveries_queue_one_job_per_version(
    web: httpx.AsyncClient, redis: ArqRedis
) -> None:
    newer = order_document(1042, modified=datetime(2026, 11, 2, 10, 0, tzinfo=UTC))
    older = order_document(1042, modified=datetime(2026, 11, 2, 9, 45, tzinfo=UTC))
    answers = []
    for document in (newer, newer, older, newer):
        body = wc_body(document)
        response = await web.post(
            WEBHOOK_PATH, content=body, headers=signed_headers(body, secret=WEBHOOK_SECRET)
        )
        answers.append((response.status_code, response.json()["outcome"]))
    assert answers[0] == (202, "queued")
    assert all(code == 200 and outcome == "duplicate" for code, outcome in answers[1:])
    assert await _queued(redis) == 1


async def test_concurrent_duplicates_queue_one_job(web: httpx.AsyncClient, redis: ArqRedis) -> None:
    import asyncio

    body = wc_body(order_document(2001))
    headers = signed_headers(body, secret=WEBHOOK_SECRET)
    responses = await asyncio.gather(
        *(web.post(WEBHOOK_PATH, content=body, headers=headers) for _ in range(8))
    )
    codes = sorted(r.status_code for r in responses)
    assert codes.count(202) == 1
    assert all(code in (200, 202) for code in codes)
    assert await _queued(redis) == 1


async def test_database_down_is_503(settings: Settings, redis: ArqRedis, tmp_path: object) -> None:
    broken = make_settings(database_url="postgresql://postgres@127.0.0.1:1/test")
    app = create_app(broken)
    body = wc_body(order_document(3002))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        response = await client.post(
            WEBHOOK_PATH, content=body, headers=signed_headers(body, secret=WEBHOOK_SECRET)
        )
    assert response.status_code == 503
    assert await _queued(redis) == 0
