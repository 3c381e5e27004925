"""The REST arguments of the fake shop: how a request's parameters are merged and validated, with
the errors WordPress's REST server gives for bad ones."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request

from app.sandbox.woocommerce.webhooks import valid_topic
from app.sandbox.woocommerce.wire import SHOP_TIMEZONE, RestError

_DATE_ARG = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|z|[+-]\d{2}(:?\d{2})?)?$")


def _invalid_param(name: str, message: str, detail_code: str = "rest_invalid_param") -> RestError:
    return RestError(
        400,
        "rest_invalid_param",
        f"Invalid parameter(s): {name}",
        params={name: message},
        details={name: {"code": detail_code, "message": message, "data": None}},
    )


@dataclass
class Call:
    """One REST request: path ids, merged query/body parameters and the raw query pairs."""

    request: Request
    ids: dict[str, str]
    params: dict[str, Any]
    pairs: list[tuple[str, str]]

    def id(self, name: str = "id") -> int:
        return int(self.ids[name])


class Args:
    """WP REST argument validation for the query parameters this shop understands."""

    def __init__(self, call: Call) -> None:
        self.params = call.params
        self.pairs = call.pairs

    def raw_list(self, name: str) -> list[str] | None:
        """`name`, `name[]` and `name[N]` values, each split on commas like `wp_parse_list`."""
        values = [value for key, value in self.pairs if key == name or re.fullmatch(rf"{name}\[\d*\]", key)]
        if not values and isinstance(self.params.get(name), list):
            values = [str(value) for value in self.params[name]]
        elif not values and name in self.params:
            values = [str(self.params[name])]
        if not values:
            return None
        return [part.strip() for value in values for part in value.split(",") if part.strip()]

    def str_list(self, name: str) -> list[str]:
        return self.raw_list(name) or []

    def int_list(self, name: str) -> list[int]:
        values = self.raw_list(name) or []
        for index, value in enumerate(values):
            if not value.isdigit():
                raise _invalid_param(name, f"{name}[{index}] is not of type integer.", "rest_invalid_type")
        return [int(value) for value in values]

    def enum_list(self, name: str, allowed: Sequence[str]) -> list[str]:
        values = self.raw_list(name) or []
        for index, value in enumerate(values):
            if value not in allowed:
                message = f"{name}[{index}] is not one of {', '.join(allowed)}."
                raise _invalid_param(name, message, "rest_not_in_enum")
        return values

    def enum(self, name: str, allowed: Sequence[str], default: Any) -> Any:
        value = self.params.get(name)
        if value is None:
            return default
        if value not in allowed:
            raise _invalid_param(name, f"{name} is not one of {', '.join(allowed)}.", "rest_not_in_enum")
        return value

    def integer(self, name: str, *, default: Any, minimum: int, maximum: int | None = None) -> Any:
        value = self.params.get(name)
        if value is None:
            return default
        if not re.fullmatch(r"-?\d+", str(value)):
            raise _invalid_param(name, f"{name} is not of type integer.", "rest_invalid_type")
        number = int(value)
        if maximum is not None and not minimum <= number <= maximum:
            message = f"{name} must be between {minimum} (inclusive) and {maximum} (inclusive)"
            raise _invalid_param(name, message, "rest_out_of_bounds")
        if number < minimum:
            message = f"{name} must be greater than or equal to {minimum}"
            raise _invalid_param(name, message, "rest_out_of_bounds")
        return number

    def paging(self) -> tuple[int, int]:
        return (
            self.integer("page", default=1, minimum=1),
            self.integer("per_page", default=10, minimum=1, maximum=100),
        )

    def boolean(self, name: str, *, default: bool) -> bool:
        value = self.params.get(name)
        if value is None:
            return default
        text = str(value).lower()
        if text in ("1", "true", "yes"):
            return True
        if text in ("0", "false", "no", ""):
            return False
        raise _invalid_param(name, f"{name} is not of type boolean.", "rest_invalid_type")

    def date(self, name: str, *, gmt: bool) -> datetime | None:
        """A naive datetime in the column's frame: GMT with `dates_are_gmt`, else the shop's local time."""
        value = self.params.get(name)
        if value is None:
            return None
        text = str(value)
        if not _DATE_ARG.match(text):
            raise _invalid_param(name, "Invalid date.", "rest_invalid_date")
        parsed = datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00").replace(" ", "T"))
        if parsed.tzinfo is not None:
            parsed = parsed.astimezone(UTC if gmt else SHOP_TIMEZONE).replace(tzinfo=None)
        return parsed


def topic_param(value: Any) -> str:
    topic = str(value or "").lower()
    if not topic or not valid_topic(topic):
        raise RestError(
            400, "woocommerce_rest_shop_webhook_invalid_topic", "Webhook topic is required and must be valid."
        )
    return topic


def delivery_url_param(value: Any) -> str:
    url = str(value or "")
    if not re.match(r"^https?://[^\s/]+", url):
        message = "Webhook delivery URL must be a valid URL starting with http:// or https://."
        raise RestError(400, "woocommerce_rest_shop_webhook_invalid_delivery_url", message)
    return url


async def request_params(request: Request, pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Query, then form or JSON body parameters, later sources winning — as WP_REST_Request merges them."""
    params: dict[str, Any] = dict(pairs)
    if request.method in ("GET", "HEAD", "DELETE"):
        return params
    raw = await request.body()
    if not raw:
        return params
    content_type = request.headers.get("content-type", "")
    if "json" in content_type:
        try:
            decoded = json.loads(raw)
        except ValueError:
            raise RestError(400, "rest_invalid_json", "Invalid JSON body passed.") from None
        if isinstance(decoded, dict):
            params.update(decoded)
    else:
        params.update(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
    return params
