"""What woobird tells the shop: a private note on the order for every document it booked.

Inside wp-admin an order then shows which Moneybird invoice it became (number, total, a link for the
bookkeeper), and likewise each refund's credit invoice and a rebooking's full credit.

A note is written by a job of its own, queued once the booking is in the ledger, so a shop that is
away or refuses never holds a booking up; a passing failure is retried like a booking's. Exactly one
note per document: the job first reads the order's notes and adopts one that already links the
document (an earlier try whose answer was lost). A note is a comment on the order, not a change to
it — WooCommerce does not save the order, so no delivery comes back of it; and if a plugin saves the
order anyway, woobird finds the order booked and unchanged, and does nothing.
"""

from __future__ import annotations

from typing import Any, Final, Literal

import structlog
from arq.connections import ArqRedis
from redis.exceptions import RedisError

from app.alerts import alert
from app.booking import ledger
from app.constants import ENVIRONMENT_CONNECTION_ID, JOB_SHOP_NOTE
from app.db import transaction
from app.jobs import retry_transient
from app.metrics import JOBS
from app.moneybird.links import document_url
from app.queue import connection_key, connection_kwargs
from app.runtime import Services, services_of
from app.woocommerce.errors import WooCommerceError, WooCommerceNotFound, WooCommerceTransient

log = structlog.get_logger("woobird.worker")

NoteKind = Literal[
    "invoice", "refund_credit", "rebooking_credit", "open_invoice", "invoice_paid", "open_invoice_credited"
]

# What the note says per kind of document. `replaces` is the invoice a full credit cancels.
NOTE_TEXTS: Final[dict[str, str]] = {
    "invoice": "woobird booked this order in Moneybird as invoice {number}, total {total}: {link}",
    "refund_credit": (
        "woobird booked the refund in Moneybird as credit invoice {number}, total {total}: {link}"
    ),
    "rebooking_credit": (
        "woobird credited invoice {replaces} in full in Moneybird as credit invoice {number}, "
        "total {total}, and books the order again as it is now: {link}"
    ),
    "open_invoice": (
        "woobird booked this order in Moneybird as open invoice {number}, total {total}, awaiting "
        "payment: {link}"
    ),
    "invoice_paid": (
        "woobird: invoice {number} ({total}) was paid in Moneybird, so the order is marked paid: {link}"
    ),
    "open_invoice_credited": (
        "woobird credited open invoice {replaces} in full in Moneybird as credit invoice {number}, total "
        "{total}, because the order ended unpaid: {link}"
    ),
}
# A second note about the same document says something new: it is told apart by its own words, not
# by the link the first note carries too.
_SECOND_NOTES: Final = frozenset({"invoice_paid"})

# The ledger events of a note: written (or found written), and not written for good.
NOTE_WRITTEN_EVENT: Final = "shop_note"
NOTE_REFUSED_EVENT: Final = "shop_note_refused"
# One alert for every refused note: the cause (a read-only key, a plugin) is the shop's, not an order's.
NOTES_REFUSED_CAUSE: Final = "shop-notes-refused"


def note_job_id(order_id: int, document_id: str, kind: str = "invoice") -> str:
    """One note job per document: a second queueing while the first waits is dropped by arq."""
    tail = f":{kind}" if kind in _SECOND_NOTES else ""
    return f"shop-note:{order_id}:{document_id}{tail}"


def note_marker(kind: str, link: str) -> str:
    """What a note already written about this document (and kind) is found by."""
    if kind in _SECOND_NOTES:
        return NOTE_TEXTS[kind].split("{link}")[0].split("}")[-1] + link
    return link


def note_text(*, kind: str, number: str, total: str, currency: str, link: str, replaces: str = "") -> str:
    return NOTE_TEXTS[kind].format(number=number, total=f"{currency} {total}", link=link, replaces=replaces)


async def queue_shop_note(
    services: Services,
    *,
    order_id: int,
    kind: NoteKind,
    document_id: str,
    number: str,
    total: str,
    currency: str,
    replaces: str = "",
) -> None:
    """Queue the order's note about a booked document (when SHOP_NOTES is on).

    The booking is already written down; a Redis that refuses now costs the note, never the
    booking, so the failure is logged rather than raised.
    """
    if not services.settings.shop_notes:
        return
    try:
        await enqueue_shop_note(
            services.redis,
            order_id=order_id,
            kind=kind,
            document_id=document_id,
            number=number,
            total=total,
            currency=currency,
            replaces=replaces,
            connection_id=services.connection_id,
        )
    except RedisError as exc:
        log.warning("shop note not queued", order_id=order_id, document_id=document_id, error=str(exc))


async def enqueue_shop_note(
    redis: ArqRedis,
    *,
    order_id: int,
    kind: NoteKind,
    document_id: str,
    number: str,
    total: str,
    currency: str,
    replaces: str = "",
    connection_id: int = ENVIRONMENT_CONNECTION_ID,
) -> bool:
    job = await redis.enqueue_job(
        JOB_SHOP_NOTE,
        order_id,
        kind,
        document_id,
        number,
        total,
        currency,
        replaces,
        _job_id=connection_key(note_job_id(order_id, document_id, kind), connection_id),
        **connection_kwargs(connection_id),
    )
    return job is not None


async def _gave_up(services: Services, args: tuple[Any, ...], message: str) -> None:
    order_id, _kind, document_id = int(args[0]), str(args[1]), str(args[2])
    await _record(services, order_id=order_id, step=NOTE_REFUSED_EVENT, message=f"{document_id}: {message}")


@retry_transient("shop_note", give_up=_gave_up)
async def write_shop_note_job(
    ctx: dict[str, Any],
    order_id: int,
    kind: str,
    document_id: str,
    number: str,
    total: str,
    currency: str,
    replaces: str = "",
) -> str:
    services = services_of(ctx)
    if not services.settings.shop_notes:
        return "shop notes are off (SHOP_NOTES=false)"
    link = document_url(services.settings, document_id)
    text = note_text(kind=kind, number=number, total=total, currency=currency, link=link, replaces=replaces)
    return await write_shop_note(
        services, order_id=order_id, document_id=document_id, link=note_marker(kind, link), text=text
    )


async def write_shop_note(
    services: Services, *, order_id: int, document_id: str, link: str, text: str
) -> str:
    """Write the note unless the order already has one linking the document; returns what happened."""
    try:
        existing = next(
            (note for note in await services.shop.list_order_notes(order_id) if link in note.note), None
        )
        if existing is not None:
            outcome = f"note {existing.id} about {document_id} was already on the order"
        else:
            written = await services.shop.add_order_note(order_id, text)
            outcome = f"note {written.id} about {document_id} added to the order"
    except WooCommerceTransient:
        raise
    except WooCommerceNotFound:
        outcome = f"no note about {document_id}: the order no longer exists in the shop"
        await _record(services, order_id=order_id, step=NOTE_REFUSED_EVENT, message=outcome)
        JOBS.labels(kind="shop_note", outcome="failed", connection=str(services.connection_id)).inc()
        return outcome
    except WooCommerceError as exc:
        outcome = f"no note about {document_id}: the shop refused it ({exc})"
        await _record(services, order_id=order_id, step=NOTE_REFUSED_EVENT, message=outcome)
        log.warning("shop note refused", order_id=order_id, document_id=document_id, error=str(exc))
        JOBS.labels(kind="shop_note", outcome="failed", connection=str(services.connection_id)).inc()
        await alert(
            services,
            cause=NOTES_REFUSED_CAUSE,
            message=f"the shop refused woobird's note on order {order_id} ({exc}). Notes need a "
            "Read/Write key; SHOP_NOTES=false stops woobird writing them. Bookings go on either way.",
        )
        return outcome
    await _record(services, order_id=order_id, step=NOTE_WRITTEN_EVENT, message=outcome)
    JOBS.labels(kind="shop_note", outcome="written", connection=str(services.connection_id)).inc()
    log.info("shop note written", order_id=order_id, document_id=document_id, outcome=outcome)
    return outcome


async def _record(services: Services, *, order_id: int, step: str, message: str) -> None:
    async with transaction(services.sessions) as session:
        await ledger.add_event(session, order_id=order_id, step=step, message=message)
