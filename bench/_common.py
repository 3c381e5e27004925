"""What the benchmarks share: the machine header, migrated databases, subprocesses, percentiles.

Not a benchmark itself (`make bench` runs only `bench/bench_*.py`). Everything stays on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text

from app.db import create_engine
from app.settings import REPO_ROOT, normalise_database_url

# The benchmarks run as scripts (`python bench/bench_booking.py`): the repository's own root comes on
# the path too, for the test helpers they share (the fakes' HTTP server in tests/server.py).
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(1, str(REPO_ROOT))

PYTHON = sys.executable
BENCH_REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/8")
BENCH_POSTGRES_ADMIN_URL = os.environ.get(
    "BENCH_POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
BENCH_POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/bench")
TABLES = ("ledger_events", "refunds", "contacts", "orders", "service_state")


def machine() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    nproc = len(os.sched_getaffinity(0))
    return f"nproc {nproc} ({os.cpu_count()} CPUs), {model}, Python {platform.python_version()}"


def header(title: str, lines: Sequence[str]) -> None:
    print(f"# {title}")
    for line in lines:
        print(f"#   {line}")
    print(f"#   machine: {machine()}")
    print()


def table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(c)), *(len(str(r[i])) for r in rows)) for i, c in enumerate(columns)]
    print("  ".join(str(c).ljust(w) for c, w in zip(columns, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)))
    print()


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile; `values` need not be sorted."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(round(fraction * len(ordered) + 0.5)) - 1))
    return ordered[rank]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, *, process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process {process.args!r} exited with {process.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listened on 127.0.0.1:{port} within {timeout} s")


@contextlib.contextmanager
def child(
    args: Sequence[str], *, env: dict[str, str], log_path: Path, port: int | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A subprocess in its own session, stopped (SIGINT, then SIGKILL) when the block ends.

    It runs in the log's directory so that no `.env` of the checkout leaks into its settings.
    """
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            list(args),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=log_path.parent,
            start_new_session=True,
        )
        try:
            if port is not None:
                wait_for_port(port, process=process)
            yield process
        finally:
            stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def peak_rss_mib(pid: int) -> float:
    """VmHWM: the most resident memory the process ever had."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def base_env(**values: str) -> dict[str, str]:
    """The parent's environment without any woobird setting, plus `values` (no .env is read: cwd)."""
    env = {k: v for k, v in os.environ.items() if not k.isupper() or k in _KEEP}
    env.update(values)
    return env


_KEEP = {"PYTHONPATH", "PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV", "TERM", "USER"}


def migrate(url: str) -> None:
    config = Config(str(REPO_ROOT / "alembic.ini"))
    config.attributes["database_url"] = normalise_database_url(url)
    command.upgrade(config, "head")


def sqlite_database(directory: Path, name: str = "bench.db") -> str:
    url = f"sqlite:///{directory / name}"
    migrate(url)
    return url


def postgres_database() -> str:
    """The dedicated `bench` database, created when missing, migrated and emptied."""

    async def prepare() -> None:
        admin = create_engine(normalise_database_url(BENCH_POSTGRES_ADMIN_URL), pool_size=1)
        name = BENCH_POSTGRES_URL.rsplit("/", 1)[1]
        async with admin.connect() as connection:
            connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
            found = await connection.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
            )
            if found.first() is None:
                await connection.execute(text(f'CREATE DATABASE "{name}"'))
        await admin.dispose()

    asyncio.run(prepare())
    migrate(BENCH_POSTGRES_URL)
    empty_postgres()
    return BENCH_POSTGRES_URL


def empty_postgres() -> None:
    async def truncate() -> None:
        engine = create_engine(normalise_database_url(BENCH_POSTGRES_URL), pool_size=1)
        async with engine.begin() as connection:
            await connection.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
        await engine.dispose()

    asyncio.run(truncate())


def count_orders(url: str) -> int:
    async def count() -> int:
        engine = create_engine(normalise_database_url(url), pool_size=1)
        async with engine.connect() as connection:
            value = (await connection.execute(text("SELECT count(*) FROM orders"))).scalar_one()
        await engine.dispose()
        return int(value)

    return asyncio.run(count())
