"""Attacks on the real web process, started as the Procfile starts it: sizes and times stay bounded.

Before app/http_limits.py and the Procfile's limits: a 256 KiB header held /healthz 149 s (1 MiB:
tens of minutes), a body trickled at 1 byte/s and a connection that sent nothing were held as long
as the client liked, and SIGTERM waited for them. Each test below sends one of those attacks and
asserts the answer comes within a bound well under the old figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shlex
import signal
import subprocess
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from app.constants import (
    HTTP_BODY_TIMEOUT_SECONDS,
    HTTP_HEADER_TIMEOUT_SECONDS,
    HTTP_MAX_HEADER_BYTES,
    WEBHOOK_PATH,
)
from app.db import create_engine, session_factory
from app.settings import REPO_ROOT, load_settings
from app.settings_store import write_settings
from app.tokens import new_token
from tests.chaos.rig import free_port, procfile_command, wait_until_up
from tests.conftest import migrate
from tests.services import redis_database

WEB_REDIS_URL = redis_database(9)
# How long past a deadline the answer may come on a busy machine.
SLACK_SECONDS = 3.0
CONCURRENCY_LIMIT = 100  # the Procfile's --limit-concurrency


@dataclass
class Web:
    url: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def _start(tmp: Path) -> Web:
    port = free_port()
    database = tmp / "web.db"
    migrate(f"sqlite:///{database}")
    env = {key: value for key, value in os.environ.items() if key in {"PATH", "HOME", "LANG"}} | {
        "WOOCOMMERCE_URL": "https://shop.test",
        "WOOCOMMERCE_CONSUMER_KEY": f"ck_{secrets.token_hex(20)}",
        "WOOCOMMERCE_CONSUMER_SECRET": f"cs_{secrets.token_hex(20)}",
        "WOOCOMMERCE_WEBHOOK_SECRET": new_token(),
        "MONEYBIRD_API_TOKEN": secrets.token_hex(32),
        "MONEYBIRD_ADMINISTRATION_ID": "123456789012345678",
        "ADMIN_TOKEN": new_token(),
        "DATABASE_URL": f"sqlite:///{database}",
        "REDIS_URL": WEB_REDIS_URL,
        "PORT": str(port),
        "SYNC_SINCE": "2020-01-01T00:00:00Z",
        "LOG_FORMAT": "console",
    }
    log_path = tmp / "web.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            procfile_command("web", port=port), cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    return Web(url=f"http://127.0.0.1:{port}", port=port, process=process, log_path=log_path)


def _stop(web: Web) -> None:
    if web.process.poll() is None:
        web.process.kill()
        web.process.wait(10)


@pytest.fixture(scope="module")
def web_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Web]:
    web = _start(tmp_path_factory.mktemp("web"))
    try:
        asyncio.run(wait_until_up(web.url + "/healthz"))
        yield web
    finally:
        _stop(web)


@pytest.fixture
async def web(web_process: Web) -> Web:
    await wait_until_up(web_process.url + "/healthz")  # the previous attack has been cleared away
    return web_process


async def _healthz_seconds(web: Web) -> tuple[int, float]:
    async with httpx.AsyncClient(timeout=60) as client:
        started = time.perf_counter()
        response = await client.get(web.url + "/healthz")
        return response.status_code, time.perf_counter() - started


async def _answer(reader: asyncio.StreamReader, *, within: float) -> tuple[bytes, float]:
    """The status line the server sends and how long it took; b"" when it just closed."""
    started = time.perf_counter()
    line = await asyncio.wait_for(reader.readline(), within)
    return line.strip(), time.perf_counter() - started


async def _closed(reader: asyncio.StreamReader, *, within: float) -> bool:
    with contextlib.suppress(ConnectionError):
        while await asyncio.wait_for(reader.read(65536), within):
            pass
    return reader.at_eof()


# ── item 1: a megabyte of header ─────────────────────────────────────────────────────────────


async def test_a_megabyte_of_header_is_refused_and_healthz_answers_alongside(web: Web) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", web.port)
    head = (
        f"POST {WEBHOOK_PATH} HTTP/1.1\r\nHost: woobird\r\nContent-Type: application/json\r\n"
        "Content-Length: 2\r\nX-WC-Webhook-Signature: AAAA\r\nX-WC-Webhook-Source: "
    ).encode()
    writer.write(head + b"a" * (1024 * 1024) + b"\r\n\r\n{}")
    healthz = asyncio.create_task(_healthz_seconds(web))
    status_line, answered_in = await _answer(reader, within=10)
    status, healthz_seconds = await healthz
    writer.close()

    assert status_line.startswith(b"HTTP/1.1 431"), status_line
    assert answered_in < 2.0
    assert status == 200
    assert healthz_seconds < 2.0  # before: the event loop was held for minutes


async def test_headers_just_under_the_cap_are_served_and_logged_bounded(web: Web) -> None:
    source = "https://shop.test/" + "a" * (HTTP_MAX_HEADER_BYTES - 1024)
    async with httpx.AsyncClient(timeout=30) as client:
        healthz = asyncio.create_task(_healthz_seconds(web))
        response = await client.post(
            web.url + WEBHOOK_PATH,
            content=b"{}",
            headers={"x-wc-webhook-signature": "AAAA", "x-wc-webhook-source": source},
        )
        status, healthz_seconds = await healthz
    assert response.status_code == 401
    assert status == 200
    assert healthz_seconds < 2.0
    rejected = [line for line in web.log().splitlines() if "webhook rejected" in line]
    assert rejected
    assert max(len(line) for line in rejected) < 1000  # the header is logged, but only its start


# ── item 5: slow clients and many connections ────────────────────────────────────────────────


async def _trickle_body(web: Web) -> tuple[bytes, float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", web.port)
    writer.write(f"POST {WEBHOOK_PATH} HTTP/1.1\r\nHost: woobird\r\nContent-Length: 1000\r\n\r\n".encode())
    started = time.perf_counter()

    async def trickle() -> None:
        with contextlib.suppress(ConnectionError):
            while True:
                writer.write(b"{")
                await writer.drain()
                await asyncio.sleep(1)

    dripping = asyncio.create_task(trickle())
    try:
        line, _ = await _answer(reader, within=HTTP_BODY_TIMEOUT_SECONDS + SLACK_SECONDS)
        assert await _closed(reader, within=SLACK_SECONDS)
    finally:
        dripping.cancel()
        writer.close()
    return line, time.perf_counter() - started


async def _stall(web: Web, *, sent: bytes) -> tuple[bytes, float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", web.port)
    writer.write(sent)
    started = time.perf_counter()
    try:
        line, _ = await _answer(reader, within=HTTP_HEADER_TIMEOUT_SECONDS + SLACK_SECONDS)
        assert await _closed(reader, within=SLACK_SECONDS)
    finally:
        writer.close()
    return line, time.perf_counter() - started


async def test_slow_clients_are_cut_off(web: Web) -> None:
    trickled, silent, half = await asyncio.gather(
        _trickle_body(web),
        _stall(web, sent=b""),
        _stall(web, sent=b"GET /healthz HTTP/1.1\r\nHost: woobird\r\nX-Slow: "),
    )
    for line, seconds in (trickled, silent, half):
        assert line.startswith(b"HTTP/1.1 408"), line
        assert seconds < HTTP_HEADER_TIMEOUT_SECONDS + SLACK_SECONDS
    assert trickled[1] >= HTTP_BODY_TIMEOUT_SECONDS - 1  # cut off by the rule, not by chance
    assert "request body not received in time" in web.log()
    assert "request headers not received in time" in web.log()


async def test_connections_beyond_the_limit_get_503_and_are_closed(web: Web) -> None:
    held: list[asyncio.StreamWriter] = []
    try:
        for _ in range(CONCURRENCY_LIMIT + 20):
            _, writer = await asyncio.open_connection("127.0.0.1", web.port)
            # Complete headers and a body that never ends: each occupies one connection.
            writer.write(
                f"POST {WEBHOOK_PATH} HTTP/1.1\r\nHost: w\r\nContent-Length: 100000\r\n\r\n{{".encode()
            )
            held.append(writer)
        await asyncio.sleep(0.5)
        reader, writer = await asyncio.open_connection("127.0.0.1", web.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: woobird\r\n\r\n")
        line, seconds = await _answer(reader, within=5)
        assert line.startswith(b"HTTP/1.1 503"), line  # told at once, not left waiting
        assert await _closed(reader, within=5)
        writer.close()
    finally:
        for writer in held:
            writer.close()
    await wait_until_up(web.url + "/healthz", within=HTTP_BODY_TIMEOUT_SECONDS + SLACK_SECONDS)


async def test_sigterm_stops_the_process_with_stalled_connections_open(tmp_path: Path) -> None:
    web = await asyncio.to_thread(_start, tmp_path)
    try:
        await wait_until_up(web.url + "/healthz")
        stalled = [await asyncio.open_connection("127.0.0.1", web.port) for _ in range(5)]
        for _, writer in stalled:
            writer.write(f"POST {WEBHOOK_PATH} HTTP/1.1\r\nHost: w\r\nContent-Length: 9\r\n\r\n{{".encode())
        await asyncio.sleep(0.3)
        started = time.perf_counter()
        web.process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(web.process.wait, HTTP_BODY_TIMEOUT_SECONDS + 15)
        assert code in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it has shut down
        assert time.perf_counter() - started < HTTP_BODY_TIMEOUT_SECONDS + SLACK_SECONDS
    finally:
        _stop(web)


# ── one command line everywhere ──────────────────────────────────────────────────────────────


def _dockerfile_web() -> list[str]:
    for line in (REPO_ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines():
        if line.startswith("CMD "):
            shell = line.split('"-c", "', 1)[1].rsplit('"]', 1)[0]
            return shlex.split(shell.removeprefix("exec ").replace("${PORT:-8000}", "8000"))
    raise AssertionError("no CMD in the Dockerfile")


def test_procfile_dockerfile_and_fly_start_the_same_web_process() -> None:
    procfile = procfile_command("web", port=8000)
    procfile[0] = Path(procfile[0]).name
    fly = shlex.split(tomllib.loads((REPO_ROOT / "fly.toml").read_text(encoding="utf-8"))["processes"]["web"])
    assert procfile == _dockerfile_web() == fly
    assert "--http" in procfile
    assert procfile[procfile.index("--http") + 1] == "app.http_limits:BoundedHttpToolsProtocol"
    assert procfile[procfile.index("--limit-concurrency") + 1] == str(CONCURRENCY_LIMIT)
    assert "--forwarded-allow-ips" not in " ".join(procfile)  # no header is trusted from everyone


# ── item 7: the logged client is the one the platform saw ───────────────────────────────────


async def test_a_client_cannot_choose_the_address_that_is_logged(web: Web) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(
            web.url + "/spoof-probe",  # the access log keeps the path only
            headers={"x-forwarded-for": "6.6.6.6", "fly-client-ip": "6.6.6.7"},
        )
    assert response.status_code == 404
    (line,) = [line for line in web.log().splitlines() if "spoof-probe" in line]
    assert "127.0.0.1" in line
    assert "6.6.6.6" not in line
    assert "6.6.6.7" not in line


# ── a changed SECRET_KEY: the refusal itself reaches the log ─────────────────────────────────


async def test_a_changed_secret_key_stops_the_web_process_with_its_sentence_first_in_one_line(
    tmp_path: Path,
) -> None:
    database = tmp_path / "web.db"
    await asyncio.to_thread(migrate, f"sqlite:///{database}")
    written_with = load_settings(
        _env_file=None,
        admin_token=new_token(),
        secret_key=new_token(),
        database_url=f"sqlite:///{database}",
        redis_url=WEB_REDIS_URL,
    )
    engine = create_engine(written_with.database_url)
    try:
        await write_settings(
            session_factory(engine),
            base=written_with,
            values={"MONEYBIRD_API_TOKEN": "mb-stored-token-0c7e41"},
            actor="test: the wizard, before the key changed",
        )
    finally:
        await engine.dispose()
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key in {"PATH", "HOME", "LANG"}} | {
        "ADMIN_TOKEN": new_token(),
        "SECRET_KEY": new_token(),  # not the key the token was sealed with
        "DATABASE_URL": f"sqlite:///{database}",
        "REDIS_URL": WEB_REDIS_URL,
        "PORT": str(port),
        "LOG_FORMAT": "console",
    }
    process = await asyncio.create_subprocess_exec(
        *procfile_command("web", port=port),
        cwd=REPO_ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    log = output.decode(errors="replace")

    assert process.returncode not in (0, None)
    sentence = "SECRET_KEY: does not open the secrets stored by the set-up wizard"
    (line,) = [line for line in log.splitlines() if sentence in line]
    assert "Put the previous SECRET_KEY back, or run the set-up wizard again" in line  # the whole of it
    assert "Traceback" not in log[: log.index(sentence)]  # first: before any traceback
