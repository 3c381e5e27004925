"""Where the wizard sends credentials: only to the shop that approved them, only at the address the
admin confirmed for woobird, and never into the deployment's own network.

- A new shop address is stored only with the keys that shop approved; the old keys and the webhook
  secret stay with the old shop.
- woobird's own address (the key callback, Moneybird's redirect_uri, the webhook) is what the admin
  confirmed, never a request's Host header; a trailing-slash redirect does not name it either.
- The shop step reaches public internet addresses only (after resolving the name, on every
  connection and redirect), and says "not a WooCommerce shop" without repeating what answered.
"""

from __future__ import annotations

import asyncio
import html
import ipaddress
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from app import address_guard, clients
from app.address_guard import AllowedAddresses, guarded_transport, is_public
from app.constants import WORKER_HEALTH_KEY
from app.sandbox.woocommerce import ShopSandbox
from app.sandbox.woocommerce import create_app as create_shop_app
from app.setup.shop import CALLBACK_PATH, probe_shop
from app.woocommerce.errors import WooCommerceError
from tests.server import serve_in_thread
from tests.setup.conftest import SHOP_URL, WOOBIRD_URL, Wizard, leaving_for, open_wizard, query_of

OTHER_SHOP = "https://other-shop.test"
FORGED_HOST = "evil.example"


# ── 1. a new shop address waits for the keys that shop approves ─────────────────────────────


@dataclass
class SeenRequest:
    host: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class TwoShops(httpx.AsyncBaseTransport):
    """The wizard's shop transport with a second shop beside the first, every request recorded."""

    routes: dict[str, httpx.AsyncBaseTransport]
    seen: list[SeenRequest] = field(default_factory=list)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        headers = {name.lower(): value for name, value in request.headers.items()}
        self.seen.append(SeenRequest(request.url.host, request.url.path, headers, body))
        return await self.routes[request.url.host].handle_async_request(request)

    def sent_to(self, host: str) -> list[SeenRequest]:
        return [request for request in self.seen if request.host == host]


@pytest.fixture
def other_shop(wizard: Wizard, monkeypatch: pytest.MonkeyPatch) -> tuple[ShopSandbox, TwoShops]:
    return _beside(wizard, monkeypatch)


def _beside(wizard: Wizard, monkeypatch: pytest.MonkeyPatch) -> tuple[ShopSandbox, TwoShops]:
    other = ShopSandbox(url=OTHER_SHOP)
    other.http_client = wizard.shop.http_client  # its server posts its keys to woobird too
    router = TwoShops(
        routes={
            "shop.sandbox.test": clients.transports.shop,  # type: ignore[dict-item]
            "other-shop.test": httpx.ASGITransport(app=create_shop_app(other)),
        }
    )
    monkeypatch.setattr(clients.transports, "shop", router)
    return other, router


def _credentials_in(request: SeenRequest, *secrets: str) -> list[str]:
    text = json.dumps(request.headers) + request.body.decode(errors="replace")
    return [secret for secret in secrets if secret in text] + (
        ["authorization header"] if "authorization" in request.headers else []
    )


async def _install(wizard: Wizard) -> httpx.Response:
    await wizard.redis.set(WORKER_HEALTH_KEY, "j_complete=0")
    return await wizard.post("/admin/setup/install", {"public_url": WOOBIRD_URL})


async def test_a_new_shop_address_waits_for_the_keys_that_shop_approves(
    wizard: Wizard, other_shop: tuple[ShopSandbox, TwoShops]
) -> None:
    other, router = other_shop
    assert (await wizard.connect_shop()).status_code == 303
    first = await wizard.stored()

    started = await wizard.post("/admin/setup/shop", {"shop_url": OTHER_SHOP})
    assert query_of(leaving_for(started))["callback_url"] == WOOBIRD_URL + CALLBACK_PATH
    # The admin never approves on the other shop; the next install and check still run.
    await _install(wizard)

    stored = await wizard.stored()
    assert stored["WOOCOMMERCE_URL"] == SHOP_URL
    assert stored["WOOCOMMERCE_CONSUMER_KEY"] == first["WOOCOMMERCE_CONSUMER_KEY"]
    secrets = (
        first["WOOCOMMERCE_CONSUMER_KEY"],
        first["WOOCOMMERCE_CONSUMER_SECRET"],
        stored["WOOCOMMERCE_WEBHOOK_SECRET"],
    )
    for request in router.sent_to("other-shop.test"):
        assert _credentials_in(request, *secrets) == [], request.path
    assert other.webhooks == {}
    assert [hook["delivery_url"] for hook in wizard.shop.webhooks.values()] == [
        WOOBIRD_URL + "/webhooks/woocommerce"
    ]


async def test_another_shop_gets_its_own_keys_and_a_new_webhook_secret(
    wizard: Wizard, other_shop: tuple[ShopSandbox, TwoShops]
) -> None:
    other, router = other_shop
    assert (await wizard.connect_shop()).status_code == 303
    await _install(wizard)
    first = await wizard.stored()
    old_secret = first["WOOCOMMERCE_WEBHOOK_SECRET"]

    async with httpx.AsyncClient(transport=router, base_url=OTHER_SHOP) as other_web:
        started = await wizard.post("/admin/setup/shop", {"shop_url": OTHER_SHOP})
        landed = await wizard.approve_on_the_shop(started, shop_web=other_web)
    assert landed.status_code == 303, landed.text
    switched = await wizard.stored()
    await _install(wizard)
    installed = await wizard.stored()

    assert switched["WOOCOMMERCE_URL"] == OTHER_SHOP
    assert (
        other.issued_keys[switched["WOOCOMMERCE_CONSUMER_KEY"]][0] == switched["WOOCOMMERCE_CONSUMER_SECRET"]
    )
    assert "WOOCOMMERCE_WEBHOOK_SECRET" not in switched  # it belongs to the first shop
    (hook,) = other.webhooks.values()
    assert hook["secret"] == installed["WOOCOMMERCE_WEBHOOK_SECRET"] != old_secret
    old_keys = (first["WOOCOMMERCE_CONSUMER_KEY"], first["WOOCOMMERCE_CONSUMER_SECRET"], old_secret)
    for request in router.sent_to("other-shop.test"):
        text = json.dumps(request.headers) + request.body.decode(errors="replace")
        assert not [secret for secret in old_keys if secret in text], request.path


async def test_a_shop_whose_keys_the_environment_holds_is_not_replaced_by_the_wizard(
    database_url: str,
    redis: ArqRedis,
    sessions: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pinned = {
        "woocommerce_consumer_key": "ck_" + "e" * 40,
        "woocommerce_consumer_secret": "cs_" + "f" * 40,
    }
    async with open_wizard(
        database_url, redis, sessions, monkeypatch, confirm_address=True, environment=pinned
    ) as wizard:
        _beside(wizard, monkeypatch)
        answer = await wizard.post("/admin/setup/shop", {"shop_url": OTHER_SHOP})
        stored = await wizard.stored()

    assert answer.status_code == 422
    assert "set in the environment" in answer.text
    assert "data-continue" not in answer.text  # no way to the other shop's approval page
    assert "WOOCOMMERCE_URL" not in stored


async def test_a_webhook_secret_from_the_environment_is_not_given_to_the_next_shop(
    database_url: str,
    redis: ArqRedis,
    sessions: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = "Wq7vZ2kLp9Xr4Tn8Bc3Df6Gh1Jm5Ks0Ay2Ez"
    async with open_wizard(
        database_url,
        redis,
        sessions,
        monkeypatch,
        confirm_address=True,
        environment={"woocommerce_webhook_secret": secret},
    ) as wizard:
        other, router = _beside(wizard, monkeypatch)
        assert (await wizard.connect_shop()).status_code == 303
        async with httpx.AsyncClient(transport=router, base_url=OTHER_SHOP) as other_web:
            started = await wizard.post("/admin/setup/shop", {"shop_url": OTHER_SHOP})
            assert (await wizard.approve_on_the_shop(started, shop_web=other_web)).status_code == 303
        installed = await _install(wizard)

    assert installed.status_code == 409
    assert "WOOCOMMERCE_WEBHOOK_SECRET" in installed.text
    assert other.webhooks == {}
    for request in router.sent_to("other-shop.test"):
        assert secret not in request.body.decode(errors="replace"), request.path


# ── 2. woobird's own address is the one the admin confirmed ─────────────────────────────────


async def test_a_forged_host_is_offered_in_an_editable_field_and_sent_nowhere(
    unconfirmed_wizard: Wizard,
) -> None:
    wizard = unconfirmed_wizard
    forged = {"host": FORGED_HOST}

    page = await wizard.web.get("/admin/setup/shop", headers=forged)
    connect = await wizard.post("/admin/setup/shop", {"shop_url": SHOP_URL}, headers=forged)

    assert wizard.shop.authorization_requests == []
    assert FORGED_HOST not in connect.text.replace(f'value="https://{FORGED_HOST}"', "")
    assert connect.status_code == 422
    assert "confirm woobird" in connect.text
    assert "PUBLIC_URL" not in await wizard.stored()
    assert f'name="public_url" type="url" value="https://{FORGED_HOST}"' in page.text  # shown, editable
    assert 'action="/admin/setup/shop"' not in page.text  # no Connect before the address is confirmed


async def test_the_confirmed_address_is_used_whatever_the_host_header_says(
    unconfirmed_wizard: Wizard,
) -> None:
    wizard = unconfirmed_wizard
    forged = {"host": FORGED_HOST}
    confirmed = await wizard.confirm_address(WOOBIRD_URL + "/", **forged)
    assert confirmed.status_code == 303

    connect = await wizard.post("/admin/setup/shop", {"shop_url": SHOP_URL}, headers=forged)
    link = query_of(leaving_for(connect))

    assert (await wizard.stored())["PUBLIC_URL"] == WOOBIRD_URL
    assert link["callback_url"] == WOOBIRD_URL + CALLBACK_PATH
    assert link["return_url"] == WOOBIRD_URL + "/admin/setup/shop/return"
    await wizard.approve_on_the_shop(connect)
    await wizard.redis.set(WORKER_HEALTH_KEY, "j_complete=0")
    await wizard.post("/admin/setup/install", {"public_url": ""}, headers=forged)
    assert [hook["delivery_url"] for hook in wizard.shop.webhooks.values()] == [
        WOOBIRD_URL + "/webhooks/woocommerce"
    ]


async def test_install_without_a_confirmed_address_stores_and_sends_nothing(
    unconfirmed_wizard: Wizard,
) -> None:
    wizard = unconfirmed_wizard

    answer = await wizard.post("/admin/setup/install", {"public_url": ""}, headers={"host": FORGED_HOST})

    assert answer.status_code == 409
    assert "PUBLIC_URL" not in await wizard.stored()
    assert wizard.shop.webhooks == {}


@pytest.mark.parametrize("address", ["https://woobird.test/admin", "https://a@woobird.test", "woobird", ""])
async def test_an_address_that_is_not_scheme_and_host_is_refused(
    unconfirmed_wizard: Wizard, address: str
) -> None:
    answer = await unconfirmed_wizard.confirm_address(address)

    assert answer.status_code == 422
    assert "PUBLIC_URL" not in await unconfirmed_wizard.stored()


@pytest.mark.parametrize("path", ["/admin/setup/", "/admin/", "/webhooks/woocommerce/"])
async def test_a_trailing_slash_is_not_redirected_to_the_host_header(wizard: Wizard, path: str) -> None:
    answer = await wizard.web.get(path, headers={"host": FORGED_HOST})

    assert FORGED_HOST not in answer.headers.get("location", "")
    assert not answer.is_redirect


# ── 6. only public internet addresses ───────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.215.14", True),
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("::ffff:8.8.8.8", True),
        ("127.0.0.1", False),
        ("127.8.9.10", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("192.0.2.10", False),
        ("224.0.0.1", False),
        ("240.0.0.1", False),
        ("255.255.255.255", False),
        ("::1", False),
        ("::", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("fd12:3456::1", False),
        ("ff02::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("2002:7f00:1::1", False),
        ("2002:a9fe:a9fe::1", False),
        ("64:ff9b::a00:1", False),
        ("2001:0:4136:e378:8000:63bf:f5ff:fffe", False),  # Teredo of 10.0.0.1
        ("2001:db8::1", False),
    ],
)
def test_only_public_internet_addresses_count_as_public(address: str, public: bool) -> None:
    assert is_public(ipaddress.ip_address(address)) is public


@dataclass
class Listener:
    port: int
    connections: int = 0


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    """A service on this machine (as Redis is): it counts who connects and answers like Redis."""
    found = Listener(port=0)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        found.connections += 1
        writer.write(b"-ERR unknown command 'GET', with args beginning with: '/wp-json/'\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    found.port = server.sockets[0].getsockname()[1]
    async with server:
        yield found


@pytest.mark.parametrize(
    "address",
    [
        "http://127.0.0.1:{port}",
        "http://localhost:{port}",
        "https://[::ffff:127.0.0.1]:{port}",
        "https://2130706433:{port}",
        "https://0x7f000001:{port}",
        "https://127.1:{port}",
        "https://0.0.0.0:{port}",
        "https://169.254.169.254",
        "https://10.0.0.1",
        "https://[fd00::1]",
        "https://[fe80::1]",
    ],
)
@pytest.mark.parametrize("step", ["/admin/setup/shop", "/admin/setup/shop/keys"])
async def test_the_shop_step_refuses_addresses_outside_the_internet_before_connecting(
    wizard: Wizard, listener: Listener, monkeypatch: pytest.MonkeyPatch, address: str, step: str
) -> None:
    monkeypatch.setattr(clients.transports, "shop", None)  # the real network
    monkeypatch.delenv(address_guard.TEST_RIG_VARIABLE, raising=False)
    url = address.format(port=listener.port)
    form = {"shop_url": url, "consumer_key": "ck_" + "1" * 40, "consumer_secret": "cs_" + "2" * 40}

    answer = await wizard.post(step, form)

    assert answer.status_code == 422
    assert "is not on the public internet" in answer.text
    assert listener.connections == 0
    assert "ERR" not in answer.text
    assert "WOOCOMMERCE_URL" not in await wizard.stored()


def _no_shop_app() -> Starlette:
    """A web server that is not a shop, answering in the ways that used to be repeated."""

    async def index(request: Request) -> Response:
        kind = getattr(request.app.state, "kind", "text")
        if kind == "error":
            return JSONResponse({"internal_field": "marker-field-1"}, status_code=500)
        if kind == "redirect":
            return RedirectResponse("http://169.254.169.254/latest/meta-data/marker-path", status_code=302)
        if kind == "fields":
            return JSONResponse({"namespaces": ["marker/v1"], "internal": "marker-field-2"})
        return PlainTextResponse("redis_version:7.0.0 marker-text")

    app = Starlette(routes=[Route("/wp-json/", index), Route("/", index)])
    return app


@pytest.mark.parametrize("kind", ["error", "redirect", "fields", "text", "not-http"])
async def test_what_a_server_that_is_no_shop_answers_is_not_repeated(
    wizard: Wizard, listener: Listener, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    monkeypatch.setattr(clients.transports, "shop", None)
    app = _no_shop_app()
    app.state.kind = kind
    with serve_in_thread(app) as served:
        url = f"http://127.0.0.1:{listener.port}" if kind == "not-http" else served
        # The rig names its own server, as the real-shop rig names its shop: nothing else on this machine.
        monkeypatch.setenv(address_guard.TEST_RIG_VARIABLE, url.removeprefix("http://"))

        answer = await wizard.post("/admin/setup/shop", {"shop_url": url})

    assert answer.status_code == 422
    said = _problems(answer)
    assert f"{url} is not a WooCommerce shop" in said
    for echoed in ("marker", "500", "302", "169.254", "meta-data", "ERR", "Error", "redis_version"):
        assert echoed not in said, echoed


def _problems(page: httpx.Response) -> str:
    found = re.search(r'<div class="problems" role="alert">(.*?)</div>', page.text, re.S)
    assert found, page.text[-1500:]
    return html.unescape(found[1])


async def test_a_name_that_turns_private_after_its_first_answer_is_refused_on_the_next_connection(
    listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = iter([[ipaddress.ip_address("127.0.0.1")], [ipaddress.ip_address("127.0.0.2")]])

    async def rebinding(host: str, port: int) -> list[address_guard.IPAddress]:
        assert host == "shop.rebind.test"
        return next(answers)

    monkeypatch.setattr(address_guard, "resolve", rebinding)
    with serve_in_thread(_no_shop_app()) as served:
        port = int(served.rsplit(":", 1)[1])
        allowed = AllowedAddresses(endpoints=frozenset({(ipaddress.ip_address("127.0.0.1"), port)}))
        async with httpx.AsyncClient(transport=guarded_transport(allowed)) as client:
            first = await client.get(f"http://shop.rebind.test:{port}/", headers={"connection": "close"})
            with pytest.raises(httpx.ConnectError) as second:
                await client.get(f"http://shop.rebind.test:{port}/")

    assert first.status_code == 200
    assert address_guard.refused(second.value) is not None
    assert "127.0.0.2" not in str(second.value)


async def test_a_proxy_from_the_environment_does_not_carry_the_wizard_past_the_guard(
    wizard: Wizard, listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(clients.transports, "shop", None)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{listener.port}")
    private_shop = wizard.base.model_copy(update={"woocommerce_url": "https://10.0.0.1"})

    async with clients.shop_client(private_shop, allowed=AllowedAddresses()) as shop:
        with pytest.raises(WooCommerceError) as failed:
            await shop.get_json("/system_status")
    probed = await probe_shop("https://10.0.0.2", allowed=AllowedAddresses())

    assert address_guard.refused(failed.value) is not None
    assert "is not on the public internet" in probed[0]
    assert listener.connections == 0


def test_only_the_sandbox_and_the_rig_s_named_shops_are_let_through(
    wizard: Wizard, monkeypatch: pytest.MonkeyPatch
) -> None:
    loopback, lan = ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("192.168.1.20")
    monkeypatch.delenv(address_guard.TEST_RIG_VARIABLE, raising=False)
    sandbox = wizard.base.model_copy(update={"woobird_sandbox": True})

    deployment = address_guard.allowed_for(wizard.base)
    demo = address_guard.allowed_for(sandbox)
    rig = address_guard.rig_addresses("127.0.0.1:8123, [::1]:8124, not-an-address, 10.9.0.0/16")

    assert not deployment.admits(loopback, 8123)
    assert demo.admits(loopback, 6379)
    assert not demo.admits(lan, 80)
    assert rig.admits(loopback, 8123)
    assert not rig.admits(loopback, 6379)  # the shop's port, not the machine's Redis
    assert rig.admits(ipaddress.ip_address("::1"), 8124)
    assert rig.admits(ipaddress.ip_address("10.9.3.4"), 443)
    assert not rig.admits(lan, 80)
