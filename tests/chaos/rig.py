"""The chaos rig: real web and worker processes, a private Redis and PostgreSQL database, two fakes.

    pytest process (one event loop)                        subprocesses
    ┌─────────────────────────────────────┐   HTTP   ┌──────────────────────────────┐
    │ ShopSandbox  ── signed webhooks ────┼─────────▶│ web     (Procfile `web`)     │
    │   REST  ◀───────────────────────────┼──────────│ worker1 (Procfile `worker`)  │
    │ MoneybirdSandbox ◀──────────────────┼──────────│ worker2 (Procfile `worker`)  │
    │ supervisor: restarts dead workers   │          └──────────┬───────────────────┘
    └─────────────────────────────────────┘   redis-server :free port · chaos_<hex> database

The fakes run on the test's own event loop, so the test mutates them (new orders, refunds, faults)
without racing their request handlers. Web and workers are started from the Procfile's command
lines with the environment a platform would give them, and write their logs to files the test
reads afterwards. Redis is our own `redis-server` without persistence, so "restart" loses every
key, as a Heroku Key-Value Store failover can.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import random
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import httpx
import redis as sync_redis

from app.constants import WEBHOOK_PATH
from app.sandbox.samples import samples
from app.sandbox.woocommerce import ShopSandbox
from app.sandbox.woocommerce.cart import Customer
from app.sandbox.woocommerce.checkout import build_order
from app.settings import REPO_ROOT
from app.tokens import new_token
from tests.conftest import migrate
from tests.services import TEST_POSTGRES_URL

BIN = Path(sys.executable).parent
START_TIMEOUT_SECONDS = 30.0
# The least the setting allows: what the heal figure of the run is measured against.
RECONCILE_INTERVAL_SECONDS = 30


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ── infrastructure ───────────────────────────────────────────────────────────────────────────


class RedisServer:
    """A private `redis-server` without persistence: a restart loses every key."""

    def __init__(self, *, log_dir: Path) -> None:
        self.port = free_port()
        self.log_path = log_dir / "redis.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        argv = [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        client = sync_redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            with contextlib.suppress(sync_redis.RedisError):
                if client.ping():
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)
        client.close()

    def restart(self) -> None:
        """kill -9 and start again on the same port: every key is gone, clients must reconnect."""
        self.stop()
        self.start()
        self.restarts += 1

    def dbsize(self) -> int:
        client = sync_redis.Redis(port=self.port)
        try:
            return int(cast(int, client.dbsize()))
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@contextlib.asynccontextmanager
async def chaos_database() -> AsyncIterator[str]:
    """A migrated PostgreSQL database of our own (the shared `test` one is truncated by other tests)."""
    server = TEST_POSTGRES_URL.rsplit("/", 1)[0]
    name = f"chaos_{secrets.token_hex(4)}"
    host = httpx.URL(TEST_POSTGRES_URL)
    args = ["-h", host.host or "127.0.0.1", "-p", str(host.port or 5432), "-U", host.username or "postgres"]
    await asyncio.to_thread(subprocess.run, ["createdb", *args, name], check=True, capture_output=True)
    url = f"{server}/{name}"
    try:
        # Alembic's env runs its own event loop: give it a thread of its own.
        await asyncio.to_thread(migrate, url)
        yield url
    finally:
        await asyncio.to_thread(
            subprocess.run, ["dropdb", *args, "--force", name], check=False, capture_output=True
        )


def procfile_command(name: str, *, port: int) -> list[str]:
    """The Procfile's command line for `name`, with $PORT filled in and the venv's executables."""
    for line in (REPO_ROOT / "Procfile").read_text(encoding="utf-8").splitlines():
        key, _, command = line.partition(":")
        if key.strip() == name:
            argv = shlex.split(command.replace("${PORT:-8000}", str(port)))
            executable = BIN / argv[0]
            return [str(executable) if executable.exists() else argv[0], *argv[1:]]
    raise KeyError(f"no {name!r} process in the Procfile")


class AppProcess:
    """One Procfile process with its own log file; `kill9` is a crash, `start` the platform's restart."""

    def __init__(
        self, name: str, argv: list[str], *, env: dict[str, str], log_dir: Path, cwd: Path = REPO_ROOT
    ) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.cwd = cwd
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.crashes: list[int] = []  # exit codes of exits we did not ask for

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            log.write(f"\n=== start {self.starts + 1}: {shlex.join(self.argv)}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                self.argv, cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        self.starts += 1

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if not self.alive:
            return
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(25)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


async def supervise(workers: list[AppProcess], *, stop: asyncio.Event) -> None:
    """What Heroku and Fly do: a worker that exits is started again (after a short pause)."""
    while not stop.is_set():
        for worker in workers:
            if worker.process is not None and not worker.alive:
                worker.crashes.append(worker.process.returncode)
                await asyncio.sleep(0.5)
                worker.start()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.3)


async def wait_until_up(url: str, *, within: float = START_TIMEOUT_SECONDS) -> None:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=1) as client:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url)).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not answer within {within:.0f} s")
            await asyncio.sleep(0.2)


# ── the secrets the processes share ──────────────────────────────────────────────────────────


@dataclass(frozen=True)
class Secrets:
    webhook_secret: str = field(default_factory=new_token)
    consumer_key: str = field(default_factory=lambda: f"ck_{secrets.token_hex(20)}")
    consumer_secret: str = field(default_factory=lambda: f"cs_{secrets.token_hex(20)}")
    moneybird_token: str = field(default_factory=lambda: f"mbtoken{secrets.token_hex(16)}")
    admin_token: str = field(default_factory=new_token)
    administration_id: str = field(default_factory=lambda: str(secrets.randbelow(9 * 10**17) + 10**17))

    def all(self) -> dict[str, str]:
        return {
            "WOOCOMMERCE_WEBHOOK_SECRET": self.webhook_secret,
            "WOOCOMMERCE_CONSUMER_KEY": self.consumer_key,
            "WOOCOMMERCE_CONSUMER_SECRET": self.consumer_secret,
            "MONEYBIRD_API_TOKEN": self.moneybird_token,
            "ADMIN_TOKEN": self.admin_token,
        }


def process_env(
    *,
    secrets_: Secrets,
    shop_url: str,
    moneybird_url: str,
    web_port: int,
    database_url: str,
    redis_url: str,
    since: datetime,
    moneybird_timeout: float,
    rate_limit: str,
) -> dict[str, str]:
    keep = {
        key: value for key, value in os.environ.items() if key in {"PATH", "HOME", "LANG", "LC_ALL", "TZ"}
    }
    return keep | {
        **secrets_.all(),
        "WOOCOMMERCE_URL": shop_url,
        "MONEYBIRD_ADMINISTRATION_ID": secrets_.administration_id,
        "MONEYBIRD_API_URL": f"{moneybird_url}/api/v2",
        "MONEYBIRD_TIMEOUT_SECONDS": str(moneybird_timeout),
        "MONEYBIRD_RATE_LIMIT": rate_limit,
        "PUBLIC_URL": f"http://127.0.0.1:{web_port}",
        "PORT": str(web_port),
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SYNC_SINCE": since.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "RECONCILE_INTERVAL_SECONDS": str(RECONCILE_INTERVAL_SECONDS),
        # A killed worker's job is taken up again after the job timeout + 10 s: keep the run short.
        "WORKER_JOB_TIMEOUT_SECONDS": "20",
        "LOG_LEVEL": "INFO",
        "LOG_FORMAT": "console",
        "PYTHONUNBUFFERED": "1",
    }


# ── the orders ───────────────────────────────────────────────────────────────────────────────


@dataclass
class PlannedOrder:
    order_id: int
    document: dict[str, Any]
    kind: str
    qualifies: bool  # completed and paid after SYNC_SINCE, once the run is over
    email: str
    delivery: str  # once | duplicates | never | late
    completes_later: bool = False  # created `processing` (paid), completed during the run
    refunds: int = 0


# Never booked: WooCommerce orders in these states, paid or not, are not woobird's business yet.
_NOT_QUALIFYING = [("processing", False), ("cancelled", False), ("pending", False), ("processing", True)]


def plan_orders(
    count: int, *, paid_at: datetime, rng: random.Random, first_id: int = 30001
) -> list[PlannedOrder]:
    """`count` orders of every booked kind (and some that must never be booked), with their fates."""
    kinds = [sample for sample in samples() if not sample.expect_failure]
    planned: list[PlannedOrder] = []
    for index in range(count):
        order_id = first_id + index
        sample = kinds[index % len(kinds)]
        customer: Customer = sample.cart["customer"]
        # A small pool of returning customers per kind; some type their address with capitals.
        local, _, domain = customer.email.partition("@")
        email = f"{local}+{rng.randrange(6)}@{domain}"
        if rng.random() < 0.15:
            email = email.capitalize()
        customer = dataclasses.replace(customer, email=email)
        roll = rng.random()
        status, paid = "completed", True
        if roll < 0.10:
            status, paid = _NOT_QUALIFYING[index % len(_NOT_QUALIFYING)]
        completes_later = 0.10 <= roll < 0.18
        if completes_later:
            status = "processing"
        moment = paid_at - timedelta(minutes=rng.randrange(1, 600))
        document = build_order(
            order_id=order_id,
            **{**sample.cart, "customer": customer},
            status=status,
            created_at=moment - timedelta(minutes=1),
            paid_at=moment if paid else None,
            completed_at=moment + timedelta(seconds=30) if status == "completed" else None,
            transaction_id=f"tr_chaos_{order_id}" if paid else "",
        )
        fate = rng.random()
        delivery = (
            "once" if fate < 0.65 else "duplicates" if fate < 0.80 else "late" if fate < 0.92 else "never"
        )
        qualifies = status == "completed" or completes_later
        refunds = 0
        if qualifies and rng.random() < 0.18:
            refunds = 2 if rng.random() < 0.25 else 1
        planned.append(
            PlannedOrder(
                order_id=order_id,
                document=document,
                kind=sample.kind,
                qualifies=qualifies,
                email=email,
                delivery=delivery,
                completes_later=completes_later,
                refunds=refunds,
            )
        )
    return planned


def refund_amount(order: dict[str, Any], *, part: int, rng: random.Random) -> Decimal:
    """A partial refund that leaves room for a second one: between 5 % and 40 % of the total."""
    total = Decimal(order["total"])
    share = Decimal(rng.randrange(5, 40)) / 100
    amount = (total * share).quantize(Decimal("0.01"))
    return max(amount, Decimal("0.01")) if part else amount


# ── deliveries ───────────────────────────────────────────────────────────────────────────────


@dataclass
class Courier:
    """Posts captured webhook bodies to the web process, as WooCommerce would, and counts answers."""

    shop: ShopSandbox
    webhook: dict[str, Any]
    web_url: str
    client: httpx.AsyncClient
    answers: dict[int | str, int] = field(default_factory=dict)

    def capture(self, order_id: int) -> bytes:
        return self.shop.webhook_body(order_id, "order.updated")

    async def post(self, body: bytes) -> int | str:
        headers = self.shop.delivery_headers(self.webhook, body, "order.updated")
        try:
            response = await self.client.post(self.web_url + WEBHOOK_PATH, content=body, headers=headers)
            answer: int | str = response.status_code
        except httpx.HTTPError as exc:
            answer = type(exc).__name__
        self.answers[answer] = self.answers.get(answer, 0) + 1
        return answer

    async def post_all(self, bodies: list[bytes], *, concurrency: int = 8) -> None:
        gate = asyncio.Semaphore(concurrency)

        async def one(body: bytes) -> None:
            async with gate:
                await self.post(body)

        await asyncio.gather(*(one(body) for body in bodies))


def now_utc() -> datetime:
    return datetime.now(UTC)
