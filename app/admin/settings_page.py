"""`/admin/settings`: every setting with where its value comes from, and who changed what when.

Secrets are shown masked (enough to recognise one, never enough to use it), and URLs without the
userinfo, query and fragment that may carry a password; an alert webhook's URL without its path.
The change log names settings and people, never values.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from fastapi import APIRouter, Request, Response
from pydantic import SecretStr

from app.admin.guard import AdminScope
from app.admin.routes import AdminRoute, page
from app.constants import ENVIRONMENT_CONNECTION_ID
from app.i18n import N_
from app.settings import Settings
from app.settings_help import SETTING_HELP
from app.settings_store import masked, recent_changes

# The keys to woobird itself: not even their last characters.
_NEVER_SHOWN = frozenset({"admin_token", "secret_key"})
# URLs that are credentials themselves: a Slack or Teams incoming webhook's path is its secret.
_URL_IS_SECRET = frozenset({"alert_webhook_url"})

router = APIRouter(prefix="/admin", route_class=AdminRoute, include_in_schema=False)


def shown_value(settings: Settings, field: str) -> str:
    """A setting's value as the dashboard may show it."""
    value = getattr(settings, field)
    if field in _NEVER_SHOWN:
        return N_("set (hidden)") if value.get_secret_value() else ""
    if value is None or value == "" or value == [] or value == {}:
        return ""
    if isinstance(value, SecretStr):
        return masked(value.get_secret_value()) if value.get_secret_value() else ""
    if isinstance(value, dict):
        text = json.dumps(value, separators=(",", ":"))
    elif isinstance(value, list):
        text = ",".join(value)
    else:
        text = str(value)
    if "://" in text:
        text = shown_url(text, path=field not in _URL_IS_SECRET)
    return text


def shown_url(url: str, *, path: bool = True) -> str:
    """A URL without its userinfo, query and fragment (each only marked as there), and with `path=False`
    without its path either: what remains names the server, never a credential."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = ("•••@" if "@" in parts.netloc else "") + host + (f":{port}" if port else "")
    shown_path = parts.path if path else ("/…" if parts.path.strip("/") else "")
    query = "…" if parts.query else ""
    fragment = "…" if parts.fragment else ""
    return urlunsplit((parts.scheme, netloc, shown_path, query, fragment))


def settings_rows(settings: Settings, where: dict[str, str]) -> list[dict[str, Any]]:
    return [
        {
            "name": field.upper(),
            "source": where.get(field.upper(), "default"),
            "value": shown_value(settings, field),
            "help": SETTING_HELP.get(field.upper(), ""),
        }
        for field in Settings.model_fields
    ]


@router.get("/settings")
@router.get("/c/{connection}/settings")
async def settings_overview(request: Request, scope: AdminScope) -> Response:
    """Connection 1's settings at /admin/settings, another's at /admin/c/<name>/settings: its own
    shop and administration from the store, the deployment's (database, Redis, …) from the
    environment."""
    state = scope.state
    where: dict[str, str] = dict(state.live.sources()) if state.live else {}
    async with state.sessions() as session:
        changes = await recent_changes(session, connection_id=scope.connection_id)
    context = {
        "rows": settings_rows(state.settings, where),
        "changes": changes,
        "admin": scope.admin,
        "csrf": scope.admin.csrf(state.settings),
        "own_connection": scope.connection_id != ENVIRONMENT_CONNECTION_ID,
    }
    return page(request, "settings.html", context)
