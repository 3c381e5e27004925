"""The request path under `MoneybirdClient`: one slot, one send, Moneybird's answer read.

Every request carries the Bearer token, ends in `.json` and first takes a slot from the shared
`RateLimiter`. Answers come back as models; failures as the tree in `app.moneybird.errors`, each
carrying the `MoneybirdCall` (method, path, the ids involved) it belongs to.

Retrying, deliberately narrow:
- GETs are retried here a couple of times within a second on a timeout, a broken connection or a
  5xx, because nothing can be duplicated by reading.
- POST and PATCH never are. A create whose answer was lost may have happened; only the booking
  layer can tell, by looking its record up by reference ("adopt") before trying again.
- A 429 pauses every process until Moneybird's reset. If that is a few seconds away the request
  waits and goes once more (a throttled request was not carried out, so even a POST is safe);
  otherwise `MoneybirdRateLimited` goes up to the job layer, which defers the job.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import structlog
from pydantic import BaseModel, ValidationError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_random

from app.moneybird.errors import (
    NO_CALL,
    REJECTED_BY_STATUS,
    MoneybirdAuthError,
    MoneybirdCall,
    MoneybirdConnectionError,
    MoneybirdError,
    MoneybirdRateLimited,
    MoneybirdRejected,
    MoneybirdServerError,
    MoneybirdTimeout,
    MoneybirdTransient,
    MoneybirdUnexpectedResponse,
    describe_error_body,
)
from app.moneybird.lanes import current_lane
from app.moneybird.ratelimit import RateLimitBusy, RateLimiter
from app.redaction import safe_url
from app.retry import retry_at_from_header
from app.tls import client_tls_context

log = structlog.get_logger("woobird.moneybird")

M = TypeVar("M", bound=BaseModel)

# Called after every HTTP exchange with (method, route template, status, seconds). The route has
# no ids in it ("sales_invoices/{id}/send_invoice"), so it is safe as a metric label. Status 0
# means no response arrived (timeout, connection error).
ResponseHook = Callable[[str, str, int, float], None]
# OAuth connections: called with the refused token on a 401, returns a fresh one (or None).
TokenRefresher = Callable[[str], Awaitable[str | None]]

PER_PAGE = 100
# A 429 without a usable reset header: Moneybird's window is 5 minutes, a minute is a fair guess.
DEFAULT_RATE_LIMIT_WAIT_SECONDS = 60.0
# A reset further away than this is a misread header, not a plan.
MAX_RATE_LIMIT_WAIT_SECONDS = 3600.0
# A quick in-process retry of a read is worth it only when the next try may come this soon.
BLIP_SECONDS = 1.0


class MoneybirdHttp:
    """Sends requests to one administration and reads the answers; `calls` counts what was sent."""

    def __init__(
        self,
        *,
        base_url: str,
        token: str,
        administration_id: str,
        limiter: RateLimiter | None,
        timeout: float,
        transport: httpx.AsyncBaseTransport | None,
        on_response: ResponseHook | None,
        get_attempts: int,
        blip_wait: tuple[float, float],
        short_rate_limit_wait: float,
        limiter_max_wait: float | None,
        on_unauthorized: TokenRefresher | None = None,
    ) -> None:
        self.administration_id = administration_id
        self._token = token
        self._on_unauthorized = on_unauthorized
        self.limiter = limiter
        self.on_response = on_response
        # Requests actually sent, by "METHOD route" — retries included, local refusals not.
        self.calls: Counter[str] = Counter()
        self._timeout = timeout
        self._get_attempts = max(1, get_attempts)
        self._blip_wait = blip_wait
        self._short_rate_limit_wait = short_rate_limit_wait
        self._limiter_max_wait = limiter_max_wait
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/",
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
                "User-Agent": "woobird",
            },
            timeout=timeout,
            transport=transport,
            verify=client_tls_context(),
        )

    @property
    def base_url(self) -> str:
        return str(self._client.base_url)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def request(
        self,
        method: str,
        route: str,
        *,
        ids: Mapping[str, str] | None = None,
        extra_ids: Mapping[str, str] | None = None,
        params: Mapping[str, str | int] | None = None,
        body: Mapping[str, Any] | None = None,
        scoped: bool = True,
    ) -> httpx.Response:
        """Send `method route`; `ids` fill the route, `extra_ids` only name records in errors."""
        path = self._path(route, ids or {}, scoped=scoped)
        request = _Request(
            route=route,
            params=params,
            body=body,
            call=MoneybirdCall(
                method=method,
                path="/" + path,
                ids={"administration_id": self.administration_id, **(ids or {}), **(extra_ids or {})},
            ),
        )
        # Only reads are repeated here; see the module docstring for why writes never are.
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._get_attempts if method == "GET" else 1),
            wait=wait_random(*self._blip_wait),
            retry=retry_if_exception(_is_blip),
            reraise=True,
            before_sleep=lambda state: _log_blip(request, state),
        )
        async for attempt in retrying:
            with attempt:
                return await self._send_waiting_out_short_429(request)
        raise AssertionError("unreachable: tenacity reraises the last error")  # pragma: no cover

    async def get_all(
        self,
        route: str,
        model: type[M],
        *,
        params: Mapping[str, str | int] | None = None,
        max_pages: int = 50,
    ) -> list[M]:
        """Every item of a paginated list, up to `max_pages` pages."""
        items, _ = await self.get_pages(route, model, params=params, max_pages=max_pages)
        return items

    async def get_pages(
        self,
        route: str,
        model: type[M],
        *,
        params: Mapping[str, str | int] | None = None,
        max_pages: int = 50,
    ) -> tuple[list[M], bool]:
        """The items of a paginated list, up to `max_pages` pages, and whether that was all of them."""
        items: list[M] = []
        for page in range(1, max_pages + 1):
            response = await self.request(
                "GET", route, params={**(params or {}), "page": page, "per_page": PER_PAGE}
            )
            batch = parse_list(response, model)
            items.extend(batch)
            if not _has_next_page(response, len(batch)):
                return items, True
        log.warning("moneybird list truncated", route=route, pages=max_pages, items=len(items))
        return items, False

    async def _send_waiting_out_short_429(self, request: _Request) -> httpx.Response:
        try:
            return await self._send(request)
        except MoneybirdRateLimited as exc:
            wait = exc.retry_after_seconds(time.time())
            if exc.local or wait > self._short_rate_limit_wait:
                raise
            log.info(
                "moneybird rate limit resets soon; waiting", seconds=round(wait, 1), call=str(request.call)
            )
            await asyncio.sleep(wait)
            return await self._send(request)

    async def _send(self, request: _Request, *, refreshed: bool = False) -> httpx.Response:
        await self._take_slot(request)
        call = request.call
        started = time.monotonic()
        status = 0
        try:
            response = await self._client.request(
                call.method, call.path.lstrip("/"), params=request.params, json=request.body
            )
            status = response.status_code
        except httpx.TimeoutException as exc:
            waited = f"{self._timeout:g} s ({type(exc).__name__})"
            raise MoneybirdTimeout(
                f"Moneybird did not answer within {waited}{request.maybe_done}", call=call
            ) from exc
        except httpx.TransportError as exc:
            raise MoneybirdConnectionError(
                f"could not talk to Moneybird: {exc!r}{request.maybe_done}", call=call
            ) from exc
        finally:
            self._record(request, status, time.monotonic() - started)
        if response.is_success:
            return response
        # A 401 was not carried out, so even a write may be sent again, once, with a fresh token.
        if response.status_code == 401 and self._on_unauthorized is not None and not refreshed:
            fresh = await self._on_unauthorized(self._token)
            if fresh and fresh != self._token:
                self._token = fresh
                self._client.headers["Authorization"] = f"Bearer {fresh}"
                return await self._send(request, refreshed=True)
        raise await self._error_for(response, request)

    async def take_turn(self) -> None:
        """A backlog run's start: room for a whole order at the limiter, or `MoneybirdRateLimited`
        naming its turn (app.moneybird.ratelimit); nothing is sent or taken."""
        await _give_way()
        if self.limiter is None:
            return
        try:
            await self.limiter.admit(max_wait=self._limiter_max_wait)
        except RateLimitBusy as busy:
            raise _refused(busy, call=NO_CALL) from busy

    async def end_turn(self) -> None:
        if self.limiter is not None:
            await self.limiter.release()

    async def _take_slot(self, request: _Request) -> None:
        await _give_way()
        if self.limiter is None:
            return
        try:
            waited = await self.limiter.acquire(max_wait=self._limiter_max_wait)
        except RateLimitBusy as busy:
            raise _refused(busy, call=request.call) from busy
        if waited > 1:
            log.debug("waited for a moneybird rate-limit slot", seconds=round(waited, 1))

    def _record(self, request: _Request, status: int, seconds: float) -> None:
        call = request.call
        self.calls[f"{call.method} {request.route}"] += 1
        log.debug("moneybird call", call=str(call), status=status or "-", ms=round(seconds * 1000))
        if self.on_response is None:
            return
        try:
            self.on_response(call.method, request.route, status, seconds)
        except Exception:  # a broken metrics hook must not fail a booking
            log.exception("moneybird on_response hook failed")

    async def _error_for(self, response: httpx.Response, request: _Request) -> MoneybirdError:
        status = response.status_code
        body = _read_body(response)
        detail = describe_error_body(body)
        call = request.call
        if status == 429:
            reset_at = rate_limit_reset(response.headers, now=time.time())
            if self.limiter is not None:
                await self.limiter.pause_until(reset_at)
            log.warning(
                "moneybird answered 429; pausing every process", call=str(call), until=round(reset_at)
            )
            return MoneybirdRateLimited(
                f"Moneybird rate limit reached: {detail}", reset_at=reset_at, call=call
            )
        if status >= 500:
            return MoneybirdServerError(
                f"Moneybird server error {status}: {detail}",
                status=status,
                retry_at=retry_at_from_header(response.headers.get("Retry-After"), now=time.time()),
                call=call,
            )
        if status == 401:
            return MoneybirdAuthError(
                f"Moneybird refused the API token ({detail}); check MONEYBIRD_API_TOKEN and its scopes",
                body=body,
                call=call,
            )
        if 400 <= status < 500:
            rejected = REJECTED_BY_STATUS.get(status, MoneybirdRejected)
            return rejected(detail, status=status, body=body, call=call)
        location = response.headers.get("Location", "")
        hint = f" to {safe_url(location)}" if location else ""
        return MoneybirdUnexpectedResponse(
            f"Moneybird answered {status}{hint} instead of an API response; check MONEYBIRD_API_URL",
            status=status,
            call=call,
        )

    def _path(self, route: str, ids: Mapping[str, str], *, scoped: bool) -> str:
        # Ids and references go into the path encoded whole: a reference holds '#', ' ' and maybe '/'.
        filled = route.format_map({name: quote(str(value), safe="") for name, value in ids.items()})
        prefix = f"{self.administration_id}/" if scoped else ""
        return f"{prefix}{filled}.json"


class _Request:
    """One logical request, kept together so retries and errors describe it the same way."""

    __slots__ = ("body", "call", "params", "route")

    def __init__(
        self,
        *,
        route: str,
        params: Mapping[str, str | int] | None,
        body: Mapping[str, Any] | None,
        call: MoneybirdCall,
    ) -> None:
        self.route = route
        self.params = dict(params) if params else None
        self.body = dict(body) if body is not None else None
        self.call = call

    @property
    def maybe_done(self) -> str:
        # A write whose answer was lost may still have happened; say so where it will be read.
        if self.call.method == "GET":
            return ""
        return "; it may have been carried out, look it up before repeating"


def parse(response: httpx.Response, model: type[M]) -> M:
    data = _json(response)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _unexpected_shape(response, exc) from exc


def parse_list(response: httpx.Response, model: type[M]) -> list[M]:
    data = _json(response)
    if not isinstance(data, list):
        raise MoneybirdUnexpectedResponse(
            f"expected a list from Moneybird, got {type(data).__name__}",
            status=response.status_code,
            call=_call_of(response),
        )
    try:
        return [model.model_validate(item) for item in data]
    except ValidationError as exc:
        raise _unexpected_shape(response, exc) from exc


def _refused(busy: RateLimitBusy, *, call: MoneybirdCall) -> MoneybirdRateLimited:
    return MoneybirdRateLimited(
        "woobird's rate limiter has no free Moneybird slot soon enough",
        reset_at=busy.retry_at or time.time(),
        local=True,
        backlog=busy.backlog,
        call=call,
    )


def rate_limit_reset(headers: httpx.Headers, *, now: float) -> float:
    """When a 429 ends, as epoch seconds: the later of `Retry-After` and `RateLimit-Reset`."""
    candidates = [
        moment
        for moment in (
            retry_at_from_header(headers.get(name), now=now) for name in ("Retry-After", "RateLimit-Reset")
        )
        if moment is not None
    ]
    reset = max(candidates) if candidates else now + DEFAULT_RATE_LIMIT_WAIT_SECONDS
    return min(reset, now + MAX_RATE_LIMIT_WAIT_SECONDS)


def _log_blip(request: _Request, state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome is not None else None
    log.info("moneybird read failed; retrying", call=str(request.call), error=str(error))


def _is_blip(exc: BaseException) -> bool:
    """A failure a quick in-process retry of a read can fix: not a 429, not a long Retry-After."""
    if not isinstance(exc, MoneybirdTransient) or isinstance(exc, MoneybirdRateLimited):
        return False
    return exc.retry_after_seconds(time.time()) <= BLIP_SECONDS


def _call_of(response: httpx.Response) -> MoneybirdCall:
    return MoneybirdCall(method=response.request.method, path=response.request.url.path)


def _json(response: httpx.Response) -> Any:
    # Decimal for JSON numbers: money must never pass through float, even when Moneybird sends 1.5.
    try:
        return json.loads(response.content, parse_float=Decimal)
    except ValueError as exc:
        raise MoneybirdUnexpectedResponse(
            f"Moneybird's answer is not JSON ({response.headers.get('Content-Type', 'no content type')}); "
            "check MONEYBIRD_API_URL",
            status=response.status_code,
            call=_call_of(response),
        ) from exc


def _read_body(response: httpx.Response) -> Any:
    """An error body as JSON when it is JSON; otherwise its text (a 429 says `Retry later`)."""
    if not response.content:
        return None
    try:
        return json.loads(response.content, parse_float=Decimal)
    except ValueError:
        return response.text


def _has_next_page(response: httpx.Response, count: int) -> bool:
    # Follow Moneybird's Link header when it sends one; otherwise a full page suggests another.
    if "link" in response.headers:
        return "next" in response.links
    return count >= PER_PAGE


def _unexpected_shape(response: httpx.Response, exc: ValidationError) -> MoneybirdUnexpectedResponse:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return MoneybirdUnexpectedResponse(
        f"Moneybird's answer does not have the expected shape ({where}: {first['msg']})",
        status=response.status_code,
        call=_call_of(response),
    )


async def _give_way() -> None:
    """A backlog job's pause for its worker's fresh orders before it asks Moneybird anything (app.jobs)."""
    gives_way = current_lane().gives_way
    if gives_way is not None:
        await gives_way()
