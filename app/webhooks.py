"""`POST /webhooks/woocommerce`: verify, qualify, record, enqueue — and answer within milliseconds.

That URL is connection 1's (the environment's); another connection's shop delivers to
`/webhooks/woocommerce/<name>`, verified with that connection's own secret (app.connections).

WooCommerce signs the exact body bytes: `X-WC-Webhook-Signature = base64(HMAC-SHA256(secret,
body))`. Nothing is parsed before the signature holds. WooCommerce never retries a delivery and
disables a webhook after repeated failures, so every authentic delivery gets a 2xx — except when
woobird could not write it down, where a 503 is the honest answer and reconciliation heals it.

Test vector (secret, body, signature), checked in tests/test_webhooks.py:
    secret    = "wb_test_secret_2f9c"
    body      = b'{"id":1042,"status":"completed"}'
    signature = "Z6bnSOtxGB9PoX1fktUFeZqtStE8bLi4rhdHFVVM5gs="
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any

import structlog
from arq.connections import ArqRedis
from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import ClientDisconnect

from app.booking.intake import IntakeWriter, OpenInvoiceRule, accept_order
from app.constants import (
    ENVIRONMENT_CONNECTION_ID,
    ORDER_TOPICS,
    SIGNATURE_HEADER,
    TOPIC_HEADER,
    WEBHOOK_MAX_BODY_BYTES,
    WEBHOOK_PATH,
)
from app.delivery_lag import DeliveryLags
from app.deps import AppStateDep, SettingsDep, receiving_connection
from app.metrics import DELIVERIES
from app.settings import Settings
from app.woocommerce.models import OrderHeader

log = structlog.get_logger("woobird.webhook")
router = APIRouter()

_PING = re.compile(rb"^webhook_id=\d+$")
# A header is outside input: only its start is worth a log line.
LOGGED_HEADER_CHARS = 200


class SignatureError(ValueError):
    """The delivery is not from the shop: the reason says which check failed."""


def sign(secret: str, body: bytes) -> str:
    """The signature WooCommerce puts on `body`; tests and the sandbox shop sign with it."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def verify(secret: str, body: bytes, signature: str | None) -> None:
    if not secret:
        raise SignatureError("no webhook secret is configured")
    if not signature:
        raise SignatureError("the X-WC-Webhook-Signature header is missing")
    try:
        given = base64.b64decode(signature.strip(), validate=True)
    except ValueError:
        raise SignatureError("the signature is not base64") from None
    expected = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    if not hmac.compare_digest(given, expected):
        raise SignatureError("the signature does not match the body (wrong secret, or the body was altered)")


async def _read_capped(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > WEBHOOK_MAX_BODY_BYTES:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, "body larger than 1 MiB")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > WEBHOOK_MAX_BODY_BYTES:
                raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, "body larger than 1 MiB")
            chunks.append(chunk)
    except ClientDisconnect:
        # The client left, or sent its body too slowly (app/http_limits.py): nobody hears an answer.
        raise HTTPException(status.HTTP_408_REQUEST_TIMEOUT, "the body did not arrive") from None
    return b"".join(chunks)


class Delivery:
    """A webhook delivery whose signature held (or WooCommerce's unsigned ping)."""

    def __init__(self, *, body: bytes, topic: str | None, ping: bool, received: float) -> None:
        self.body = body
        self.topic = topic
        self.ping = ping
        self.received = received  # Unix time the request arrived, for the delivery's lag


async def verified_delivery(request: Request, settings: SettingsDep) -> Delivery:
    """The delivery to the environment's connection (1), verified with its secret."""
    return await _verified(request, settings)


async def _verified(
    request: Request, settings: Settings, *, connection_id: int = ENVIRONMENT_CONNECTION_ID
) -> Delivery:
    received = time.time()
    body = await _read_capped(request)
    if _PING.match(body.strip()):
        return Delivery(body=body, topic=None, ping=True, received=received)
    try:
        verify(
            settings.woocommerce_webhook_secret.get_secret_value(),
            body,
            request.headers.get(SIGNATURE_HEADER),
        )
    except SignatureError as exc:
        DELIVERIES.labels(outcome="unauthorized", connection=str(connection_id)).inc()
        source = request.headers.get("x-wc-webhook-source", "")
        log.warning("webhook rejected", reason=str(exc), source=source[:LOGGED_HEADER_CHARS])
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, str(exc)) from None
    return Delivery(body=body, topic=request.headers.get(TOPIC_HEADER), ping=False, received=received)


VerifiedDelivery = Annotated[Delivery, Depends(verified_delivery)]


def _parse_order(body: bytes) -> OrderHeader:
    """Only what intake decides on is validated here; the worker re-reads the whole order."""
    try:
        return OrderHeader.model_validate_json(body)
    except ValidationError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, _not_an_order(body, exc)) from None


def _not_an_order(body: bytes, error: ValidationError) -> str:
    # pydantic's parser stops at its own depth limit (a ValidationError); Python's stops here.
    try:
        document: Any = json.loads(body)
    except RecursionError:
        return "body is nested too deeply to be an order"
    except ValueError:
        return "body is not JSON"
    if isinstance(document, dict) and "code" in document and "id" not in document:
        # WooCommerce sends its REST error object when the webhook's owner lost access to orders.
        return (
            f"WooCommerce sent an error instead of an order ({document.get('code')}): "
            "the user who owns the webhook may not read orders"
        )
    fields = ", ".join(".".join(str(p) for p in e["loc"]) or "body" for e in error.errors()[:5])
    return f"body is not an order (bad fields: {fields})"


def _answer(code: int, **content: Any) -> JSONResponse:
    return JSONResponse(content, status_code=code)


_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {"description": "WooCommerce's ping, a topic or an order woobird does not act on, or a duplicate"},
    202: {"description": "The order was recorded in the ledger and queued for booking"},
    400: {"description": "The body is not JSON, or not an order (or an order without date_modified_gmt)"},
    401: {"description": "The signature is missing or does not match the body"},
    413: {"description": "The body is larger than 1 MiB"},
    503: {"description": "The ledger or the queue is unavailable; nothing was recorded"},
}


@router.post(WEBHOOK_PATH, summary="Receive a WooCommerce order webhook", responses=_ANSWERS)
async def receive_order_webhook(
    delivery: VerifiedDelivery, state: AppStateDep, settings: SettingsDep
) -> JSONResponse:
    return await _receive(
        delivery,
        settings=settings,
        sessions=state.sessions,
        redis=state.redis,
        since=state.since,
        writer=state.writer,
        lags=state.lags,
    )


_CONNECTION_ANSWERS = _ANSWERS | {
    404: {"description": "No connection has this name"},
    410: {"description": "The connection was removed: it receives nothing"},
}


@router.post(
    WEBHOOK_PATH + "/{connection}",
    summary="Receive a WooCommerce order webhook for one connection",
    responses=_CONNECTION_ANSWERS,
)
async def receive_connection_webhook(connection: str, request: Request, state: AppStateDep) -> JSONResponse:
    """A connection's own URL, verified with that connection's secret (its shop's webhook)."""
    intake = await receiving_connection(state, connection[:LOGGED_HEADER_CHARS])
    settings = intake.live.current
    # Its log lines name the connection, as its jobs' do (the environment's URL names none).
    with structlog.contextvars.bound_contextvars(connection=intake.connection_id):
        delivery = await _verified(request, settings, connection_id=intake.connection_id)
        return await _receive(
            delivery,
            settings=settings,
            sessions=intake.sessions,
            redis=state.redis,
            since=intake.since,
            writer=None,
            lags=state.lags,
            connection_id=intake.connection_id,
        )


async def _receive(
    delivery: Delivery,
    *,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    redis: ArqRedis,
    since: Callable[[], Awaitable[datetime]],
    writer: IntakeWriter | None,
    lags: DeliveryLags,
    connection_id: int = ENVIRONMENT_CONNECTION_ID,
) -> JSONResponse:
    counted = str(connection_id)
    if delivery.ping:
        DELIVERIES.labels(outcome="ping", connection=counted).inc()
        return _answer(200, ping="ok")
    if delivery.topic and delivery.topic not in ORDER_TOPICS:
        DELIVERIES.labels(outcome="ignored", connection=counted).inc()
        return _answer(200, ignored=f"topic {delivery.topic} is not acted on")
    order = _parse_order(delivery.body)
    if order.date_modified_gmt is None:
        # The ledger tells versions apart by it; WooCommerce always sends it, so this is no order of its.
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, "body is not an order (bad fields: date_modified_gmt)"
        )
    try:
        result = await accept_order(
            order,
            sessions=sessions,
            redis=redis,
            statuses=settings.sync_order_statuses,
            since=await since(),
            reason="webhook",
            writer=writer,
            open_invoices=OpenInvoiceRule.from_settings(settings),
        )
    except Exception as exc:  # the database or Redis: nothing durable was done, say so
        DELIVERIES.labels(outcome="unavailable", connection=counted).inc()
        # The class and first line only: a database error's text carries the whole statement.
        first_line = next(iter(str(exc).splitlines()), "")[:200]
        log.error("webhook not recorded", order_id=order.id, error=f"{type(exc).__name__}: {first_line}")
        return _answer(
            503, error="woobird could not record the delivery; it will be picked up by reconciliation"
        )
    DELIVERIES.labels(outcome=result.outcome, connection=counted).inc()
    # Measured for every order the shop delivered, booked or not: it is the shop's promptness.
    lags.record(order.id, order.date_modified_gmt, received=delivery.received, connection_id=connection_id)
    if result.outcome == "queued":
        log.info("order queued", order_id=order.id, number=order.display_number, status=order.status)
        return _answer(202, order_id=order.id, outcome=result.outcome, reason=result.reason)
    return _answer(200, order_id=order.id, outcome=result.outcome, reason=result.reason)
