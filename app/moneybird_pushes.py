"""`POST /webhooks/moneybird`: Moneybird's pushes about invoices woobird booked — verify, de-duplicate,
record, enqueue; the worker settles the order (`settle_invoice`).

That URL is connection 1's (the environment's); another connection's Moneybird webhook delivers to
`/webhooks/moneybird/<name>`, verified with that connection's own MONEYBIRD_WEBHOOK_SECRET, and the
invoice it names is looked up only in that connection's ledger (two shops may hold the same order
ids, two administrations the same invoice ids).

Moneybird signs the exact body bytes (app/moneybird/push_signature.py) with the secret it showed once,
when `woobird webhook install` or the wizard registered the webhook; nothing is parsed before the
signature holds, and a push with a wrong or stale signature is answered 401 and changes nothing. One
exception, which also changes nothing: Moneybird checks the url answers 200 while the webhook is being
registered — before woobird knows the secret — so for that minute an unsigned push is answered 200 and
dropped. Each push carries an `Idempotency-Key`, the same across its retries: a key seen in the last
week is answered 200 as a duplicate. A push is answered 200 only once it is recorded in the order's
ledger and queued; when the database or Redis is away the answer is 503 and Moneybird tries again (10
times, waiting longer each time) — and the payments poll heals whatever never arrives.
"""

from __future__ import annotations

import contextlib
import time
from typing import Annotated, Any, Final

import structlog
from arq.connections import ArqRedis
from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.booking import ledger
from app.constants import (
    ENVIRONMENT_CONNECTION_ID,
    MONEYBIRD_PUSH_SEEN_PREFIX,
    MONEYBIRD_PUSH_SEEN_SECONDS,
    MONEYBIRD_WEBHOOK_PATH,
    MONEYBIRD_WEBHOOK_REGISTERING_KEY,
)
from app.db import transaction
from app.deps import AppStateDep, SettingsDep, receiving_connection
from app.i18n import Message
from app.metrics import MONEYBIRD_PUSHES
from app.moneybird.push_signature import SIGNATURE_HEADER, PushSignatureError, verify_push
from app.queue import connection_key, enqueue_settle
from app.settings import Settings
from app.webhooks import LOGGED_HEADER_CHARS, _read_capped

log = structlog.get_logger("woobird.moneybird_push")
router = APIRouter()

IDEMPOTENCY_HEADER: Final = "idempotency-key"
# Moneybird's keys are short tokens; anything longer is not one of its pushes.
MAX_IDEMPOTENCY_KEY_CHARS: Final = 128
# What a push says that woobird acts on; the rest is acknowledged and left alone.
INVOICE_ENTITIES: Final = frozenset({"SalesInvoice", "ExternalSalesInvoice"})


class PushedEntity(BaseModel):
    model_config = ConfigDict(extra="ignore")

    invoice_id: str | int | None = None  # a Payment's invoice


class Push(BaseModel):
    """Only what routing a push needs; the worker reads the invoice itself from Moneybird."""

    model_config = ConfigDict(extra="ignore")

    administration_id: str | int | None = None
    entity_type: str | None = None
    entity_id: str | int | None = None
    action: str | None = None
    entity: PushedEntity | None = None

    def invoice_id(self) -> str | None:
        if self.entity_type in INVOICE_ENTITIES and self.entity_id is not None:
            return str(self.entity_id)
        if self.entity_type == "Payment" and self.entity is not None and self.entity.invoice_id is not None:
            return str(self.entity.invoice_id)
        return None


class VerifiedPush:
    """A push whose signature held; `check` is Moneybird's url check during registration instead."""

    def __init__(self, *, body: bytes, key: str | None, check: bool) -> None:
        self.body = body
        self.key = key
        self.check = check


async def verified_push(request: Request, state: AppStateDep, settings: SettingsDep) -> VerifiedPush:
    """A push to the environment's connection (1), verified with its secret."""
    return await _verified(
        request, redis=state.redis, settings=settings, connection_id=ENVIRONMENT_CONNECTION_ID
    )


async def _verified(
    request: Request, *, redis: ArqRedis, settings: Settings, connection_id: int
) -> VerifiedPush:
    body = await _read_capped(request)
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is not None and (len(key) > MAX_IDEMPOTENCY_KEY_CHARS or not key.isprintable()):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "the Idempotency-Key header is not Moneybird's")
    secret = settings.moneybird_webhook_secret.get_secret_value() if settings.moneybird_webhook_secret else ""
    try:
        verify_push(secret, body, request.headers.get(SIGNATURE_HEADER), now=time.time())
    except PushSignatureError as exc:
        if await _registering(redis, connection_id=connection_id):
            return VerifiedPush(body=body, key=key, check=True)
        MONEYBIRD_PUSHES.labels(outcome="unauthorized", connection=str(connection_id)).inc()
        log.warning("Moneybird push rejected", reason=str(exc))
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, str(exc)) from None
    return VerifiedPush(body=body, key=key, check=False)


async def _registering(redis: ArqRedis, *, connection_id: int) -> bool:
    """Whether this connection's webhook is being registered now (its own window: another
    connection's registration never lets an unsigned push through to this one's URL)."""
    try:
        return bool(await redis.exists(connection_key(MONEYBIRD_WEBHOOK_REGISTERING_KEY, connection_id)))
    except Exception:  # Redis away: then nobody is registering through this deployment either
        return False


VerifiedPushDep = Annotated[VerifiedPush, Depends(verified_push)]

_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Recorded and queued; or a duplicate, an invoice woobird did not book, the url check"
    },
    400: {"description": "The body is not a Moneybird push, or its Idempotency-Key is not Moneybird's"},
    401: {"description": "The signature is missing, stale or does not match the body"},
    413: {"description": "The body is larger than 1 MiB"},
    503: {"description": "The ledger or the queue is unavailable; nothing was recorded (Moneybird retries)"},
}


@router.post(MONEYBIRD_WEBHOOK_PATH, summary="Receive a Moneybird webhook push", responses=_ANSWERS)
async def receive_moneybird_push(
    push: VerifiedPushDep, state: AppStateDep, settings: SettingsDep
) -> JSONResponse:
    return await _receive(
        push,
        redis=state.redis,
        sessions=state.sessions,
        settings=settings,
        connection_id=ENVIRONMENT_CONNECTION_ID,
    )


_CONNECTION_ANSWERS = _ANSWERS | {
    404: {"description": "No connection has this name"},
    410: {"description": "The connection was removed: it receives nothing"},
}


@router.post(
    MONEYBIRD_WEBHOOK_PATH + "/{connection}",
    summary="Receive a Moneybird webhook push for one connection",
    responses=_CONNECTION_ANSWERS,
)
async def receive_connection_push(connection: str, request: Request, state: AppStateDep) -> JSONResponse:
    """A connection's own URL, verified with that connection's secret; the invoice is looked up in
    that connection's ledger only."""
    intake = await receiving_connection(state, connection[:LOGGED_HEADER_CHARS])
    settings = intake.live.current
    push = await _verified(request, redis=state.redis, settings=settings, connection_id=intake.connection_id)
    with structlog.contextvars.bound_contextvars(connection=intake.connection_id):
        return await _receive(
            push,
            redis=state.redis,
            sessions=intake.sessions,
            settings=settings,
            connection_id=intake.connection_id,
        )


async def _receive(
    push: VerifiedPush,
    *,
    redis: ArqRedis,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    connection_id: int,
) -> JSONResponse:
    counted = str(connection_id)
    if push.check:
        MONEYBIRD_PUSHES.labels(outcome="check", connection=counted).inc()
        return JSONResponse({"check": "ok"})
    try:
        pushed = Push.model_validate_json(push.body)
    except ValidationError:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "body is not a Moneybird push") from None
    invoice_id = pushed.invoice_id()
    if str(pushed.administration_id) != settings.moneybird_administration_id or invoice_id is None:
        MONEYBIRD_PUSHES.labels(outcome="ignored", connection=counted).inc()
        return JSONResponse({"ignored": f"{pushed.entity_type} {pushed.action} is not acted on"})
    try:
        outcome = await _record_and_queue(
            redis, sessions, push=push, pushed=pushed, invoice_id=invoice_id, connection_id=connection_id
        )
    except Exception as exc:  # the database or Redis: nothing durable was done, say so
        MONEYBIRD_PUSHES.labels(outcome="unavailable", connection=counted).inc()
        first_line = next(iter(str(exc).splitlines()), "")[:200]
        log.error(
            "Moneybird push not recorded", invoice_id=invoice_id, error=f"{type(exc).__name__}: {first_line}"
        )
        return JSONResponse({"error": "woobird could not record the push; send it again"}, status_code=503)
    MONEYBIRD_PUSHES.labels(outcome=outcome, connection=counted).inc()
    return JSONResponse({"invoice_id": invoice_id, "outcome": outcome})


async def _record_and_queue(
    redis: ArqRedis,
    sessions: async_sessionmaker[AsyncSession],
    *,
    push: VerifiedPush,
    pushed: Push,
    invoice_id: str,
    connection_id: int,
) -> str:
    seen = connection_key(f"{MONEYBIRD_PUSH_SEEN_PREFIX}{push.key}", connection_id) if push.key else None
    if seen is not None and not await redis.set(seen, "1", nx=True, ex=MONEYBIRD_PUSH_SEEN_SECONDS):
        return "duplicate"
    try:
        async with transaction(sessions) as session:
            # The connection's own ledger: another shop's order with this invoice id is not this one's.
            order = await ledger.order_of_invoice(session, invoice_id)
            if order is None:
                return "ignored"  # an invoice woobird did not book (or no longer the order's)
            await ledger.add_event(
                session,
                order_id=order.order_id,
                step="moneybird_push",
                message=Message(
                    "Moneybird: %(action)s on invoice %(invoice)s",
                    action=pushed.action or "sales_invoice_updated",
                    invoice=order.invoice_number or invoice_id,
                ),
            )
        await enqueue_settle(redis, invoice_id=invoice_id, reason="webhook", connection_id=connection_id)
    except BaseException:
        if seen is not None:  # not done: Moneybird's retry of this push must not count as a duplicate
            with contextlib.suppress(Exception):
                await redis.delete(seen)
        raise
    log.info("Moneybird push queued", order_id=order.order_id, invoice_id=invoice_id, action=pushed.action)
    return "queued"
