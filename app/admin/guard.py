"""Who may do what under /admin, and which connection a page shows.

Two sign-ins: the admin (ADMIN_TOKEN) may see and do everything; a shop owner signed in with their
connection's read-only token (`woobird connections token NAME`) may see that connection's dashboard
and order pages, and nothing else. Every route asks for one of the dependencies below, and the
default one, `AdminDep` (and `CsrfChecked`, which every form declares), refuses the read-only
sign-in with 403: a route added later is closed to it unless it asks for `ReaderScope` on purpose.

A page of one connection lives under `/admin/c/<name>/…` (connection 1's also under `/admin/…`);
`Scope` carries that connection's state, whose sessions see only its rows (app/connection_scope.py).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from starlette.exceptions import HTTPException

from app.admin.auth import (
    VIEWER_COOKIE_NAME,
    Admin,
    LoginRequired,
    authenticate,
    session_parts,
    valid_csrf,
    valid_viewer_cookie,
    viewer_connection_of,
)
from app.admin.login_guard import client_key, record_failure, refuse_if_locked_out, signed_out
from app.connections import (
    ConnectionRefused,
    display_name,
    find_connection,
    viewer_token_digest,
)
from app.constants import ENVIRONMENT_CONNECTION_ID
from app.deps import AppState, AppStateDep, connection_intake
from app.i18n import N_, said
from app.schema import Connection

VIEWER_REFUSED = N_(
    "this sign-in shows one shop's dashboard and orders only: sign in with the admin token for the rest"
)
CONNECTION_PATH = "/admin/c/"


async def _viewer(request: Request, state: AppState) -> Admin | None:
    """The read-only sign-in the viewer cookie proves, if any (its token still the current one)."""
    cookie = request.cookies.get(VIEWER_COOKIE_NAME)
    connection_id = viewer_connection_of(cookie) if cookie else None
    if cookie is None or connection_id is None:
        return None
    async with state.sessions() as session:
        digest = await viewer_token_digest(session, connection_id)
        row = await session.get(Connection, connection_id)
    if digest is None or (row is not None and row.removed_at is not None):
        return None
    if not valid_viewer_cookie(state.settings, cookie, digest=digest):
        return None
    return Admin(via="viewer", session=cookie, viewer_of=connection_id)


async def admin_of(request: Request, state: AppState) -> Admin:
    """Who is signed in, with what Redis knows: a locked-out client, a wrong token counted, a
    session that was signed out. The admin's cookie or header first, else a read-only sign-in."""
    client = client_key(request.client.host if request.client else None)
    if request.headers.get("authorization"):
        await refuse_if_locked_out(state.redis, client)
    try:
        admin = authenticate(request, state.settings)
    except LoginRequired as exc:
        if exc.guess:
            await record_failure(state, client)
            raise
        viewer = await _viewer(request, state)
        if viewer is None:
            raise
        admin = viewer
    parts = session_parts(admin.session) if admin.session else None
    if parts is not None and await signed_out(state.redis, parts[1]):
        raise LoginRequired(N_("this session was signed out: sign in again"))
    return admin


async def require_reader(request: Request, state: AppStateDep) -> Admin:
    """The admin, or a read-only sign-in (which `Scope` then holds to its own connection)."""
    return await admin_of(request, state)


ReaderDep = Annotated[Admin, Depends(require_reader)]


async def require_admin(admin: ReaderDep) -> Admin:
    if admin.viewer_of is not None:
        raise HTTPException(403, VIEWER_REFUSED)
    return admin


AdminDep = Annotated[Admin, Depends(require_admin)]


class CsrfChecked:
    """The admin of a form post that carries the session's CSRF token (its `csrf` field); 403 without.

    Every form route declares it instead of `AdminDep`: a route cannot forget the check. `where`
    names the page in the refusal ("dashboard", "wizard"). A read-only sign-in is refused too,
    unless `viewers` (signing out is the one form it may send)."""

    def __init__(self, where: str, *, viewers: bool = False) -> None:
        self.where = where
        self.viewers = viewers

    async def __call__(self, request: Request, admin: ReaderDep, state: AppStateDep) -> Admin:
        if admin.viewer_of is not None and not self.viewers:
            raise HTTPException(403, VIEWER_REFUSED)
        given = (await request.form()).get("csrf", "")  # Starlette keeps the parsed form for the route
        if not isinstance(given, str) or not valid_csrf(state.settings, admin, given):
            raise HTTPException(403, _STALE_FORM[self.where])
        return admin


# The refusal of a form without the session's CSRF token, by the page it came from (CsrfChecked's `where`).
_STALE_FORM = {
    "dashboard": N_("the form is stale or was not sent from the dashboard: reload and try again"),
    "wizard": N_("the form is stale or was not sent from the wizard: reload and try again"),
    "connections": N_(
        "the form is stale or was not sent from the connections overview: reload and try again"
    ),
}


DashboardFormAdmin = Annotated[Admin, Depends(CsrfChecked("dashboard"))]


# ── which connection a page shows ────────────────────────────────────────────────────────────


@dataclass
class Scope:
    """The connection a page shows: its state (sessions bound to it), name and URL prefix."""

    admin: Admin
    state: AppState
    connection_id: int
    name: str
    prefix: str  # "/admin" for connection 1's unprefixed pages, else "/admin/c/<name>"

    @property
    def read_only(self) -> bool:
        return self.admin.viewer_of is not None


def prefix_of(request: Request) -> str:
    """The URL prefix of the connection the request's path names."""
    name = request.path_params.get("connection")
    return f"{CONNECTION_PATH}{name}" if isinstance(name, str) else "/admin"


async def state_of(state: AppState, row: Connection) -> AppState:
    """The web state seen from one connection: its settings (kept current from the store), and
    sessions that read and write only its rows. Connection 1's is the process's own."""
    if row.id == ENVIRONMENT_CONNECTION_ID:
        return state
    intake = await connection_intake(state, display_name(row))
    if intake is None:  # the name was checked by find_connection: cannot happen
        raise HTTPException(404, N_("there is no such connection"))
    settings = intake.live.current
    return dataclasses.replace(
        state,
        settings=settings,
        sessions=intake.sessions,
        live=intake.live,
        since_setting=settings.sync_since,
        _since=None,
        _refreshing=None,
    )


async def scope_of(request: Request, state: AppState, admin: Admin) -> Scope:
    name = request.path_params.get("connection")
    if name is None:
        row = Connection(id=ENVIRONMENT_CONNECTION_ID, name=None)
        async with state.sessions() as session:
            row = await session.get(Connection, ENVIRONMENT_CONNECTION_ID) or row
    else:
        if admin.viewer_of is not None:
            # Judged before any lookup: another connection's name is refused exactly like an unknown
            # one, so a read-only sign-in cannot learn which names exist.
            own = await _own_row(state, admin.viewer_of)
            if str(name) not in {display_name(own), str(own.id)}:
                raise HTTPException(403, VIEWER_REFUSED)
        try:
            row = await find_connection(state.sessions, str(name)[:60])
        except ConnectionRefused as refused:
            raise HTTPException(404, said(refused)) from None
    if admin.viewer_of is not None and admin.viewer_of != row.id:
        raise HTTPException(403, VIEWER_REFUSED)
    return Scope(
        admin=admin,
        state=await state_of(state, row),
        connection_id=row.id,
        name=display_name(row),
        prefix=prefix_of(request),
    )


async def _own_row(state: AppState, connection_id: int) -> Connection:
    async with state.sessions() as session:
        row = await session.get(Connection, connection_id)
    return row or Connection(id=connection_id, name=None)


async def reader_scope(request: Request, state: AppStateDep, admin: ReaderDep) -> Scope:
    return await scope_of(request, state, admin)


async def admin_scope(request: Request, state: AppStateDep, admin: AdminDep) -> Scope:
    return await scope_of(request, state, admin)


ReaderScope = Annotated[Scope, Depends(reader_scope)]
AdminScope = Annotated[Scope, Depends(admin_scope)]
