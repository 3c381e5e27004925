"""Connections: one shop booking into one Moneybird administration each, many in one woobird.

Connection 1 is the environment's (`.env`); every other one is added with the settings of its own
(its shop, its administration, their secrets: the names `app.settings_store.STORABLE` lists) and
shares the rest (database, Redis, alerts, …) with the environment. One function per action, called
by every interface (`woobird connections …`): `add_connection`, `list_connections`,
`pause_connection`, `resume_connection`, `remove_connection`, `begin_connection` (the set-up
wizard's: a name first, its settings step by step) and `new_viewer_token` (a shop owner's read-only
sign-in to the dashboard). Each refuses bad input with a sentence naming the fix, and changes nothing
then.

A paused connection's deliveries are still recorded (the ledger holds them as queued) and nothing is
booked; resuming queues what waited. A removed one keeps its ledger, archived, and receives nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.constants import ENVIRONMENT_CONNECTION_ID
from app.db import transaction
from app.i18n import N_, Message
from app.schema import Connection, SettingChange, StoredSetting, utcnow
from app.settings import ConfigurationError, Settings
from app.settings_store import STORABLE, StoreRefused, ensure_connection, with_stored, write_settings
from app.tokens import new_token, weakness

# What a name may be: it goes into the webhook URL (/webhooks/woocommerce/<name>) and commands.
NAME_PATTERN: Final = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
NAME_RULE: Final = N_("1 to 40 lower-case letters, digits and dashes, starting with a letter or digit")
# Settings the environment describes for every connection: an env file may repeat them, unchanged.
_SHARED_REPEATS_OK: Final = frozenset({"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "ADMIN_TOKEN"})
# Where a connection's read-only token is kept: its SHA-256 digest, beside its settings (not a
# setting: app.settings_store reads only the STORABLE names). The token itself is shown once.
VIEWER_TOKEN: Final = "VIEWER_TOKEN"


class ConnectionRefused(Exception):
    """The action was refused; nothing changed. The message names the fix."""

    def __init__(self, message: Message, *, name: str) -> None:
        super().__init__(message)
        self.name = name


@dataclass(frozen=True, slots=True)
class ConnectionView:
    """One connection as `woobird connections list` shows it (no secret)."""

    id: int
    name: str
    shop_url: str
    administration_id: str
    paused: bool
    removed: bool


def display_name(row: Connection) -> str:
    return row.name or ("environment" if row.id == ENVIRONMENT_CONNECTION_ID else str(row.id))


def connection_path(path: str, *, connection_id: int, name: str | None) -> str:
    """A connection's own URL path for a webhook at `path` (/webhooks/woocommerce,
    /webhooks/moneybird): the path itself for connection 1, `<path>/<name>` for another."""
    if connection_id == ENVIRONMENT_CONNECTION_ID:
        return path
    return f"{path}/{name or connection_id}"


def _check_name(name: str) -> None:
    if name == "environment" or name.isdigit():
        # `find_connection` reads "environment" as connection 1 and a number as a connection's id.
        raise ConnectionRefused(
            Message(
                "%(name)s cannot name a connection: it already names one (the environment's, or a "
                "connection's number); choose a name with a letter in it",
                name=repr(name[:60]),
            ),
            name=name[:60],
        )
    if not NAME_PATTERN.fullmatch(name):
        raise ConnectionRefused(
            Message(
                "%(name)s cannot name a connection: use %(rule)s (it goes into the webhook URL)",
                name=repr(name[:60]),
                rule=Message(NAME_RULE),
            ),
            name=name[:60],
        )


def _own_settings(base: Settings, values: Mapping[str, str | None], *, name: str) -> dict[str, str]:
    """The env file's settings of the connection's own; refuses a shared one it changes."""
    own: dict[str, str] = {}
    for key, value in values.items():
        text = (value or "").strip()
        if key in STORABLE:
            if text:
                own[key] = text
            continue
        attribute = key.lower()
        if attribute not in Settings.model_fields or key in _SHARED_REPEATS_OK:
            continue  # not woobird's, or infrastructure every connection shares
        current = getattr(base, attribute)
        shown = current.get_secret_value() if hasattr(current, "get_secret_value") else current
        if text and text != str(shown if shown is not None else ""):
            raise ConnectionRefused(
                Message(
                    "the env file sets %(setting)s, which every connection shares with the environment: "
                    "remove it from the file (or set it in the environment for all)",
                    setting=key,
                ),
                name=name,
            )
    return own


async def add_connection(
    sessions: async_sessionmaker[AsyncSession],
    *,
    base: Settings,
    name: str,
    values: Mapping[str, str | None],
    actor: str,
) -> int:
    """Add a connection with its own settings (`values`: an env file's variables); returns its id."""
    _check_name(name)
    _needs_postgresql(base, name=name)
    own = _own_settings(base, values, name=name)
    connection_id = await _free_id(sessions, name=name)
    try:
        settings = with_stored(base, own, connection_id=connection_id)
    except ConfigurationError as exc:
        raise ConnectionRefused(_problems_sentence(exc.problems), name=name) from None
    problems = {key: why for key, why in settings.problems().items() if key in STORABLE}
    if problems:
        raise ConnectionRefused(_problems_sentence(problems), name=name)
    try:
        await write_settings(
            sessions, base=base, values=own, actor=actor, connection_id=connection_id, connection_name=name
        )
    except StoreRefused as exc:
        raise ConnectionRefused(_problems_sentence(exc.problems), name=name) from None
    return connection_id


SQLITE_HOLDS_ONE: Final = N_(
    "a second connection needs PostgreSQL: set DATABASE_URL to a PostgreSQL database (SQLite "
    "holds one connection), run `woobird migrate`, then add it again"
)


def _needs_postgresql(base: Settings, *, name: str) -> None:
    if base.is_sqlite:
        raise ConnectionRefused(Message(SQLITE_HOLDS_ONE), name=name)


async def _free_id(sessions: async_sessionmaker[AsyncSession], *, name: str) -> int:
    """The id a new connection called `name` gets; refused when the name is taken."""
    async with sessions() as session:
        taken = await session.scalar(select(Connection.id).where(Connection.name == name))
        highest = await session.scalar(select(func.max(Connection.id)))
    if taken is not None:
        raise ConnectionRefused(
            Message(
                "the name %(name)s is taken (connection %(taken)s, kept even when removed): choose another",
                name=repr(name),
                taken=taken,
            ),
            name=name,
        )
    return max(int(highest or 0), ENVIRONMENT_CONNECTION_ID) + 1


async def begin_connection(sessions: async_sessionmaker[AsyncSession], *, base: Settings, name: str) -> int:
    """A new connection without settings yet: the set-up wizard stores them step by step (its shop,
    its administration, …) and it books once the wizard has decided from when. Returns its id."""
    _check_name(name)
    _needs_postgresql(base, name=name)
    connection_id = await _free_id(sessions, name=name)
    progress = json.dumps({"started": utcnow().isoformat()})  # app.setup.progress.STARTED
    async with transaction(sessions) as session:
        session.add(
            Connection(
                id=connection_id, name=name, settings_version=1, wizard_progress=progress, created_at=utcnow()
            )
        )
    return connection_id


def viewer_digest(token: str) -> str:
    """What is kept of a read-only token: a digest (the token has 256 random bits: no salt needed)."""
    return hashlib.sha256(f"woobird-viewer-token:{token.strip()}".encode()).hexdigest()


async def new_viewer_token(
    sessions: async_sessionmaker[AsyncSession], name: str, *, actor: str
) -> tuple[Connection, str]:
    """A new read-only token for this connection's dashboard, returned once; the previous one (and
    every session signed in with it) stops working."""
    row = await find_connection(sessions, name)
    if row.removed_at is not None:
        raise ConnectionRefused(
            Message("connection %(name)s is removed: its dashboard takes no new sign-in", name=repr(name)),
            name=name,
        )
    token = new_token()
    assert weakness(token) is None  # new_token's 256 bits always pass app/tokens.py's rules
    now = utcnow()
    async with transaction(sessions) as session:
        await ensure_connection(session, row.id)
        kept = await session.get(StoredSetting, (row.id, VIEWER_TOKEN))
        if kept is None:
            kept = StoredSetting(connection_id=row.id, name=VIEWER_TOKEN, sealed=False)
            session.add(kept)
        kept.value, kept.updated_at, kept.updated_by = viewer_digest(token), now, actor[:200]
        session.add(
            SettingChange(connection_id=row.id, name=VIEWER_TOKEN, action="set", actor=actor[:200], at=now)
        )
    return row, token


async def viewer_token_digest(session: AsyncSession, connection_id: int) -> str | None:
    """The digest of this connection's read-only token, or None when it has none."""
    found = await session.get(StoredSetting, (connection_id, VIEWER_TOKEN))
    return found.value if found is not None else None


async def viewer_connection(sessions: async_sessionmaker[AsyncSession], token: str) -> Connection | None:
    """The connection (not removed) whose read-only token this is, or None."""
    if weakness(token) is not None:
        return None  # no stored token is weak: not worth a query
    digest = viewer_digest(token)
    async with sessions() as session:
        rows = (
            await session.execute(
                select(StoredSetting.connection_id, StoredSetting.value).where(
                    StoredSetting.name == VIEWER_TOKEN
                )
            )
        ).all()
        found = next((int(c) for c, value in rows if hmac.compare_digest(str(value), digest)), None)
        row = await session.get(Connection, found) if found is not None else None
    return row if row is not None and row.removed_at is None else None


async def has_many(session: AsyncSession) -> bool:
    """Whether any connection besides the environment's was ever added (removed ones count: their
    ledger stays to be seen)."""
    found = await session.scalar(
        select(Connection.id).where(Connection.id != ENVIRONMENT_CONNECTION_ID).limit(1)
    )
    return found is not None


def _problems_sentence(problems: Mapping[str, str]) -> Message:
    named = "; ".join(f"{key}: {why}" for key, why in problems.items())
    return Message(
        "the env file cannot book: %(problems)s. Fix these in the file and add the connection again",
        problems=named,
    )


async def list_connections(
    sessions: async_sessionmaker[AsyncSession], *, base: Settings
) -> list[ConnectionView]:
    """Every connection, the environment's first (its shop and administration as now configured)."""
    async with sessions() as session:
        rows = (await session.scalars(select(Connection).order_by(Connection.id))).all()
        stored = await _stored_plain(session, ("WOOCOMMERCE_URL", "MONEYBIRD_ADMINISTRATION_ID"))
    views = [
        ConnectionView(
            id=ENVIRONMENT_CONNECTION_ID,
            name="environment",
            shop_url=base.woocommerce_url,
            administration_id=base.moneybird_administration_id,
            paused=False,
            removed=False,
        )
    ]
    for row in rows:
        if row.id == ENVIRONMENT_CONNECTION_ID:
            views[0] = ConnectionView(
                id=row.id,
                name=display_name(row),
                shop_url=base.woocommerce_url,
                administration_id=base.moneybird_administration_id,
                paused=row.paused_at is not None,
                removed=False,
            )
            continue
        views.append(
            ConnectionView(
                id=row.id,
                name=display_name(row),
                shop_url=stored.get((row.id, "WOOCOMMERCE_URL"), ""),
                administration_id=stored.get((row.id, "MONEYBIRD_ADMINISTRATION_ID"), ""),
                paused=row.paused_at is not None,
                removed=row.removed_at is not None,
            )
        )
    return views


async def _stored_plain(session: AsyncSession, names: Sequence[str]) -> dict[tuple[int, str], str]:
    query = select(StoredSetting.connection_id, StoredSetting.name, StoredSetting.value).where(
        StoredSetting.name.in_(names), StoredSetting.sealed.is_(False)
    )
    return {(int(c), str(n)): str(v) for c, n, v in (await session.execute(query)).all()}


async def find_connection(sessions: async_sessionmaker[AsyncSession], name: str) -> Connection:
    """The connection called `name` (or with that id); refused, naming `woobird connections list`."""
    async with sessions() as session:
        query = select(Connection).where(Connection.name == name)
        if name.isdigit():
            query = select(Connection).where((Connection.name == name) | (Connection.id == int(name)))
        row = (await session.scalars(query)).first()
    if row is None and name in ("environment", str(ENVIRONMENT_CONNECTION_ID)):
        return Connection(id=ENVIRONMENT_CONNECTION_ID, name=None)
    if row is None:
        raise ConnectionRefused(
            Message(
                "there is no connection %(name)s: `woobird connections list` shows them", name=repr(name[:60])
            ),
            name=name[:60],
        )
    return row


async def _set(
    sessions: async_sessionmaker[AsyncSession], connection_id: int, **values: datetime | None
) -> None:
    async with transaction(sessions) as session:
        row = await session.get(Connection, connection_id, with_for_update=True)
        if row is None:
            row = Connection(id=connection_id, settings_version=0, wizard_progress="{}", created_at=utcnow())
            session.add(row)
        for key, value in values.items():
            setattr(row, key, value)


async def pause_connection(sessions: async_sessionmaker[AsyncSession], name: str) -> Connection:
    """Book nothing for this connection until resumed; its deliveries are still recorded."""
    row = await find_connection(sessions, name)
    if row.removed_at is not None:
        raise ConnectionRefused(
            Message("connection %(name)s is removed: there is nothing to pause", name=repr(name)), name=name
        )
    await _set(sessions, row.id, paused_at=utcnow())
    return row


async def resume_connection(sessions: async_sessionmaker[AsyncSession], name: str) -> Connection:
    """Book again; the caller queues what waited (`app.booking.reconcile.requeue_waiting`)."""
    row = await find_connection(sessions, name)
    if row.removed_at is not None:
        raise ConnectionRefused(
            Message(
                "connection %(name)s is removed: add it again under a new name to book its shop",
                name=repr(name),
            ),
            name=name,
        )
    await _set(sessions, row.id, paused_at=None)
    return row


async def remove_connection(sessions: async_sessionmaker[AsyncSession], name: str) -> Connection:
    """Stop booking and receiving for this connection; its ledger stays, archived.

    The environment's connection always remains (`.env` describes it), so the last one is never
    removed.
    """
    row = await find_connection(sessions, name)
    if row.id == ENVIRONMENT_CONNECTION_ID:
        raise ConnectionRefused(
            Message(
                "the environment's connection stays (it is the last one that always remains, and .env "
                "describes it): to stop its shop, pause it with `woobird connections pause environment`"
            ),
            name=name,
        )
    await _set(sessions, row.id, removed_at=utcnow(), paused_at=row.paused_at or utcnow())
    return row


async def booking_connection_ids(session: AsyncSession) -> list[int]:
    """The connections other than the environment's that book now (neither paused nor removed)."""
    query = (
        select(Connection.id)
        .where(
            Connection.id != ENVIRONMENT_CONNECTION_ID,
            Connection.paused_at.is_(None),
            Connection.removed_at.is_(None),
        )
        .order_by(Connection.id)
    )
    return [int(connection_id) for connection_id in (await session.scalars(query)).all()]


async def is_paused(session: AsyncSession, connection_id: int) -> bool:
    """Whether this connection books nothing now (paused or removed)."""
    row = await session.scalar(
        select(Connection.paused_at.is_not(None) | Connection.removed_at.is_not(None)).where(
            Connection.id == connection_id
        )
    )
    return bool(row)


async def sqlite_connections_problem(session: AsyncSession, *, base: Settings) -> Message | None:
    """Why this ledger cannot carry its connections: SQLite holding more than the environment's
    (copied over, or added before woobird refused it); None when all is well. `woobird check`,
    /readyz and both processes' start say it."""
    if not base.is_sqlite:
        return None
    others = await session.scalar(
        select(func.count())
        .select_from(Connection)
        .where(Connection.id != ENVIRONMENT_CONNECTION_ID, Connection.removed_at.is_(None))
    )
    if not others:
        return None
    return Message(
        "SQLite holds %(count)s connections, but more connections need PostgreSQL (SQLite writes for one "
        "shop at a time): set DATABASE_URL to a PostgreSQL database and run `woobird migrate`, or remove "
        "the others with `woobird connections remove NAME`",
        count=int(others) + 1,
    )


async def say_sqlite_connections_problem(
    sessions: async_sessionmaker[AsyncSession], base: Settings, log: Any
) -> Message | None:
    """A process's start: log `sqlite_connections_problem` as an error, and return it (None: fine,
    or the ledger not readable yet — `woobird migrate` and the readiness check speak to that)."""
    try:
        async with sessions() as session:
            problem = await sqlite_connections_problem(session, base=base)
    except Exception:  # no tables yet, or the database away: other checks name those
        return None
    if problem is not None:
        log.error(str(problem))
    return problem


async def connection_label(session: AsyncSession, connection_id: int) -> str | None:
    """How an alert or a report names a connection to a person: its name (the environment's
    "environment" unless named); None for connection 1 while no other connection exists, as before
    connections did."""
    rows = (await session.execute(select(Connection.id, Connection.name, Connection.removed_at))).all()
    if connection_id == ENVIRONMENT_CONNECTION_ID and not any(
        row.id != ENVIRONMENT_CONNECTION_ID and row.removed_at is None for row in rows
    ):
        return None
    name = next((row.name for row in rows if row.id == connection_id), None)
    return name or ("environment" if connection_id == ENVIRONMENT_CONNECTION_ID else str(connection_id))
