"""Wire primitives of the Moneybird fake: error bodies, ids, money, dates and body checks.

Everything here is about *formats* Moneybird uses on the wire; nothing knows about a resource.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Literal
from zoneinfo import ZoneInfo

Record = dict[str, Any]
Kind = Literal[
    "string", "id", "money", "number", "bool", "int", "quantity", "row", "date", "timestamp", "any"
]

CENT = Decimal("0.01")
MONEY_BOUND = Decimal(1_000_000_000)
AMSTERDAM = ZoneInfo("Europe/Amsterdam")

_NUMERIC_STRING = re.compile(r"^-?[0-9]+[,.]?[0-9]*$")
_QUANTITY_STRING = re.compile(r"^-?[0-9]+(?:[,.][0-9]+)?$")
_DIGITS = re.compile(r"^[0-9]+$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TIMESTAMP = re.compile(r"^(\d{4}-\d{2}-\d{2})[T ]\d{2}:\d{2}")


class ApiError(Exception):
    """A non-2xx answer; handlers raise it and the app turns it into the response."""

    def __init__(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(f"{status}: {body!r}")
        self.status = status
        self.body = body
        self.headers = dict(headers or {})


def symbolic_error(status: int, message: str, **symbolic: Any) -> ApiError:
    body: Record = {"error": message}
    if symbolic:
        body["symbolic"] = symbolic
    return ApiError(status, body)


def not_found(key: str = "id") -> ApiError:
    return symbolic_error(404, "record not found", **{key: "not_found"})


@dataclass
class Invalid:
    """Collects validation failures and raises them as one 422 in Moneybird's non-symbolic shape."""

    messages: dict[str, list[str]] = field(default_factory=dict)
    details: dict[str, list[Record]] = field(default_factory=dict)

    def add(self, key: str, message: str, code: str, **extra: Any) -> None:
        self.messages.setdefault(key, []).append(message)
        self.details.setdefault(key, []).append({"error": code, **extra})

    def __bool__(self) -> bool:
        return bool(self.messages)

    def error(self) -> ApiError:
        return ApiError(422, {"error": self.messages, "details": self.details})

    def raise_if_any(self) -> None:
        if self:
            raise self.error()


def invalid(key: str, message: str, code: str, **extra: Any) -> ApiError:
    problems = Invalid()
    problems.add(key, message, code, **extra)
    return problems.error()


# -- ids, time ---------------------------------------------------------------------------------


class IdMint:
    """18-digit ids that grow with time like Moneybird's (milliseconds shifted left, then a counter)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._last = 0

    def next(self) -> str:
        self._last = max(self._last + 1, int(self._clock() * 1000) << 18)
        return str(self._last)


class Clock:
    """Wall-clock time of the fake; tests swap `now` to move time (rate-limit windows, due dates)."""

    def __init__(self, now: Callable[[], float] = time.time) -> None:
        self.now = now
        self._version = 0

    def timestamp(self) -> str:
        moment = datetime.fromtimestamp(self.now(), tz=UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"

    def today(self) -> date:
        # Moneybird dates are the administration's (Europe/Amsterdam) calendar days.
        return datetime.fromtimestamp(self.now(), tz=AMSTERDAM).date()

    def version(self) -> int:
        # Epoch-seconds-like like the real ones, but strictly increasing so every change is visible.
        self._version = max(self._version + 1, int(self.now()))
        return self._version


# -- money -------------------------------------------------------------------------------------


def money_str(value: Decimal) -> str:
    """BigDecimal style: at least one decimal, no trailing zeros ("363.0", "157.24", "0.0")."""
    if value == 0:
        return "0.0"
    text = format(value.normalize(), "f")
    return text if "." in text else text + ".0"


def round_cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def parse_number(value: Any, *, bounded: bool) -> Decimal | None:
    """Money/number input: a JSON number or a string with '.' or ',' as decimal mark; None stays None."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("not a number")
    if isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float):
        number = Decimal(repr(value))  # repr gives the shortest text that round-trips: 10.95 not 10.9499…
    elif isinstance(value, str) and _NUMERIC_STRING.match(value):
        try:
            number = Decimal(value.replace(",", "."))
        except InvalidOperation as exc:
            raise ValueError("not a number") from exc
    else:
        raise ValueError("not a number")
    if not number.is_finite() or (bounded and abs(number) > MONEY_BOUND):
        raise ValueError("out of range")
    return number


def parse_quantity(value: Any) -> Decimal:
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    if isinstance(value, str) and _QUANTITY_STRING.match(value.strip()):
        return Decimal(value.strip().replace(",", "."))
    raise ValueError("not a quantity")


def quantity_display(quantity: Decimal) -> str:
    text = format(quantity.normalize(), "f") if quantity != 0 else "0"
    return f"{text} x"


def parse_id(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    if isinstance(value, str) and _DIGITS.match(value):
        return str(int(value))
    raise ValueError("not an id")


def parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ValueError("not a boolean")


def parse_date(value: Any, *, allow_timestamp: bool = False) -> date:
    if not isinstance(value, str):
        raise ValueError("not a date")
    text = value.strip()
    if allow_timestamp and (match := _TIMESTAMP.match(text)):
        text = match.group(1)
    if not _DATE.match(text):
        raise ValueError("not a date")
    return date.fromisoformat(text)


def parse_timestamp(value: str) -> datetime:
    """Filter values like `2026-08-21T13:50:00.000Z`; naive values are taken as UTC."""
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# -- request bodies ----------------------------------------------------------------------------


def unwrap(
    body: Record,
    root: str,
    model: str,
    *,
    required: bool = True,
    extra_top: Iterable[str] = (),
) -> Record:
    """The object under the root key; unknown top-level keys are 422, a missing root key 400."""
    inner = body.get(root)
    if inner is None and required:
        raise symbolic_error(400, f"{model} is required", **{root: "required"})
    reject_unknown(body, {root, *extra_top}, prefix="")
    if inner is None:
        return {}
    if not isinstance(inner, dict):
        raise invalid(root, "is invalid", "invalid")
    return inner


def reject_unknown(obj: Mapping[str, Any], allowed: Iterable[str], *, prefix: str) -> None:
    """The request schemas forbid unevaluated properties, so an unknown key is a client bug: 422."""
    allowed_set = set(allowed)
    unknown = [key for key in obj if key not in allowed_set]
    if unknown:
        problems = Invalid()
        for key in unknown:
            problems.add(f"{prefix}{key}", "is not a permitted attribute", "unpermitted_attribute")
        raise problems.error()


def coerce(obj: Mapping[str, Any], kinds: Mapping[str, Kind], *, prefix: str, problems: Invalid) -> Record:
    """Checks each present key against its kind; returns parsed values, records failures in problems."""
    parsed: Record = {}
    for key, value in obj.items():
        kind = kinds.get(key, "any")
        try:
            parsed[key] = _coerce_one(value, kind)
        except ValueError:
            problems.add(f"{prefix}{key}", _KIND_MESSAGES[kind], "invalid", value=value)
    return parsed


_KIND_MESSAGES: dict[Kind, str] = {
    "string": "must be a string",
    "id": "is not a valid id",
    "money": "is not a number",
    "number": "is not a number",
    "bool": "must be true or false",
    "int": "must be an integer",
    "quantity": "is not a number",
    "row": "must be an integer",
    "date": "is not a valid date",
    "timestamp": "is not a valid date",
    "any": "is invalid",
}


def _coerce_one(value: Any, kind: Kind) -> Any:
    if kind == "string":
        if not isinstance(value, str):
            raise ValueError(kind)
        return value
    if kind == "id":
        return None if value is None or value == "" else parse_id(value)
    if kind in ("money", "number"):
        return parse_number(value, bounded=kind == "money")
    if kind == "bool":
        return parse_bool(value)
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(kind)
        return value
    if kind == "quantity":
        return parse_quantity(value)
    if kind == "row":
        return int(parse_quantity(value))
    if kind == "date":
        return None if value is None or value == "" else parse_date(value)
    if kind == "timestamp":
        return parse_date(value, allow_timestamp=True)
    return value


# -- pagination --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    items: list[Record]
    links: dict[str, int]  # rel -> page number
    per_page: int


def paginate(items: list[Record], query: Mapping[str, str], *, default_per_page: int, style: str) -> Page:
    """page/per_page like Moneybird: per_page 1..100 else 400; `style` picks the page error wording."""
    per_page = _int_param(query.get("per_page"), default_per_page)
    if per_page is None or not 1 <= per_page <= 100:
        raise ApiError(400, {"error": "per_page does not have a valid value"})
    page = _int_param(query.get("page"), 1)
    if page is None or page < 1:
        if style == "products":
            raise symbolic_error(400, "Page is too small", page="min")
        raise ApiError(400, {"error": "page does not have a valid value"})
    start = (page - 1) * per_page
    links: dict[str, int] = {}
    if start + per_page < len(items):
        links["next"] = page + 1
    if page > 1:
        links["prev"] = page - 1
    return Page(items=items[start : start + per_page], links=links, per_page=per_page)


def _int_param(raw: str | None, default: int) -> int | None:
    if raw is None or raw == "":
        return default
    return int(raw) if raw.lstrip("-").isdigit() else None


def parse_filter(raw: str | None) -> dict[str, str]:
    """`key:value,key:value`; values may contain ':' (timestamps), so split on the first one."""
    result: dict[str, str] = {}
    if not raw:
        return result
    for term in raw.split(","):
        key, sep, value = term.partition(":")
        if sep:
            result[key.strip()] = value.strip()
    return result
