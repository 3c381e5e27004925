"""Which connection the set-up wizard sets up: connection 1's at /admin/setup, a shop being added at
/admin/c/<name>/setup. Its settings, progress, set-up tasks and webhook are that connection's.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import Depends, Request
from starlette.exceptions import HTTPException

from app.admin.auth import Admin
from app.admin.guard import VIEWER_REFUSED, AdminScope, prefix_of, scope_of, state_of
from app.connections import display_name, find_connection
from app.constants import WEBHOOK_PATH
from app.deps import AppState
from app.i18n import N_
from app.settings_store import DEFAULT_CONNECTION


async def _wizard_state(scope: AdminScope) -> AppState:
    """The state of the connection the page's path names (its settings, sessions bound to it)."""
    return scope.state


WizardStateDep = Annotated[AppState, Depends(_wizard_state)]


def connection_of(state: AppState) -> int:
    return state.live.connection_id if state.live else DEFAULT_CONNECTION


def task_kind(state: AppState, kind: str) -> str:
    """A set-up task's name in Redis: connection 1's unchanged, another's `c<id>:`-prefixed."""
    connection_id = connection_of(state)
    return kind if connection_id == DEFAULT_CONNECTION else f"c{connection_id}:{kind}"


def task_scope(state: AppState) -> dict[str, Any]:
    """What a set-up task needs to work in this connection's ledger and administration."""
    return {"connection_id": connection_of(state), "environment": state.live.base if state.live else None}


async def returning_state(
    request: Request, app_state: AppState, admin: Admin, *, connection_id: int | None = None
) -> tuple[AppState, str]:
    """The state and URL prefix of the connection a returning admin was setting up: the one the
    path names, or (Moneybird returns to one registered address) the one its authorization names."""
    if admin.viewer_of is not None:
        raise HTTPException(403, VIEWER_REFUSED)
    if (
        connection_id is not None
        and connection_id != DEFAULT_CONNECTION
        and "connection" not in request.path_params
    ):
        row = await find_connection(app_state.sessions, str(connection_id))
        return await state_of(app_state, row), f"/admin/c/{display_name(row)}"
    return (await scope_of(request, app_state, admin)).state, prefix_of(request)


# Moneybird's pushes reach connection 1 only (app/moneybird_pushes.py): another shop is not registered.
PUSHES_SERVE_CONNECTION_ONE: Final = N_(
    "Moneybird's webhook serves the first shop only for now: payments of this shop's open invoices are "
    "found by each reconciliation pass."
)


async def webhook_path(state: AppState) -> str:
    """Where this connection's shop delivers: connection 1's at /webhooks/woocommerce, another's at
    /webhooks/woocommerce/<name> (app/webhooks.py tells them apart by it)."""
    if connection_of(state) == DEFAULT_CONNECTION:
        return WEBHOOK_PATH
    row = await find_connection(state.sessions, str(connection_of(state)))
    return f"{WEBHOOK_PATH}/{display_name(row)}"
