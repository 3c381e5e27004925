"""Health for the platform and for the uptime monitor.

`/healthz` answers while the process lives (the platform's check: a deep check there would stop
routing webhooks to a healthy web process because the worker is down). `/readyz` is what an
uptime monitor watches: Redis, the database, a fresh worker heartbeat, no backlog, and a database
that can carry its connections (more than one needs PostgreSQL) — 503 names
whatever failed, and only that: it is public, so connection errors go to the log, not the answer.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

import structlog
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from app import schema
from app.booking import ledger
from app.connections import sqlite_connections_problem
from app.constants import QUEUE_NAME, WORKER_HEALTH_KEY
from app.deps import AppState, AppStateDep

router = APIRouter()
log = structlog.get_logger("woobird.health")

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
            session, older_than=schema.utcnow() - timedelta(minutes=BACKLOG_MINUTES)
        )
        reconciled = await ledger.get_state(session, ledger.RECONCILE_LAST_SUCCESS)
        first_run = await ledger.get_state(session, ledger.FIRST_RUN_AT)
        too_many = await sqlite_connections_problem(session, base=state.settings)
    result: dict[str, Any] = {"ok": True, "ms": round((time.perf_counter() - started) * 1000, 1)}
    result["connections"] = {"ok": too_many is None}
    if too_many is not None:
        result["connections"]["error"] = str(too_many)
    result["backlog"] = {"ok": backlog == 0, "orders_waiting_over_15_min": backlog}
    if backlog:
        result["backlog"]["error"] = f"{backlog} order(s) waiting more than {BACKLOG_MINUTES} minutes"
    result["reconcile"] = reconcile_check(state, reconciled=reconciled, first_run=first_run)
    return result


def reconcile_check(state: AppState, *, reconciled: str | None, first_run: str | None) -> dict[str, Any]:
    """Reconciliation is what heals missed webhooks: three missed intervals is a failure."""
    allowed = timedelta(seconds=3 * state.settings.reconcile_interval_seconds)
    since = reconciled or first_run
    check: dict[str, Any] = {"ok": True, "last_success": reconciled}
    if since is not None and schema.utcnow() - datetime.fromisoformat(since) > allowed:
        check["ok"] = False
        check["error"] = "reconciliation has not succeeded for three intervals" + (
            f" (last success {reconciled})" if reconciled else " (never since the first run)"
        )
    return check


async def readiness(state: AppState) -> tuple[bool, dict[str, Any]]:
    checks: dict[str, Any] = {}
    try:
        redis = await _check_redis(state)
        checks["worker"] = redis.pop("worker")
        checks["redis"] = redis
    except Exception as exc:
        # /readyz is public: it names what failed; how it failed (hosts, ports, SQL) goes to the log.
        log.warning("readiness: Redis unreachable", error=f"{type(exc).__name__}: {exc}")
        checks["redis"] = {"ok": False, "error": "Redis unreachable"}
    try:
        database = await _check_database(state)
        checks["backlog"] = database.pop("backlog")
        checks["reconcile"] = database.pop("reconcile")
        checks["connections"] = database.pop("connections")
        checks["database"] = database
    except Exception as exc:
        log.warning("readiness: database unreachable", error=f"{type(exc).__name__}: {exc}")
        checks["database"] = {"ok": False, "error": "database unreachable"}
    healthy = all(check.get("ok") for check in checks.values())
    return healthy, checks


@router.get(
    "/readyz",
    summary="Readiness: Redis, database, worker heartbeat and backlog",
    responses={200: {"description": "Every part is healthy"}, 503: {"description": "A part failed; named"}},
)
async def readyz(state: AppStateDep) -> JSONResponse:
    healthy, checks = await readiness(state)
    failed = [name for name, check in checks.items() if not check.get("ok")]
    body: dict[str, Any] = {"status": "ok" if healthy else "failing", "failed": failed, "checks": checks}
    if state.settings.woobird_sandbox:
        body["sandbox"] = True
    return JSONResponse(body, status_code=200 if healthy else 503)
