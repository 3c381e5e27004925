"""A request does not wait for the web process's look at the settings store while requests flow (the
look runs beside it, the next request uses what changed); after a quiet spell it does wait."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from app.deps import AppState
from tests.conftest import make_settings

OLD = make_settings(log_level="INFO")
NEW = make_settings(log_level="DEBUG")


class SlowStore:
    """Stands for LiveSettings over a database that answers only when told to."""

    def __init__(self, *, stale: bool) -> None:
        self.answer = asyncio.Event()
        self.looks = 0
        self._stale = stale
        self._due = True
        self.current = OLD

    def due(self) -> bool:
        return self._due

    def stale(self) -> bool:
        return self._stale

    async def refresh(self, *, force: bool = False) -> bool:
        self.looks += 1
        self._due = False  # as LiveSettings does: the look is taken as it starts
        await self.answer.wait()
        self.current = NEW
        return True


def _state(store: SlowStore) -> AppState:
    nothing: Any = None
    return AppState(
        settings=OLD,
        engine=nothing,
        sessions=nothing,
        redis=nothing,
        writer=nothing,
        lags=nothing,
        live=cast(Any, store),
    )


async def test_while_requests_flow_the_look_at_the_store_runs_beside_them() -> None:
    store = SlowStore(stale=False)
    state = _state(store)
    # Returns although the store has not answered: the request goes on with what it has.
    await asyncio.wait_for(state.refresh_settings_soon(), timeout=5)
    await asyncio.wait_for(state.refresh_settings_soon(), timeout=5)
    assert state.settings is OLD
    assert store.looks == 1  # one look at a time
    store.answer.set()
    await state.finish_refreshing()
    assert state.settings is NEW  # the next request uses the change


async def test_after_a_quiet_spell_the_request_waits_for_the_look() -> None:
    store = SlowStore(stale=True)
    state = _state(store)
    looking = asyncio.create_task(state.refresh_settings_soon())
    await asyncio.sleep(0)
    assert not looking.done()
    store.answer.set()
    await looking
    assert state.settings is NEW
