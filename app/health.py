"""Health for the platform and for the uptime monitor.

`/healthz` answers while the process lives (the platform's check: a deep check there would stop
routing webhooks to a healthy web process because the worker is down). `/readyz` is what an
uptime monitor watches: Redis, the database, a fresh worker heartbeat, and no backlog — 503 names
whatever failed.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from app.constants import QUEUE_NAME, WORKER_HEALTH_KEY
from app.deps import AppState, AppStateDep
from app.sync import ledger

router = APIRouter()

BACKLOG_MINUTES = 15


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


async def _check_redis(state: AppState) -> dict[str, Any]:
    started = time.perf_counter()
    await state.redis.ping()
    heartbeat = await state.redis.get(WORKER_HEALTH_KEY)
    depth = await state.redis.zcard(QUEUE_NAME)
    result: dict[str, Any] = {
        "ok": True,
        "ms": round((time.perf_counter() - started) * 1000, 1),
        "queue_depth": depth,
    }
    result["worker"] = {"ok": heartbeat is not None}
    if heartbeat is None:
        result["worker"]["error"] = "no worker heartbeat: is the worker process running?"
    return result


async def _check_database(state: AppState) -> dict[str, Any]:
    started = time.perf_counter()
    async with state.sessions() as session:
        await session.execute(text("SELECT 1"))
        backlog = await ledger.waiting_since(
            session, older_than=ledger.utcnow() - timedelta(minutes=BACKLOG_MINUTES)
        )
        reconciled = await ledger.get_state(session, ledger.RECONCILE_LAST_SUCCESS)
    result: dict[str, Any] = {"ok": True, "ms": round((time.perf_counter() - started) * 1000, 1)}
    result["backlog"] = {"ok": backlog == 0, "orders_waiting_over_15_min": backlog}
    if backlog:
        result["backlog"]["error"] = f"{backlog} order(s) waiting more than {BACKLOG_MINUTES} minutes"
    result["last_reconcile"] = reconciled
    return result


async def readiness(state: AppState) -> tuple[bool, dict[str, Any]]:
    checks: dict[str, Any] = {}
    try:
        redis = await _check_redis(state)
        checks["worker"] = redis.pop("worker")
        checks["redis"] = redis
    except Exception as exc:
        checks["redis"] = {"ok": False, "error": f"Redis unreachable: {type(exc).__name__}: {exc}"}
    try:
        database = await _check_database(state)
        checks["backlog"] = database.pop("backlog")
        checks["database"] = database
    except Exception as exc:
        checks["database"] = {"ok": False, "error": f"database unreachable: {type(exc).__name__}: {exc}"}
    healthy = all(check.get("ok") for check in checks.values())
    return healthy, checks


@router.get("/readyz", summary="Readiness: Redis, database, worker heartbeat and backlog")
async def readyz(state: AppStateDep) -> JSONResponse:
    healthy, checks = await readiness(state)
    failed = [name for name, check in checks.items() if not check.get("ok")]
    body = {"status": "ok" if healthy else "failing", "failed": failed, "checks": checks}
    if state.settings.woobird_sandbox:
        body["sandbox"] = True
    return JSONResponse(body, status_code=200 if healthy else 503)
