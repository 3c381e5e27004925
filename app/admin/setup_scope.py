"""Which connection the set-up wizard sets up: connection 1's at /admin/setup, a shop being added at
/admin/c/<name>/setup. Its settings, progress, set-up tasks and webhook are that connection's.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.exceptions import HTTPException

from app.admin.auth import Admin
from app.admin.guard import VIEWER_REFUSED, AdminScope, prefix_of, scope_of, state_of
from app.connections import display_name, find_connection
from app.constants import WEBHOOK_PATH
from app.deps import AppState
from app.settings_store import DEFAULT_CONNECTION


async def _wizard_state(scope: AdminScope) -> AppState:
    """The state of the connection the page's path names (its settings, sessions bound to it)."""
    return scope.state


WizardStateDep = Annotated[AppState, Depends(_wizard_state)]


def connection_of(state: AppState) -> int:
    return state.live.connection_id if state.live else DEFAULT_CONNECTION


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


async def connection_name_of(state: AppState) -> str | None:
    """The name in this connection's webhook URLs: None for connection 1 (its URLs name none)."""
    if connection_of(state) == DEFAULT_CONNECTION:
        return None
    return display_name(await find_connection(state.sessions, str(connection_of(state))))


async def webhook_path(state: AppState) -> str:
    """Where this connection's shop delivers: connection 1's at /webhooks/woocommerce, another's at
    /webhooks/woocommerce/<name> (app/webhooks.py tells them apart by it)."""
    name = await connection_name_of(state)
    return WEBHOOK_PATH if name is None else f"{WEBHOOK_PATH}/{name}"
