"""Typed FastAPI dependencies: what a route may ask for, by name."""

from __future__ import annotations

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
    await state.refresh_settings()
    return state


async def get_settings_dep(request: Request) -> Settings:
    state: AppState = request.app.state.woobird
    await state.refresh_settings()
    return state.settings


AppStateDep = Annotated[AppState, Depends(get_app_state)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
