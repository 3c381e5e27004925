"""Settings the set-up wizard and `woobird setup` write, kept in the database per connection.

A *connection* is one shop with one Moneybird administration. There is one today (id 1), but every
stored setting, every change and the version counter carry its id, so several shops per deployment
can follow without moving data.

What is read where: the environment (and `.env`) wins over the store, the store over the defaults
(see `StoredSettingsSource` in app/settings.py). Secrets are sealed with SECRET_KEY (app/secret_box.py).
Every write bumps the connection's `settings_version`, which running processes compare to reload
(app/settings_live.py), and adds one `settings_changes` row per changed setting: who, when and
which — never the value.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, Literal

from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.constants import ENVIRONMENT_CONNECTION_ID
from app.db import is_missing_table, transaction
from app.schema import Connection, SettingChange, StoredSetting, utcnow
from app.secret_box import SecretBox, SecretKeyError
from app.settings import ConfigurationError, Settings, load_settings, stored_values

DEFAULT_CONNECTION: Final = ENVIRONMENT_CONNECTION_ID

# Every setting the wizard may store, and whether it is a secret (sealed, never shown in full).
# Infrastructure (database, Redis, ports, ADMIN_TOKEN, SECRET_KEY) lives in the environment only.
STORABLE: Final[dict[str, bool]] = {
    "WOOCOMMERCE_URL": False,
    "WOOCOMMERCE_CONSUMER_KEY": True,
    "WOOCOMMERCE_CONSUMER_SECRET": True,
    "WOOCOMMERCE_WEBHOOK_SECRET": True,
    "MONEYBIRD_API_TOKEN": True,
    "MONEYBIRD_REFRESH_TOKEN": True,
    "MONEYBIRD_WEBHOOK_SECRET": True,
    "MONEYBIRD_ADMINISTRATION_ID": False,
    "MONEYBIRD_TAX_RATES": False,
    "MONEYBIRD_LEDGER_ACCOUNT_ID": False,
    "MONEYBIRD_SHIPPING_LEDGER_ACCOUNT_ID": False,
    "MONEYBIRD_WORKFLOW_ID": False,
    "MONEYBIRD_DOCUMENT_STYLE_ID": False,
    "SYNC_SINCE": False,
    "INVOICE_KIND": False,
    "INVOICE_EXACT_VAT": False,
    "PUBLIC_URL": False,
}
Source = Literal["environment", "wizard", "default"]


@dataclass(frozen=True, slots=True)
class Stored:
    """What the store holds for a connection: values as env text, and its version."""

    values: dict[str, str]
    version: int
    sealed: frozenset[str] = frozenset()
    progress: Mapping[str, str] = field(default_factory=dict)  # the wizard's, see app/setup/progress.py


def _aad(connection_id: int, name: str) -> str:
    return f"connection {connection_id} {name}"


def _box(settings: Settings) -> SecretBox:
    return SecretBox(settings.secret_key.get_secret_value())


async def ensure_connection(
    session: AsyncSession, connection_id: int = DEFAULT_CONNECTION, *, name: str | None = None
) -> Connection:
    row = await session.get(Connection, connection_id, with_for_update=True)
    if row is None:
        row = Connection(
            id=connection_id, name=name, settings_version=0, wizard_progress="{}", created_at=utcnow()
        )
        session.add(row)
        await session.flush()
    return row


async def read_version(session: AsyncSession, connection_id: int = DEFAULT_CONNECTION) -> int:
    try:
        version = await session.scalar(
            select(Connection.settings_version).where(Connection.id == connection_id)
        )
    except (OperationalError, ProgrammingError) as exc:
        if is_missing_table(exc):
            return 0
        raise
    return int(version or 0)


async def administrations_of(session: AsyncSession, *, first: Settings) -> dict[int, str]:
    """Every connection's Moneybird administration id; connection 1's as `first` (its settings) has it."""
    query = select(StoredSetting.connection_id, StoredSetting.value).where(
        StoredSetting.name == "MONEYBIRD_ADMINISTRATION_ID"
    )
    found = {int(connection_id): str(value) for connection_id, value in (await session.execute(query)).all()}
    found[DEFAULT_CONNECTION] = first.moneybird_administration_id
    return found


async def read_stored(
    session: AsyncSession, settings: Settings, *, connection_id: int = DEFAULT_CONNECTION
) -> Stored:
    """The stored values, secrets opened with SECRET_KEY (which must then be present and right)."""
    try:
        # Not read_version: on PostgreSQL a missing table aborts the transaction it swallowed it in.
        version = await session.scalar(
            select(Connection.settings_version).where(Connection.id == connection_id)
        )
        progress = await session.scalar(
            select(Connection.wizard_progress).where(Connection.id == connection_id)
        )
        rows = (
            await session.scalars(select(StoredSetting).where(StoredSetting.connection_id == connection_id))
        ).all()
    except (OperationalError, ProgrammingError) as exc:
        if is_missing_table(exc):
            return Stored(values={}, version=0)
        raise
    values: dict[str, str] = {}
    sealed = frozenset(row.name for row in rows if row.sealed)
    box = _box(settings) if sealed else None
    for row in rows:
        if row.name not in STORABLE:
            continue  # written by a newer woobird: not ours to interpret
        if row.sealed:
            assert box is not None
            values[row.name] = box.open(row.value, aad=_aad(connection_id, row.name))
        else:
            values[row.name] = row.value
    return Stored(
        values=values, version=int(version or 0), sealed=sealed, progress=json.loads(progress or "{}")
    )


def with_stored(
    base: Settings, stored: Mapping[str, str], *, connection_id: int = DEFAULT_CONNECTION
) -> Settings:
    """`base` (what the environment and .env set) over `stored`, over the defaults.

    The environment describes connection 1; another connection takes every storable setting
    (its shop, its administration, its secrets) from the store alone, and the rest (database,
    Redis, alerts, …) from the environment.
    """
    if connection_id == DEFAULT_CONNECTION:
        explicit = {name: getattr(base, name) for name in base.model_fields_set}
        with stored_values(stored):
            return load_settings(_env_file=None, **explicit)
    shared = {name: getattr(base, name) for name in base.model_fields_set if name.upper() not in STORABLE}
    with stored_values(stored, own=frozenset(STORABLE)):
        return load_settings(_env_file=None, **shared)


def sources(
    base: Settings, stored: Mapping[str, str], *, connection_id: int = DEFAULT_CONNECTION
) -> dict[str, Source]:
    """Where each setting's value comes from, by environment name (as `with_stored` takes them:
    another connection's storable settings never come from the environment)."""
    found: dict[str, Source] = {}
    for attribute in Settings.model_fields:
        name = attribute.upper()
        own = connection_id != DEFAULT_CONNECTION and name in STORABLE
        if attribute in base.model_fields_set and not own:
            found[name] = "environment"
        elif stored.get(name):
            found[name] = "wizard"
        else:
            found[name] = "default"
    return found


class StoreRefused(ConfigurationError):
    """A write that would leave the settings unusable; nothing was written."""


async def write_settings(
    sessions: async_sessionmaker[AsyncSession],
    *,
    base: Settings,
    values: Mapping[str, str | None],
    actor: str,
    connection_id: int = DEFAULT_CONNECTION,
    connection_name: str | None = None,
) -> list[str]:
    """Store (or, with None/"", clear) these settings; returns the names that changed.

    The whole write is checked first: an unknown name, a malformed value or a secret without a
    strong SECRET_KEY refuses everything, naming the setting, and changes nothing.
    """
    unknown = [name for name in values if name not in STORABLE]
    if unknown:
        raise StoreRefused(dict.fromkeys(unknown, "not a setting the wizard stores"))
    box: SecretBox | None = None
    if any(STORABLE[name] and value for name, value in values.items()):
        box = _box(base)  # raises SecretKeyError naming SECRET_KEY when it cannot protect them
    async with transaction(sessions) as session:
        connection = await ensure_connection(session, connection_id, name=connection_name)
        current = await read_stored(session, base, connection_id=connection_id)
        merged = dict(current.values)
        for name, value in values.items():
            if value:
                merged[name] = value.strip()
            else:
                merged.pop(name, None)
        try:
            with_stored(base, merged, connection_id=connection_id)
        except ConfigurationError as exc:
            raise StoreRefused(exc.problems) from None
        changed = [name for name in values if merged.get(name) != current.values.get(name)]
        now = utcnow()
        for name in changed:
            await _write_one(
                session,
                connection_id=connection_id,
                name=name,
                value=merged.get(name),
                box=box,
                actor=actor,
                now=now,
            )
        if changed:
            connection.settings_version += 1
    return changed


async def _write_one(
    session: AsyncSession,
    *,
    connection_id: int,
    name: str,
    value: str | None,
    box: SecretBox | None,
    actor: str,
    now: datetime,
) -> None:
    row = await session.get(StoredSetting, (connection_id, name))
    if value is None:
        if row is not None:
            await session.delete(row)
        action = "cleared"
    else:
        sealed = STORABLE[name]
        if sealed:
            assert box is not None
            text = box.seal(value, aad=_aad(connection_id, name))
        else:
            text = value
        if row is None:
            session.add(
                StoredSetting(
                    connection_id=connection_id,
                    name=name,
                    value=text,
                    sealed=sealed,
                    updated_at=now,
                    updated_by=actor[:200],
                )
            )
        else:
            row.value, row.sealed, row.updated_at, row.updated_by = text, sealed, now, actor[:200]
        action = "set"
    session.add(
        SettingChange(connection_id=connection_id, name=name, action=action, actor=actor[:200], at=now)
    )


async def recent_changes(
    session: AsyncSession, *, connection_id: int = DEFAULT_CONNECTION, limit: int = 30
) -> Sequence[SettingChange]:
    query = (
        select(SettingChange)
        .where(SettingChange.connection_id == connection_id)
        .order_by(SettingChange.id.desc())
        .limit(limit)
    )
    try:
        return (await session.scalars(query)).all()
    except (OperationalError, ProgrammingError) as exc:
        if is_missing_table(exc):
            return []
        raise


async def bump_version(session: AsyncSession, connection_id: int = DEFAULT_CONNECTION) -> None:
    """Make every process reload (the wizard's progress changed, not a setting)."""
    await ensure_connection(session, connection_id)
    await session.execute(
        update(Connection)
        .where(Connection.id == connection_id)
        .values(settings_version=Connection.settings_version + 1)
    )


def masked(value: str) -> str:
    """A secret as the dashboard shows it: enough to recognise, never enough to use."""
    value = value.strip()
    if len(value) <= 8:
        return "•" * len(value)
    prefix = value[:3] if value[:3] in {"ck_", "cs_"} else ""
    return f"{prefix}…{value[-4:]}"


__all__ = ["SecretKeyError"]
