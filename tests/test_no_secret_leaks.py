"""The WooCommerce key and secret never reach the ledger, the dashboard, the log or an alert.

A shop that redirects quotes its `Location`, and a shop (or a proxy in front of it) that refuses a
request may quote the request's URL in its error: with query-string credentials both carried the
consumer key and secret into every place the failure is told. Both are played here by a shop that
answers exactly that, and each place is searched for the credentials.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import respx

from app.woocommerce.client import WooCommerceClient
from tests.admin.conftest import sign_in
from tests.chaos.test_findings import CART
from tests.harness import Harness, open_harness

HOOK = "https://hooks.slack.test/services/T000/B000/leaktest"
ORDER_ID = 4711


def _leaky_shop(key: str, secret: str, *, answer: str) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        echoed = f"http://shop.test{request.url.path}?consumer_key={key}&consumer_secret={secret}"
        if answer == "redirect":
            return httpx.Response(301, headers={"location": echoed})
        return httpx.Response(400, json={"code": "rest_invalid", "message": f"Cannot serve {echoed}"})

    return httpx.MockTransport(handler)


@pytest.fixture
async def leaky(
    request: pytest.FixtureRequest, sqlite_url: str, redis: Any
) -> Any:  # (harness, key, secret, alerts)
    with respx.mock(assert_all_called=False) as mock:
        mock.route(host="woobird.test").pass_through()
        alerts = mock.post(HOOK).mock(return_value=httpx.Response(200, text="ok"))
        async with open_harness(database_url=sqlite_url, redis=redis, alert_webhook_url=HOOK) as h:
            key, secret = h.shop.consumer_key, h.shop.consumer_secret
            h.services.shop = WooCommerceClient(
                shop_url=h.settings.woocommerce_url,
                consumer_key=key,
                consumer_secret=secret,
                transport=_leaky_shop(key, secret, answer=request.param),
            )
            yield h, key, secret, alerts


@pytest.mark.parametrize("leaky", ["redirect", "error quoting the URL"], indirect=True)
async def test_shop_credentials_reach_no_ledger_dashboard_log_or_alert(
    leaky: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    h, key, secret, alerts = leaky
    h: Harness  # type: ignore[no-redef]
    order = h.add_paid_order(order_id=ORDER_ID, **CART)
    assert (await h.deliver(order["id"])).status_code == 202
    await h.run_worker()

    record = await h.record(ORDER_ID)
    assert record is not None
    assert record.state == "failed"
    assert "could not be read" in (record.error or "")
    await sign_in(h.web, h.settings)
    page = await h.web.get(f"/admin/orders/{ORDER_ID}")
    as_json = await h.web.get(f"/admin/orders/{ORDER_ID}", headers={"accept": "application/json"})
    overview = await h.web.get("/admin")
    alert_texts = [json.loads(call.request.content)["text"] for call in alerts.calls]
    assert alert_texts, "the failure was alerted"

    places = {
        "ledger error": record.error or "",
        "ledger history": " ".join(event["message"] for event in as_json.json()["events"]),
        "order page": page.text,
        "dashboard": overview.text,
        "alert": " ".join(alert_texts),
        "log": capsys.readouterr().err,
    }
    for place, text in places.items():
        assert key not in text, f"the consumer key leaked into the {place}"
        assert secret not in text, f"the consumer secret leaked into the {place}"
    assert "shop.test" in places["ledger error"]  # what happened is still told
