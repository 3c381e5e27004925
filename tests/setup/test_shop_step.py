"""Step 1: WooCommerce's app authorization end to end against the fake shop, the pasted-key fallback,
and every way a callback that woobird did not ask for is refused without storing anything."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping

import httpx
import pytest

from app import clients
from app.address_guard import AllowedAddresses
from app.setup import shop as shop_step
from app.setup.shop import CALLBACK_PATH, probe_shop
from tests.setup.conftest import ADMIN_TOKEN, SHOP_URL, WOOBIRD_URL, Wizard, leaving_for, query_of


async def test_the_shop_approves_and_woobird_stores_the_key_it_was_handed(wizard: Wizard) -> None:
    landed = await wizard.connect_shop()

    assert landed.status_code == 303, landed.text  # verified: on to the next step
    assert landed.headers["location"] == "/admin/setup/products"
    stored = await wizard.stored()
    issued = wizard.shop.issued_keys
    assert stored["WOOCOMMERCE_URL"] == SHOP_URL
    assert issued[stored["WOOCOMMERCE_CONSUMER_KEY"]] == (stored["WOOCOMMERCE_CONSUMER_SECRET"], "read_write")
    request = wizard.shop.authorization_requests[0]
    assert request["app_name"] == "woobird"
    assert request["scope"] == "read_write"
    assert request["callback_url"] == "https://woobird.test" + CALLBACK_PATH
    page = (await wizard.web.get("/admin/setup/shop")).text
    assert stored["WOOCOMMERCE_CONSUMER_SECRET"] not in page
    assert stored["WOOCOMMERCE_CONSUMER_KEY"] not in page
    assert "ck_…" + stored["WOOCOMMERCE_CONSUMER_KEY"][-4:] in page


async def test_a_denied_approval_stores_nothing_and_says_how_to_go_on(wizard: Wizard) -> None:
    back = await wizard.approve_on_the_shop(
        await wizard.post("/admin/setup/shop", {"shop_url": SHOP_URL}), decision="deny"
    )

    assert back.status_code == 422
    assert "access was denied" in back.text
    assert "choose Approve" in back.text
    assert "WOOCOMMERCE_CONSUMER_KEY" not in await wizard.stored()
    assert wizard.shop.issued_keys == {}


def _payload(user_id: str) -> bytes:
    return json.dumps(
        {
            "key_id": 7,
            "user_id": user_id,
            "consumer_key": "ck_" + "1" * 40,
            "consumer_secret": "cs_" + "2" * 40,
            "key_permissions": "read_write",
        }
    ).encode()


async def test_an_unsolicited_callback_stores_nothing(wizard: Wizard) -> None:
    answer = await wizard.web.post(CALLBACK_PATH, content=_payload("made-up-state-1234"))

    assert answer.status_code == 403
    assert await wizard.stored_besides_address() == {}


async def test_a_replayed_callback_stores_nothing(wizard: Wizard) -> None:
    authorize = await wizard.post("/admin/setup/shop", {"shop_url": SHOP_URL})
    state = query_of(leaving_for(authorize))["user_id"]
    first = await wizard.web.post(CALLBACK_PATH, content=_payload(state))
    assert first.status_code == 200
    keys_after_first = await wizard.stored()

    replay = json.loads(_payload(state))
    replay["consumer_key"], replay["consumer_secret"] = "ck_" + "9" * 40, "cs_" + "8" * 40
    again = await wizard.web.post(CALLBACK_PATH, content=json.dumps(replay).encode())

    assert again.status_code == 403
    assert await wizard.stored() == keys_after_first
    assert keys_after_first["WOOCOMMERCE_CONSUMER_KEY"] == "ck_" + "1" * 40


async def test_an_expired_authorization_stores_nothing(wizard: Wizard) -> None:
    authorize = await wizard.post("/admin/setup/shop", {"shop_url": SHOP_URL})
    state = query_of(leaving_for(authorize))["user_id"]
    await wizard.redis.expire("woobird:setup:wc-auth:pending:" + state, 0)  # the 15 minutes are over

    answer = await wizard.web.post(CALLBACK_PATH, content=_payload(state))

    assert answer.status_code == 403
    assert "expired" in answer.text
    assert "WOOCOMMERCE_CONSUMER_KEY" not in await wizard.stored()


async def test_a_key_without_write_permission_is_refused(wizard: Wizard) -> None:
    authorize = await wizard.post("/admin/setup/shop", {"shop_url": SHOP_URL})
    state = query_of(leaving_for(authorize))["user_id"]
    document = json.loads(_payload(state)) | {"key_permissions": "read"}

    answer = await wizard.web.post(CALLBACK_PATH, content=json.dumps(document).encode())

    assert answer.status_code == 403
    assert "WOOCOMMERCE_CONSUMER_KEY" not in await wizard.stored()


@pytest.mark.parametrize(
    "spoiled",
    [
        {"consumer_key": "not-a-key"},
        {"consumer_secret": None},
        {"key_permissions": "read"},
        {"key_permissions": "read_write", "consumer_key": "ck_" + "x" * 300},
    ],
)
async def test_a_spoiled_callback_does_not_use_up_the_authorization(
    wizard: Wizard, spoiled: dict[str, object]
) -> None:
    authorize = await wizard.post("/admin/setup/shop", {"shop_url": SHOP_URL})
    state = query_of(leaving_for(authorize))["user_id"]
    document = json.loads(_payload(state)) | spoiled
    refused = await wizard.web.post(CALLBACK_PATH, content=json.dumps(document).encode())
    assert refused.status_code == 403
    assert "WOOCOMMERCE_CONSUMER_KEY" not in await wizard.stored()

    answer = await wizard.web.post(CALLBACK_PATH, content=_payload(state))

    assert answer.status_code == 200, answer.text
    assert (await wizard.stored())["WOOCOMMERCE_CONSUMER_KEY"] == "ck_" + "1" * 40


async def test_the_return_page_in_another_session_does_not_cancel_the_authorization(wizard: Wizard) -> None:
    authorize = await wizard.post("/admin/setup/shop", {"shop_url": SHOP_URL})
    state = query_of(leaving_for(authorize))["user_id"]
    await asyncio.sleep(1.05)  # a session is its sign-in second, signed: the other one signs in later
    async with httpx.AsyncClient(transport=wizard.transport, base_url=WOOBIRD_URL) as other:
        assert (await other.post("/admin/login", data={"token": ADMIN_TOKEN})).status_code == 303
        denied = await other.get("/admin/setup/shop/return", params={"success": "0", "user_id": state})
    assert denied.status_code == 422

    answer = await wizard.web.post(CALLBACK_PATH, content=_payload(state))

    assert answer.status_code == 200, answer.text
    assert (await wizard.stored())["WOOCOMMERCE_CONSUMER_KEY"] == "ck_" + "1" * 40


async def test_the_return_page_of_another_session_learns_nothing(wizard: Wizard) -> None:
    authorize = await wizard.post("/admin/setup/shop", {"shop_url": SHOP_URL})
    state = query_of(leaving_for(authorize))["user_id"]
    assert (await wizard.web.post(CALLBACK_PATH, content=_payload(state))).status_code == 200

    assert await shop_step.authorization_outcome(wizard.redis, state=state, session="other") is None


async def test_a_form_without_the_csrf_token_is_refused(wizard: Wizard) -> None:
    answer = await wizard.web.post("/admin/setup/shop", data={"shop_url": SHOP_URL})
    forged = await wizard.web.post(
        "/admin/setup/shop/keys",
        data={"csrf": "0" * 64, "consumer_key": wizard.shop.consumer_key, "consumer_secret": "cs_x"},
    )

    assert answer.status_code == 403
    assert forged.status_code == 403
    assert wizard.shop.authorization_requests == []
    assert await wizard.stored_besides_address() == {}


async def test_a_pasted_key_is_checked_with_the_shop_before_it_is_stored(wizard: Wizard) -> None:
    wrong = await wizard.post(
        "/admin/setup/shop/keys",
        {"shop_url": SHOP_URL, "consumer_key": wizard.shop.consumer_key, "consumer_secret": "cs_" + "0" * 40},
    )
    assert wrong.status_code == 422
    assert "the shop refused the key" in wrong.text
    assert await wizard.stored_besides_address() == {}

    right = await wizard.post(
        "/admin/setup/shop/keys",
        {
            "shop_url": SHOP_URL,
            "consumer_key": wizard.shop.consumer_key,
            "consumer_secret": wizard.shop.consumer_secret,
        },
    )
    assert right.status_code == 303
    assert (await wizard.stored())["WOOCOMMERCE_CONSUMER_SECRET"] == wizard.shop.consumer_secret


async def test_an_unreachable_shop_is_explained(wizard: Wizard, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Name or service not known", request=request)

    monkeypatch.setattr(clients.transports, "shop", httpx.MockTransport(refuse))

    answer = await wizard.post("/admin/setup/shop", {"shop_url": "https://no-such-shop.example"})

    assert answer.status_code == 422
    assert "could not reach no-such-shop.example" in answer.text
    assert "check the address" in answer.text
    assert await wizard.stored_besides_address() == {}


def _shop(routes: Mapping[str, tuple[int, object]]) -> httpx.MockTransport:
    def answer(request: httpx.Request) -> httpx.Response:
        key = request.url.path + ("?rest_route" if "rest_route" in request.url.query.decode() else "")
        status, body = routes.get(request.url.host + key) or routes.get(key, (404, "<html>not found</html>"))
        if isinstance(body, dict):
            return httpx.Response(status, json=body)
        headers = {"location": str(body)} if status in (301, 302) else {}
        return httpx.Response(status, text=str(body), headers=headers)

    return httpx.MockTransport(answer)


@pytest.mark.parametrize(
    ("url", "routes", "words"),
    [
        ("http://shop.example.nl", {}, "WooCommerce hands out API keys only over HTTPS"),
        (
            "https://shop.example.nl",
            {"/?rest_route": (200, {"namespaces": ["wc/v3"]})},
            "Settings → Permalinks",
        ),
        (
            "https://shop.example.nl",
            {"/wp-json/": (200, {"namespaces": ["wp/v2"]})},
            "WooCommerce is not active",
        ),
        (
            "https://shop.example.nl",
            {
                "shop.example.nl/wp-json/": (301, "https://www.shop.example.nl/wp-json/"),
                "www.shop.example.nl/wp-json/": (200, {"namespaces": ["wp/v2", "wc/v3"]}),
            },
            "sends visitors to https://www.shop.example.nl: enter that address instead",
        ),
        (
            "https://shop.example.nl",
            {"/wp-json/": (301, "https://elsewhere.example.nl/wp-json/")},
            "https://shop.example.nl is not a WooCommerce shop",
        ),
        ("https://shop.example.nl", {}, "https://shop.example.nl is not a WooCommerce shop"),
    ],
)
async def test_a_shop_that_cannot_work_is_named_with_the_fix(
    url: str, routes: dict[str, tuple[int, object]], words: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(clients, "transports", clients.Transports(shop=_shop(routes)))

    problems = await probe_shop(url, allowed=AllowedAddresses())

    assert len(problems) == 1
    assert words in problems[0]


async def test_a_working_shop_has_no_problems(monkeypatch: pytest.MonkeyPatch) -> None:
    routes = {"/wp-json/": (200, {"namespaces": ["wp/v2", "wc/v3"]})}
    monkeypatch.setattr(clients, "transports", clients.Transports(shop=_shop(routes)))

    assert await probe_shop("https://shop.example.nl", allowed=AllowedAddresses()) == []


async def test_the_way_back_from_the_shop_regains_the_strict_session_cookie_with_one_reload(
    wizard: Wizard,
) -> None:
    async with httpx.AsyncClient(transport=wizard.transport, base_url="https://woobird.test") as other:
        arriving = await other.get("/admin/setup/shop/return", params={"success": "1", "user_id": "abc"})
        still_unknown = await other.get(
            "/admin/setup/shop/return", params={"success": "1", "user_id": "abc", "bounced": "1"}
        )

    assert arriving.status_code == 200
    assert 'http-equiv="refresh"' in arriving.text
    assert "bounced=1" in arriving.text
    assert still_unknown.status_code == 401  # no cookie after the reload either: sign in
    assert await wizard.stored_besides_address() == {}
