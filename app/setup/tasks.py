"""Steps 2 and 5 run long: the product transfer and the backfill (with their dry runs) run as worker
jobs, and the page shows their progress from Redis.

The web process only queues: `start_task` claims the task kind of the connection in Redis (one
claim across every web process, so two clicks or two web processes queue one job) and queues the
first slice under a job id made of the connection, the kind and the slice number. The worker runs
the task in slices that each end before arq's job timeout (app/setup/task_jobs.py), writing the
status below as it goes; a restarted web process reads the same status, a restarted worker's slice
is taken up again by arq.

Every key and job id carries its connection (`app.queue.connection_key`): connection 1's as they
always were, another's prefixed `c<id>:`.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Final

from arq.connections import ArqRedis

from app.constants import ENVIRONMENT_CONNECTION_ID, JOB_SETUP_TASK, SETUP_TASK_PREFIX
from app.i18n import N_
from app.queue import connection_key, connection_kwargs, wake_workers

KINDS: Final = ("products-preview", "products", "history-preview", "history")
# Ends a task reaches; until then it is queued, running or (asked to stop) cancelling.
ENDED: Final = frozenset({"done", "failed", "cancelled"})
KEEP_SECONDS: Final = 24 * 3600
# How long a claim outlives the last sign of its task (a slice's heartbeat renews it): a task whose
# jobs arq gave up on is shown as interrupted after this, and may be started again.
CLAIM_SECONDS: Final = 6 * 3600


@dataclass
class TaskStatus:
    kind: str
    state: str = "queued"  # queued | running | cancelling | done | failed | cancelled | interrupted
    done: int = 0
    total: int | None = None
    eta_seconds: float | None = None
    counts: dict[str, int] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)  # refusals, with their reasons
    message: str = ""  # English; the page shows it in the reader's language (app.i18n.shown)
    updated: float = field(default_factory=time.time)
    run: str = ""  # this start's id, as its claim holds it
    since: str = ""  # the history tasks: the first day to book (ISO)

    @property
    def percent(self) -> int:
        return int(100 * self.done / self.total) if self.total else (100 if self.state == "done" else 0)

    @property
    def active(self) -> bool:
        return self.state in {"queued", "running", "cancelling"}


def status_key(kind: str, connection_id: int) -> str:
    return connection_key(SETUP_TASK_PREFIX + kind, connection_id)


def claim_key(kind: str, connection_id: int) -> str:
    return connection_key(SETUP_TASK_PREFIX + kind + ":claim", connection_id)


def cancel_key(kind: str, connection_id: int) -> str:
    return connection_key(SETUP_TASK_PREFIX + kind + ":cancel", connection_id)


def cursor_key(kind: str, connection_id: int) -> str:
    """Where the task's worker keeps how far it got between slices (app/setup/task_jobs.py)."""
    return connection_key(SETUP_TASK_PREFIX + kind + ":cursor", connection_id)


def slice_lock_key(kind: str, connection_id: int) -> str:
    """Held while a slice of the task runs: never two at once (a stale job meeting a new start)."""
    return connection_key(SETUP_TASK_PREFIX + kind + ":slice", connection_id)


def task_job_id(kind: str, slice_number: int, connection_id: int) -> str:
    return connection_key(f"setup-task:{kind}:{slice_number}", connection_id)


def _check(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown set-up task {kind!r}; one of {', '.join(KINDS)}")


async def load_status(redis: ArqRedis, kind: str, *, connection_id: int) -> TaskStatus | None:
    """The status as stored, without looking at the claim (the worker's view)."""
    raw = await redis.get(status_key(kind, connection_id))
    return None if raw is None else TaskStatus(**json.loads(raw))


async def save_status(redis: ArqRedis, status: TaskStatus, *, connection_id: int) -> None:
    status.updated = time.time()
    await redis.set(status_key(status.kind, connection_id), json.dumps(asdict(status)), ex=KEEP_SECONDS)


async def read_task(
    redis: ArqRedis, kind: str, *, connection_id: int = ENVIRONMENT_CONNECTION_ID
) -> TaskStatus | None:
    """The task as the page shows it: a task still under way whose claim is gone (arq gave up on its
    job, or Redis lost it) is interrupted; one asked to stop is cancelling."""
    _check(kind)
    status = await load_status(redis, kind, connection_id=connection_id)
    if status is None or not status.active:
        return status
    claim = await redis.get(claim_key(kind, connection_id))
    if claim is None or claim.decode() != status.run:
        status.state = "interrupted"
        status.message = N_(
            "woobird's worker stopped while this ran; start it again to go on where it stopped"
        )
    elif await redis.get(cancel_key(kind, connection_id)) is not None:
        status.state = "cancelling"
    return status


async def start_task(
    redis: ArqRedis, kind: str, *, since: str = "", connection_id: int = ENVIRONMENT_CONNECTION_ID
) -> bool:
    """Queue the task's first slice for the worker; False when this task is already under way."""
    _check(kind)
    run = secrets.token_hex(8)
    if not await redis.set(claim_key(kind, connection_id), run, nx=True, ex=CLAIM_SECONDS):
        return False
    try:
        await redis.delete(cursor_key(kind, connection_id), cancel_key(kind, connection_id))
        await save_status(redis, TaskStatus(kind=kind, run=run, since=since), connection_id=connection_id)
        await queue_slice(redis, kind, slice_number=1, connection_id=connection_id)
    except BaseException:
        # Not queued after all (Redis went away): the next click may try again.
        await redis.delete(claim_key(kind, connection_id))
        raise
    return True


async def queue_slice(redis: ArqRedis, kind: str, *, slice_number: int, connection_id: int) -> bool:
    """Queue one slice of a task; arq drops it when a job of that slice is still there.

    The job names no start: it runs whichever start of its task is under way, from the cursor (a
    job left queued by an earlier start takes up the new one; a slice's lock keeps two apart)."""
    job = await redis.enqueue_job(
        JOB_SETUP_TASK,
        kind,
        slice_number,
        _job_id=task_job_id(kind, slice_number, connection_id),
        **connection_kwargs(connection_id),
    )
    if job is not None:
        await wake_workers(redis)
    return job is not None


async def cancel_task(redis: ArqRedis, kind: str, *, connection_id: int = ENVIRONMENT_CONNECTION_ID) -> bool:
    """Ask the worker to stop the task after the order or product it is on; False when none runs."""
    _check(kind)
    status = await load_status(redis, kind, connection_id=connection_id)
    if status is None or not status.active:
        return False
    await redis.set(cancel_key(kind, connection_id), status.run, ex=CLAIM_SECONDS)
    return True
