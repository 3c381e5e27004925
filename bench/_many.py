"""Many shops for the benchmarks: fake shops and fake Moneybird administrations, and their connections.

Not a benchmark itself. Each shop is a `ShopSandbox` on a port of its own and each administration a
`MoneybirdSandbox` with a token of its own (so each has its own rate limit, as each real
administration and token has). All shops are served by one uvicorn server listening on every shop's
port, and all administrations by another on one port (Moneybird's API URL is one setting every
connection shares), each request handed to its sandbox by the port it came to or the token it
carries: two threads of the benchmark's process instead of a hundred. Connection 1 is the
environment's (shop 0, administration 0); the others are added with `app.connections.add_connection`,
as `woobird connections add` does. Also here: a deployment (web + workers as subprocesses), fresh
orders placed in a shop and delivered to its connection's webhook URL, timed to the moment the fake
answered their payment, and a watch on the PostgreSQL connections held. Everything stays on
127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import httpx
from _common import PYTHON, child, free_port, migrate, peak_rss_mib
from bench_booking import cart, customer
from sqlalchemy import text
from starlette.types import ASGIApp, Receive, Scope, Send

from app.connections import add_connection
from app.constants import ENVIRONMENT_CONNECTION_ID, WEBHOOK_PATH
from app.db import create_engine, session_factory
from app.sandbox.moneybird import MoneybirdSandbox
from app.sandbox.moneybird import create_app as create_moneybird_app
from app.sandbox.server import GRACE_SECONDS, START_TIMEOUT_SECONDS, bind, uvicorn_server
from app.sandbox.woocommerce import ShopSandbox
from app.sandbox.woocommerce import create_app as create_shop_app
from app.settings import Settings, load_settings, normalise_database_url
from app.tokens import new_token
from app.webhooks import sign

Asgi = ASGIApp


@dataclass(frozen=True)
class Tenant:
    """One connection: its shop, its administration, the secret its shop signs webhooks with."""

    connection_id: int
    name: str
    shop: ShopSandbox
    moneybird: MoneybirdSandbox
    webhook_secret: str

    @property
    def webhook_path(self) -> str:
        # The environment's connection keeps the plain URL; every other its own.
        return (
            WEBHOOK_PATH if self.connection_id == ENVIRONMENT_CONNECTION_ID else f"{WEBHOOK_PATH}/{self.name}"
        )


class _ByPort:
    """Hands each request to the shop listening on the port it came to."""

    def __init__(self, apps: Mapping[int, Asgi]) -> None:
        self.apps = apps

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        await self.apps[int(scope["server"][1])](scope, receive, send)


class _ByToken:
    """Hands each request to the administration whose token it carries (the first one's if none)."""

    def __init__(self, apps: Mapping[str, Asgi], default: Asgi) -> None:
        self.apps = apps
        self.default = default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        given = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
        app = self.apps.get(given.removeprefix("Bearer "), self.default)
        await app(scope, receive, send)


async def _lifespan(receive: Receive, send: Send) -> None:
    # The sandboxes' own start-up (Moneybird's push loop) is not needed: nothing registers pushes.
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


@contextlib.contextmanager
def _served(app: Asgi, sockets: list[socket.socket]) -> Iterator[None]:
    """`app` on every one of `sockets` (bound and listening), one uvicorn server in a thread."""
    server = uvicorn_server(app)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(server.serve(sockets=sockets))
        except BaseException as exc:  # shown in the caller's thread below
            failure.append(exc)

    thread = threading.Thread(target=run, name="bench-fakes", daemon=True)
    thread.start()
    try:
        waited = 0.0
        while not server.started:
            if failure or not thread.is_alive() or waited > START_TIMEOUT_SECONDS:
                raise RuntimeError("the fakes' server did not start") from (failure[0] if failure else None)
            threading.Event().wait(0.01)
            waited += 0.01
        yield
    finally:
        server.should_exit = True
        thread.join(GRACE_SECONDS * 5)
        if thread.is_alive():
            server.force_exit = True
            thread.join(GRACE_SECONDS * 5)
        for sock in sockets:
            sock.close()


@dataclass
class Fakes:
    tenants: list[Tenant]
    moneybird_url: str  # MONEYBIRD_API_URL, shared by every connection


@contextlib.contextmanager
def fakes(
    count: int,
    *,
    rate_limit: tuple[int, float] | None,
    latency_seconds: float,
    first_connection_id: int = ENVIRONMENT_CONNECTION_ID,
) -> Iterator[Fakes]:
    """`count` shops and administrations, served; tenant i becomes connection first_connection_id + i."""
    shop_sockets = [bind("127.0.0.1", 0) for _ in range(count)]
    ports = [int(sock.getsockname()[1]) for sock in shop_sockets]
    tenants = []
    for n, port in enumerate(ports):
        moneybird = MoneybirdSandbox(
            token=f"bench-token-{n:03d}-{secrets.token_hex(8)}",
            administration_id=f"{470_000_000_000_000_000 + n * 1_000_003}",
            administration_name=f"Winkel {n} B.V.",
            rate_limit=rate_limit,
            latency_seconds=latency_seconds,
        )
        shop = ShopSandbox(url=f"http://127.0.0.1:{port}", ping_on_create=False)
        connection_id = first_connection_id + n
        name = "environment" if connection_id == ENVIRONMENT_CONNECTION_ID else f"winkel-{connection_id:03d}"
        tenants.append(Tenant(connection_id, name, shop, moneybird, f"bench-webhook-secret-{new_token()}"))
    shops = _ByPort({port: create_shop_app(t.shop) for port, t in zip(ports, tenants, strict=True)})
    apps = {t.moneybird.token: create_moneybird_app(t.moneybird) for t in tenants}
    administrations = _ByToken(apps, apps[tenants[0].moneybird.token])
    moneybird_socket = bind("127.0.0.1", 0)
    moneybird_port = int(moneybird_socket.getsockname()[1])
    with _served(shops, shop_sockets), _served(administrations, [moneybird_socket]):
        yield Fakes(tenants, f"http://127.0.0.1:{moneybird_port}/api/v2")


def environment_values(fake: Fakes, *, redis_url: str, database_url: str) -> dict[str, str]:
    """The environment's settings (upper-case, as the processes read them): connection 1 is tenant 0."""
    first = fake.tenants[0]
    return {
        "WOOCOMMERCE_URL": first.shop.url,
        "WOOCOMMERCE_CONSUMER_KEY": first.shop.consumer_key,
        "WOOCOMMERCE_CONSUMER_SECRET": first.shop.consumer_secret,
        "WOOCOMMERCE_WEBHOOK_SECRET": first.webhook_secret,
        "MONEYBIRD_API_URL": fake.moneybird_url,
        "MONEYBIRD_API_TOKEN": first.moneybird.token,
        "MONEYBIRD_ADMINISTRATION_ID": first.moneybird.administration_id,
        "ADMIN_TOKEN": new_token(),
        "SECRET_KEY": secrets.token_hex(32),
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "SYNC_SINCE": _sync_since(),
        "LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
    }


def _sync_since() -> str:
    # An hour ago: the fresh orders are booked from their webhooks, the history only by a backfill.
    return (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


def base_settings(values: dict[str, str]) -> Settings:
    return load_settings(_env_file=None, **{key.lower(): value for key, value in values.items()})


def add_connections(base: Settings, tenants: Sequence[Tenant]) -> None:
    """Every tenant but the environment's added as a connection, with its own shop and administration."""

    async def add() -> None:
        engine = create_engine(base.database_url)
        sessions = session_factory(engine)
        try:
            for tenant in tenants:
                if tenant.connection_id == ENVIRONMENT_CONNECTION_ID:
                    continue
                added = await add_connection(
                    sessions,
                    base=base,
                    name=tenant.name,
                    values={
                        "WOOCOMMERCE_URL": tenant.shop.url,
                        "WOOCOMMERCE_CONSUMER_KEY": tenant.shop.consumer_key,
                        "WOOCOMMERCE_CONSUMER_SECRET": tenant.shop.consumer_secret,
                        "WOOCOMMERCE_WEBHOOK_SECRET": tenant.webhook_secret,
                        "MONEYBIRD_API_TOKEN": tenant.moneybird.token,
                        "MONEYBIRD_ADMINISTRATION_ID": tenant.moneybird.administration_id,
                        "SYNC_SINCE": _sync_since(),
                    },
                    actor="bench",
                )
                if added != tenant.connection_id:
                    raise RuntimeError(f"{tenant.name} became connection {added}, not {tenant.connection_id}")
        finally:
            await engine.dispose()

    asyncio.run(add())


def fresh_postgres(url: str, admin_url: str) -> None:
    """Drop and create the benchmark's own database (never another's: its name comes from `url`)."""

    async def prepare() -> None:
        name = url.rsplit("/", 1)[1]
        admin = create_engine(normalise_database_url(admin_url), pool_size=1)
        async with admin.connect() as connection:
            connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
        await admin.dispose()

    asyncio.run(prepare())
    migrate(url)


class PostgresConnections:
    """The most connections to the benchmark's database seen (pg_stat_activity, once a second)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._watch()), daemon=True)

    def __enter__(self) -> PostgresConnections:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def reset(self) -> int:
        peak, self.peak = self.peak, 0
        return peak

    async def _watch(self) -> None:
        name = self.url.rsplit("/", 1)[1]
        connection = await asyncpg.connect(self.url.rsplit("/", 1)[0] + "/postgres")
        try:
            while not self._stop.is_set():
                count = await connection.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = $1", name
                )
                self.peak = max(self.peak, int(count))
                await asyncio.sleep(1.0)
        finally:
            await connection.close()


@dataclass
class Deployment:
    client: httpx.Client
    pids: dict[str, int]  # "web", "worker0", …


@contextlib.contextmanager
def deployment(env: dict[str, str], work: Path, *, workers: int, tag: str) -> Iterator[Deployment]:
    """One web process and `workers` workers, as subprocesses, stopped when the block ends."""
    web_port = free_port()
    web = [PYTHON, "-m", "uvicorn", "--factory", "app.main:create_app", "--host", "127.0.0.1"]
    web += ["--port", str(web_port), "--loop", "uvloop", "--http", "httptools", "--no-access-log"]
    with contextlib.ExitStack() as stack:
        pids = {
            "web": stack.enter_context(
                child(web, env=env, log_path=work / f"{tag}-web.log", port=web_port)
            ).pid
        }
        for n in range(workers):
            worker = child([PYTHON, "-m", "workers"], env=env, log_path=work / f"{tag}-worker{n}.log")
            pids[f"worker{n}"] = stack.enter_context(worker).pid
        client = stack.enter_context(httpx.Client(base_url=f"http://127.0.0.1:{web_port}", timeout=30))
        yield Deployment(client, pids)


def rss(dep: Deployment) -> dict[str, float]:
    """Each process's peak resident memory so far (VmHWM, MiB)."""
    return {name: peak_rss_mib(pid) for name, pid in dep.pids.items()}


@dataclass
class Fresh:
    tenant: Tenant
    number: str
    posted_at: float
    status: int = 0


class Orders:
    """Fresh orders: placed in a tenant's shop and delivered to its connection's webhook URL."""

    def __init__(self) -> None:
        self.sequence = 0

    def deliver(self, dep: Deployment, tenant: Tenant) -> Fresh:
        self.sequence += 1
        n = self.sequence
        # One in three by a new customer, the others by one of five regulars of every shop.
        buyer = customer(100_000 + n if n % 3 == 0 else n % 5)
        document = tenant.shop.add_order(cart(order_id=20_000 + n, number=n, buyer=buyer))
        body = tenant.shop.webhook_body(int(document["id"]))
        headers = {
            "content-type": "application/json",
            "x-wc-webhook-topic": "order.updated",
            "x-wc-webhook-signature": sign(tenant.webhook_secret, body),
            "x-wc-webhook-source": tenant.shop.url + "/",
        }
        order = Fresh(tenant, str(document["number"]), time.time())
        order.status = dep.client.post(tenant.webhook_path, content=body, headers=headers).status_code
        return order

    def paced(self, dep: Deployment, tenants: Sequence[Tenant], count: int, *, every: float) -> list[Fresh]:
        started = time.monotonic()
        delivered = []
        for n in range(count):
            delivered.append(self.deliver(dep, tenants[n % len(tenants)]))
            time.sleep(max(0.0, started + (n + 1) * every - time.monotonic()))
        return delivered


def paid_at(order: Fresh) -> float | None:
    """When the fake handed over its answer to the payment of the order's invoice (None: not paid yet)."""
    moneybird = order.tenant.moneybird
    suffix = f"#{order.number}"
    with moneybird.lock:
        invoice = next(
            (
                i
                for i in moneybird.sales_invoices.values()
                if str(i.get("reference", "")).endswith(suffix) and i.get("state") == "paid"
            ),
            None,
        )
        if invoice is None:
            return None
        path = f"/sales_invoices/{invoice['id']}/payments"
        answers = [r for r in moneybird.requests if r.path == path and r.status and r.status < 300]
    if not answers:
        return None
    # When the fake handed the answer over; one logged before that was recorded, its arrival + latency.
    first = min(answers, key=lambda r: r.time)
    return first.answered if first.answered is not None else first.time + moneybird.latency_seconds


def wait_paid(orders: Sequence[Fresh], *, timeout: float) -> dict[int, float]:
    """Latency (s) of each paid order by its position; warns about those not paid in time."""
    deadline = time.monotonic() + timeout
    done: dict[int, float] = {}
    while time.monotonic() < deadline and len(done) < len(orders):
        for position, order in enumerate(orders):
            if position not in done and (paid := paid_at(order)) is not None:
                done[position] = paid - order.posted_at
        time.sleep(0.2)
    if len(done) < len(orders):
        print(f"warning: {len(orders) - len(done)} of {len(orders)} orders not paid within {timeout:.0f} s")
    return done


def to_first_call(orders: Sequence[Fresh], latencies: Mapping[int, float]) -> tuple[list[float], list[int]]:
    """For each paid order: seconds from its POST to its administration's first request after it,
    and the requests until it was paid. Exact only while a shop has one order in flight at a time
    (the idle connections: one order each every ten seconds or so)."""
    waits, calls = [], []
    for position, latency in latencies.items():
        order = orders[position]
        paid = order.posted_at + latency
        with order.tenant.moneybird.lock:
            times = [r.time for r in order.tenant.moneybird.requests if order.posted_at <= r.time <= paid]
        if times:
            waits.append(min(times) - order.posted_at)
            calls.append(len(times))
    return waits, calls
