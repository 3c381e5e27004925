"""The worker process: `python -m workers` (the Procfile's `worker`).

arq's own command (`arq workers.settings.WorkerSettings`) runs arq's worker, which polls Redis
every 50 ms however idle it is; this one runs the same settings as an `app.wake.WakingWorker`.
"""

from app.wake import run
from workers.settings import WorkerSettings

run(WorkerSettings)
