"""`/admin`: the bookkeeper's view — health, orders and their invoices, failures with Retry, the month report.

Server-rendered with Jinja2, no JavaScript. Every route goes through `AdminRoute`, which refuses a
token in the query string (400) and answers missing or wrong credentials with 401 and the login
form, before any ledger row is read.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Form, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from starlette.exceptions import HTTPException

from app.admin.auth import (
    COOKIE_NAME,
    COOKIE_PATH,
    SESSION_SECONDS,
    VIEWER_COOKIE_NAME,
    Admin,
    LoginRequired,
    TokenInQuery,
    is_https,
    refuse_query_token,
    session_cookie,
    session_parts,
    session_seconds_left,
    token_matches,
    viewer_cookie,
)
from app.admin.guard import (
    AdminScope,
    CsrfChecked,
    DashboardFormAdmin,
    ReaderScope,
    Scope,
    prefix_of,
)
from app.admin.login_guard import (
    TooManyFailures,
    client_key,
    record_failure,
    record_success,
    refuse_if_locked_out,
    sign_out,
)
from app.alerts import parse_moment
from app.booking import ledger
from app.booking.findings import dismiss, finding_json, open_findings
from app.booking.order_retry import RETRYABLE, RetryRefused, retry_order
from app.booking.verify import last_verification
from app.connections import display_name, viewer_connection, viewer_token_digest
from app.delivery_lag import LagSummary, recent_lags, seconds_text
from app.deps import AppState, AppStateDep
from app.health import readiness
from app.i18n import (
    LANGUAGE_COOKIE,
    LANGUAGE_COOKIE_SECONDS,
    LANGUAGE_NAMES,
    N_,
    Language,
    Message,
    as_language,
    negotiate,
)
from app.i18n import install as install_i18n
from app.moneybird.links import document_url
from app.moneybird.reference import ReferenceCache
from app.report import REPORT_TIMEZONE, monthly_report
from app.schema import OrderRecord, OrderState
from app.settings import Settings
from app.setup.progress import needs_wizard

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")
RECENT_LIMIT = 40
FAILED_LIMIT = 40
FINDINGS_LIMIT = 100
_SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # Invoice links open Moneybird: the dashboard's URL is none of its business.
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
}


install_i18n(TEMPLATES.env)
TEMPLATES.env.filters["seconds"] = pass_context(
    lambda context, seconds: seconds_text(seconds, as_language(context.get("language")))
)


def page_language(request: Request) -> Language:
    """The browser's language: the header switch's choice, else Accept-Language, else LANGUAGE."""
    settings: Settings = request.app.state.woobird.settings
    return negotiate(
        request.headers.get("accept-language"),
        chosen=request.cookies.get(LANGUAGE_COOKIE),
        default=settings.language,
    )


def _wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def _page(
    request: Request, name: str, context: dict[str, Any] | None = None, *, status_code: int = 200
) -> Response:
    settings: Settings = request.app.state.woobird.settings
    values: dict[str, Any] = {
        "sandbox": settings.woobird_sandbox,
        "admin": None,
        "csrf": "",
        "language": page_language(request),
        "languages": LANGUAGE_NAMES,
        "here": _local_path(request.url.path),
        # Where this connection's pages live (links and forms), and its name when not connection 1's.
        "prefix": prefix_of(request),
        "connection_name": request.path_params.get("connection"),
        "read_only": False,
    }
    values.update(context or {})
    admin = values["admin"]
    if isinstance(admin, Admin) and not values["csrf"]:
        values["csrf"] = admin.csrf(settings)  # every page's Sign out form needs it
    if isinstance(admin, Admin) and admin.viewer_of is not None:
        values["read_only"] = True  # a shop owner's sign-in: no forms that change anything
    return TEMPLATES.TemplateResponse(request, name, values, status_code=status_code)


# The set-up wizard and the settings page render through the same frame.
page = _page


def _local_path(path: str) -> str:
    """Where the language switch returns to: a dashboard path, never another site."""
    return path if path.startswith("/admin") and "//" not in path and "\\" not in path else "/admin"


def _login_required(request: Request, reason: str) -> Response:
    if _wants_json(request):
        response: Response = JSONResponse({"detail": str(reason)}, status_code=401)
    else:
        response = _page(request, "login.html", {"error": reason}, status_code=401)
    response.headers["WWW-Authenticate"] = 'Bearer realm="woobird admin"'
    return response


def _token_in_query(request: Request) -> Response:
    reason = N_("never put the admin token in a URL: sign in with the form (or send an Authorization header)")
    if _wants_json(request):
        return JSONResponse({"detail": reason}, status_code=400)
    return _page(request, "login.html", {"error": reason}, status_code=400)


def _too_many_failures(request: Request, refusal: TooManyFailures) -> Response:
    reason = Message(
        "too many wrong admin tokens from here: try again in %(seconds)s s", seconds=refusal.retry_after
    )
    if _wants_json(request):
        response: Response = JSONResponse({"detail": str(reason)}, status_code=429)
    else:
        response = _page(request, "login.html", {"error": reason}, status_code=429)
    response.headers["Retry-After"] = str(refusal.retry_after)
    return response


def _problem(request: Request, message: str, *, status_code: int) -> Response:
    if _wants_json(request):
        return JSONResponse({"detail": str(message)}, status_code=status_code)
    return _page(request, "message.html", {"message": message}, status_code=status_code)


class AdminRoute(APIRoute):
    """Turns the auth exceptions into 401/400 pages and adds no-store and framing headers."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                response = await handler(request)
            except TokenInQuery:
                response = _token_in_query(request)
            except LoginRequired as exc:
                response = _login_required(request, exc.reason)
            except TooManyFailures as refusal:
                response = _too_many_failures(request, refusal)
            except HTTPException as exc:
                # A Message stays one: the page shows it in the reader's language.
                detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
                response = _problem(request, detail, status_code=exc.status_code)
            for name, value in _SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
            return response

        return guarded


router = APIRouter(prefix="/admin", route_class=AdminRoute, include_in_schema=False)


Handler = TypeVar("Handler", bound=Callable[..., Any])


def both(method: str, path: str) -> Callable[[Handler], Handler]:
    """Register a page of one connection twice: connection 1's at /admin<path> (as before
    connections existed) and any connection's at /admin/c/<name><path> (guard.Scope reads it)."""

    def register(handler: Handler) -> Handler:
        router.api_route(path, methods=[method])(handler)
        router.api_route(f"/c/{{connection}}{path}", methods=[method])(handler)
        return handler

    return register


def invoice_link(record: OrderRecord, settings: Settings) -> str | None:
    """Where the bookkeeper finds the invoice in Moneybird; only http(s) links are ever rendered."""
    if record.invoice_url and urlsplit(record.invoice_url).scheme in {"http", "https"}:
        return record.invoice_url
    if not record.invoice_id:
        return None
    return document_url(settings, record.invoice_id)


def _rows(records: Any, settings: Settings) -> list[dict[str, Any]]:
    return [
        {
            "record": record,
            "link": invoice_link(record, settings),
            "retryable": record.state in RETRYABLE,
        }
        for record in records
    ]


def _client(request: Request) -> str:
    return client_key(request.client.host if request.client else None)


# ── sign in / out ────────────────────────────────────────────────────────────────────────────


@router.get("/login")
async def login_form(request: Request) -> Response:
    refuse_query_token(request)
    return _page(request, "login.html")


@router.post("/login")
async def login(request: Request, state: AppStateDep, token: Annotated[str, Form()] = "") -> Response:
    refuse_query_token(request)
    client = _client(request)
    await refuse_if_locked_out(state.redis, client)  # before the token is compared, even the right one
    if token_matches(state.settings, token):
        name, value, target = COOKIE_NAME, session_cookie(state.settings), "/admin"
    else:
        # A shop owner's read-only token opens that connection's dashboard (app/admin/guard.py).
        row = await viewer_connection(state.sessions, token)
        async with state.sessions() as session:
            digest = await viewer_token_digest(session, row.id) if row is not None else None
        if row is None or digest is None:
            await record_failure(state, client)
            return _login_required(request, N_("that is not the admin token"))
        name, value = VIEWER_COOKIE_NAME, viewer_cookie(state.settings, connection_id=row.id, digest=digest)
        target = f"/admin/c/{display_name(row)}"
    await record_success(state.redis, client)
    response = RedirectResponse(target, status_code=303)
    other = VIEWER_COOKIE_NAME if name == COOKIE_NAME else COOKIE_NAME
    response.delete_cookie(
        other, path=COOKIE_PATH, httponly=True, samesite="strict", secure=is_https(request)
    )
    response.set_cookie(
        name,
        value,
        max_age=SESSION_SECONDS,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=is_https(request),
    )
    return response


# Signing out is the one form a read-only sign-in may send: it changes nothing but its own session.
SignOutForm = Annotated[Admin, Depends(CsrfChecked("dashboard", viewers=True))]


@router.post("/logout")
async def logout(request: Request, admin: SignOutForm, state: AppStateDep) -> Response:
    parts = session_parts(admin.session) if admin.session else None
    if parts is not None:
        # The cookie stays valid until it expires unless it is written down as signed out.
        try:
            await sign_out(state.redis, parts[1], seconds_left=session_seconds_left(admin.session or ""))
        except Exception as exc:
            raise HTTPException(503, N_("could not sign the session out: Redis is unreachable")) from exc
    response = RedirectResponse("/admin/login", status_code=303)
    for name in (COOKIE_NAME, VIEWER_COOKIE_NAME):
        response.delete_cookie(
            name, path=COOKIE_PATH, httponly=True, samesite="strict", secure=is_https(request)
        )
    return response


@router.post("/language")
async def choose_language(
    request: Request, language: Annotated[str, Form()] = "", back: Annotated[str, Form()] = "/admin"
) -> Response:
    """The header's switch: remembered in a cookie, back to the page it was pressed on."""
    response = RedirectResponse(_local_path(back[:300]), status_code=303)
    if language in LANGUAGE_NAMES:
        response.set_cookie(
            LANGUAGE_COOKIE,
            language,
            max_age=LANGUAGE_COOKIE_SECONDS,
            path=COOKIE_PATH,
            samesite="lax",
            secure=is_https(request),
        )
    return response


# ── pages ────────────────────────────────────────────────────────────────────────────────────


async def _delivery_lag(state: AppState, *, connection_id: int) -> LagSummary | None:
    await state.lags.flush()  # this process's own latest deliveries, too
    try:
        return await recent_lags(state.redis, connection_id=connection_id)
    except Exception:  # Redis is down: the health cards already say so
        return None


async def _overview(state: AppState, *, connection_id: int) -> dict[str, Any]:
    healthy, checks = await readiness(state)
    lag = await _delivery_lag(state, connection_id=connection_id)
    async with state.sessions() as session:
        counts = await ledger.counts_by_state(session)
        failed = await ledger.recent_orders(session, limit=FAILED_LIMIT, state=OrderState.FAILED.value)
        recent = await ledger.recent_orders(session, limit=RECENT_LIMIT)
        after_booking = await open_findings(session, limit=FINDINGS_LIMIT)
        verified = await last_verification(session, interval_hours=state.settings.verify_interval_hours)
    return {
        "findings": after_booking,
        "verified": verified,
        "healthy": healthy,
        "checks": checks,
        "last_reconcile": parse_moment(checks.get("reconcile", {}).get("last_success")),
        "counts": counts,
        "lag": lag,
        "failed": _rows(failed, state.settings),
        "recent": _rows(recent, state.settings),
    }


async def dashboard(request: Request, scope: Scope, *, retried: int | None, done: int | None) -> Response:
    """One connection's dashboard: /admin when there is one, /admin/c/<name> for each of many."""
    state = scope.state
    # The first visit after a deploy (or to a shop being added); the wizard is the admin's only.
    progress = state.live.stored.progress if state.live else {}
    if not _wants_json(request) and not scope.read_only and needs_wizard(state.settings, progress):
        return RedirectResponse(f"{scope.prefix}/setup", status_code=303)
    context = await _overview(state, connection_id=scope.connection_id)
    if _wants_json(request):
        return JSONResponse(
            {
                "healthy": context["healthy"],
                "counts": context["counts"],
                "delivery_lag": context["lag"].as_json() if context["lag"] else None,
                "verification": context["verified"].as_json(),
                "failed": [_order_json(row["record"], row["link"]) for row in context["failed"]],
                "recent": [_order_json(row["record"], row["link"]) for row in context["recent"]],
                "findings": [finding_json(finding) for finding in context["findings"]],
            }
        )
    context.update(
        admin=scope.admin, csrf=scope.admin.csrf(state.settings), retried=retried, done=done, shop=scope.name
    )
    return _page(request, "overview.html", context)


@router.get("/c/{connection}")
async def connection_dashboard(
    request: Request, scope: ReaderScope, retried: int | None = None, done: int | None = None
) -> Response:
    return await dashboard(request, scope, retried=retried, done=done)


def _order_json(record: OrderRecord, link: str | None) -> dict[str, Any]:
    return {
        "order_id": record.order_id,
        "order_number": record.order_number,
        "state": record.state,
        "invoice_number": record.invoice_number,
        "invoice_link": link,
        "error": record.error,
        "updated_at": record.updated_at.isoformat(),
    }


def _in_ledger_range(order_id: int) -> int:
    """A path id the ledger's BIGINT can hold; any other cannot be an order woobird knows."""
    if not 0 < order_id < 2**63:
        raise HTTPException(404, Message("order %(order)s is not in the ledger", order=str(order_id)[:24]))
    return order_id


@both("GET", "/orders/{order_id}")
async def order_detail(request: Request, order_id: int, scope: ReaderScope) -> Response:
    _in_ledger_range(order_id)
    state = scope.state
    async with state.sessions() as session:  # bound to the page's connection: only its orders
        record = await ledger.get_order(session, order_id)
        events = await ledger.events_for(session, order_id) if record else []
    if record is None:
        raise HTTPException(404, Message("order %(order)s is not in the ledger", order=order_id))
    link = invoice_link(record, state.settings)
    if _wants_json(request):
        body = _order_json(record, link)
        body["events"] = [{"at": e.at.isoformat(), "step": e.step, "message": e.message} for e in events]
        return JSONResponse(body)
    context = {
        "row": {"record": record, "link": link, "retryable": record.state in RETRYABLE},
        "events": events,
        "vat": record.vat_differences(),
        "admin": scope.admin,
        "csrf": scope.admin.csrf(state.settings),
    }
    return _page(request, "order.html", context)


@both("POST", "/orders/{order_id}/retry")
async def retry(request: Request, order_id: int, admin: DashboardFormAdmin, scope: AdminScope) -> Response:
    _in_ledger_range(order_id)
    try:
        await retry_order(
            scope.state, order_id=order_id, event="retry requested on the dashboard", reason="dashboard retry"
        )
    except RetryRefused as exc:
        return _problem(request, str(exc), status_code=409)
    if _wants_json(request):
        return JSONResponse({"order_id": order_id, "state": OrderState.QUEUED.value}, status_code=202)
    return RedirectResponse(f"{scope.prefix}?retried={order_id}", status_code=303)


@both("POST", "/findings/{finding_id}/done")
async def finding_done(
    request: Request, finding_id: int, admin: DashboardFormAdmin, scope: AdminScope
) -> Response:
    finding = await dismiss(scope.state, finding_id, by="the dashboard")
    if finding is None:
        raise HTTPException(404, Message("there is no finding %(finding)s", finding=finding_id))
    if _wants_json(request):
        return JSONResponse(finding_json(finding))
    return RedirectResponse(f"{scope.prefix}?done={finding_id}", status_code=303)


@both("GET", "/report")
async def report(request: Request, scope: AdminScope, month: str | None = None) -> Response:
    state = scope.state
    month = month or datetime.now(UTC).astimezone(REPORT_TIMEZONE).strftime("%Y-%m")
    try:
        cached = await ReferenceCache(
            state.redis, administration_id=state.settings.moneybird_administration_id
        ).peek()
        result = await monthly_report(
            state.sessions,
            month=month,
            tax_rates=state.settings.moneybird_tax_rates,
            rate_names={rate.id: rate.name for rate in cached.tax_rates} if cached else None,
        )
    except ValueError as exc:
        return _problem(request, str(exc), status_code=400)
    return _page(
        request,
        "report.html",
        {"report": result, "admin": scope.admin, "csrf": scope.admin.csrf(state.settings)},
    )
