"""Everything that can go wrong talking to Moneybird, as one tree.

    MoneybirdError                      `call`: method, path and the ids involved
    ├── MoneybirdTransient              an app.retry.TryAgainLater: `retry_at`, `retry_after_seconds()`
    │   ├── MoneybirdTimeout            no answer in time (a create may still have happened)
    │   ├── MoneybirdConnectionError    no connection, or it broke mid-request
    │   ├── MoneybirdServerError        5xx (status)
    │   └── MoneybirdRateLimited        429, or our own limiter cannot fit the call in
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
`app.retry.retry_delay`. A rejected request fails its order with `message`, Moneybird's own words. A
configuration error fails every order alike, so it should stop the worker from burning through
the queue and alert a person instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from app.retry import TryAgainLater


@dataclass(frozen=True)
class MoneybirdCall:
    """One request to Moneybird as errors and logs name it: method, path and the ids involved."""

    method: str = ""
    path: str = ""
    ids: Mapping[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.method} {self.path}".strip()


NO_CALL = MoneybirdCall()


def _restore(cls: type[MoneybirdError], args: tuple[Any, ...], state: dict[str, Any]) -> MoneybirdError:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class MoneybirdError(RuntimeError):
    """Base of every Moneybird failure; `call` says which request and which records were involved."""

    def __init__(self, message: str, *, call: MoneybirdCall = NO_CALL) -> None:
        super().__init__(message)
        self.message = message
        self.call = call

    @property
    def method(self) -> str:
        return self.call.method

    @property
    def path(self) -> str:
        return self.call.path

    @property
    def ids(self) -> Mapping[str, str]:
        return self.call.ids

    def __str__(self) -> str:
        where = str(self.call)
        return f"{self.message} [{where}]" if where else self.message

    # arq pickles a failed job's exception; keyword-only constructors do not survive that by default.
    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore, (type(self), self.args, dict(self.__dict__)))


# ── transient ─────────────────────────────────────────────────────────────────────────────────


class MoneybirdTransient(MoneybirdError, TryAgainLater):
    """Worth trying again later; `retry_at` (epoch seconds) is set when Moneybird said when."""

    def __init__(self, message: str, *, call: MoneybirdCall = NO_CALL, retry_at: float | None = None) -> None:
        super().__init__(message, call=call)
        self.retry_at = retry_at


class MoneybirdTimeout(MoneybirdTransient):
    pass


class MoneybirdConnectionError(MoneybirdTransient):
    pass


class MoneybirdServerError(MoneybirdTransient):
    def __init__(
        self, message: str, *, status: int, call: MoneybirdCall = NO_CALL, retry_at: float | None = None
    ) -> None:
        super().__init__(message, call=call, retry_at=retry_at)
        self.status = status


class MoneybirdRateLimited(MoneybirdTransient):
    """Over the rate limit until `retry_at` (epoch seconds).

    `local` is true when woobird's own limiter refused to wait that long, i.e. Moneybird was never
    asked; false for a real 429. `backlog`: the limiter put a backlog request off until its turn
    (`retry_at`); its job waits rather than fails (app.moneybird.ratelimit, app.jobs).
    """

    retry_at: float  # Moneybird's (or the limiter's) reset moment, always given

    def __init__(
        self,
        message: str,
        *,
        reset_at: float,
        local: bool = False,
        backlog: bool = False,
        call: MoneybirdCall = NO_CALL,
    ) -> None:
        super().__init__(message, call=call, retry_at=reset_at)
        self.local = local
        self.backlog = backlog


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
        call: MoneybirdCall = NO_CALL,
    ) -> None:
        super().__init__(message, call=call)
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
        call: MoneybirdCall = NO_CALL,
    ) -> None:
        super().__init__(message, call=call)
        self.status = status
        self.body = body


class MoneybirdUnexpectedResponse(MoneybirdConfigurationError):
    """Something answered that does not speak Moneybird's API: a redirect, HTML, a wrong shape."""

    def __init__(self, message: str, *, status: int, call: MoneybirdCall = NO_CALL) -> None:
        super().__init__(message, call=call)
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
    for name, messages in errors.items():
        texts = [str(m) for m in messages] if isinstance(messages, list) else [str(messages)]
        joined = ", ".join(t for t in texts if t)
        # Rails reports record-wide errors under "base"; a field name would only confuse.
        parts.append(joined if name == "base" else f"{name}: {joined}")
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
