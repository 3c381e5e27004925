"""`woobird connections add|list|pause|resume|remove|token`: many shops in one woobird, from a terminal.

Each command calls one function of app.connections; a refusal ends the command with its sentence
(naming the fix) and exit code 2, having changed nothing.
"""

from __future__ import annotations

from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from arq.connections import ArqRedis
from dotenv import dotenv_values
from rich.markup import escape
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.booking.reconcile import requeue_waiting
from app.cli.support import console, fail, ledger_sessions, queue, run, settings_or_exit, styled
from app.connections import (
    ConnectionRefused,
    add_connection,
    list_connections,
    new_viewer_token,
    pause_connection,
    remove_connection,
    resume_connection,
)
from app.constants import WEBHOOK_PATH
from app.db import session_factory
from app.i18n import N_, Language, Message, ntranslate, said, shown, translate
from app.schema import utcnow
from app.settings import Settings

NameArgument = Annotated[str, typer.Argument(help="The connection's name (see `woobird connections list`).")]


def add_command(
    name: Annotated[
        str, typer.Argument(help="A name for the connection: lower-case letters, digits, dashes.")
    ],
    env_file: Annotated[
        Path,
        typer.Option("--env-file", help="The shop's settings, as in .env (its shop, its administration)."),
    ],
) -> None:
    """Add a shop (and its Moneybird administration) as a connection of its own."""
    settings = settings_or_exit()
    if not env_file.is_file():
        fail(
            escape(
                translate(
                    settings.language,
                    "%(file)s is not a file: give the path of the shop's env file (the variables of .env)",
                    file=env_file,
                )
            ),
            code=2,
        )
    values = dotenv_values(env_file)

    async def add() -> int:
        async with ledger_sessions(settings) as sessions:
            return await add_connection(
                sessions, base=settings, name=name, values=values, actor=N_("woobird connections add")
            )

    language = settings.language
    try:
        connection_id = run(add())
    except ConnectionRefused as refused:
        _refuse(refused, language)
    url = (settings.public_url or "https://<your woobird>").rstrip("/") + f"{WEBHOOK_PATH}/{name}"
    added = translate(language, "connection %(name)s added (id %(id)s).", name=name, id=connection_id)
    console.print(styled("green", "✓"), escape(added))
    console.print(" ", escape(translate(language, "Its shop's webhook delivers to %(url)s", url=url)))


def list_command() -> None:
    """Every connection: its id, name, shop, administration and whether it books."""
    settings = settings_or_exit()
    language = settings.language

    async def listed() -> list[tuple[str, ...]]:
        async with ledger_sessions(settings) as sessions:
            views = await list_connections(sessions, base=settings)
        return [
            (
                str(view.id),
                view.name,
                view.shop_url or "—",
                view.administration_id or "—",
                translate(
                    language,
                    N_("removed") if view.removed else N_("paused") if view.paused else N_("booking"),
                ),
            )
            for view in views
        ]

    table = Table(
        "id",
        *(
            translate(language, column)
            for column in (N_("name"), N_("shop"), N_("administration"), N_("state"))
        ),
    )
    for row in run(listed()):
        table.add_row(*row)
    console.print(table)


def pause_command(name: NameArgument) -> None:
    """Book nothing for this connection until it is resumed; its deliveries are still recorded."""
    settings = settings_or_exit()

    async def pause() -> None:
        async with ledger_sessions(settings) as sessions:
            await pause_connection(sessions, name)

    _act(
        pause(),
        settings=settings,
        done=Message("connection %(name)s paused: its deliveries are recorded, nothing is booked", name=name),
    )


def resume_command(name: NameArgument) -> None:
    """Book again, starting with the orders that arrived while it was paused."""
    settings = settings_or_exit()

    async def resume() -> int:
        async with ledger_sessions(settings) as sessions, queue(settings) as redis:
            row = await resume_connection(sessions, name)
            return await _queue_waiting(settings, sessions, redis, connection_id=row.id)

    try:
        queued = run(resume())
    except ConnectionRefused as refused:
        _refuse(refused, settings.language)
    resumed = ntranslate(
        settings.language,
        "connection %(name)s resumed; %(count)s waiting order queued",
        "connection %(name)s resumed; %(count)s waiting orders queued",
        queued,
        name=name,
    )
    console.print(styled("green", "✓"), escape(resumed))


def remove_command(name: NameArgument) -> None:
    """Stop this connection: it receives and books nothing; its ledger is kept, archived."""
    settings = settings_or_exit()

    async def remove() -> None:
        async with ledger_sessions(settings) as sessions:
            await remove_connection(sessions, name)

    _act(
        remove(),
        settings=settings,
        done=Message("connection %(name)s removed; its ledger is kept", name=name),
    )


def token_command(name: NameArgument) -> None:
    """A new read-only token for this shop's dashboard, shown once; the previous one stops working."""
    settings = settings_or_exit()

    async def make() -> str:
        async with ledger_sessions(settings) as sessions:
            _, token = await new_viewer_token(sessions, name, actor=N_("woobird connections token"))
            return token

    try:
        token = run(make())
    except ConnectionRefused as refused:
        _refuse(refused, settings.language)
    made = translate(
        settings.language,
        "read-only token of connection %(name)s (shown once; signing in with it at /admin shows this shop's "
        "dashboard and orders only):",
        name=name,
    )
    console.print(styled("green", "✓"), escape(made))
    console.print(token, markup=False, highlight=False)


def _act(action: Coroutine[Any, Any, None], *, settings: Settings, done: Message) -> None:
    try:
        run(action)
    except ConnectionRefused as refused:
        _refuse(refused, settings.language)
    console.print(styled("green", "✓"), escape(done.text(settings.language)))


def _refuse(refused: ConnectionRefused, language: Language) -> NoReturn:
    fail(escape(shown(said(refused), language)), code=2)


@dataclass
class _ConnectionStores:
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    redis: ArqRedis


async def _queue_waiting(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], redis: ArqRedis, *, connection_id: int
) -> int:
    """Queue the connection's orders that waited in the ledger while it was paused."""
    engine = sessions.kw["bind"]
    stores = _ConnectionStores(settings, session_factory(engine, connection_id=connection_id), redis)
    return await requeue_waiting(stores, now=utcnow(), reason="connection resumed")
