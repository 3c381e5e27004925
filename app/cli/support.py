"""What every `woobird` command shares: settings that explain themselves, connections, consoles.

The ledger's sessions, the queue and the worker's services are built here, their shop and
Moneybird clients through `app.clients` (shared with the set-up wizard), so the tests can point
every command at the fake shop and the fake Moneybird by setting `app.clients.transports` instead
of a network. A configuration that cannot work ends every command with the same sentence
(`explain`), never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from contextvars import ContextVar
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from arq.connections import ArqRedis
from rich.console import Console
from rich.markup import escape
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import clients
from app.connection_scope import contact_book_of
from app.connections import ConnectionRefused, find_connection
from app.constants import ENVIRONMENT_CONNECTION_ID
from app.db import create_engine, is_missing_table, session_factory
from app.i18n import said, shown
from app.queue import connect
from app.runtime import Services, build_services, for_connection
from app.settings import ConfigurationError, Settings, load_settings
from app.settings_live import load_with_store
from app.settings_store import administrations_of

T = TypeVar("T")

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


# The connection a command acts on (`--connection NAME`): its id and its contact book.
_CONNECTION: ContextVar[tuple[int, int]] = ContextVar(
    "woobird_cli_connection", default=(ENVIRONMENT_CONNECTION_ID, ENVIRONMENT_CONNECTION_ID)
)

# Its name, for the URLs that are its own (/webhooks/woocommerce/<name>); None for the environment's.
_CONNECTION_NAME: ContextVar[str | None] = ContextVar("woobird_cli_connection_name", default=None)

ConnectionOption = Annotated[
    str | None,
    typer.Option(
        "--connection",
        help="The shop to act on, by its connection's name (`woobird connections list`); "
        "the environment's if left out.",
    ),
]


def use_connection(name: str | None) -> None:
    """Make the command act on the connection called `name` (the environment's when None): its
    settings, its ledger and its services. An unknown name ends the command, naming the fix."""
    _CONNECTION.set((ENVIRONMENT_CONNECTION_ID, ENVIRONMENT_CONNECTION_ID))
    _CONNECTION_NAME.set(None)
    if name is None:
        return
    environment = settings_or_exit()

    async def find() -> tuple[int, int, str | None]:
        async with ledger_sessions(environment) as sessions:
            row = await find_connection(sessions, name)
            async with sessions() as session:
                administrations = await administrations_of(session, first=environment)
        return row.id, contact_book_of(row.id, administrations), row.name

    try:
        connection_id, contact_book_id, found = run(find())
    except ConnectionRefused as refused:
        fail(escape(shown(said(refused), environment.language)), code=2)
    _CONNECTION.set((connection_id, contact_book_id))
    _CONNECTION_NAME.set(None if connection_id == ENVIRONMENT_CONNECTION_ID else found or str(connection_id))


def chosen_connection() -> int:
    return _CONNECTION.get()[0]


def chosen_connection_name() -> str | None:
    """The chosen connection's name (None: the environment's), as its own URLs carry it."""
    return _CONNECTION_NAME.get()


@contextlib.asynccontextmanager
async def ledger_sessions(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """The ledger of the command's connection (see `use_connection`)."""
    connection_id, contact_book_id = _CONNECTION.get()
    engine = create_engine(settings.database_url)
    try:
        yield session_factory(engine, connection_id=connection_id, contact_book_id=contact_book_id)
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def queue(settings: Settings) -> AsyncIterator[ArqRedis]:
    redis = connect(settings.redis_url, tls_verify=settings.redis_tls_verify)
    try:
        yield redis
    finally:
        await redis.aclose()


@contextlib.asynccontextmanager
async def services(settings: Settings, redis: ArqRedis) -> AsyncIterator[Services]:
    """The worker's services (shop, Moneybird under the shared rate limit, ledger) for a command, of
    its connection (see `use_connection`)."""
    connection_id, contact_book_id = _CONNECTION.get()
    environment = None if connection_id == ENVIRONMENT_CONNECTION_ID else load_with_store(load_settings())
    built = await build_services(settings, redis, **clients.transport_overrides(), environment=environment)
    try:
        if connection_id == ENVIRONMENT_CONNECTION_ID:
            yield built
        else:
            yield for_connection(built, connection_id=connection_id, contact_book_id=contact_book_id)
    finally:
        await built.aclose()


def fail(message: str, *, code: int = 1) -> NoReturn:
    err_console.print(f"[bold red]✗[/] {message}")
    raise typer.Exit(code)


def explain(error: ConfigurationError) -> NoReturn:
    """The sentence every command ends with when the settings cannot work: each one named, and how
    to fix them."""
    err_console.print("[bold red]✗[/] woobird's settings are not usable yet:")
    for name, why in error.problems.items():
        err_console.print(f"  [bold]{name}[/]: {why}")
    err_console.print(
        "  Run [bold]woobird setup[/] or edit .env (see .env.example), then [bold]woobird check[/]."
    )
    raise typer.Exit(2)


def settings_or_exit(*, complete: bool = False) -> Settings:
    """The settings; a malformed (or, with `complete`, a missing) one ends the command, named."""
    try:
        settings = load_with_store(load_settings(), connection_id=_CONNECTION.get()[0])
        return settings.require_complete() if complete else settings
    except ConfigurationError as error:
        explain(error)


def require(settings: Settings, *names: str) -> None:
    """End the command when one of these settings (environment names) is missing or a placeholder."""
    problems = settings.problems()
    missing = {name: problems[name] for name in names if name in problems}
    if missing:
        err_console.print("[bold red]✗[/] this command needs these settings:")
        for name, why in missing.items():
            err_console.print(f"  [bold]{name}[/]: {why}")
        raise typer.Exit(2)


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(coroutine)
    except (OperationalError, ProgrammingError) as error:
        if not is_missing_table(error):
            raise
        fail(
            "the ledger at DATABASE_URL has no tables yet: run [bold]woobird migrate[/] "
            "(on Heroku and Fly.io the release phase runs it on every deploy)",
            code=2,
        )


def styled(style: str, text: str) -> str:
    """`text` (already escaped) in a Rich style: markup stays out of the messages people translate."""
    return f"[{style}]{text}[/]"
