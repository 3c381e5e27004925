"""A session cookie whose timestamp int() refuses, and an order id the ledger's BIGINT cannot hold,
used to end in an unhandled 500 (a traceback each time): both are a clear 4xx now."""

from __future__ import annotations

import httpx
import pytest

from app.admin.auth import COOKIE_NAME
from app.settings import Settings
from tests.admin.conftest import FAILED_ID


def _no_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize(
    "cookie",
    ["²³.abc", "١٢٣٤٥٦٧٨٩٠.abc", "9" * 5000 + ".abc", "-5.abc", "1e9.abc", "." * 3, "0x10.abc"],
    ids=["superscript digits", "arabic-indic digits", "5000 digits", "negative", "exponent", "dots", "hex"],
)
async def test_a_malformed_session_cookie_is_401(
    client: httpx.AsyncClient, cookie: str, capsys: pytest.CaptureFixture[str]
) -> None:
    response = await client.get(
        "/admin", headers={b"cookie": f"{COOKIE_NAME}={cookie}".encode(), b"accept": b"application/json"}
    )
    assert response.status_code == 401
    _no_traceback(capsys)


@pytest.mark.parametrize("order_id", ["1" * 23, str(2**63), "-1", "0"])
async def test_an_order_id_the_ledger_cannot_hold_is_404(
    client: httpx.AsyncClient, settings: Settings, order_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bearer = {
        "authorization": f"Bearer {settings.admin_token.get_secret_value()}",
        "accept": "application/json",
    }
    page = await client.get(f"/admin/orders/{order_id}", headers=bearer)
    retry = await client.post(f"/admin/orders/{order_id}/retry", headers=bearer)
    assert (page.status_code, retry.status_code) == (404, 404)
    assert "is not in the ledger" in page.json()["detail"]
    _no_traceback(capsys)
    assert (await client.get(f"/admin/orders/{FAILED_ID}", headers=bearer)).status_code == 200
