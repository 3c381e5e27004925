"""`/admin/setup`: the six-step set-up wizard, rendered from the functions in app/setup/.

Behind the admin session like every /admin page; every form carries the session's CSRF token and
is refused without it. The one route outside /admin is WooCommerce's key callback, which is not a
browser's request: it is accepted only for an authorization this woobird started (app/setup/shop.py).
No route here shows a secret back in full.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time
from typing import Annotated, Any, TypeVar
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Form, Request, Response
from fastapi.responses import PlainTextResponse, RedirectResponse
from pydantic import SecretStr
from starlette.exceptions import HTTPException

from app.admin.auth import Admin, LoginRequired
from app.admin.guard import AdminDep, CsrfChecked, admin_of, prefix_of, state_of
from app.admin.routes import AdminRoute, page
from app.admin.setup_scope import (
    WizardStateDep,
    connection_name_of,
    connection_of,
    returning_state,
    webhook_path,
)
from app.checks import Checker
from app.clients import shop_client
from app.connections import find_connection
from app.constants import BACKFILL_CALLS_PER_ORDER
from app.deps import AppState, AppStateDep
from app.health import readiness
from app.i18n import N_, Message, said
from app.moneybird.errors import MoneybirdAuthError, MoneybirdError
from app.payment_webhook import payment_pushes_wanted, register_payment_webhook
from app.settings_store import DEFAULT_CONNECTION, masked, write_settings
from app.setup import bookkeeping, moneybird_connect, public_address, shop, tasks
from app.setup.progress import STEP_KEYS, STEPS, WizardState, record_step, start, wizard_state
from app.tokens import new_token
from app.woocommerce.webhook_setup import install_webhook

router = APIRouter(prefix="/admin", route_class=AdminRoute, include_in_schema=False)
callback_router = APIRouter(include_in_schema=False)
FormText = Annotated[str, Form()]
WizardFormAdmin = Annotated[Admin, Depends(CsrfChecked("wizard"))]
Handler = TypeVar("Handler", bound=Callable[..., Any])


def wizard_route(method: str, path: str) -> Callable[[Handler], Handler]:
    """A wizard page, for connection 1 (/admin/setup…) and any connection (/admin/c/<name>/setup…)."""

    def register(handler: Handler) -> Handler:
        router.api_route(f"/setup{path}", methods=[method])(handler)
        router.api_route(f"/c/{{connection}}/setup{path}", methods=[method])(handler)
        return handler

    return register


# ── what every step page shares ──────────────────────────────────────────────────────────────


def _wizard(state: AppState) -> WizardState:
    progress = state.live.stored.progress if state.live else {}
    return wizard_state(state.settings, progress)


def _render(
    request: Request,
    state: AppState,
    admin: Admin,
    step: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
    template: str | None = None,
) -> Response:
    wizard = _wizard(state)
    values: dict[str, Any] = {
        "active": "setup",
        "admin": admin,
        "csrf": admin.csrf(state.settings),
        "steps": STEPS,
        "wizard": wizard,
        "step": step,
        "number": wizard.number(step),
        "problems": [],
        "address": {
            "confirmed": state.settings.public_url or "",
            "suggested": public_address.suggestion(request.url.scheme, request.headers.get("host", "")),
            "from_environment": _from_environment(state, "PUBLIC_URL"),
        },
    }
    values.update(context or {})
    return page(request, template or f"setup_{step}.html", values, status_code=status_code)


def _actor(request: Request) -> str:
    where = request.client.host if request.client else "unknown address"
    return Message("set-up wizard (admin session, %(where)s)", where=where)


def _from_environment(state: AppState, name: str) -> bool:
    # The environment describes connection 1 only: an added shop's settings all come from the store.
    if connection_of(state) != DEFAULT_CONNECTION:
        return False
    return bool(state.live and state.live.sources().get(name) == "environment")


ADDRESS_FROM_ENVIRONMENT = N_("PUBLIC_URL is set in the environment: change woobird's address there")
CONFIRM_ADDRESS_FIRST = N_(
    "confirm woobird's own address first (at the top of this page): the shop and Moneybird send you, "
    "the key and the orders there."
)


def _public_url(state: AppState) -> str:
    """Where the shop and Moneybird reach this woobird: PUBLIC_URL, as the admin confirmed it (or set
    it in the environment); never the request's Host header. HTTPException when there is none yet."""
    if not state.settings.public_url:
        raise HTTPException(409, CONFIRM_ADDRESS_FIRST)
    return state.settings.public_url


async def _store(request: Request, state: AppState, values: dict[str, str | None]) -> None:
    base = state.live.base if state.live else state.settings
    await write_settings(
        state.sessions, base=base, values=values, actor=_actor(request), connection_id=connection_of(state)
    )
    await state.refresh_settings(force=True)


async def _step_done(state: AppState, step: str, value: str) -> None:
    await record_step(state.sessions, step, value, connection_id=connection_of(state))
    await state.refresh_settings(force=True)


def _leave_for(
    request: Request, state: AppState, admin: Admin, step: str, *, target: str, where: str, heading: str
) -> Response:
    """Send the browser to the shop's or Moneybird's approval page. A page that moves on by itself,
    not a redirect: the pages' CSP lets forms post to woobird only, and that covers redirects."""
    context = {"target": target, "where": where, "heading": heading}
    return _render(request, state, admin, step, context, template="setup_leave.html")


def _next(request: Request, state: AppState) -> RedirectResponse:
    return RedirectResponse(f"{prefix_of(request)}/setup/{_wizard(state).next_step()}", status_code=303)


async def _returning_admin(request: Request, state: AppStateDep) -> Admin | None:
    """The admin coming back from the shop's or Moneybird's page, if the browser sent the session.

    The session cookie is SameSite=Strict, so a navigation started on another site arrives without
    it: such a request gets a page that reloads itself, and that reload, started on woobird's own
    page, carries the cookie (`_bounce`)."""
    try:
        return await admin_of(request, state)
    except LoginRequired:
        if request.query_params.get("bounced"):
            raise
        return None


ReturningAdmin = Annotated[Admin | None, Depends(_returning_admin)]


def _bounce(request: Request) -> Response:
    target = f"{request.url.path}?{request.url.query}&bounced=1"
    return page(request, "setup_bounce.html", {"target": target})


@wizard_route("GET", "")
async def setup_start(request: Request, admin: AdminDep, state: WizardStateDep) -> Response:
    await start(state.sessions, state.settings, connection_id=connection_of(state))
    await state.refresh_settings(force=True)
    return _next(request, state)


@wizard_route("POST", "/address")
async def address_confirm(
    request: Request,
    admin: WizardFormAdmin,
    state: WizardStateDep,
    public_url: FormText = "",
    back: FormText = "",
) -> Response:
    """The admin confirms woobird's own address: stored as PUBLIC_URL, used from now on."""
    if _from_environment(state, "PUBLIC_URL"):
        raise HTTPException(409, ADDRESS_FROM_ENVIRONMENT)
    url = public_address.normalise(public_url)
    problem = public_address.problem(url)
    if problem:
        raise HTTPException(422, problem)
    await _store(request, state, {"PUBLIC_URL": url})
    return RedirectResponse(
        f"{prefix_of(request)}/setup/{back if back in STEP_KEYS else 'shop'}", status_code=303
    )


# ── 1. WooCommerce ───────────────────────────────────────────────────────────────────────────


def _shop_context(state: AppState) -> dict[str, Any]:
    s = state.settings
    key = s.woocommerce_consumer_key.get_secret_value()
    return {"shop_url": s.woocommerce_url, "key_shown": masked(key) if key else ""}


@wizard_route("GET", "/shop")
async def shop_page(request: Request, admin: AdminDep, state: WizardStateDep) -> Response:
    return _render(request, state, admin, "shop", _shop_context(state))


@wizard_route("POST", "/shop")
async def shop_connect(
    request: Request, admin: WizardFormAdmin, state: WizardStateDep, shop_url: FormText = ""
) -> Response:
    url = shop.normalise_shop_url(shop_url)
    base = state.settings.public_url or ""
    problems = _pinned_shop_problems(state, url)
    if not problems and not base:
        problems = [CONFIRM_ADDRESS_FIRST]
    if not problems and urlsplit(base).scheme != "https":
        problems = [
            Message(
                "the shop hands its keys only to an https:// address, and woobird's address is %(base)s: "
                "confirm its https:// address above (or set PUBLIC_URL), or paste a key below.",
                base=base,
            )
        ]
    if not problems:
        problems = await shop.probe_shop(url, allowed=shop.allowed_addresses(state.settings))
    if problems:
        context = _shop_context(state) | {"shop_url": url, "problems": problems}
        return _render(request, state, admin, "shop", context, status_code=422)
    # The address is stored only with the keys this shop hands out (the callback): until then the
    # keys of the shop connected before stay with that shop's address.
    token = await shop.begin_authorization(
        state.redis, shop_url=url, session=admin.session, connection_id=connection_of(state)
    )
    target = shop.authorize_url(
        url,
        state=token,
        # connection 1's return page is shop.RETURN_PATH; an added shop's is under its own prefix
        return_url=f"{base}{prefix_of(request)}/setup/shop/return",
        callback_url=f"{base}{shop.CALLBACK_PATH}",
    )
    return _leave_for(
        request,
        state,
        admin,
        "shop",
        target=target,
        where=N_("your shop"),
        heading=N_("Connect your WooCommerce shop"),
    )


@callback_router.post(shop.CALLBACK_PATH)
async def shop_callback(request: Request) -> Response:
    """WooCommerce's server POSTs the key pair here; exactly 200 keeps the key, anything else drops it."""
    state: AppState = request.app.state.woobird
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > shop.CALLBACK_MAX_BYTES:
            return PlainTextResponse("too large", status_code=413)
    try:
        keys = await shop.accept_callback(state.redis, body)
    except shop.CallbackRefused as exc:
        return PlainTextResponse(str(exc), status_code=403)
    actor = N_("WooCommerce app authorization (approved in wp-admin, started in the set-up wizard)")
    if keys.connection_id != DEFAULT_CONNECTION:  # a shop being added: its keys are its own
        state = await state_of(state, await find_connection(state.sessions, str(keys.connection_id)))
    await _store_shop(
        state,
        shop_url=keys.shop_url,
        consumer_key=keys.consumer_key,
        consumer_secret=keys.consumer_secret,
        actor=actor,
    )
    return PlainTextResponse("ok", status_code=200)


def _pinned_shop_problems(state: AppState, url: str) -> list[str]:
    """A shop the wizard may not connect: the environment holds the keys (they would go to the new
    address), or names another shop (the wizard's address would never be used)."""
    if _from_environment(state, "WOOCOMMERCE_CONSUMER_KEY") or _from_environment(
        state, "WOOCOMMERCE_CONSUMER_SECRET"
    ):
        return [
            Message(
                "the shop's key is set in the environment (WOOCOMMERCE_CONSUMER_KEY and _SECRET): change the "
                "shop there, WOOCOMMERCE_URL together with its keys."
            )
        ]
    current = state.settings.woocommerce_url
    if _from_environment(state, "WOOCOMMERCE_URL") and url != current:
        return [
            Message(
                "WOOCOMMERCE_URL is set in the environment (%(url)s): change the shop there.", url=current
            )
        ]
    return []


async def _store_shop(
    state: AppState, *, shop_url: str, consumer_key: str, consumer_secret: str, actor: str
) -> None:
    """The shop's address with the keys that shop approved, never one without the other; a new shop
    also retires the webhook secret, which belongs to the shop it was given to."""
    current = state.settings
    values: dict[str, str | None] = {
        "WOOCOMMERCE_URL": shop_url,
        "WOOCOMMERCE_CONSUMER_KEY": consumer_key,
        "WOOCOMMERCE_CONSUMER_SECRET": consumer_secret,
    }
    if current.woocommerce_url and current.woocommerce_url != shop_url:
        values["WOOCOMMERCE_WEBHOOK_SECRET"] = None
        old_secret = current.woocommerce_webhook_secret.get_secret_value()
        if old_secret:
            await record_step(
                state.sessions,
                shop.RETIRED_SECRET,
                shop.secret_mark(old_secret),
                connection_id=connection_of(state),
            )
    base = state.live.base if state.live else state.settings
    await write_settings(
        state.sessions, base=base, values=values, actor=actor, connection_id=connection_of(state)
    )
    await state.refresh_settings(force=True)


@wizard_route("GET", "/shop/return")
async def shop_return(
    request: Request, returning: ReturningAdmin, app_state: AppStateDep, success: str = "", user_id: str = ""
) -> Response:
    if returning is None:
        return _bounce(request)
    admin = returning
    state, _ = await returning_state(request, app_state, admin)
    outcome = await shop.authorization_outcome(state.redis, state=user_id, session=admin.session)
    if success != "1":
        await shop.forget_authorization(state.redis, state=user_id, session=admin.session)
        problems = [
            N_(
                "the shop did not hand out a key: access was denied on WooCommerce's page. Press Connect "
                "again and choose Approve (you need to be signed in as a shop manager or administrator), "
                "or paste a key below."
            )
        ]
        return _render(
            request, state, admin, "shop", _shop_context(state) | {"problems": problems}, status_code=422
        )
    if outcome != "granted":
        problems = [
            Message(
                "the shop says it approved, but its key never reached woobird (%(outcome)s). The shop must "
                "be able to reach this woobird over https; press Connect again, or paste a key.",
                outcome=outcome or "—",
            )
        ]
        return _render(
            request, state, admin, "shop", _shop_context(state) | {"problems": problems}, status_code=422
        )
    return await _verify_shop(request, state, admin)


async def _verify_shop(request: Request, state: AppState, admin: Admin) -> Response:
    problems = await shop.verify_keys(state.settings, allowed=shop.allowed_addresses(state.settings))
    if problems:
        return _render(
            request, state, admin, "shop", _shop_context(state) | {"problems": problems}, status_code=422
        )
    await _step_done(state, "shop", "verified")
    return _next(request, state)


@wizard_route("POST", "/shop/keys")
async def shop_keys(
    request: Request,
    admin: WizardFormAdmin,
    state: WizardStateDep,
    shop_url: FormText = "",
    consumer_key: FormText = "",
    consumer_secret: FormText = "",
) -> Response:
    url = shop.normalise_shop_url(shop_url or state.settings.woocommerce_url)
    key, secret = consumer_key.strip(), consumer_secret.strip()
    allowed = shop.allowed_addresses(state.settings)
    problems = _pinned_shop_problems(state, url) or await shop.probe_shop(url, allowed=allowed)
    well_formed = all(
        value[:3] == prefix and 8 < len(value) <= 128 and value.isprintable()
        for value, prefix in ((key, "ck_"), (secret, "cs_"))
    )
    if not problems and not well_formed:
        problems = [
            N_("paste both halves of the key: the consumer key starts with ck_, the secret with cs_.")
        ]
    if not problems:
        probe = state.settings.model_copy(
            update={
                "woocommerce_url": url,
                "woocommerce_consumer_key": SecretStr(key),
                "woocommerce_consumer_secret": SecretStr(secret),
            }
        )
        problems = await shop.verify_keys(probe, allowed=allowed)
    if problems:  # nothing stored: a key the shop refuses is no use to anyone
        context = _shop_context(state) | {"shop_url": url, "problems": problems}
        return _render(request, state, admin, "shop", context, status_code=422)
    await _store_shop(state, shop_url=url, consumer_key=key, consumer_secret=secret, actor=_actor(request))
    await _step_done(state, "shop", "verified")
    return _next(request, state)


# ── 2. Products ──────────────────────────────────────────────────────────────────────────────


@wizard_route("GET", "/products")
async def products_page(request: Request, admin: AdminDep, state: WizardStateDep) -> Response:
    context: dict[str, Any] = {
        "preview": await tasks.read_task(state.redis, "products-preview", connection_id=connection_of(state)),
        "transfer": await tasks.read_task(state.redis, "products", connection_id=connection_of(state)),
        "accounts": [],
        "ledger_account": state.settings.moneybird_ledger_account_id or "",
    }
    if _wizard(state).done["moneybird"]:
        try:  # products are booked on a revenue account: asked here when there is a choice
            context["accounts"] = (await bookkeeping.load_choices(state.settings)).accounts
        except bookkeeping.ChoicesUnavailable as exc:
            context["problems"] = [said(exc)]
    return _render(request, state, admin, "products", context)


@wizard_route("POST", "/products")
async def products_action(
    request: Request,
    admin: WizardFormAdmin,
    state: WizardStateDep,
    action: FormText = "",
    ledger_account: FormText = "",
) -> Response:
    if ledger_account.strip().isdigit():
        await _store(request, state, {"MONEYBIRD_LEDGER_ACCOUNT_ID": ledger_account.strip()})
    if action in ("skip", "later"):
        await _step_done(state, "products", "skipped" if action == "skip" else "later")
        return _next(request, state)
    if action == "done":
        await _step_done(state, "products", "transferred")
        return _next(request, state)
    if action not in ("preview", "transfer"):
        raise HTTPException(400, N_("unknown action"))
    if not _wizard(state).done["moneybird"]:
        raise HTTPException(
            409, N_("connect Moneybird first (step 3): the preview asks it which products exist")
        )
    # The worker runs it (app/setup/task_jobs.py); this only queues it, once.
    kind = "products-preview" if action == "preview" else "products"
    await tasks.start_task(state.redis, kind, connection_id=connection_of(state))
    return RedirectResponse(f"{prefix_of(request)}/setup/products", status_code=303)


@wizard_route("POST", "/tasks/{kind}/cancel")
async def cancel_task(request: Request, admin: WizardFormAdmin, state: WizardStateDep, kind: str) -> Response:
    """Stop a product transfer or backfill (or their previews) after the product or order it is on."""
    if kind not in tasks.KINDS:
        raise HTTPException(404, N_("no such task"))
    await tasks.cancel_task(state.redis, kind, connection_id=connection_of(state))
    return RedirectResponse(f"{prefix_of(request)}/setup/" + kind.removesuffix("-preview"), status_code=303)


# ── 3. Moneybird ─────────────────────────────────────────────────────────────────────────────


async def _moneybird_context(state: AppState, request: Request) -> dict[str, Any]:
    s = state.settings
    token = s.moneybird_api_token.get_secret_value()
    context: dict[str, Any] = {
        "oauth": moneybird_connect.oauth_available(s),
        "scopes": moneybird_connect.SCOPES,
        "redirect_uri": (s.public_url + moneybird_connect.CALLBACK_PATH) if s.public_url else "",
        "token_shown": masked(token) if token else "",
        "administration_id": s.moneybird_administration_id,
        "administrations": [],
    }
    if token:
        try:
            context["administrations"] = await moneybird_connect.administrations(s, token=token)
        except moneybird_connect.ConnectRefused as exc:
            context["problems"] = [said(exc)]
    return context


@wizard_route("GET", "/moneybird")
async def moneybird_page(request: Request, admin: AdminDep, state: WizardStateDep) -> Response:
    return _render(request, state, admin, "moneybird", await _moneybird_context(state, request))


@wizard_route("POST", "/moneybird/token")
async def moneybird_token(
    request: Request, admin: WizardFormAdmin, state: WizardStateDep, token: FormText = ""
) -> Response:
    try:
        await moneybird_connect.administrations(state.settings, token=token)
    except moneybird_connect.ConnectRefused as exc:
        context = await _moneybird_context(state, request) | {"problems": [said(exc)]}
        return _render(request, state, admin, "moneybird", context, status_code=422)
    await _store(request, state, {"MONEYBIRD_API_TOKEN": token.strip(), "MONEYBIRD_REFRESH_TOKEN": None})
    return RedirectResponse(f"{prefix_of(request)}/setup/moneybird", status_code=303)


@wizard_route("POST", "/moneybird/connect")
async def moneybird_oauth(request: Request, admin: WizardFormAdmin, state: WizardStateDep) -> Response:
    if not moneybird_connect.oauth_available(state.settings):
        raise HTTPException(
            409, N_("set MONEYBIRD_CLIENT_ID and MONEYBIRD_CLIENT_SECRET first, or paste a token")
        )
    redirect_uri = _public_url(state) + moneybird_connect.CALLBACK_PATH
    url = await moneybird_connect.begin_oauth(
        state.redis,
        state.settings,
        redirect_uri=redirect_uri,
        session=admin.session,
        connection_id=connection_of(state),
    )
    return _leave_for(
        request, state, admin, "moneybird", target=url, where="Moneybird", heading=N_("Connect Moneybird")
    )


@wizard_route("GET", "/moneybird/callback")
async def moneybird_callback(
    request: Request,
    returning: ReturningAdmin,
    app_state: AppStateDep,
    code: str | None = None,
    error: str | None = None,
) -> Response:
    if returning is None:
        return _bounce(request)
    admin = returning
    oauth_state = request.query_params.get("state", "")
    started_by = await moneybird_connect.oauth_connection(app_state.redis, oauth_state)
    state, prefix = await returning_state(request, app_state, admin, connection_id=started_by)
    try:
        tokens = await moneybird_connect.finish_oauth(
            state.redis, state.settings, state=oauth_state, code=code, error=error, session=admin.session
        )
    except moneybird_connect.ConnectRefused as exc:
        context = await _moneybird_context(state, request) | {"problems": [said(exc)], "prefix": prefix}
        return _render(request, state, admin, "moneybird", context, status_code=422)
    await _store(
        request,
        state,
        {"MONEYBIRD_API_TOKEN": tokens.access_token, "MONEYBIRD_REFRESH_TOKEN": tokens.refresh_token},
    )
    return RedirectResponse(f"{prefix}/setup/moneybird", status_code=303)


@wizard_route("POST", "/moneybird/administration")
async def moneybird_administration(
    request: Request,
    admin: WizardFormAdmin,
    state: WizardStateDep,
    administration_id: FormText = "",
) -> Response:
    context = await _moneybird_context(state, request)
    if administration_id not in {a.id for a in context["administrations"]}:
        context["problems"] = context.get("problems") or [N_("choose one of the administrations listed")]
        return _render(request, state, admin, "moneybird", context, status_code=422)
    await _store(request, state, {"MONEYBIRD_ADMINISTRATION_ID": administration_id})
    await _step_done(state, "moneybird", "verified")
    return _next(request, state)


# ── 4. Bookkeeping ───────────────────────────────────────────────────────────────────────────


async def _bookkeeping(
    request: Request, state: AppState, admin: Admin, problems: list[Message], status_code: int
) -> Response:
    try:
        choices = await bookkeeping.load_choices(state.settings)
    except bookkeeping.ChoicesUnavailable as exc:
        return _render(
            request, state, admin, "bookkeeping", {"choices": None, "problems": [said(exc)]}, status_code=503
        )
    problems = problems + [
        Message("%(rate)s has no Moneybird tax rate. %(fix)s", rate=row.label, fix=row.how_to_create)
        for row in choices.missing
    ]
    context = {
        "choices": choices,
        "problems": problems,
        "kinds": bookkeeping.INVOICE_KINDS,
        "settings": state.settings,
    }
    return _render(request, state, admin, "bookkeeping", context, status_code=status_code)


@wizard_route("GET", "/bookkeeping")
async def bookkeeping_page(request: Request, admin: AdminDep, state: WizardStateDep) -> Response:
    return await _bookkeeping(request, state, admin, [], 200)


@wizard_route("POST", "/bookkeeping")
async def bookkeeping_save(request: Request, admin: WizardFormAdmin, state: WizardStateDep) -> Response:
    form = {key: str(value) for key, value in (await request.form()).items()}
    try:
        choices = await bookkeeping.load_choices(state.settings)
    except bookkeeping.ChoicesUnavailable as exc:
        return _render(
            request, state, admin, "bookkeeping", {"choices": None, "problems": [said(exc)]}, status_code=503
        )
    values, problems = bookkeeping.chosen_values(choices, form)
    if problems:
        return await _bookkeeping(request, state, admin, problems, 422)
    await _store(request, state, values)
    await _step_done(state, "bookkeeping", "saved")
    return _next(request, state)


# ── 5. History ───────────────────────────────────────────────────────────────────────────────


@wizard_route("GET", "/history")
async def history_page(request: Request, admin: AdminDep, state: WizardStateDep) -> Response:
    limit, window = state.settings.rate_limit
    context = {
        "preview": await tasks.read_task(state.redis, "history-preview", connection_id=connection_of(state)),
        "run": await tasks.read_task(state.redis, "history", connection_id=connection_of(state)),
        "per_hour": int(3600 * limit / window / BACKFILL_CALLS_PER_ORDER),
        "since": state.live.stored.progress.get("history_since", "") if state.live else "",
    }
    return _render(request, state, admin, "history", context)


@wizard_route("POST", "/history")
async def history_action(
    request: Request,
    admin: WizardFormAdmin,
    state: WizardStateDep,
    action: FormText = "",
    since: FormText = "",
) -> Response:
    now = datetime.now(UTC).replace(microsecond=0)
    if action == "from_now":
        await _store(request, state, {"SYNC_SINCE": now.isoformat()})
        await _step_done(state, "history", "from_now")
        return _next(request, state)
    try:
        start_at = datetime.combine(date.fromisoformat(since.strip()), time(0), tzinfo=UTC)
    except ValueError:
        raise HTTPException(400, N_("enter the first day to book as a date (YYYY-MM-DD)")) from None
    if start_at >= now:
        raise HTTPException(400, N_("the date to book from lies in the future: choose “from now” instead"))
    await record_step(
        state.sessions, "history_since", start_at.date().isoformat(), connection_id=connection_of(state)
    )
    if action == "preview":
        await tasks.start_task(
            state.redis, "history-preview", since=start_at.isoformat(), connection_id=connection_of(state)
        )
        await state.refresh_settings(force=True)
        return RedirectResponse(f"{prefix_of(request)}/setup/history", status_code=303)
    if action != "backfill":
        raise HTTPException(400, N_("unknown action"))
    # Live orders from now; the history through the backfill, booked by the worker once it may start.
    await _store(request, state, {"SYNC_SINCE": now.isoformat()})
    await _step_done(state, "history", "backfill")
    await tasks.start_task(
        state.redis, "history", since=start_at.isoformat(), connection_id=connection_of(state)
    )
    return RedirectResponse(f"{prefix_of(request)}/setup/history", status_code=303)


# ── 6. Install ───────────────────────────────────────────────────────────────────────────────


@wizard_route("GET", "/install")
async def install_page(request: Request, admin: AdminDep, state: WizardStateDep) -> Response:
    address = state.settings.public_url or public_address.suggestion(
        request.url.scheme, request.headers.get("host", "")
    )
    context = {"public_url": address, "findings": None}
    return _render(request, state, admin, "install", context)


async def _install_payment_webhook(
    request: Request, state: AppState, base: str, problems: list[Message]
) -> str:
    """Open invoices: woobird's webhook in Moneybird, its secret stored sealed (app/payment_webhook.py)."""
    try:
        registered = await register_payment_webhook(
            state.settings,
            redis=state.redis,
            public_url=base,
            connection_id=connection_of(state),
            connection_name=await connection_name_of(state),
        )
    except MoneybirdAuthError as exc:
        problems.append(
            Message(
                "Moneybird refused to register woobird's webhook (%(error)s): open invoices need a token "
                "with the `settings` scope next to `sales_invoices` — make one in Moneybird and enter it "
                "in step 3.",
                error=exc,
            )
        )
        return ""
    except MoneybirdError as exc:
        return Message(
            "Moneybird could not register woobird's webhook (%(error)s); payments of open invoices are found "
            "by each reconciliation pass instead.",
            error=exc,
        )
    await _store(request, state, {"MONEYBIRD_WEBHOOK_SECRET": registered.secret})
    return registered.message


@wizard_route("POST", "/install")
async def install_action(
    request: Request, admin: WizardFormAdmin, state: WizardStateDep, public_url: FormText = ""
) -> Response:
    # The address in the form is the one the admin read and sent: the confirmation it needs.
    base = public_address.normalise(public_url) or _public_url(state)
    problem = public_address.problem(base)
    if problem:
        raise HTTPException(422, problem)
    if _from_environment(state, "PUBLIC_URL") and base != state.settings.public_url:
        raise HTTPException(409, ADDRESS_FROM_ENVIRONMENT)
    secret = state.settings.woocommerce_webhook_secret.get_secret_value()
    values: dict[str, str | None] = {"PUBLIC_URL": base}
    retired = secret and _wizard(state).progress.get(shop.RETIRED_SECRET) == shop.secret_mark(secret)
    if retired and _from_environment(state, "WOOCOMMERCE_WEBHOOK_SECRET"):
        raise HTTPException(
            409,
            Message(
                "WOOCOMMERCE_WEBHOOK_SECRET (set in the environment) was given to the shop connected "
                "before: set a new one (openssl rand -hex 32), or remove it so the wizard makes one, then "
                "install again."
            ),
        )
    if retired or "WOOCOMMERCE_WEBHOOK_SECRET" in state.settings.problems():
        secret = new_token()
        values["WOOCOMMERCE_WEBHOOK_SECRET"] = secret
    problems: list[Message] = []
    await _store(request, state, values)
    # A shop address the wizard stored is reached through the address guard (its name may since
    # resolve elsewhere); one the environment names is the admin's own choice, a LAN shop included.
    allowed = None if _from_environment(state, "WOOCOMMERCE_URL") else shop.allowed_addresses(state.settings)
    delivery_url = base + await webhook_path(state)
    try:
        async with shop_client(state.settings, allowed=allowed) as client:
            message = await install_webhook(client, delivery_url=delivery_url, secret=secret)
    except Exception as exc:  # the words come from the shop client's errors
        message = ""
        problems.append(Message("the webhook could not be installed: %(error)s", error=exc))
    messages = [message] if message else []
    if payment_pushes_wanted(state.settings):
        pushes = await _install_payment_webhook(request, state, base, problems)
        messages += [pushes] if pushes else []
    findings = await Checker(
        state.settings,
        shop_allowed=allowed,
        connection_id=connection_of(state),
        connection_name=await connection_name_of(state),
    ).run()
    healthy, checks = await readiness(state)
    worker = checks.get("worker", {})
    all_green = not problems and all(f.ok for f in findings) and bool(worker.get("ok"))
    if all_green:
        await _step_done(state, "install", "done")
    context = {
        "public_url": base,
        "messages": messages,
        "findings": findings,
        "worker": worker,
        "all_green": all_green,
        "problems": problems,
    }
    return _render(request, state, admin, "install", context, status_code=200 if all_green else 422)
