"""The ledger: what woobird did for every order, refund and customer, read and written in SQL (its
tables are app/schema.py's).

One row per order (unique on the WooCommerce order id) carries the state and every Moneybird id
woobird obtained, so a job that dies between two steps resumes from the last one written down.
`ledger_events` keeps the audit trail a bookkeeper reads on the dashboard.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Table,
    and_,
    case,
    func,
    or_,
    select,
    update,
)
from sqlalchemy import insert as sql_insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from app.connection_scope import connection_of
from app.schema import LedgerEvent, OrderRecord, OrderState, RefundRecord, ServiceState, UtcDateTime, utcnow

# Service-state keys.
FIRST_RUN_AT = "first_run_at"
RECONCILE_WATERMARK = "reconcile_watermark"
RECONCILE_LAST_SUCCESS = "reconcile_last_success"
RECONCILE_LAST_ERROR = "reconcile_last_error"
# When a worker last found Redis without woobird's marker, and what it queued again
# (app.booking.redis_marker).
REDIS_LOST_AT = "redis_lost_at"
REDIS_LOST_REQUEUED = "redis_lost_requeued"


def _insert_for(session: AsyncSession) -> Any:
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


async def record_delivery(
    session: AsyncSession,
    *,
    order_id: int,
    order_number: str,
    date_modified: datetime,
    date_paid: datetime | None,
) -> bool:
    """Record that this version of the order needs booking; True when it is news.

    One atomic statement, so concurrent duplicate deliveries cannot both win: a row is inserted
    for a new order, or updated only when this delivery is newer than the one recorded. Booked
    orders stay booked; a failed or skipped one is queued again, since the shop changed it.
    """
    version = OrderVersion(
        order_id=order_id, order_number=order_number, date_modified=date_modified, date_paid=date_paid
    )
    return order_id in await record_deliveries(session, [version])


async def mark_before_since(
    session: AsyncSession, *, order_id: int, order_number: str, date_modified: datetime, date_paid: datetime
) -> None:
    """Note an order paid before SYNC_SINCE, so status views can say why it has no invoice."""
    insert = _insert_for(session)
    now = utcnow()
    statement = insert(OrderRecord.__table__).values(
        connection_id=connection_of(session),
        order_id=order_id,
        order_number=order_number,
        state=OrderState.BEFORE_SINCE.value,
        date_modified=date_modified,
        date_paid=date_paid,
        attempts=0,
        backfilled=False,
        currency="EUR",
        created_at=now,
        updated_at=now,
    )
    await session.execute(statement.on_conflict_do_nothing(index_elements=["connection_id", "order_id"]))


async def get_order(session: AsyncSession, order_id: int, *, for_update: bool = False) -> OrderRecord | None:
    query = select(OrderRecord).where(OrderRecord.order_id == order_id)
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def update_order(session: AsyncSession, order_id: int, **values: Any) -> None:
    values.setdefault("updated_at", utcnow())
    await session.execute(update(OrderRecord).where(OrderRecord.order_id == order_id).values(**values))


async def update_refund(session: AsyncSession, refund_id: int, **values: Any) -> None:
    values.setdefault("updated_at", utcnow())
    await session.execute(update(RefundRecord).where(RefundRecord.refund_id == refund_id).values(**values))


async def order_of_invoice(session: AsyncSession, invoice_id: str) -> OrderRecord | None:
    """The order whose invoice (the current version's) this Moneybird document is, if woobird booked it."""
    query = select(OrderRecord).where(OrderRecord.invoice_id == invoice_id)
    return (await session.execute(query)).scalars().first()


async def add_event(
    session: AsyncSession,
    *,
    order_id: int,
    step: str,
    message: str = "",
    refund_id: int | None = None,
    at: datetime | None = None,
) -> None:
    """Add an event to the trail; `at` when it happened earlier than it is written (a held step)."""
    event = LedgerEvent(order_id=order_id, refund_id=refund_id, step=step, message=message, at=at or utcnow())
    session.add(event)


async def add_events(
    session: AsyncSession,
    events: Sequence[tuple[str, str, datetime]],
    *,
    order_id: int,
    refund_id: int | None,
) -> None:
    """Add several events (step, message, when) in one statement: one round trip instead of one each
    (the ORM inserts rows one at a time where it must read their ids back, as on SQLite)."""
    rows = [
        {
            "connection_id": connection_of(session),
            "order_id": order_id,
            "refund_id": refund_id,
            "step": step,
            "message": message,
            "at": at,
        }
        for step, message, at in events
    ]
    await session.execute(sql_insert(LedgerEvent), rows)


async def events_for(session: AsyncSession, order_id: int) -> Sequence[LedgerEvent]:
    query = select(LedgerEvent).where(LedgerEvent.order_id == order_id).order_by(LedgerEvent.id)
    return (await session.execute(query)).scalars().all()


async def get_state(session: AsyncSession, key: str) -> str | None:
    query = select(ServiceState.value).where(ServiceState.key == key)
    return (await session.execute(query)).scalar_one_or_none()


async def set_state(session: AsyncSession, key: str, value: str) -> None:
    insert = _insert_for(session)
    now = utcnow()
    statement = insert(ServiceState.__table__).values(
        connection_id=connection_of(session), key=key, value=value, updated_at=now
    )
    statement = statement.on_conflict_do_update(
        index_elements=["connection_id", "key"], set_={"value": statement.excluded.value, "updated_at": now}
    )
    await session.execute(statement)


async def first_run_at(session: AsyncSession) -> datetime:
    """The moment woobird first ran against this database: the default SYNC_SINCE."""
    insert = _insert_for(session)
    now = utcnow()
    await session.execute(
        insert(ServiceState.__table__)
        .values(connection_id=connection_of(session), key=FIRST_RUN_AT, value=now.isoformat(), updated_at=now)
        .on_conflict_do_nothing(index_elements=["connection_id", "key"])
    )
    stored = await get_state(session, FIRST_RUN_AT)
    assert stored is not None
    return datetime.fromisoformat(stored)


async def counts_by_state(session: AsyncSession) -> dict[str, int]:
    """Orders in the ledger per state (every state present, zero when none)."""
    query = select(OrderRecord.state, func.count()).group_by(OrderRecord.state)
    found = {str(state): int(count) for state, count in (await session.execute(query)).all()}
    return {state.value: found.get(state.value, 0) for state in OrderState}


async def recent_orders(
    session: AsyncSession, *, limit: int, state: str | None = None
) -> Sequence[OrderRecord]:
    query = select(OrderRecord).order_by(OrderRecord.updated_at.desc()).limit(limit)
    if state:
        query = query.where(OrderRecord.state == state)
    return (await session.execute(query)).scalars().all()


async def waiting_since(session: AsyncSession, *, older_than: datetime) -> int:
    """How many orders have waited in the queue since before `older_than`: the backlog."""
    query = select(func.count()).where(
        OrderRecord.state.in_([OrderState.QUEUED.value, OrderState.BOOKING.value]),
        OrderRecord.updated_at < older_than,
    )
    return int((await session.execute(query)).scalar_one())


@functools.cache
def _upsert_delivery(dialect: str) -> Any:
    """The upsert behind `record_deliveries`, built once per dialect so SQLAlchemy caches it.

    Executed with a list of rows, SQLAlchemy batches it into multi-row VALUES itself.
    """
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = cast(Table, OrderRecord.__table__)
    statement = insert(table)
    return statement.on_conflict_do_update(
        index_elements=[table.c.connection_id, table.c.order_id],
        set_={
            "date_modified": statement.excluded.date_modified,
            "date_paid": statement.excluded.date_paid,
            "order_number": statement.excluded.order_number,
            "state": case(
                (table.c.state == OrderState.BOOKED.value, table.c.state),
                (table.c.state == OrderState.BOOKING.value, table.c.state),
                (table.c.state == OrderState.AWAITING_PAYMENT.value, table.c.state),
                (table.c.state == OrderState.CREDITED.value, table.c.state),
                else_=OrderState.QUEUED.value,
            ),
            "updated_at": statement.excluded.updated_at,
        },
        # WooCommerce keeps date_modified to the second: an order placed and paid within one second
        # (a payment gateway's callback, an owner quick with the button) comes twice with one date
        # of change, and only the second one carries the paid date. That one is news too.
        where=or_(
            table.c.date_modified < statement.excluded.date_modified,
            and_(
                table.c.date_modified == statement.excluded.date_modified,
                table.c.date_paid.is_(None),
                statement.excluded.date_paid.is_not(None),
            ),
        ),
    ).returning(table.c.order_id)


def _version_rows(versions: Sequence[OrderVersion], *, connection_id: int) -> list[dict[str, Any]]:
    now = utcnow()
    return [
        {
            "connection_id": connection_id,
            "order_id": v.order_id,
            "order_number": v.order_number,
            "state": OrderState.QUEUED.value,
            "date_modified": v.date_modified,
            "date_paid": v.date_paid,
            "attempts": 0,
            "backfilled": False,
            "currency": "EUR",
            "created_at": now,
            "updated_at": now,
        }
        for v in versions
    ]


def _versions_query(order_ids: Sequence[int]) -> Any:
    return select(OrderRecord.order_id, OrderRecord.state, OrderRecord.date_modified).where(
        OrderRecord.order_id.in_(order_ids)
    )


def _versions(rows: Sequence[Any]) -> dict[int, tuple[str, datetime]]:
    return {
        int(oid): (str(state), UtcDateTime().process_result_value(modified, sqlite.dialect()) or modified)
        for oid, state, modified in rows
    }


async def record_deliveries(session: AsyncSession, versions: Sequence[OrderVersion]) -> set[int]:
    """`record_delivery` for many orders in one statement; returns the ids that were news.

    Each order may appear once (PostgreSQL refuses to touch a row twice in one upsert).
    """
    if not versions:
        return set()
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    rows = _version_rows(versions, connection_id=connection_of(session))
    result = await session.execute(_upsert_delivery(dialect), rows)
    return {int(row[0]) for row in result.all()}


async def versions_of(session: AsyncSession, order_ids: Sequence[int]) -> dict[int, tuple[str, datetime]]:
    """State and recorded date_modified of these orders, for deliveries that were not news."""
    if not order_ids:
        return {}
    return _versions((await session.execute(_versions_query(order_ids))).all())


def record_deliveries_in_thread(
    session: Session, versions: Sequence[OrderVersion]
) -> tuple[set[int], dict[int, tuple[str, datetime]]]:
    """`record_deliveries` + `versions_of` on a plain SQLite session, in one transaction.

    aiosqlite hops to its thread for every statement, begin and commit; the webhook's writer
    does the whole batch in one hop instead (see app.booking.intake.IntakeWriter).
    """
    with session.begin():
        rows = _version_rows(versions, connection_id=connection_of(session))
        news = {int(row[0]) for row in session.execute(_upsert_delivery("sqlite"), rows).all()}
        others = [v.order_id for v in versions if v.order_id not in news]
        recorded = _versions(session.execute(_versions_query(others)).all()) if others else {}
    return news, recorded


class OrderVersion:
    """One version of an order (its id and `date_modified`) to record: what a webhook delivery,
    a reconciliation pass or a backfill hands in."""

    __slots__ = ("date_modified", "date_paid", "order_id", "order_number")

    def __init__(
        self, *, order_id: int, order_number: str, date_modified: datetime, date_paid: datetime | None
    ):
        self.order_id = order_id
        self.order_number = order_number
        self.date_modified = date_modified
        self.date_paid = date_paid


async def refund_ids_of(session: AsyncSession, order_ids: Sequence[int]) -> dict[int, set[int]]:
    """The WooCommerce refund ids the ledger knows, per order."""
    query = select(RefundRecord.order_id, RefundRecord.refund_id).where(RefundRecord.order_id.in_(order_ids))
    known: dict[int, set[int]] = {}
    for order_id, refund_id in (await session.execute(query)).all():
        known.setdefault(int(order_id), set()).add(int(refund_id))
    return known
