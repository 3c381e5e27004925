"""What an idle deployment costs: Redis commands and SQL statements per minute, per process (issue #25).

One web process (uvicorn) and one worker, with the fake shop and the fake Moneybird served from
this process, nothing to book. Each is measured twice in the same run: as the code was before
issue #25 (the baseline, checked out from git into a temporary folder; its worker polled arq's
queue every 50 ms) and as it is now. The window starts once both processes have settled.

- Redis: every command a process sends, from MONITOR on the benchmark's Redis, attributed to the
  process by its connections' ports (commands a Lua script runs inside Redis are shown apart: a
  script is one command on the wire). `INFO commandstats` gives the server's total as a check.
- SQL: every statement any SQLAlchemy engine of the process executes (bench/_counted.py).

RECONCILE_INTERVAL_SECONDS is 60 by default here, so each measured minute holds one reconciliation
pass that finds nothing: the idle cost with the poll at its most eager. `--reconcile-seconds 300
--seconds 300` measures the default deployment (a pass every 5 minutes) over a whole interval.

    .venv/bin/python bench/bench_idle.py                   # 60 s per variant, ~3 minutes
    .venv/bin/python bench/bench_idle.py --seconds 20      # a quick look
    .venv/bin/python bench/bench_idle.py --baseline-ref 93e959c

With `--connections 50` it measures this checkout twice instead, on PostgreSQL: with the
environment's connection alone, and with 49 more connections added (each its own fake shop and
fake administration, bench/_many.py), all idle (issue #25's "1 connection and 50"). The database
is BENCH_IDLE_POSTGRES_URL (default `bench_idle` on BENCH_POSTGRES_ADMIN_URL's server), dropped and
created again for each.

    .venv/bin/python bench/bench_idle.py --connections 50 --reconcile-seconds 300 --seconds 300

Redis db 9 of BENCH_REDIS_URL's server is flushed before and after; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import redis as sync_redis
from _common import (
    BENCH_POSTGRES_ADMIN_URL,
    BENCH_REDIS_URL,
    PYTHON,
    base_env,
    child,
    free_port,
    header,
    sqlite_database,
    table,
)
from _many import add_connections, base_settings, environment_values, fakes, fresh_postgres

from app.logs import configure_logging
from app.sandbox.moneybird import MoneybirdSandbox
from app.sandbox.moneybird import create_app as create_moneybird_app
from app.sandbox.woocommerce import ShopSandbox
from app.sandbox.woocommerce import create_app as create_shop_app
from app.settings import REPO_ROOT
from app.tokens import new_token
from tests.server import serve_in_thread

# The last commit before issue #25: arq's poll every 50 ms, the marker and settings looks every second.
BASELINE_REF = "93e959c"
REDIS_URL = BENCH_REDIS_URL.rsplit("/", 1)[0] + "/9"
COUNTER = Path(__file__).with_name("_counted.py")
SETTLE_SECONDS = 8.0
SECRET = "bench-idle-webhook-secret-5b1e0c77aa"
PROCESSES = ("web", "worker")
POSTGRES_URL = os.environ.get(
    "BENCH_IDLE_POSTGRES_URL", BENCH_POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/bench_idle"
)


@dataclass
class Variant:
    name: str
    # The folder `app` and `workers` are imported from (PYTHONPATH), None for this checkout.
    tree: Path | None
    worker_module: str
    # On PostgreSQL with this many connections (the environment's and the added ones), or None: on
    # SQLite with the environment's alone.
    connections: int | None = None


@dataclass
class Measured:
    variant: str
    seconds: float
    redis: dict[str, Counter[str]] = field(default_factory=dict)
    scripted: int = 0
    server_total: int = 0
    sql: dict[str, int] = field(default_factory=dict)

    def redis_per_minute(self, process: str) -> float:
        return sum(self.redis.get(process, Counter()).values()) * 60 / self.seconds

    def sql_per_minute(self, process: str) -> float:
        return self.sql.get(process, 0) * 60 / self.seconds


def checkout(ref: str, into: Path) -> Path:
    """The tree of `ref` (git archive), for running the baseline's processes from it."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", ref, "app", "workers", "migrations"],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def socket_ports(pid: int) -> set[int]:
    """Local TCP ports of the sockets `pid` holds (its client connections to Redis among them)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    ports = set()
    for table_path in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table_path).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[9] in inodes:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


class Monitor:
    """MONITOR in a thread: every command the server runs, by client port (or "lua")."""

    _LINE = re.compile(r'^[\d.]+ \[\d+ (?:[\d.:\[\]a-f]+:(\d+)|(lua))\] "([^"]+)"')

    def __init__(self, url: str) -> None:
        self.url = url
        self.by_port: dict[str, Counter[str]] = {}
        self.counting = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="monitor", daemon=True)

    def __enter__(self) -> Monitor:
        self._thread.start()
        time.sleep(0.2)
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        # Nudge the server so that the blocked read returns and the thread sees the flag.
        client = sync_redis.Redis.from_url(self.url)
        client.ping()
        client.close()
        self._thread.join(5)

    def _run(self) -> None:
        client = sync_redis.Redis.from_url(self.url)
        with client.monitor() as monitor:  # type: ignore[no-untyped-call]
            while not self._stop.is_set():
                raw = monitor.connection.read_response()
                line = raw.decode() if isinstance(raw, bytes) else str(raw)
                match = self._LINE.match(line)
                if match is None or not self.counting:
                    continue
                port, lua, command = match.groups()
                self.by_port.setdefault(lua or port, Counter())[command.upper()] += 1
        client.close()


def command_total(client: sync_redis.Redis) -> int:
    stats: dict[str, dict[str, int]] = client.info("commandstats")  # type: ignore[assignment]
    return sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_monitor")


def read_count(path: Path) -> int:
    with contextlib.suppress(OSError, ValueError):
        return int(path.read_text() or 0)
    return 0


@contextlib.contextmanager
def one_shop(variant: Variant, work: Path) -> Iterator[dict[str, str]]:
    """The fake shop and fake Moneybird of the environment's connection; its settings."""
    moneybird = MoneybirdSandbox()
    shop_port = free_port()
    shop = ShopSandbox(url=f"http://127.0.0.1:{shop_port}", ping_on_create=False)
    database_url = sqlite_database(work, f"{variant.name}.db")
    with (
        serve_in_thread(create_moneybird_app(moneybird)) as moneybird_url,
        serve_in_thread(create_shop_app(shop), shop_port),
    ):
        yield {
            "WOOCOMMERCE_URL": shop.url,
            "WOOCOMMERCE_CONSUMER_KEY": shop.consumer_key,
            "WOOCOMMERCE_CONSUMER_SECRET": shop.consumer_secret,
            "WOOCOMMERCE_WEBHOOK_SECRET": SECRET,
            "MONEYBIRD_API_URL": f"{moneybird_url}/api/v2",
            "MONEYBIRD_API_TOKEN": moneybird.token,
            "MONEYBIRD_ADMINISTRATION_ID": moneybird.administration_id,
            "ADMIN_TOKEN": new_token(),
            "REDIS_URL": REDIS_URL,
            "DATABASE_URL": database_url,
        }


@contextlib.contextmanager
def many_shops(connections: int) -> Iterator[dict[str, str]]:
    """`connections` fake shops and administrations, all but the first added as connections."""
    fresh_postgres(POSTGRES_URL, BENCH_POSTGRES_ADMIN_URL)
    with fakes(connections, rate_limit=None, latency_seconds=0.0) as fake:
        values = environment_values(fake, redis_url=REDIS_URL, database_url=POSTGRES_URL)
        values.pop("LOG_LEVEL")
        add_connections(base_settings(values), fake.tenants)
        yield values


def measure(variant: Variant, *, seconds: float, work: Path, reconcile_seconds: int = 60) -> Measured:
    client = sync_redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    counts = {process: work / f"{variant.name}-{process}.sql" for process in PROCESSES}
    shops = one_shop(variant, work) if variant.connections is None else many_shops(variant.connections)
    with shops as values:
        values["RECONCILE_INTERVAL_SECONDS"] = str(reconcile_seconds)
        if variant.tree is not None:
            values["PYTHONPATH"] = str(variant.tree)
        web_port = free_port()
        web = ["uvicorn", "--factory", "app.main:create_app", "--host", "127.0.0.1", "--port", str(web_port)]
        web += ["--no-access-log"]
        commands = {"web": web, "worker": [variant.worker_module, *_worker_args(variant)]}
        with contextlib.ExitStack() as stack:
            processes = {}
            for process in PROCESSES:
                env = base_env(**values, BENCH_SQL_COUNT_FILE=str(counts[process]))
                processes[process] = stack.enter_context(
                    child(
                        [PYTHON, str(COUNTER), *commands[process]],
                        env=env,
                        log_path=work / f"{variant.name}-{process}.log",
                        port=web_port if process == "web" else None,
                    )
                )
            monitor = stack.enter_context(Monitor(REDIS_URL))
            time.sleep(SETTLE_SECONDS)
            sql_before = {process: read_count(counts[process]) for process in PROCESSES}
            total_before = command_total(client)
            monitor.counting = True
            started = time.monotonic()
            time.sleep(seconds)
            monitor.counting = False
            elapsed = time.monotonic() - started
            total_after = command_total(client)
            time.sleep(0.6)  # the counters are written twice a second
            sql_after = {process: read_count(counts[process]) for process in PROCESSES}
            ports = {process: socket_ports(p.pid) for process, p in processes.items()}
    measured = Measured(variant.name, elapsed, server_total=total_after - total_before)
    for source, commands_seen in monitor.by_port.items():
        if source == "lua":
            measured.scripted += sum(commands_seen.values())
            continue
        owner = next((p for p, owned in ports.items() if int(source) in owned), "other")
        commands_seen.pop("INFO", None)  # the benchmark's own INFO commandstats
        if commands_seen:
            measured.redis.setdefault(owner, Counter()).update(commands_seen)
    measured.sql = {process: sql_after[process] - sql_before[process] for process in PROCESSES}
    client.flushdb()
    client.close()
    return measured


def _worker_args(variant: Variant) -> list[str]:
    return ["workers.settings.WorkerSettings"] if variant.worker_module == "arq" else []


def report(runs: Sequence[Measured]) -> None:
    baseline, *others = runs
    rows = []
    for run in runs:
        for process in (*PROCESSES, "other"):
            if process == "other" and process not in run.redis:
                continue
            commands = run.redis.get(process, Counter())
            top = ", ".join(
                f"{name} {count * 60 / run.seconds:.0f}" for name, count in commands.most_common(5)
            )
            redis_ratio = _ratio(run.redis_per_minute(process), baseline.redis_per_minute(process))
            sql_ratio = _ratio(run.sql_per_minute(process), baseline.sql_per_minute(process))
            rows.append(
                [
                    run.variant,
                    process,
                    f"{run.redis_per_minute(process):.0f}",
                    redis_ratio,
                    f"{run.sql_per_minute(process):.0f}" if process != "other" else "",
                    sql_ratio if process != "other" else "",
                    top,
                ]
            )
    table(
        ["variant", "process", "Redis cmd/min", f"vs {baseline.variant}", "SQL/min", f"vs {baseline.variant}"]
        + ["most sent (per min)"],
        rows,
    )
    for run in runs:
        client_sent = sum(run.redis_per_minute(p) for p in PROCESSES)
        print(
            f"{run.variant}: {client_sent:.0f} Redis commands/min sent by web and worker "
            f"(≈ {client_sent * 60 * 24 * 30 / 1e6:.2f} million a 30-day month), "
            f"{run.scripted * 60 / run.seconds:.0f}/min more inside Lua scripts; server total "
            f"{run.server_total * 60 / run.seconds:.0f}/min (INFO commandstats, without MONITOR); "
            f"SQL {sum(run.sql_per_minute(p) for p in PROCESSES):.0f} statements/min"
        )
    for run in others:
        redis_before = sum(baseline.redis_per_minute(p) for p in PROCESSES)
        sql_before = sum(baseline.sql_per_minute(p) for p in PROCESSES)
        redis_now = sum(run.redis_per_minute(p) for p in PROCESSES)
        sql_now = sum(run.sql_per_minute(p) for p in PROCESSES)
        print(
            f"{run.variant} against {baseline.variant}: Redis {_ratio(redis_now, redis_before)}, "
            f"SQL {_ratio(sql_now, sql_before)}"
        )


def _ratio(value: float, baseline: float) -> str:
    return f"{value / baseline:.3f}x" if baseline else "—"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each measured window")
    parser.add_argument("--baseline-ref", default=BASELINE_REF, help="git commit of the baseline")
    parser.add_argument("--reconcile-seconds", type=int, default=60, help="RECONCILE_INTERVAL_SECONDS")
    parser.add_argument(
        "--connections", type=int, default=1, help="more than 1: this checkout with 1 and with N connections"
    )
    args = parser.parse_args(argv)
    configure_logging(level="WARNING")
    if args.connections > 1:
        return many_connections(args)
    header(
        "bench_idle — Redis commands and SQL statements per idle minute, web + 1 worker (issue #25)",
        [
            f"baseline: the code at {args.baseline_ref} (arq polling every 50 ms), run from a git archive",
            "now: this checkout; SQLite ledger, fake shop and fake Moneybird, "
            f"RECONCILE_INTERVAL_SECONDS={args.reconcile_seconds}",
            f"{args.seconds:.0f} s measured per variant after {SETTLE_SECONDS:.0f} s to settle; "
            f"Redis {REDIS_URL}",
        ],
    )
    with tempfile.TemporaryDirectory(prefix="bench-idle-") as directory:
        work = Path(directory)
        baseline = Variant("before", checkout(args.baseline_ref, work / "baseline"), "arq")
        now = Variant("now", None, "workers")
        runs = [
            measure(variant, seconds=args.seconds, work=work, reconcile_seconds=args.reconcile_seconds)
            for variant in (baseline, now)
        ]
    report(runs)
    return 0


def many_connections(args: argparse.Namespace) -> int:
    header(
        f"bench_idle — idle Redis commands and SQL statements per minute, 1 and {args.connections} "
        "connections (issues #22, #25)",
        [
            f"this checkout, web + 1 worker, PostgreSQL {POSTGRES_URL.rsplit('@', 1)[-1]}, one fake shop and "
            "fake administration per connection, nothing to book",
            f"RECONCILE_INTERVAL_SECONDS={args.reconcile_seconds}; {args.seconds:.0f} s measured per variant "
            f"after {SETTLE_SECONDS:.0f} s to settle; Redis {REDIS_URL}",
        ],
    )
    with tempfile.TemporaryDirectory(prefix="bench-idle-") as directory:
        work = Path(directory)
        runs = [
            measure(
                Variant(f"{n} connection{'s' if n > 1 else ''}", None, "workers", connections=n),
                seconds=args.seconds,
                work=work,
                reconcile_seconds=args.reconcile_seconds,
            )
            for n in (1, args.connections)
        ]
    report(runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
