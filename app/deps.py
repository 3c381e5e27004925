"""Typed FastAPI dependencies: what a route may ask for, by name."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from arq.connections import ArqRedis
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.booking import ledger
from app.booking.intake import IntakeWriter
from app.delivery_lag import DeliveryLags
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
