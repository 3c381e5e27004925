"""How many signed webhook deliveries per second the real `POST /webhooks/woocommerce` takes (issue #2).

Three servers, each started with the same uvicorn command (one process, uvloop, httptools, no
access log) and loaded in turn by the same generator at 50 connections:

    bare      a FastAPI endpoint that only verifies the HMAC           (the baseline, = 1.00)
    enqueue   bare + one arq enqueue                                   (what queueing alone costs)
    real      app.main:create_app with real settings: verify, parse, qualify, ledger row, enqueue

Every delivery to the real endpoint is a distinct, paid, completed order (so none is deduplicated
away) signed with the webhook secret; the ledger and the queue are counted afterwards to prove it.
The load generator is `wrk` with a Lua script cycling pre-signed bodies when it is installed
(`apt-get install -y wrk`), else a Python asyncio generator; the header says which ran.

    .venv/bin/python bench/bench_intake.py                       # SQLite ledger, ~1.5 minutes
    .venv/bin/python bench/bench_intake.py --database postgres   # the `bench` PostgreSQL database
    .venv/bin/python bench/bench_intake.py --quick               # ~25 seconds
    .venv/bin/python bench/bench_intake.py --paced 100           # a real peak, not saturation

`--paced RATE` is an open-loop load instead: a delivery every 1/RATE s whatever the answers (on
a pool of connections, as WooCommerce's many PHP workers would), each timed from the moment it was
due to be sent — a request that waits for a free connection counts that wait — against the bare
endpoint under the same pace; the goal is the real endpoint's p99 at 100 deliveries a second.

Redis db 8 is flushed before and after; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import math
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import redis as sync_redis
from _common import (
    BENCH_REDIS_URL,
    PYTHON,
    base_env,
    child,
    count_orders,
    free_port,
    header,
    percentile,
    postgres_database,
    sqlite_database,
    table,
)

from app.constants import QUEUE_NAME, WEBHOOK_PATH
from app.sandbox.woocommerce import ShopSandbox
from app.sandbox.woocommerce.cart import CartItem, Coupon, Customer, ShippingMethod
from app.sandbox.woocommerce.checkout import build_order
from app.tokens import new_token
from app.webhooks import sign

SECRET = "bench-intake-webhook-secret-5c1e"
CONNECTIONS = 50
# The paced load's pool: more than 100/s of ~5 ms answers ever keeps busy.
PACED_CONNECTIONS = 20
PACED_GOAL_P99_MS = 20.0
WRK_THREADS = 2
# Bodies prepared per second of load on the real endpoint; more than it can take, so none repeats.
REAL_BODIES_PER_SECOND = 4000
REFERENCE_BODIES = 4000
PLACEHOLDER_ID = 987654321
BENCH_DIR = Path(__file__).resolve().parent
UVICORN = [PYTHON, "-m", "uvicorn", "--host", "127.0.0.1", "--loop", "uvloop", "--http", "httptools"]
UVICORN_QUIET = ["--no-access-log", "--log-level", "warning", "--lifespan", "on"]

WRK_SCRIPT = r"""
-- Cycles pre-signed webhook bodies: thread N reads "<prefix>-N.txt", one "<signature> <body>" a line.
local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  table.insert(threads, thread)
  counter = counter + 1
end

function init(args)
  signatures, bodies = {}, {}
  for line in io.lines(args[1] .. "-" .. id .. ".txt") do
    local signature, body = line:match("^(%S+) (.*)$")
    signatures[#signatures + 1] = signature
    bodies[#bodies + 1] = body
  end
  index, wraps = 0, 0
  headers = {["Content-Type"] = "application/json", ["X-WC-Webhook-Topic"] = "order.updated"}
end

function request()
  index = index + 1
  if index > #bodies then
    index, wraps = 1, wraps + 1
  end
  headers["X-WC-Webhook-Signature"] = signatures[index]
  return wrk.format("POST", "__PATH__", headers, bodies[index])
end

function done(summary, latency, requests)
  local wrapped = 0
  for _, thread in ipairs(threads) do wrapped = wrapped + thread:get("wraps") end
  local e = summary.errors
  io.write(string.format(
    "WRK_RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d failed=%d wraps=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout, wrapped))
end
"""


@dataclass(frozen=True)
class Load:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    failed: int
    wraps: int

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class Target:
    name: str
    what: str
    app: list[str]  # uvicorn's app arguments
    distinct: bool  # every request must carry a new order


# -- bodies ------------------------------------------------------------------------------------


def _order_template() -> bytes:
    """A realistic order webhook body (two VAT rates, a coupon, shipping: ~3.5 kB), id to be filled."""
    shop = ShopSandbox(ping_on_create=False, seed_catalog=False)
    document = build_order(
        order_id=PLACEHOLDER_ID,
        number=str(PLACEHOLDER_ID),
        customer=Customer(
            first_name="Fatima",
            last_name="El Amrani",
            email="fatima.elamrani@example.com",
            address_1="Keizersgracht 112",
            city="Amsterdam",
            postcode="1015 CV",
            phone="06 12345678",
        ),
        items=[
            CartItem("Wollen plaid Okergeel", Decimal("59.00"), sku="PLAID-WOL-OKER", product_id=2010),
            CartItem("Kookboek Koken met de seizoenen", Decimal("24.50"), 2, tax_class="reduced-rate"),
        ],
        coupons=[Coupon("welkom10", "percent", Decimal(10), 311)],
        shipping=[ShippingMethod("PostNL pakket", Decimal("4.95"))],
        created_at=datetime(2025, 5, 2, 9, 3, 29, tzinfo=UTC),
        paid_at=datetime(2025, 5, 2, 9, 4, 10, tzinfo=UTC),
        completed_at=datetime(2025, 5, 3, 11, 30, tzinfo=UTC),
        payment_method="ppcp-gateway",
        transaction_id="8FH04512TX338562L",
    )
    stored = shop.add_order(copy.deepcopy(document))
    body = shop.webhook_body(int(stored["id"]))
    if str(PLACEHOLDER_ID).encode() not in body:
        raise RuntimeError("the order template lost its id")
    return body


def signed_bodies(template: bytes, *, first_id: int, count: int) -> list[tuple[str, bytes]]:
    placeholder = str(PLACEHOLDER_ID).encode()
    bodies = []
    for order_id in range(first_id, first_id + count):
        body = template.replace(placeholder, str(order_id).encode())
        bodies.append((sign(SECRET, body), body))
    return bodies


def write_body_files(bodies: Sequence[tuple[str, bytes]], prefix: Path, *, threads: int) -> None:
    """One file per wrk thread, so no two threads ever send the same order."""
    share = math.ceil(len(bodies) / threads)
    for number in range(threads):
        chunk = bodies[number * share : (number + 1) * share]
        with open(f"{prefix}-{number}.txt", "wb") as handle:
            for signature, body in chunk:
                handle.write(signature.encode() + b" " + body + b"\n")


# -- load generators ---------------------------------------------------------------------------


def wrk_load(port: int, prefix: Path, script: Path, *, seconds: float, connections: int) -> Load:
    command = [
        "wrk",
        f"-t{WRK_THREADS}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        f"http://127.0.0.1:{port}{WEBHOOK_PATH}",
        "--",
        str(prefix),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=False)
    match = re.search(r"WRK_RESULT (.*)", done.stdout)
    if done.returncode != 0 or match is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout[-400:]} {done.stderr[-400:]}")
    values = dict(pair.split("=") for pair in match[1].split())
    return Load(
        requests=int(values["requests"]),
        seconds=int(values["duration_us"]) / 1e6,
        p50_ms=int(values["p50_us"]) / 1000,
        p99_ms=int(values["p99_us"]) / 1000,
        failed=int(values["failed"]),
        wraps=int(values["wraps"]),
    )


async def python_load(
    port: int, bodies: Sequence[tuple[str, bytes]], *, seconds: float, connections: int
) -> Load:
    """Keep-alive HTTP/1.1 over asyncio streams: far lighter than an HTTP client library per request."""
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    failed = 0
    cursor = 0
    wraps = 0
    started = loop.time()
    deadline = started + seconds

    async def connection() -> None:
        nonlocal cursor, failed, wraps
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while loop.time() < deadline:
                signature, body = bodies[cursor]
                cursor += 1
                if cursor == len(bodies):
                    cursor, wraps = 0, wraps + 1
                sent = time.perf_counter()
                writer.write(_request(signature, body))
                status = await _read_answer(reader)
                latencies.append(time.perf_counter() - sent)
                if status >= 300:
                    failed += 1
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(connections)))
    elapsed = loop.time() - started
    return _measured(latencies, seconds=elapsed, failed=failed, wraps=wraps)


async def paced_load(
    port: int, bodies: Sequence[tuple[str, bytes]], *, seconds: float, rate: float, connections: int
) -> Load:
    """Open loop: send at `rate` per second whatever the answers; latency from each send's due time."""
    loop = asyncio.get_running_loop()
    idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(connections):
        idle.put_nowait(await asyncio.open_connection("127.0.0.1", port))
    latencies: list[float] = []
    failed = 0

    async def deliver(due: float, signature: str, body: bytes) -> None:
        nonlocal failed
        reader, writer = await idle.get()
        try:
            writer.write(_request(signature, body))
            status = await _read_answer(reader)
        finally:
            idle.put_nowait((reader, writer))
        latencies.append(loop.time() - due)
        failed += status >= 300

    started = loop.time() + 0.05
    count = int(rate * seconds)
    sent = []
    for number in range(count):
        due = started + number / rate
        await asyncio.sleep(max(0.0, due - loop.time()))
        signature, body = bodies[number % len(bodies)]
        sent.append(asyncio.create_task(deliver(due, signature, body)))
    await asyncio.gather(*sent)
    elapsed = loop.time() - started
    while not idle.empty():
        idle.get_nowait()[1].close()
    return _measured(latencies, seconds=elapsed, failed=failed, wraps=max(0, count - 1) // len(bodies))


def _measured(latencies: Sequence[float], *, seconds: float, failed: int, wraps: int) -> Load:
    return Load(
        requests=len(latencies),
        seconds=seconds,
        p50_ms=percentile(latencies, 0.50) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        failed=failed,
        wraps=wraps,
    )


def _request(signature: str, body: bytes) -> bytes:
    return (
        f"POST {WEBHOOK_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"X-WC-Webhook-Topic: order.updated\r\nX-WC-Webhook-Signature: {signature}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def _read_answer(reader: asyncio.StreamReader) -> int:
    status = int((await reader.readline()).split()[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return status


# -- one target --------------------------------------------------------------------------------


@dataclass
class Run:
    target: Target
    load: Load
    ledger_rows: int | None = None
    queued: int | None = None


class Bench:
    def __init__(
        self, *, work: Path, database: str, seconds: float, warmup: float, generator: str, paced: float = 0
    ) -> None:
        self.paced = paced
        self.work = work
        self.database = database
        self.seconds = seconds
        self.warmup = warmup
        self.generator = generator
        self.template = _order_template()
        self.script = work / "cycle.lua"
        self.script.write_text(WRK_SCRIPT.replace("__PATH__", WEBHOOK_PATH))
        self.next_id = 100_000

    def bodies(self, count: int) -> list[tuple[str, bytes]]:
        bodies = signed_bodies(self.template, first_id=self.next_id, count=count)
        self.next_id += count
        return bodies

    def load(self, port: int, bodies: list[tuple[str, bytes]], *, seconds: float, name: str) -> Load:
        if self.paced:
            return asyncio.run(
                paced_load(port, bodies, seconds=seconds, rate=self.paced, connections=PACED_CONNECTIONS)
            )
        if self.generator == "wrk":
            prefix = self.work / name
            write_body_files(bodies, prefix, threads=WRK_THREADS)
            return wrk_load(port, prefix, self.script, seconds=seconds, connections=CONNECTIONS)
        return asyncio.run(python_load(port, bodies, seconds=seconds, connections=CONNECTIONS))

    def database_url(self) -> str:
        if self.database == "postgres":
            return postgres_database()
        path = self.work / "ledger"
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir()
        return sqlite_database(path)

    def run(self, target: Target) -> Run:
        flush()
        database_url = self.database_url() if target.name == "real" else ""
        port = free_port()
        env = base_env(
            BENCH_SECRET=SECRET,
            BENCH_REDIS_URL=BENCH_REDIS_URL,
            **(real_settings(database_url) if target.name == "real" else {}),
        )
        per_second = (self.paced or REAL_BODIES_PER_SECOND) if target.distinct else 0
        minimum = 1 if self.paced and target.distinct else REFERENCE_BODIES
        warm = self.bodies(max(minimum, int(per_second * self.warmup) + 1))
        measured = self.bodies(max(minimum, int(per_second * self.seconds) + 1))
        command = [*UVICORN, "--port", str(port), *UVICORN_QUIET, *target.app]
        with child(command, env=env, log_path=self.work / f"{target.name}.log", port=port):
            self.load(port, warm, seconds=self.warmup, name=f"{target.name}-warm")
            load = self.load(port, measured, seconds=self.seconds, name=target.name)
        run = Run(target, load)
        if target.name == "real":
            run.ledger_rows = count_orders(database_url)
            run.queued = queued_jobs()
        flush()
        return run


def real_settings(database_url: str) -> dict[str, str]:
    return {
        "WOOCOMMERCE_URL": "http://127.0.0.1:9",
        "WOOCOMMERCE_CONSUMER_KEY": "ck_" + "b3" * 20,
        "WOOCOMMERCE_CONSUMER_SECRET": "cs_" + "c4" * 20,
        "WOOCOMMERCE_WEBHOOK_SECRET": SECRET,
        "MONEYBIRD_API_TOKEN": "bench-moneybird-token-81f0",
        "MONEYBIRD_ADMINISTRATION_ID": "123456789012345678",
        "MONEYBIRD_API_URL": "http://127.0.0.1:9/api/v2",
        "ADMIN_TOKEN": new_token(),
        "REDIS_URL": BENCH_REDIS_URL,
        "DATABASE_URL": database_url,
        "SYNC_SINCE": "2020-01-01T00:00:00Z",
    }


def flush() -> None:
    client = sync_redis.Redis.from_url(BENCH_REDIS_URL)
    client.flushdb()
    client.close()


def queued_jobs() -> int:
    client = sync_redis.Redis.from_url(BENCH_REDIS_URL)
    count: int = client.zcard(QUEUE_NAME)  # type: ignore[assignment]
    client.close()
    return count


TARGETS = [
    Target(
        "bare",
        "verify HMAC only",
        ["--factory", "--app-dir", str(BENCH_DIR), "_intake_baseline:create_bare_app"],
        distinct=False,
    ),
    Target(
        "enqueue",
        "verify HMAC + arq enqueue",
        ["--factory", "--app-dir", str(BENCH_DIR), "_intake_baseline:create_enqueue_app"],
        distinct=False,
    ),
    Target(
        "real",
        "app.main:create_app (verify, parse, ledger, enqueue)",
        ["--factory", "app.main:create_app"],
        distinct=True,
    ),
]


def median(values: Sequence[float]) -> float:
    return percentile(values, 0.5)


def _medians(loads: Sequence[Load]) -> list[str]:
    """Rate, p50 and p99 over the rounds, as the tables print them."""
    return [
        f"{median([load.rate for load in loads]):,.0f}",
        f"{median([load.p50_ms for load in loads]):.1f}",
        f"{median([load.p99_ms for load in loads]):.1f}",
    ]


def report(rounds: list[dict[str, Run]], *, database: str) -> None:
    """Medians over the rounds; each ratio is taken within its round, where the load was the same."""
    names = list(rounds[0])

    def ratio(name: str) -> float:
        return median([r[name].load.rate / r["bare"].load.rate for r in rounds])

    rows = []
    for name in names:
        loads = [r[name].load for r in rounds]
        rows.append(
            [
                name,
                rounds[0][name].target.what,
                *_medians(loads),
                f"{ratio(name):.2f}x",
                " / ".join(f"{load.rate:,.0f}" for load in loads),
                str(sum(load.failed for load in loads)),
            ]
        )
    table(
        ["endpoint", "what it does", "req/s", "p50 ms", "p99 ms", "vs bare", "req/s per round", "failed"],
        rows,
    )
    if "real" not in names:
        return
    for number, run in enumerate((r["real"] for r in rounds), start=1):
        accepted = run.load.requests - run.load.failed
        print(
            f"round {number}, real path on {database}: {run.ledger_rows:,} ledger rows = {run.queued:,} "
            f"queued jobs for {accepted:,} accepted deliveries measured + the warm-up's; "
            f"body set repeated {run.load.wraps} times (0: every order distinct)"
        )
    real_rate = median([r["real"].load.rate for r in rounds])
    real_p99 = median([r["real"].load.p99_ms for r in rounds])
    goals = [
        ("real/bare >= 0.20", ratio("real") >= 0.20, f"{ratio('real'):.2f}"),
        ("real >= 1000 deliveries/s", real_rate >= 1000, f"{real_rate:,.0f}/s"),
        ("real p99 <= 60 ms", real_p99 <= 60, f"{real_p99:.1f} ms"),
    ]
    if "enqueue" in names:
        print(f"enqueue/bare = {ratio('enqueue'):.2f}x   real/bare = {ratio('real'):.2f}x")
    print("goals (issue #2): " + "   ".join(f"{g}: {v} {'met' if ok else 'MISSED'}" for g, ok, v in goals))


def report_paced(rounds: list[dict[str, Run]], *, database: str, rate: float) -> None:
    rows = []
    for name in rounds[0]:
        loads = [r[name].load for r in rounds]
        rows.append(
            [
                name,
                rounds[0][name].target.what,
                *_medians(loads),
                " / ".join(f"{load.p99_ms:.1f}" for load in loads),
                str(sum(load.failed for load in loads)),
            ]
        )
    table(["endpoint", "what it does", "req/s", "p50 ms", "p99 ms", "p99 per round", "failed"], rows)
    real = median([r["real"].load.p99_ms for r in rounds])
    bare = median([r["bare"].load.p99_ms for r in rounds])
    for number, run in enumerate((r["real"] for r in rounds), start=1):
        print(
            f"round {number}, real path on {database}: {run.ledger_rows:,} ledger rows = "
            f"{run.queued:,} queued jobs"
        )
    verdict = "met" if real <= PACED_GOAL_P99_MS else "MISSED"
    print(
        f"at {rate:g} deliveries/s: real p99 {real:.1f} ms "
        f"({real / bare:.1f}x the bare endpoint's {bare:.1f} ms); "
        f"goal (issue #25) p99 <= {PACED_GOAL_P99_MS:g} ms: {verdict}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="~25 s: one round of 4 s per endpoint")
    parser.add_argument("--rounds", type=int, help="rounds of bare → enqueue → real (default 3, quick 1)")
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--seconds", type=float, help="measured seconds per endpoint (default 8, quick 4)")
    parser.add_argument("--generator", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--only", choices=[t.name for t in TARGETS], action="append", help="run only these")
    parser.add_argument("--paced", type=float, default=0, help="open loop at this many deliveries/s")
    args = parser.parse_args(argv)
    if args.paced and not args.only:
        args.only = ["real"]
    seconds = args.seconds or (4.0 if args.quick else 8.0)
    warmup = 1.0 if args.quick else 2.0
    rounds = args.rounds or (1 if args.quick else 3)
    generator = args.generator
    if generator == "auto":
        generator = "wrk" if shutil.which("wrk") else "python"
    if generator == "wrk" and not shutil.which("wrk"):
        parser.error("wrk is not installed (apt-get install -y wrk), use --generator python")
    load = (
        "wrk, 2 threads, Lua cycling pre-signed bodies"
        if generator == "wrk"
        else "Python asyncio, keep-alive"
    )
    if args.paced:
        load = (
            f"open loop, {args.paced:g} deliveries/s on a pool of {PACED_CONNECTIONS} keep-alive connections"
        )
        seconds = args.seconds or (5.0 if args.quick else 20.0)
    header(
        "bench_intake — signed WooCommerce order webhooks per second, POST /webhooks/woocommerce (issue #2)",
        [
            f"server: uvicorn, 1 process, uvloop + httptools, no access log; ledger: {args.database}; "
            f"Redis {BENCH_REDIS_URL}",
            f"load: {load}, {'' if args.paced else f'{CONNECTIONS} connections, '}{warmup:.0f} s warm-up + "
            f"{seconds:.0f} s measured per endpoint, {rounds} round(s) interleaved; medians over rounds",
            "body: a ~3.5 kB order (2 VAT rates, coupon, shipping); every real delivery a distinct order id",
        ],
    )
    selected = [t for t in TARGETS if not args.only or t.name in args.only or t.name == "bare"]
    with tempfile.TemporaryDirectory(prefix="bench-intake-") as directory:
        bench = Bench(
            work=Path(directory),
            database=args.database,
            seconds=seconds,
            warmup=warmup,
            generator=generator,
            paced=args.paced,
        )
        results = [{target.name: bench.run(target) for target in selected} for _ in range(rounds)]
    if args.paced:
        report_paced(results, database=args.database, rate=args.paced)
    else:
        report(results, database=args.database)
    return 0


if __name__ == "__main__":
    sys.exit(main())
