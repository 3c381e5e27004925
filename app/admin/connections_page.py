"""`/admin` with many shops: every connection at a glance, and pause, resume, remove, a read-only
token and "Add a shop" from the browser.

Each action calls the one function of app/connections.py that `woobird connections …` calls, and a
refusal shows the sentence that function gives. With one connection `/admin` is its dashboard, as
before connections existed; the list is at `/admin/connections` then.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request, Response
from fastapi.responses import RedirectResponse

from app.admin.auth import Admin
from app.admin.guard import AdminDep, CsrfChecked, ReaderDep, Scope, scope_of, state_of
from app.admin.routes import AdminRoute, dashboard, page
from app.alerts import parse_moment
from app.booking import ledger
from app.booking.findings import open_findings
from app.booking.reconcile import requeue_waiting
from app.connections import (
    NAME_PATTERN,
    SQLITE_HOLDS_ONE,
    ConnectionRefused,
    ConnectionView,
    begin_connection,
    display_name,
    find_connection,
    has_many,
    list_connections,
    new_viewer_token,
    pause_connection,
    remove_connection,
    resume_connection,
)
from app.constants import ENVIRONMENT_CONNECTION_ID
from app.db import session_factory
from app.deps import AppState, AppStateDep
from app.health import reconcile_check
from app.i18n import N_, Message, said
from app.schema import OrderState, utcnow

router = APIRouter(prefix="/admin", route_class=AdminRoute, include_in_schema=False)
ConnectionsForm = Annotated[Admin, Depends(CsrfChecked("connections"))]
FormText = Annotated[str, Form()]
FINDINGS_COUNTED = 1000


@dataclass(frozen=True)
class ConnectionSummary:
    """One row of the overview: the connection, and how its ledger is doing."""

    view: ConnectionView
    counts: dict[str, int]
    open_findings: int
    last_reconcile: datetime | None
    reconcile: dict[str, Any]  # app.health's check: not ok after three missed intervals

    @property
    def backlog(self) -> int:
        return self.counts[OrderState.QUEUED.value] + self.counts[OrderState.BOOKING.value]

    @property
    def failures(self) -> int:
        return self.counts[OrderState.FAILED.value]

    @property
    def healthy(self) -> bool:
        return bool(self.reconcile.get("ok")) and not (self.failures or self.open_findings)


async def summaries(state: AppState) -> list[ConnectionSummary]:
    """Every connection with its ledger's counts, each read through sessions bound to it."""
    found = []
    for view in await list_connections(state.sessions, base=state.settings):
        sessions = session_factory(state.engine, connection_id=view.id)
        async with sessions() as session:
            counts = await ledger.counts_by_state(session)
            findings = await open_findings(session, limit=FINDINGS_COUNTED)
            reconciled = await ledger.get_state(session, ledger.RECONCILE_LAST_SUCCESS)
            first_run = await ledger.get_state(session, ledger.FIRST_RUN_AT)
        check = reconcile_check(state, reconciled=reconciled, first_run=first_run)
        found.append(ConnectionSummary(view, counts, len(findings), parse_moment(reconciled), check))
    return found


async def _overview(
    request: Request, state: AppState, admin: Admin, *, status_code: int = 200, **flash: Any
) -> Response:
    context = {
        "admin": admin,
        "active": "connections",
        "connections": await summaries(state),
        "sqlite": state.settings.is_sqlite,
        "sqlite_reason": SQLITE_HOLDS_ONE,
        **flash,
    }
    return page(request, "connections.html", context, status_code=status_code)


@router.get("")
async def overview(
    request: Request,
    reader: ReaderDep,
    state: AppStateDep,
    retried: int | None = None,
    done: int | None = None,
    did: str | None = None,
    name: str | None = None,
) -> Response:
    """Many connections: the list. One: its dashboard, as before connections existed."""
    async with state.sessions() as session:
        many = await has_many(session)
    if reader.viewer_of is not None and (many or reader.viewer_of != ENVIRONMENT_CONNECTION_ID):
        own = await find_connection(state.sessions, str(reader.viewer_of))
        return RedirectResponse(f"/admin/c/{display_name(own)}", status_code=303)  # their own dashboard
    if many and reader.viewer_of is None and "application/json" not in request.headers.get("accept", ""):
        return await _overview(request, state, reader, did=_done(did, name))
    scope: Scope = await scope_of(request, state, reader)
    return await dashboard(request, scope, retried=retried, done=done)


# What the flash after an action says (the action's name in the query: never free text).
_DONE = {
    "paused": N_("Connection %(name)s is paused: its deliveries are recorded, nothing is booked."),
    "resumed": N_("Connection %(name)s is resumed; the orders that waited are queued."),
    "removed": N_("Connection %(name)s is removed; its ledger is kept."),
}


def _done(did: str | None, name: str | None) -> Message | None:
    """The flash of the action just done, for a name woobird could have given (never free text)."""
    if did not in _DONE or not name or not (NAME_PATTERN.fullmatch(name) or name == "environment"):
        return None
    return Message(_DONE[did], name=name)


@router.get("/connections")
async def connections(
    request: Request, admin: AdminDep, state: AppStateDep, did: str | None = None, name: str | None = None
) -> Response:
    """The list, with one connection too: where "Add a shop" starts."""
    return await _overview(request, state, admin, did=_done(did, name))


async def _refused(request: Request, state: AppState, admin: Admin, refused: ConnectionRefused) -> Response:
    return await _overview(request, state, admin, problem=said(refused), status_code=409)


@router.post("/connections/{name}/pause")
async def pause(request: Request, name: str, admin: ConnectionsForm, state: AppStateDep) -> Response:
    try:
        row = await pause_connection(state.sessions, name[:60])
    except ConnectionRefused as refused:
        return await _refused(request, state, admin, refused)
    return _back("paused", display_name(row))


@router.post("/connections/{name}/resume")
async def resume(request: Request, name: str, admin: ConnectionsForm, state: AppStateDep) -> Response:
    try:
        row = await resume_connection(state.sessions, name[:60])
    except ConnectionRefused as refused:
        return await _refused(request, state, admin, refused)
    # What arrived while it was paused is queued again, as `woobird connections resume` does.
    await requeue_waiting(await state_of(state, row), now=utcnow(), reason="connection resumed")
    return _back("resumed", display_name(row))


@router.post("/connections/{name}/remove")
async def remove(
    request: Request, name: str, admin: ConnectionsForm, state: AppStateDep, confirm: FormText = ""
) -> Response:
    if confirm.strip() != name:
        refusal = Message(
            "type the connection's name, %(name)s, in the box to remove it: nothing was removed",
            name=name[:60],
        )
        return await _overview(request, state, admin, problem=refusal, status_code=422)
    try:
        row = await remove_connection(state.sessions, name[:60])
    except ConnectionRefused as refused:
        return await _refused(request, state, admin, refused)
    return _back("removed", display_name(row))


def _back(did: str, name: str) -> Response:
    return RedirectResponse(f"/admin/connections?did={did}&name={name}", status_code=303)


@router.post("/connections/{name}/token")
async def token(request: Request, name: str, admin: ConnectionsForm, state: AppStateDep) -> Response:
    """A new read-only token for the shop owner, shown this once (only its digest is kept)."""
    try:
        row, made = await new_viewer_token(state.sessions, name[:60], actor=_actor(request))
    except ConnectionRefused as refused:
        return await _refused(request, state, admin, refused)
    context = {"admin": admin, "active": "connections", "name": display_name(row), "token": made}
    return page(request, "connection_token.html", context)


def _actor(request: Request) -> str:
    where = request.client.host if request.client else "unknown address"
    return Message("connections overview (admin session, %(where)s)", where=where)


@router.get("/connections/new")
async def new_form(request: Request, admin: AdminDep, state: AppStateDep) -> Response:
    context = {"admin": admin, "active": "connections", "sqlite_reason": SQLITE_HOLDS_ONE}
    return page(request, "connection_new.html", context | {"sqlite": state.settings.is_sqlite})


@router.post("/connections/new")
async def new_connection(
    request: Request, admin: ConnectionsForm, state: AppStateDep, name: FormText = ""
) -> Response:
    """ "Add a shop": the name first (refused as `woobird connections add` refuses it), then the
    set-up wizard of the new connection stores its settings step by step."""
    try:
        await begin_connection(state.sessions, base=state.settings, name=name.strip())
    except ConnectionRefused as refused:
        context = {"admin": admin, "active": "connections", "name": name[:60], "problem": said(refused)}
        context |= {"sqlite": state.settings.is_sqlite, "sqlite_reason": SQLITE_HOLDS_ONE}
        return page(request, "connection_new.html", context, status_code=422)
    return RedirectResponse(f"/admin/c/{name.strip()}/setup", status_code=303)
