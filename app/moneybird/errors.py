"""Everything that can go wrong talking to Moneybird, as one tree.

    MoneybirdError                      method, path, ids involved
    ├── MoneybirdTransient              try again later; `retry_at` / `retry_after_seconds()`
    │   ├── MoneybirdTimeout            no answer in time (a create may still have happened)
    │   ├── MoneybirdConnectionError    no connection, or it broke mid-request
    │   ├── MoneybirdServerError        5xx (status)
    │   └── MoneybirdRateLimited        429, or our own limiter cannot fit the call in (reset_at)
    ├── MoneybirdRejected               Moneybird said no to this request: status, body, message
    │   ├── MoneybirdBadRequest         400
    │   ├── MoneybirdPaymentRequired    402 (plan limit reached)
    │   ├── MoneybirdForbidden          403
    │   ├── MoneybirdNotFound           404
    │   └── MoneybirdValidationError    422
    └── MoneybirdConfigurationError     no order can succeed until a person changes a setting
        ├── MoneybirdAuthError          401: token invalid, or no access to the scope
        └── MoneybirdUnexpectedResponse an answer that is not Moneybird's API (wrong URL, redirect)

Only `MoneybirdTransient` is worth retrying, and the job layer turns it into `arq.Retry` with
`retry_delay`. A rejected request fails its order with `message`, Moneybird's own words. A
configuration error fails every order alike, so it should stop the worker from burning through
the queue and alert a person instead.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from typing import Any

# Backoff across job tries: 5 s, 10 s, 20 s … never more than 10 minutes.
RETRY_BASE_SECONDS = 5.0
RETRY_CAP_SECONDS = 600.0
# After a rate-limit reset, spread the waiting jobs a little so they do not all wake at once.
RATE_LIMIT_SPREAD_SECONDS = 5.0


def _restore(cls: type[MoneybirdError], args: tuple[Any, ...], state: dict[str, Any]) -> MoneybirdError:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class MoneybirdError(RuntimeError):
    """Base of every Moneybird failure; says which request and which records were involved."""

    def __init__(
        self,
        message: str,
        *,
        method: str = "",
        path: str = "",
        ids: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.method = method
        self.path = path
        self.ids: dict[str, str] = dict(ids or {})

    def __str__(self) -> str:
        where = f"{self.method} {self.path}".strip()
        return f"{self.message} [{where}]" if where else self.message

    # arq pickles a failed job's exception; keyword-only constructors do not survive that by default.
    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore, (type(self), self.args, dict(self.__dict__)))


# ── transient ─────────────────────────────────────────────────────────────────────────────────


class MoneybirdTransient(MoneybirdError):
    """Worth trying again later; `retry_at` (epoch seconds) is set when Moneybird said when."""

    def __init__(
        self,
        message: str,
        *,
        method: str = "",
        path: str = "",
        ids: Mapping[str, str] | None = None,
        retry_at: float | None = None,
    ) -> None:
        super().__init__(message, method=method, path=path, ids=ids)
        self.retry_at = retry_at

    def retry_after_seconds(self, now: float | None = None) -> float:
        """Seconds from `now` (default: the clock) until a retry may succeed; 0 when no time was given."""
        if self.retry_at is None:
            return 0.0
        return max(0.0, self.retry_at - (time.time() if now is None else now))


class MoneybirdTimeout(MoneybirdTransient):
    pass


class MoneybirdConnectionError(MoneybirdTransient):
    pass


class MoneybirdServerError(MoneybirdTransient):
    def __init__(
        self,
        message: str,
        *,
        status: int,
        method: str = "",
        path: str = "",
        ids: Mapping[str, str] | None = None,
        retry_at: float | None = None,
    ) -> None:
        super().__init__(message, method=method, path=path, ids=ids, retry_at=retry_at)
        self.status = status


class MoneybirdRateLimited(MoneybirdTransient):
    """Over the rate limit until `reset_at` (epoch seconds).

    `local` is true when woobird's own limiter refused to wait that long, i.e. Moneybird was never
    asked; false for a real 429.
    """

    def __init__(
        self,
        message: str,
        *,
        reset_at: float,
        local: bool = False,
        method: str = "",
        path: str = "",
        ids: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, method=method, path=path, ids=ids, retry_at=reset_at)
        self.reset_at = reset_at
        self.local = local


# ── rejected ──────────────────────────────────────────────────────────────────────────────────


class MoneybirdRejected(MoneybirdError):
    """Moneybird refused the request; retrying the same request cannot help.

    `message` is one readable sentence built from Moneybird's body (either `error` shape); `body`
    is the parsed body (or its text) for the ledger and for debugging.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        body: Any = None,
        method: str = "",
        path: str = "",
        ids: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, method=method, path=path, ids=ids)
        self.status = status
        self.body = body

    def __str__(self) -> str:
        return f"Moneybird refused ({self.status}): {super().__str__()}"

    @property
    def codes(self) -> dict[str, Any]:
        """Moneybird's machine-readable codes (`symbolic`, or `details` of a 422), when it sent them."""
        if isinstance(self.body, dict):
            symbolic = self.body.get("symbolic") or self.body.get("details")
            if isinstance(symbolic, dict):
                return symbolic
        return {}


class MoneybirdBadRequest(MoneybirdRejected):
    pass


class MoneybirdPaymentRequired(MoneybirdRejected):
    pass


class MoneybirdForbidden(MoneybirdRejected):
    pass


class MoneybirdNotFound(MoneybirdRejected):
    pass


class MoneybirdValidationError(MoneybirdRejected):
    pass


# ── configuration ─────────────────────────────────────────────────────────────────────────────


class MoneybirdConfigurationError(MoneybirdError):
    """No order can be booked until a setting changes; the message names the setting."""


class MoneybirdAuthError(MoneybirdConfigurationError):
    """401: the token is invalid or revoked, or lacks the scope this request needs."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 401,
        body: Any = None,
        method: str = "",
        path: str = "",
        ids: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, method=method, path=path, ids=ids)
        self.status = status
        self.body = body


class MoneybirdUnexpectedResponse(MoneybirdConfigurationError):
    """Something answered that does not speak Moneybird's API: a redirect, HTML, a wrong shape."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        method: str = "",
        path: str = "",
        ids: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, method=method, path=path, ids=ids)
        self.status = status


REJECTED_BY_STATUS: dict[int, type[MoneybirdRejected]] = {
    400: MoneybirdBadRequest,
    402: MoneybirdPaymentRequired,
    403: MoneybirdForbidden,
    404: MoneybirdNotFound,
    422: MoneybirdValidationError,
}


# ── Moneybird's error bodies ──────────────────────────────────────────────────────────────────


def describe_error_body(body: Any) -> str:
    """One readable sentence from either shape of Moneybird's `error`.

    `{"error": "record not found", "symbolic": {"id": "not_found"}}` → "record not found (id: not_found)"
    `{"error": {"price": ["can't be blank", "is not a number"]}, "details": …}`
        → "price: can't be blank, is not a number"
    Anything else (the 429 text, an nginx page) is shortened to its first words.
    """
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, str):
            codes = _flatten_symbolic(body.get("symbolic"))
            return f"{error} ({codes})" if codes else error
        if isinstance(error, dict):
            return _describe_field_errors(error) or "validation failed"
        if error is None and body:
            return _describe_field_errors(body) or "unrecognised error body"
    if isinstance(body, str):
        return _shorten(body) or "empty response"
    if body is None:
        return "empty response"
    return _shorten(str(body))


def _describe_field_errors(errors: Mapping[str, Any]) -> str:
    parts: list[str] = []
    for field, messages in errors.items():
        texts = [str(m) for m in messages] if isinstance(messages, list) else [str(messages)]
        joined = ", ".join(t for t in texts if t)
        # Rails reports record-wide errors under "base"; a field name would only confuse.
        parts.append(joined if field == "base" else f"{field}: {joined}")
    return "; ".join(parts)


def _flatten_symbolic(symbolic: Any, prefix: str = "") -> str:
    if not isinstance(symbolic, dict):
        return ""
    parts: list[str] = []
    for key, value in symbolic.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            nested = _flatten_symbolic(value, name)
            if nested:
                parts.append(nested)
        else:
            parts.append(f"{name}: {value}")
    return ", ".join(parts)


def _shorten(text: str, limit: int = 200) -> str:
    words = " ".join(text.split())
    return words if len(words) <= limit else words[: limit - 1] + "…"


# ── backoff across job tries ──────────────────────────────────────────────────────────────────


def retry_delay(
    *,
    job_try: int,
    error: MoneybirdTransient | None,
    now: float,
    rng: random.Random | None = None,
) -> float:
    """Seconds to defer the next try of a job that failed transiently on try `job_try` (from 1).

    Exponential backoff with full jitter (uniform between a small floor and the capped exponential),
    so jobs that failed together do not come back together. When Moneybird said when to come back
    (a 429's reset, a 503's Retry-After), never earlier than that, whatever the cap.
    """
    draw = rng or random
    ceiling = min(RETRY_CAP_SECONDS, RETRY_BASE_SECONDS * 2 ** max(0, job_try - 1))
    delay = draw.uniform(1.0, max(1.0, ceiling))
    if error is not None and error.retry_at is not None:
        # The reset may lie beyond the cap; waiting less would only earn another 429.
        until_reset = error.retry_after_seconds(now)
        delay = max(delay, until_reset + draw.uniform(0.0, RATE_LIMIT_SPREAD_SECONDS))
    return delay
