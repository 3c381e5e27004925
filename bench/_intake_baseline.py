"""The two reference endpoints of bench_intake.py, served by the same uvicorn command as the real one.

    bare     verify the HMAC of the raw body and answer — the floor any webhook receiver pays
    enqueue  the same, plus one arq enqueue with a fresh job id — what queueing alone costs

`uvicorn --factory --app-dir bench _intake_baseline:create_bare_app` (or `create_enqueue_app`);
BENCH_SECRET and BENCH_REDIS_URL come from the environment.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

from app.constants import JOB_BOOK_ORDER, SIGNATURE_HEADER, WEBHOOK_PATH
from app.queue import connect
from app.webhooks import SignatureError, verify


def _verified(secret: str) -> Callable[[Request], Awaitable[bytes]]:
    async def read(request: Request) -> bytes:
        body = await request.body()
        try:
            verify(secret, body, request.headers.get(SIGNATURE_HEADER))
        except SignatureError as exc:
            raise HTTPException(401, str(exc)) from None
        return body

    return read


def create_bare_app() -> FastAPI:
    read = _verified(os.environ["BENCH_SECRET"])
    app = FastAPI(docs_url=None, redoc_url=None)

    @app.post(WEBHOOK_PATH)
    async def receive(request: Request) -> JSONResponse:
        await read(request)
        return JSONResponse({"outcome": "verified"}, status_code=200)

    return app


def create_enqueue_app() -> FastAPI:
    read = _verified(os.environ["BENCH_SECRET"])
    numbers = itertools.count(1)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.redis = connect(os.environ["BENCH_REDIS_URL"])
        try:
            yield
        finally:
            await app.state.redis.aclose()

    app = FastAPI(docs_url=None, redoc_url=None, lifespan=lifespan)

    @app.post(WEBHOOK_PATH)
    async def receive(request: Request) -> JSONResponse:
        await read(request)
        number = next(numbers)
        # A fresh job id each time: a repeated one would take arq's cheaper "already queued" exit.
        job = await request.app.state.redis.enqueue_job(
            JOB_BOOK_ORDER, number, "bench", _job_id=f"bench:{os.getpid()}:{number}"
        )
        return JSONResponse({"outcome": "queued" if job else "known"}, status_code=202)

    return app
