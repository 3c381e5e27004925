"""Typed FastAPI dependencies: what a route may ask for, by name."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated

from arq.connections import ArqRedis
from fastapi import Depends, HTTPException, Request, status
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.booking import ledger
from app.booking.intake import IntakeWriter
from app.connections import NAME_PATTERN, ConnectionRefused, find_connection
from app.constants import ENVIRONMENT_CONNECTION_ID
from app.db import session_factory
from app.delivery_lag import DeliveryLags
from app.i18n import Message
from app.settings import Settings
from app.settings_live import LiveSettings


@dataclass
class AppState:
    """What the web process holds for its lifetime (built in the lifespan, see app.main)."""

    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    redis: ArqRedis
    writer: IntakeWriter
    lags: DeliveryLags
    since_setting: datetime | None = None
    live: LiveSettings | None = None
    _since: datetime | None = None
    # The other connections' webhook intake, built on their first delivery (`connection_intake`).
    connections: dict[int, ConnectionIntake] = field(default_factory=dict)
    _refreshing: asyncio.Task[None] | None = None

    async def refresh_settings_soon(self) -> None:
        """Look at the store without making the request wait, unless the last look is stale.

        At a busy shop's peak a read of the store's version in the request path (once a second) is
        the slowest webhook answer of that second; beside the request it costs the request nothing,
        and the next request uses what changed. After a quiet spell the request waits, so a process
        never serves on settings older than a few seconds.
        """
        if self.live is None or not self.live.due():
            return
        if self.live.stale():
            await self.refresh_settings()
        elif self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.create_task(self.refresh_settings())

    async def finish_refreshing(self) -> None:
        """A stopping process lets the look at the store it started beside the last requests end."""
        if self._refreshing is not None:
            await asyncio.gather(self._refreshing, return_exceptions=True)

    async def refresh_settings(self, *, force: bool = False) -> None:
        """Pick up what the set-up wizard (in this or another process) stored since the last look."""
        if self.live is not None and await self.live.refresh(force=force):
            self.settings = self.live.current
            self.since_setting = self.settings.sync_since

    async def since(self) -> datetime:
        """SYNC_SINCE, or the moment woobird first ran (read once from the ledger, then kept)."""
        if self.since_setting is not None:
            return self.since_setting
        if self._since is None:
            async with self.sessions() as session, session.begin():
                self._since = await ledger.first_run_at(session)
        return self._since


@dataclass
class ConnectionIntake:
    """What the webhook of a connection other than the environment's needs: its settings (kept
    current from the store), its ledger's sessions, and when it first ran."""

    connection_id: int
    live: LiveSettings
    sessions: async_sessionmaker[AsyncSession]
    removed: bool
    _since: datetime | None = None

    async def since(self) -> datetime:
        settings = self.live.current
        if settings.sync_since is not None:
            return settings.sync_since
        if self._since is None:
            async with self.sessions() as session, session.begin():
                self._since = await ledger.first_run_at(session)
        return self._since


async def connection_intake(state: AppState, name: str) -> ConnectionIntake | None:
    """The intake of the connection called `name`, or None when there is none (the name is outside
    input: checked against the names woobird allows before any query)."""
    if not NAME_PATTERN.fullmatch(name):
        return None
    try:
        row = await find_connection(state.sessions, name)
    except ConnectionRefused:
        return None
    if row.id == ENVIRONMENT_CONNECTION_ID:
        return None  # the environment's connection has its own URL, /webhooks/woocommerce
    known = state.connections.get(row.id)
    if known is None:
        sessions = session_factory(state.engine, connection_id=row.id)
        live = LiveSettings(state.settings, state.sessions, connection_id=row.id)
        await live.start()
        known = ConnectionIntake(connection_id=row.id, live=live, sessions=sessions, removed=False)
        state.connections[row.id] = known
    else:
        await known.live.refresh()
    known.removed = row.removed_at is not None
    return known


# Both are async so FastAPI calls them inline rather than through its thread pool.
async def get_app_state(request: Request) -> AppState:
    state: AppState = request.app.state.woobird
    await state.refresh_settings_soon()
    return state


async def get_settings_dep(request: Request) -> Settings:
    state: AppState = request.app.state.woobird
    await state.refresh_settings_soon()
    return state.settings


AppStateDep = Annotated[AppState, Depends(get_app_state)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


async def receiving_connection(state: AppState, name: str) -> ConnectionIntake:
    """The intake a connection's own webhook URL delivers to: 404 for no such connection, 410 for a
    removed one (it receives nothing)."""
    intake = await connection_intake(state, name)
    if intake is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, Message("no such connection"))
    if intake.removed:
        raise HTTPException(status.HTTP_410_GONE, Message("this connection was removed"))
    return intake
