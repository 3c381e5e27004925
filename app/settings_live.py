"""The settings of a running process: the environment's, over what the wizard stored, kept current.

Web and worker each hold one `LiveSettings`. It compares the connection's `settings_version` with
the one it loaded at most once a second (one indexed read), and reloads when it moved: a key pasted
in the wizard is used by the next request and the next job, without a restart. A reload that fails
(the database away, a stored value a newer woobird wrote) keeps the settings in use and says so.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from functools import lru_cache
from pathlib import Path

import structlog
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import create_engine, session_factory
from app.settings import ConfigurationError, Settings, load_settings
from app.settings_store import (
    DEFAULT_CONNECTION,
    Source,
    Stored,
    read_stored,
    read_version,
    sources,
    with_stored,
)

log = structlog.get_logger("woobird.settings")

CHECK_EVERY_SECONDS = 1.0
# A request waits for the look at the store only when the last one is older than this many
# `check_every`s (a process that was idle); while requests flow the look runs beside them.
INLINE_AFTER_CHECKS = 5


class LiveSettings:
    def __init__(
        self,
        base: Settings,
        sessions: async_sessionmaker[AsyncSession],
        *,
        connection_id: int = DEFAULT_CONNECTION,
        check_every: float = CHECK_EVERY_SECONDS,
    ) -> None:
        self.base = base
        self.sessions = sessions
        self.connection_id = connection_id
        self.check_every = check_every
        self.current = base
        self.stored = Stored(values={}, version=-1)
        self._checked = 0.0
        self._lock = asyncio.Lock()

    async def load(self) -> Settings:
        """Read the store now; a stored value that does not work raises ConfigurationError, named."""
        async with self.sessions() as session:
            stored = await read_stored(session, self.base, connection_id=self.connection_id)
        self._apply(stored)
        return self.current

    async def start(self) -> Settings:
        """`load` for a starting process: a broken store refuses to start, an absent database does not
        (the web process must answer 503 to webhooks then; the next `refresh` tries again)."""
        try:
            return await self.load()
        except ConfigurationError:
            raise
        except Exception as exc:
            log.error("stored settings not read at start; using the environment's", error=type(exc).__name__)
            return self.current

    def due(self) -> bool:
        return time.monotonic() - self._checked >= self.check_every

    def stale(self) -> bool:
        return time.monotonic() - self._checked >= self.check_every * INLINE_AFTER_CHECKS

    async def refresh(self, *, force: bool = False) -> bool:
        """Reload when the store changed (checked at most every `check_every` s); True if it did."""
        now = time.monotonic()
        if not force and now - self._checked < self.check_every:
            return False
        self._checked = now
        async with self._lock:
            try:
                if not force:
                    async with self.sessions() as session:
                        version = await read_version(session, self.connection_id)
                    if version == self.stored.version:
                        return False
                before = self.stored.version
                await self.load()
            except Exception as exc:
                log.error(
                    "stored settings not reloaded; keeping the ones in use",
                    error=f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                )
                return False
        log.info("settings reloaded", version=self.stored.version, previous=before)
        return True

    def sources(self) -> dict[str, Source]:
        return sources(self.base, self.stored.values, connection_id=self.connection_id)

    def _apply(self, stored: Stored) -> None:
        if self.connection_id != DEFAULT_CONNECTION:
            settings = with_stored(self.base, stored.values, connection_id=self.connection_id)
        else:
            settings = with_stored(self.base, stored.values) if stored.values else self.base
        self.current = settings
        self.stored = stored


def load_with_store(base: Settings, *, connection_id: int = DEFAULT_CONNECTION) -> Settings:
    """`base` over the stored settings (of `connection_id`), for commands that start outside an
    event loop or inside one.

    A SQLite ledger that does not exist yet holds nothing (and is not created by looking).
    """
    if base.is_sqlite and not Path(base.database_url.split("///", 1)[-1]).exists():
        return base

    async def read() -> Settings:
        engine = create_engine(base.database_url)
        try:
            live = LiveSettings(base, session_factory(engine), connection_id=connection_id)
            return await live.load()
        finally:
            await engine.dispose()

    try:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(read())
        # Called from inside a running loop (a command's async body): read on a loop of its own.
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(asyncio.run, read()).result()
    except (OSError, SQLAlchemyError) as exc:
        why = f"cannot read the settings stored by the set-up wizard ({type(exc).__name__})"
        raise ConfigurationError({"DATABASE_URL": why}) from exc


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (the environment over what the wizard stored), complete or refusing."""
    return load_with_store(load_settings()).require_complete()


__all__ = ["ConfigurationError", "LiveSettings", "get_settings", "load_with_store"]
