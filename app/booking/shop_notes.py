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

from decimal import Decimal
from typing import Any, Final, Literal

import structlog
from arq.connections import ArqRedis
from redis.exceptions import RedisError

from app.alerts import alert
from app.booking import ledger
from app.constants import ENVIRONMENT_CONNECTION_ID, JOB_SHOP_NOTE
from app.db import transaction
from app.i18n import LANGUAGES, N_, Language, Message, catalog, money_text, translate
from app.jobs import retry_transient
from app.metrics import JOBS
from app.moneybird.links import document_url
from app.queue import connection_key, connection_kwargs, enqueue_jobs
from app.runtime import Services, services_of
from app.woocommerce.errors import WooCommerceError, WooCommerceNotFound, WooCommerceTransient

log = structlog.get_logger("woobird.worker")

NoteKind = Literal[
    "invoice", "refund_credit", "rebooking_credit", "open_invoice", "invoice_paid", "open_invoice_credited"
]

# What the note says per kind of document, in the LANGUAGE setting's language (the shop owner reads
# it in wp-admin). `replaces` is the invoice a full credit cancels.
NOTE_TEXTS: Final[dict[str, str]] = {
    "invoice": N_("woobird booked this order in Moneybird as invoice %(number)s, total %(total)s: %(link)s"),
    "refund_credit": N_(
        "woobird booked the refund in Moneybird as credit invoice %(number)s, total %(total)s: %(link)s"
    ),
    "rebooking_credit": N_(
        "woobird credited invoice %(replaces)s in full in Moneybird as credit invoice %(number)s, "
        "total %(total)s, and books the order again as it is now: %(link)s"
    ),
    "open_invoice": N_(
        "woobird booked this order in Moneybird as open invoice %(number)s, total %(total)s, awaiting "
        "payment: %(link)s"
    ),
    "invoice_paid": N_(
        "woobird: invoice %(number)s (%(total)s) was paid in Moneybird, so the order is marked paid: %(link)s"
    ),
    "open_invoice_credited": N_(
        "woobird credited open invoice %(replaces)s in full in Moneybird as credit invoice %(number)s, "
        "total %(total)s, because the order ended unpaid: %(link)s"
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


def note_markers(kind: str, link: str) -> tuple[str, ...]:
    """What a note already written about this document (and kind) is found by: for a second note its
    own words in either language (LANGUAGE may have changed since), else the link."""
    if kind in _SECOND_NOTES:
        return tuple(
            catalog(language).gettext(NOTE_TEXTS[kind]).split("%(link)s")[0].split(")s")[-1] + link
            for language in LANGUAGES
        )
    return (link,)


def note_text(
    *, kind: str, number: str, total: str, currency: str, link: str, language: Language, replaces: str = ""
) -> str:
    amount = money_text(Decimal(total), language, currency=currency)
    return translate(language, NOTE_TEXTS[kind], number=number, total=amount, link=link, replaces=replaces)


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
    # One round trip that also wakes an idle worker (arq's enqueue_job takes four, and a fifth to wake).
    job_id = connection_key(note_job_id(order_id, document_id, kind), connection_id)
    args = (order_id, kind, document_id, number, total, currency, replaces)
    return bool(await enqueue_jobs(redis, [(job_id, JOB_SHOP_NOTE, args, connection_kwargs(connection_id))]))


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
    text = note_text(
        kind=kind,
        number=number,
        total=total,
        currency=currency,
        link=link,
        language=services.settings.language,
        replaces=replaces,
    )
    return await write_shop_note(
        services, order_id=order_id, document_id=document_id, markers=note_markers(kind, link), text=text
    )


async def write_shop_note(
    services: Services, *, order_id: int, document_id: str, markers: tuple[str, ...], text: str
) -> str:
    """Write the note unless the order already has one linking the document (found by any of
    `markers`); returns what happened."""
    try:
        existing = next(
            (
                note
                for note in await services.shop.list_order_notes(order_id)
                if any(marker in note.note for marker in markers)
            ),
            None,
        )
        if existing is not None:
            outcome = Message(
                "note %(note)s about %(document)s was already on the order",
                note=existing.id,
                document=document_id,
            )
        else:
            written = await services.shop.add_order_note(order_id, text)
            outcome = Message(
                "note %(note)s about %(document)s added to the order", note=written.id, document=document_id
            )
    except WooCommerceTransient:
        raise
    except WooCommerceNotFound:
        outcome = Message(
            "no note about %(document)s: the order no longer exists in the shop", document=document_id
        )
        await _record(services, order_id=order_id, step=NOTE_REFUSED_EVENT, message=outcome)
        JOBS.labels(kind="shop_note", outcome="failed", connection=str(services.connection_id)).inc()
        return outcome
    except WooCommerceError as exc:
        outcome = Message(
            "no note about %(document)s: the shop refused it (%(error)s)", document=document_id, error=exc
        )
        await _record(services, order_id=order_id, step=NOTE_REFUSED_EVENT, message=outcome)
        log.warning("shop note refused", order_id=order_id, document_id=document_id, error=str(exc))
        JOBS.labels(kind="shop_note", outcome="failed", connection=str(services.connection_id)).inc()
        await alert(
            services,
            cause=NOTES_REFUSED_CAUSE,
            message=Message(
                "the shop refused woobird's note on order %(order)s (%(error)s). Notes need a Read/Write "
                "key; SHOP_NOTES=false stops woobird writing them. Bookings go on either way.",
                order=order_id,
                error=exc,
            ),
        )
        return outcome
    await _record(services, order_id=order_id, step=NOTE_WRITTEN_EVENT, message=outcome)
    JOBS.labels(kind="shop_note", outcome="written", connection=str(services.connection_id)).inc()
    log.info("shop note written", order_id=order_id, document_id=document_id, outcome=outcome)
    return outcome


async def _record(services: Services, *, order_id: int, step: str, message: str) -> None:
    async with transaction(services.sessions) as session:
        await ledger.add_event(session, order_id=order_id, step=step, message=message)
