"""The HTTP face of the Moneybird fake: routing, auth, rate limit, faults, and an in-process transport."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote

import httpx
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from app.sandbox.moneybird import contacts, external, invoices, reference, webhooks
from app.sandbox.moneybird.documents import find_payment
from app.sandbox.moneybird.oauth import routes as oauth_routes
from app.sandbox.moneybird.records import Call, Reply
from app.sandbox.moneybird.scopes import missing_scope
from app.sandbox.moneybird.state import Fault, FaultKind, MoneybirdSandbox, RecordedRequest
from app.sandbox.moneybird.wire import ApiError, Record, symbolic_error

Handler = Callable[[Call], Reply | Awaitable[Reply]]

# The in-process transport marks its requests so 'timeout'/'lost' faults answer at once with a marker
# (the transport then raises) instead of hanging like they do over real HTTP.
IN_PROCESS_HEADER = "x-woobird-sandbox-in-process"
FAULT_HEADER = "x-woobird-sandbox-fault"


def _sync_list(store: Callable[[Call], list[Record]]) -> Handler:
    return lambda call: Reply(200, [{"id": r["id"], "version": r["version"]} for r in store(call)])


def _sync_fetch(store: Callable[[Call], list[Record]]) -> Handler:
    def fetch(call: Call) -> Reply:
        ids = call.body.get("ids")
        if not isinstance(ids, list):
            raise symbolic_error(400, "Ids is required", ids="required")
        wanted = {str(i) for i in ids}
        return Reply(200, [r for r in store(call) if r["id"] in wanted][:100])

    return fetch


def _all_contacts(call: Call) -> list[Record]:
    return [c for c in call.sandbox.contacts.values() if c["administration_id"] == call.adm.id]


def _get_payment(call: Call) -> Reply:
    return Reply(200, find_payment(call.sandbox, call.adm.id, call.params["id"]))


# Order matters: literal segments are listed before an {id} in the same position.
ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/contacts", contacts.list_contacts),
    ("POST", "/contacts", contacts.create_contact),
    ("GET", "/contacts/filter", contacts.filter_contacts),
    ("GET", "/contacts/synchronization", _sync_list(contacts.synchronized_contacts)),
    ("POST", "/contacts/synchronization", _sync_fetch(_all_contacts)),
    ("GET", "/contacts/customer_id/{customer_id}", contacts.get_contact_by_customer_id),
    ("PATCH", "/contacts/{id}/archive", contacts.archive_contact),
    ("GET", "/contacts/{id}", contacts.get_contact),
    ("PATCH", "/contacts/{id}", contacts.update_contact),
    ("DELETE", "/contacts/{id}", contacts.delete_contact),
    ("GET", "/sales_invoices", invoices.list_sales_invoices),
    ("POST", "/sales_invoices", invoices.create_sales_invoice),
    ("GET", "/sales_invoices/synchronization", _sync_list(invoices.filtered_invoices)),
    ("POST", "/sales_invoices/synchronization", _sync_fetch(invoices.all_invoices)),
    ("GET", "/sales_invoices/find_by_reference/{reference}", invoices.find_by_reference),
    ("GET", "/sales_invoices/find_by_invoice_id/{invoice_id}", invoices.find_by_invoice_id),
    ("PATCH", "/sales_invoices/{id}/send_invoice", invoices.send_sales_invoice),
    ("POST", "/sales_invoices/{id}/payments", invoices.create_payment),
    ("DELETE", "/sales_invoices/{id}/payments/{payment_id}", invoices.destroy_payment),
    ("PATCH", "/sales_invoices/{id}/duplicate_creditinvoice", invoices.duplicate_creditinvoice),
    ("PATCH", "/sales_invoices/{id}/register_payment_creditinvoice", invoices.register_payment_creditinvoice),
    ("GET", "/sales_invoices/{id}", invoices.get_sales_invoice),
    ("PATCH", "/sales_invoices/{id}", invoices.update_sales_invoice),
    ("DELETE", "/sales_invoices/{id}", invoices.delete_sales_invoice),
    ("GET", "/external_sales_invoices", external.list_external_invoices),
    ("POST", "/external_sales_invoices", external.create_external_invoice),
    ("GET", "/external_sales_invoices/synchronization", _sync_list(external.filtered_externals)),
    ("POST", "/external_sales_invoices/synchronization", _sync_fetch(external.all_externals)),
    ("POST", "/external_sales_invoices/{id}/payments", external.create_external_payment),
    ("DELETE", "/external_sales_invoices/{id}/payments/{payment_id}", external.destroy_external_payment),
    ("GET", "/external_sales_invoices/{id}", external.get_external_invoice),
    ("PATCH", "/external_sales_invoices/{id}", external.update_external_invoice),
    ("DELETE", "/external_sales_invoices/{id}", external.delete_external_invoice),
    ("GET", "/payments/{id}", _get_payment),
    ("GET", "/webhooks", webhooks.list_webhooks),
    ("POST", "/webhooks", webhooks.create_webhook),
    ("DELETE", "/webhooks/{id}", webhooks.delete_webhook),
    ("GET", "/tax_rates", reference.list_tax_rates),
    ("GET", "/ledger_accounts", reference.list_ledger_accounts),
    ("GET", "/ledger_accounts/{id}", reference.get_ledger_account),
    ("GET", "/workflows", reference.list_workflows),
    ("GET", "/workflows/{id}", reference.get_workflow),
    ("GET", "/document_styles", reference.list_document_styles),
    ("GET", "/financial_accounts", reference.list_financial_accounts),
    ("GET", "/identities", reference.list_identities),
    ("GET", "/identities/default", reference.default_identity),
    ("GET", "/custom_fields", reference.list_custom_fields),
    ("GET", "/products", reference.list_products),
    ("POST", "/products", reference.create_product),
    ("GET", "/products/identifier/{identifier}", reference.get_product_by_identifier),
    ("GET", "/products/{id}", reference.get_product),
    ("PATCH", "/products/{id}", reference.update_product),
    ("DELETE", "/products/{id}", reference.delete_product),
]
_COMPILED = [
    (method, template, template.strip("/").split("/"), handler) for method, template, handler in ROUTES
]


def match_route(method: str, segments: list[str]) -> tuple[str, Handler, dict[str, str]] | None:
    for route_method, template, parts, handler in _COMPILED:
        if route_method != method or len(parts) != len(segments):
            continue
        params: dict[str, str] = {}
        for part, segment in zip(parts, segments, strict=True):
            if part.startswith("{"):
                params[part[1:-1]] = segment
            elif part != segment:
                break
        else:
            return template, handler, params
    return None


@dataclass
class _Exchange:
    method: str
    adm_id: str | None  # None for /administrations
    segments: list[str]
    query: dict[str, str]
    raw_body: bytes
    headers: Headers
    url: str
    started: float
    route: tuple[str, Handler, dict[str, str]] | None = None
    body: Any = None
    recorded: RecordedRequest | None = None

    @property
    def path(self) -> str:
        return "/" + "/".join(self.segments)


class MoneybirdASGI:
    """The raw ASGI app; `create_app` wraps it in Starlette for lifespan and error handling."""

    def __init__(self, sandbox: MoneybirdSandbox) -> None:
        self.sandbox = sandbox

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        exchange = await self._exchange(scope, receive)
        in_process = exchange.headers.get(IN_PROCESS_HEADER) == "1"
        reply, fault = await self._serve(exchange)
        if fault is not None and fault.kind != "status":
            if in_process:
                reply.headers[FAULT_HEADER] = fault.kind
            else:
                await self._hang(receive)
        await _response(reply)(scope, receive, send)
        if exchange.recorded is not None:
            self.sandbox.mark_answered(exchange.recorded)

    async def _exchange(self, scope: Scope, receive: Receive) -> _Exchange:
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        raw_path = scope.get("raw_path") or scope["path"].encode()
        raw_segments = raw_path.decode("latin-1").split("?")[0].strip("/").split("/")[2:]  # drop api/v2
        segments = [unquote(s) for s in raw_segments]
        if segments:
            segments[-1] = segments[-1].removesuffix(".json")
        adm_id = None if segments == ["administrations"] else (segments.pop(0) if segments else "")
        headers = Headers(scope=scope)
        host = headers.get("host", "moneybird.sandbox")
        return _Exchange(
            method=scope["method"],
            adm_id=adm_id,
            segments=segments,
            query=dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)),
            raw_body=b"".join(chunks),
            headers=headers,
            url=f"{scope.get('scheme', 'http')}://{host}{raw_path.decode('latin-1').split('?')[0]}",
            started=self.sandbox.clock.now(),
        )

    async def _serve(self, ex: _Exchange) -> tuple[Reply, Fault | None]:
        fault: Fault | None = None
        try:
            refusal = self._refusal(ex)
            if refusal is not None:
                return refusal, None
            assert ex.route is not None  # _refusal answers unknown routes
            fault = self.sandbox.take_fault(ex.method, ex.route[0])
            if fault is not None and fault.kind in ("status", "timeout"):
                reply = self._fault_reply(fault)
                self._record(ex, None if fault.kind == "timeout" else reply.status, fault)
                return reply, fault
            if self.sandbox.latency_seconds > 0:
                await asyncio.sleep(self.sandbox.latency_seconds)
            handled = self._handle(ex)
            # A handler that must wait on something (the webhook's url check) hands back an awaitable.
            reply = await handled if inspect.isawaitable(handled) else handled
        except ApiError as exc:
            reply = Reply(exc.status, exc.body, exc.headers)
        self._record(ex, reply.status, fault)
        return reply, fault

    def _refusal(self, ex: _Exchange) -> Reply | None:
        """Auth, administration, route and rate limit, in the order a real stack checks them."""
        sandbox = self.sandbox
        given = ex.headers.get("authorization", "")
        oauth_token = given.removeprefix("Bearer ") in sandbox.oauth.access_tokens
        if given != f"Bearer {sandbox.token}" and not oauth_token:
            return self._recorded(
                ex, Reply(401, {"error": "token is invalid", "symbolic": {"request": "invalid_grant"}})
            )
        if ex.adm_id is None:
            ex.route = ("/administrations", reference.list_administrations, {})
        elif ex.adm_id not in sandbox.administrations:
            error = symbolic_error(404, "Administration not found", administration_id="not_found")
            return self._recorded(ex, Reply(error.status, error.body))
        else:
            ex.route = match_route(ex.method, ex.segments)
        if ex.route is None:
            return self._recorded(
                ex, Reply(404, {"error": "Route not found", "symbolic": {"route": "not_found"}})
            )
        refused = missing_scope(ex.method, ex.route[0], sandbox.token_scopes)
        if refused is not None:
            return self._recorded(ex, Reply(401, {"error": refused}))
        reset = sandbox.admit()
        if reset is not None:
            return self._recorded(ex, _too_many(sandbox.rate_limit[0] if sandbox.rate_limit else 0, reset))
        return None

    def _handle(self, ex: _Exchange) -> Reply | Awaitable[Reply]:
        assert ex.route is not None
        template, handler, params = ex.route
        body = _parse_body(ex) if ex.method in ("POST", "PATCH", "PUT") else {}
        ex.body = body
        adm = self.sandbox.administration(ex.adm_id or None)
        call = Call(sandbox=self.sandbox, adm=adm, params=params, query=ex.query, body=body, url=ex.url)
        with self.sandbox.lock:
            return handler(call)

    def _fault_reply(self, fault: Fault) -> Reply:
        if fault.kind == "timeout":
            return Reply(504, "Gateway Timeout")
        if fault.status == 429:
            self.sandbox.count_429 += 1
            return _too_many(150, float(int(self.sandbox.clock.now()) + 1))
        if fault.status < 500:
            return Reply(
                fault.status, {"error": f"Simulated {fault.status}", "symbolic": {"request": "simulated"}}
            )
        # Real 5xx bodies vary between an app's JSON and a proxy's text/HTML page; alternate them.
        self.sandbox.fault_bodies_sent += 1
        if self.sandbox.fault_bodies_sent % 2:
            return Reply(fault.status, f"<html><body><h1>{fault.status} Server Error</h1></body></html>")
        return Reply(fault.status, {"error": "Internal server error"})

    def _recorded(self, ex: _Exchange, reply: Reply) -> Reply:
        self._record(ex, reply.status, None)
        return reply

    def _record(self, ex: _Exchange, status: int | None, fault: Fault | None) -> None:
        body = ex.body
        if body is None and ex.raw_body:
            with contextlib.suppress(ValueError):
                body = json.loads(ex.raw_body)
        kind: FaultKind | None = fault.kind if fault else None
        ex.recorded = RecordedRequest(
            method=ex.method,
            path=ex.path if ex.adm_id is not None else "/administrations",
            query=ex.query,
            json=body,
            status=status,
            time=ex.started,
            route=f"{ex.method} {ex.route[0]}" if ex.route else None,
            fault=kind,
            administration_id=ex.adm_id,
        )
        with self.sandbox.lock:
            self.sandbox.requests.append(ex.recorded)

    async def _hang(self, receive: Receive) -> None:
        """Over real HTTP: keep the client waiting until its own timeout fires (or it hangs up)."""

        async def disconnected() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(disconnected(), self.sandbox.timeout_seconds)


def _parse_body(ex: _Exchange) -> Record:
    if not ex.raw_body.strip():
        return {}
    try:
        body = json.loads(ex.raw_body)
    except ValueError as exc:
        raise symbolic_error(400, "Request body is not valid JSON", request="invalid_json") from exc
    if not isinstance(body, dict):
        raise symbolic_error(400, "Request body must be a JSON object", request="invalid_json")
    return body


def _too_many(limit: int, reset: float) -> Reply:
    epoch = str(int(reset))
    headers = {
        "RateLimit-Limit": str(limit),
        "RateLimit-Remaining": "0",
        "RateLimit-Reset": epoch,
        "Retry-After": epoch,
    }
    return Reply(429, "Retry later", headers)


def _response(reply: Reply) -> Response:
    if reply.body is None:
        return Response(status_code=reply.status, headers=reply.headers)
    if isinstance(reply.body, str):
        return PlainTextResponse(reply.body, status_code=reply.status, headers=reply.headers)
    return JSONResponse(reply.body, status_code=reply.status, headers=reply.headers)


def create_app(sandbox: MoneybirdSandbox) -> Starlette:
    """The fake as an ASGI app serving /api/v2/administrations and /api/v2/{administration_id}/…"""
    api = Route("/api/v2/{rest:path}", endpoint=MoneybirdASGI(sandbox))

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        # Served over HTTP (the demo, the real-shop tests), the fake pushes its webhooks by itself.
        pusher = asyncio.create_task(webhooks.push_loop(sandbox))
        try:
            yield
        finally:
            pusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pusher

    return Starlette(
        routes=[api, *oauth_routes(sandbox.oauth, administration_name=sandbox.administration_name)],
        lifespan=lifespan,
    )


class MoneybirdTransport(httpx.AsyncBaseTransport):
    """Runs the fake in-process; 'timeout' and 'lost' faults raise httpx.ReadTimeout at once."""

    def __init__(self, sandbox: MoneybirdSandbox) -> None:
        self.sandbox = sandbox
        self._inner = httpx.ASGITransport(app=create_app(sandbox))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        request.headers[IN_PROCESS_HEADER] = "1"
        response = await self._inner.handle_async_request(request)
        fault = response.headers.get(FAULT_HEADER)
        if fault:
            await response.aclose()
            done = "the request was processed" if fault == "lost" else "nothing was done"
            raise httpx.ReadTimeout(f"Moneybird sandbox: simulated {fault} fault ({done})", request=request)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def sandbox_transport(sandbox: MoneybirdSandbox) -> MoneybirdTransport:
    return MoneybirdTransport(sandbox)
