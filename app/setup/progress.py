"""Where the wizard is: six steps, each done or not, and the one to show next.

A step is done when its settings are usable *and* the wizard verified them (a key that was pasted
but refused by the shop is stored, not done). The progress lives on the connection row, next to
the settings, so every web process and the worker see the same.

Booking waits for the wizard: once it has started, the worker books nothing until the history step
has decided from when to book (`booking_may_start`) — an order must not be booked with the
defaults while the bookkeeper is still choosing the ledger account.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import transaction
from app.i18n import N_
from app.schema import utcnow
from app.settings import Settings
from app.settings_store import DEFAULT_CONNECTION, bump_version, ensure_connection

STEPS: Final[tuple[tuple[str, str], ...]] = (
    ("shop", "WooCommerce"),
    ("products", N_("Products")),
    ("moneybird", "Moneybird"),
    ("bookkeeping", N_("Bookkeeping")),
    ("history", N_("History")),
    ("install", N_("Install")),
)
STEP_KEYS: Final = tuple(key for key, _ in STEPS)
SHOP_SETTINGS: Final = ("WOOCOMMERCE_URL", "WOOCOMMERCE_CONSUMER_KEY", "WOOCOMMERCE_CONSUMER_SECRET")
MONEYBIRD_SETTINGS: Final = ("MONEYBIRD_API_TOKEN", "MONEYBIRD_ADMINISTRATION_ID")
STARTED: Final = "started"


@dataclass(frozen=True)
class WizardState:
    done: dict[str, bool]
    progress: Mapping[str, str]

    @property
    def finished(self) -> bool:
        return self.done["install"]

    def next_step(self) -> str:
        """The first step not done; products wait (when put off) until Moneybird is connected."""
        for key in STEP_KEYS:
            if self.done[key]:
                continue
            if key == "products" and self.progress.get("products") == "later" and not self.done["moneybird"]:
                continue
            return key
        return "install"

    def number(self, step: str) -> int:
        return STEP_KEYS.index(step) + 1


def wizard_state(settings: Settings, progress: Mapping[str, str]) -> WizardState:
    problems = settings.problems()
    done = {
        "shop": not set(SHOP_SETTINGS) & set(problems) and progress.get("shop") == "verified",
        "products": progress.get("products") in {"skipped", "transferred"},
        "moneybird": not set(MONEYBIRD_SETTINGS) & set(problems) and progress.get("moneybird") == "verified",
        "bookkeeping": progress.get("bookkeeping") == "saved",
        "history": progress.get("history") in {"from_now", "backfill"},
        "install": bool(progress.get("install")),
    }
    return WizardState(done=done, progress=progress)


def booking_may_start(progress: Mapping[str, str]) -> bool:
    """False while the wizard has started and not yet decided from when orders are booked."""
    decided = progress.get("history") in {"from_now", "backfill"} or bool(progress.get("install"))
    return not progress.get(STARTED) or decided


def needs_wizard(settings: Settings, progress: Mapping[str, str]) -> bool:
    """The first visit to /admin lands in the wizard: accounts missing, or the wizard half-way."""
    if progress.get("install"):
        return False
    return bool(progress.get(STARTED)) or bool(set(settings.problems()) - {"ADMIN_TOKEN"})


async def record_step(
    sessions: async_sessionmaker[AsyncSession],
    step: str,
    value: str,
    *,
    connection_id: int = DEFAULT_CONNECTION,
) -> dict[str, str]:
    """Write one step's outcome; every process reloads."""
    async with transaction(sessions) as session:
        connection = await ensure_connection(session, connection_id)
        progress = dict(json.loads(connection.wizard_progress or "{}"))
        progress[step] = value
        connection.wizard_progress = json.dumps(progress, sort_keys=True)
        if step == "install":
            connection.set_up_at = utcnow()
        await bump_version(session, connection_id)
    return progress


async def start(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, *, connection_id: int = DEFAULT_CONNECTION
) -> None:
    """The wizard was opened on a deployment without its accounts: booking waits for it from now on.

    A deployment configured in its environment that opens the wizard keeps booking."""
    if not set(settings.problems()) - {"ADMIN_TOKEN"}:
        return
    async with transaction(sessions) as session:
        connection = await ensure_connection(session, connection_id)
        progress = dict(json.loads(connection.wizard_progress or "{}"))
        if STARTED in progress:
            return
        progress[STARTED] = utcnow().isoformat()
        connection.wizard_progress = json.dumps(progress, sort_keys=True)
        await bump_version(session, connection_id)


__all__ = ["AsyncSession"]
