"""The arq worker's settings, run by `python -m workers` (app.wake.WakingWorker).

One flat class (arq reads only the class's own attributes, not inherited ones). It is built from
the environment's settings at import, so a malformed one refuses to start and names the setting;
the accounts may come later, from the set-up wizard (the jobs wait for them, see `when_set_up`).
"""

from __future__ import annotations

from app.booking.verify import verification_cron
from app.constants import (
    QUEUE_NAME,
    WORKER_BUSY_POLL_SECONDS,
    WORKER_HEALTH_INTERVAL_SECONDS,
    WORKER_JOB_COMPLETION_WAIT_SECONDS,
    WORKER_MAX_JOBS,
    WORKER_MAX_TRIES,
)
from app.queue import redis_settings
from app.settings import load_settings
from workers.functions import cron_jobs, job_functions, on_shutdown, on_startup

_settings = load_settings()


class WorkerSettings:
    functions = job_functions()
    cron_jobs = cron_jobs(
        _settings.reconcile_interval_seconds, timeout_seconds=_settings.worker_job_timeout_seconds
    ) + verification_cron(timeout_seconds=_settings.worker_job_timeout_seconds)
    on_startup = on_startup
    on_shutdown = on_shutdown
    redis_settings = redis_settings(_settings.redis_url, tls_verify=_settings.redis_tls_verify)
    queue_name = QUEUE_NAME
    health_check_interval = WORKER_HEALTH_INTERVAL_SECONDS
    # Heroku kills 30 s after SIGTERM, Fly after kill_timeout (fly.toml): finish or hand back before.
    job_completion_wait = WORKER_JOB_COMPLETION_WAIT_SECONDS
    job_timeout = _settings.worker_job_timeout_seconds
    max_tries = WORKER_MAX_TRIES
    keep_result = 0
    max_jobs = WORKER_MAX_JOBS
    # arq looks for new jobs every 0.5 s by default: half the webhook-to-paid time. The worker polls
    # this often only while it runs jobs; idle, it waits to be woken (app.wake).
    poll_delay = WORKER_BUSY_POLL_SECONDS
