"""Which connection a session reads and writes: every ledger row carries its connection, and every
session is bound to one.

A session made by `app.db.session_factory(engine, connection_id=…, contact_book_id=…)` sees only its
connection's orders, refunds, events, findings, rebookings and service state, and only its
administration's contacts: the listeners below add the connection to every ORM select, update and
delete, and fill it in on every row added. The few Core inserts (the atomic upserts of
app.booking.ledger, findings and refunds) name it themselves through `connection_of`. A session made
without one is connection 1's — the environment's, as before connections existed. Every module that
reads the ledger imports this one (through app.booking.ledger), which registers the listeners.

Contacts belong to the administration, not the shop (app.booking.contacts): every connection booking
into one administration shares one *contact book*, numbered by the lowest of those connections'
ids (`contact_book_of`), so two shops of one administration share a contact per e-mail address and
two administrations never see each other's.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, Final

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, with_loader_criteria

from app.constants import ENVIRONMENT_CONNECTION_ID
from app.db import SESSION_CONNECTION, SESSION_CONTACT_BOOK
from app.schema import ContactRecord, Finding, LedgerEvent, OrderRecord, Rebooking, RefundRecord, ServiceState

# The tables whose rows belong to one connection; contacts belong to a contact book instead.
CONNECTION_TABLES: Final = (OrderRecord, RefundRecord, LedgerEvent, ServiceState, Finding, Rebooking)


def connection_of(session: Any) -> int:
    """The connection a session (async or not) reads and writes."""
    return int(session.info.get(SESSION_CONNECTION, ENVIRONMENT_CONNECTION_ID))


def connection_of_sessions(sessions: Any) -> int:
    """The connection an async_sessionmaker's sessions are bound to (app.db.session_factory);
    connection 1 for a holder without sessions."""
    return int(_info(sessions).get(SESSION_CONNECTION, ENVIRONMENT_CONNECTION_ID))


def contact_book_of_sessions(sessions: Any) -> int:
    return int(_info(sessions).get(SESSION_CONTACT_BOOK, ENVIRONMENT_CONNECTION_ID))


def _info(sessions: Any) -> dict[str, Any]:
    info: dict[str, Any] = (getattr(sessions, "kw", None) or {}).get("info") or {}
    return info


def contact_book_of_session(session: Any) -> int:
    return int(session.info.get(SESSION_CONTACT_BOOK, ENVIRONMENT_CONNECTION_ID))


def contact_book_of(connection_id: int, administrations: Mapping[int, str]) -> int:
    """The contact book of a connection: the lowest id among the connections booking into its
    administration (`administrations`: every connection's administration id, its own included)."""
    administration = administrations.get(connection_id)
    sharing = [
        other for other, theirs in administrations.items() if administration and theirs == administration
    ]
    return min([connection_id, *sharing])


@functools.lru_cache(maxsize=1024)
def _criteria(connection_id: int, contact_book_id: int) -> tuple[Any, ...]:
    """The options that hold a statement to one connection and contact book. Built once per pair:
    building them costs more than the rest of a small query's preparation, on every statement."""
    criteria = [
        with_loader_criteria(table, table.connection_id == connection_id, include_aliases=True)
        for table in CONNECTION_TABLES
    ]
    criteria.append(
        with_loader_criteria(
            ContactRecord, ContactRecord.contact_book_id == contact_book_id, include_aliases=True
        )
    )
    return tuple(criteria)


@event.listens_for(Session, "do_orm_execute")
def _only_this_connection(state: ORMExecuteState) -> None:
    if not (state.is_select or state.is_update or state.is_delete):
        return
    criteria = _criteria(connection_of(state.session), contact_book_of_session(state.session))
    state.statement = state.statement.options(*criteria)


@event.listens_for(Session, "before_flush")
def _rows_join_this_connection(session: Session, flush_context: Any, instances: Any) -> None:
    # A row built without its connection has none yet (the column has no Python default).
    for row in session.new:
        if isinstance(row, CONNECTION_TABLES) and vars(row).get("connection_id") is None:
            row.connection_id = connection_of(session)
        elif isinstance(row, ContactRecord) and vars(row).get("contact_book_id") is None:
            row.contact_book_id = contact_book_of_session(session)
