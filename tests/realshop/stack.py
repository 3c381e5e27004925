"""woobird as a user runs it, against the real shop: the Procfile's web and worker processes.

    real shop (php -S, Action Scheduler run by php/watch.php)
        │ order.updated webhooks (signed, through WP-Cron's queue)      ▲ REST, OAuth 1.0a over http://
        ▼                                                               │
    web (Procfile `web`) ── Redis (our own redis-server) ──▶ worker (Procfile `worker`)
                                                                        │
                                      Moneybird fake over HTTP (a thread of the test process)

Set-up is what the README tells a user to do: `woobird migrate`, start web and worker, `woobird
webhook install` (WooCommerce pings the web process inside that call). The ledger is an SQLite file
the tests read directly; invoices are read from the Moneybird fake. Each process runs in a folder
of its own, so no `.env` of the checkout leaks in.
"""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx

from app.constants import INVOICE_REFERENCE_PREFIX
from app.sandbox.moneybird import MoneybirdSandbox
from app.sandbox.moneybird import create_app as create_moneybird_app
from tests.chaos.rig import BIN, AppProcess, RedisServer, Secrets, free_port, process_env, procfile_command
from tests.realshop.shop import RealShop
from tests.server import serve_in_thread

T = TypeVar("T")
BOOKING_TIMEOUT_SECONDS = 60.0


class NotYet(AssertionError):
    """What `eventually` keeps waiting on; the last one is raised when time is up."""


def eventually(probe: Callable[[], T], *, within: float = BOOKING_TIMEOUT_SECONDS, every: float = 0.2) -> T:
    """Call `probe` until it returns without raising NotYet."""
    deadline = time.monotonic() + within
    while True:
        try:
            return probe()
        except NotYet:
            if time.monotonic() > deadline:
                raise
        time.sleep(every)


@dataclass
class Stack:
    shop: RealShop
    moneybird: MoneybirdSandbox
    env: dict[str, str]
    web_url: str
    workdir: Path
    database: Path
    since: datetime
    processes: list[AppProcess] = field(default_factory=list)
    install_output: str = ""

    def woobird(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run the `woobird` command as a user would, in the processes' folder (in English: the
        tests read its wording)."""
        return subprocess.run(
            [str(BIN / "woobird"), *args],
            env={**self.env, "COLUMNS": "200", "LANGUAGE": "en", **(env or {})},
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    # ── what woobird did ────────────────────────────────────────────────────────────────────────

    def ledger(self, order_id: int) -> dict[str, Any] | None:
        with contextlib.closing(sqlite3.connect(self.database)) as connection:
            connection.row_factory = sqlite3.Row
            row = connection.execute("SELECT * FROM orders WHERE order_id = ?", (order_id,)).fetchone()
            return dict(row) if row is not None else None

    def refunds(self, order_id: int) -> list[dict[str, Any]]:
        with contextlib.closing(sqlite3.connect(self.database)) as connection:
            connection.row_factory = sqlite3.Row
            rows = connection.execute(
                "SELECT * FROM refunds WHERE order_id = ? ORDER BY refund_id", (order_id,)
            )
            return [dict(row) for row in rows]

    def invoices(self, reference: str) -> list[dict[str, Any]]:
        with self.moneybird.lock:
            return [
                dict(i) for i in self.moneybird.sales_invoices.values() if i.get("reference") == reference
            ]

    def invoice_for(
        self, order: dict[str, Any], *, within: float = BOOKING_TIMEOUT_SECONDS
    ) -> dict[str, Any]:
        """The paid invoice woobird booked for `order`, once there is exactly one."""
        reference = f"{INVOICE_REFERENCE_PREFIX}{order['number']}"

        def booked() -> dict[str, Any]:
            found = self.invoices(reference)
            record = self.ledger(order["id"])
            if record is not None and record["state"] == "failed":
                raise AssertionError(f"order {order['id']} failed: {record['error']}")
            if (
                len(found) != 1
                or found[0]["state"] != "paid"
                or record is None
                or record["state"] != "booked"
            ):
                raise NotYet(f"order {order['id']}: invoices {[i['state'] for i in found]}, ledger {record}")
            return found[0]

        return eventually(booked, within=within)

    def credit_for(
        self, order: dict[str, Any], refund_id: int, *, within: float = BOOKING_TIMEOUT_SECONDS
    ) -> dict[str, Any]:
        reference = f"{INVOICE_REFERENCE_PREFIX}{order['number']} refund {refund_id}"

        def credited() -> dict[str, Any]:
            found = self.invoices(reference)
            states = {row["refund_id"]: row for row in self.refunds(order["id"])}
            row = states.get(refund_id)
            if row is not None and row["state"] == "failed":
                raise AssertionError(f"refund {refund_id} of order {order['id']} failed: {row['error']}")
            if len(found) != 1 or found[0]["state"] != "paid" or row is None or row["state"] != "booked":
                raise NotYet(
                    f"refund {refund_id}: credit invoices {[i['state'] for i in found]}, ledger {row}"
                )
            return found[0]

        return eventually(credited, within=within)

    def logs(self) -> str:
        return "\n".join(process.log() for process in self.processes)

    def restart_worker(self) -> None:
        self.restart("worker")

    def restart(self, name: str) -> None:
        """Stop and start one Procfile process (it reads `.env` in its folder anew)."""
        for process in self.processes:
            if process.name == name:
                process.stop()
                process.start()
        if name == "web":
            _wait_until_up(f"{self.web_url}/healthz")


@contextlib.contextmanager
def run_woobird(shop: RealShop, *, workdir: Path, since: datetime, **settings: str) -> Iterator[Stack]:
    """Migrate, start web + worker against `shop` and the Moneybird fake, install the webhook."""
    workdir.mkdir(parents=True, exist_ok=True)
    secrets_ = Secrets(consumer_key=shop.consumer_key, consumer_secret=shop.consumer_secret)
    moneybird = MoneybirdSandbox(token=secrets_.moneybird_token, administration_id=secrets_.administration_id)
    redis = RedisServer(log_dir=workdir)
    redis.start()
    database = workdir / "ledger.db"
    try:
        with serve_in_thread(create_moneybird_app(moneybird)) as moneybird_url:
            web_port = free_port()
            env = (
                process_env(
                    secrets_=secrets_,
                    shop_url=shop.url,
                    moneybird_url=moneybird_url,
                    web_port=web_port,
                    database_url=f"sqlite:///{database}",
                    redis_url=redis.url,
                    since=since,
                    moneybird_timeout=20,
                    rate_limit="1000/10",
                )
                | settings
            )
            stack = Stack(
                shop=shop,
                moneybird=moneybird,
                env=env,
                web_url=f"http://127.0.0.1:{web_port}",
                workdir=workdir,
                database=database,
                since=since,
            )
            migrated = stack.woobird("migrate")
            if migrated.returncode != 0:
                raise RuntimeError(f"woobird migrate failed: {migrated.stdout}{migrated.stderr}")
            for name in ("web", "worker"):
                process = AppProcess(
                    name, procfile_command(name, port=web_port), env=env, log_dir=workdir, cwd=workdir
                )
                process.start()
                stack.processes.append(process)
            try:
                _wait_until_up(f"{stack.web_url}/healthz")
                installed = stack.woobird("webhook", "install")
                stack.install_output = installed.stdout + installed.stderr
                if installed.returncode != 0:
                    raise RuntimeError(f"woobird webhook install failed: {stack.install_output}")
                yield stack
            finally:
                for process in stack.processes:
                    process.stop()
    finally:
        redis.stop()


def _wait_until_up(url: str, *, within: float = 30) -> None:
    deadline = time.monotonic() + within
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer within {within:.0f} s")
        time.sleep(0.2)


def utc_now() -> datetime:
    return datetime.now(UTC)
