"""A signed order that could never be WooCommerce's used to end in a 500 (a total that overflows
Decimal's context) or a 503 blaming the database (no `date_modified_gmt`): each is a 400 now, and
changes nothing."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.constants import WEBHOOK_PATH
from tests.conftest import WEBHOOK_SECRET
from tests.factories import order_document, signed_headers
from tests.test_bad_input import _nothing_changed

ORDER_ID = 4343


def _no_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert "Traceback" not in capsys.readouterr().err


def _signed(document: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(document).encode()
    return body, signed_headers(body, secret=WEBHOOK_SECRET)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"total": "1e999999999"}, "total"),
        ({"total": "-1e999999999"}, "total"),
        ({"date_modified_gmt": None, "date_modified": None}, "date_modified_gmt"),
        ({"number": "n" * 100_000}, "number"),
        ({"status": "x" * 10_000}, "status"),
    ],
    ids=["huge total", "huge negative total", "no date_modified_gmt", "huge number", "huge status"],
)
async def test_a_signed_but_impossible_order_is_400_and_changes_nothing(
    web: httpx.AsyncClient,
    redis: ArqRedis,
    sessions: async_sessionmaker[AsyncSession],
    capsys: pytest.CaptureFixture[str],
    change: dict[str, Any],
    field: str,
) -> None:
    body, headers = _signed(order_document(ORDER_ID) | change)
    response = await web.post(WEBHOOK_PATH, content=body, headers=headers)
    assert response.status_code == 400
    assert field in response.json()["detail"]
    assert len(response.text) < 500
    await _nothing_changed(redis, sessions)
    _no_traceback(capsys)
