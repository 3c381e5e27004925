"""Every name and magic number that more than one module relies on, in one place."""

from typing import Final

# arq job names: the web process enqueues by name and never imports a job body.
JOB_BOOK_ORDER: Final = "book_order"
JOB_BOOK_REFUND: Final = "book_refund"
JOB_RECONCILE: Final = "reconcile"
# The reconciliation pass of a connection other than 1, queued by connection 1's cron (spread).
JOB_RECONCILE_CONNECTION: Final = "reconcile_connection"
JOB_VERIFY: Final = "verify_invoices"
# The verification of a connection other than 1, queued by the hourly cron (spread over the hour).
JOB_VERIFY_CONNECTION: Final = "verify_invoices_connection"
JOB_SHOP_NOTE: Final = "write_shop_note"
# Moneybird may have recorded a payment on an invoice woobird booked open (app/moneybird_pushes.py
# and the payments poll queue it; the worker settles the order).
JOB_SETTLE_INVOICE: Final = "settle_invoice"
# One slice of a long task started in the wizard (product transfer, backfill, their dry runs):
# app/setup/task_jobs.py runs it and queues the next slice until the task is done.
JOB_SETUP_TASK: Final = "setup_task"

# arq queue and the worker's heartbeat key (arq writes "<queue>:health-check").
QUEUE_NAME: Final = "arq:queue"
WORKER_HEALTH_KEY: Final = QUEUE_NAME + ":health-check"
WORKER_HEALTH_INTERVAL_SECONDS: Final = 60
# Heroku sends SIGKILL 30 s after SIGTERM; finish or hand back jobs well before that.
WORKER_JOB_COMPLETION_WAIT_SECONDS: Final = 20
# One short, uniform timeout: a crashed worker's job is picked up again after timeout + 10 s.
WORKER_JOB_TIMEOUT_SECONDS: Final = 120
WORKER_MAX_TRIES: Final = 25
# An idle worker does not poll the queue 20 times a second: it waits on this pub/sub channel, to
# which every enqueue publishes (app.wake), and looks at the queue at least every
# WORKER_IDLE_POLL_SECONDS anyway, so a wake-up that gets lost costs that much delay, never a job.
WORKER_WAKE_CHANNEL: Final = "woobird:queue:wake"
WORKER_IDLE_POLL_SECONDS: Final = 30.0
# While it runs jobs the worker looks for new ones this often (arq's own poll).
WORKER_BUSY_POLL_SECONDS: Final = 0.05
# Jobs one worker runs at once, and how many of them a history import never takes (app.jobs.BacklogSlots):
# when a backfill's orders fill the rest, another shop's fresh order still starts at once.
WORKER_MAX_JOBS: Final = 10
WORKER_FRESH_SLOTS: Final = 3
# A backlog order that found the worker's backlog slots taken comes back this much later.
BACKLOG_SLOT_RETRY_SECONDS: Final = 0.25
# While a fresh order is being booked in a worker, that worker's backlog orders hold their next step
# (a Moneybird request, a run's start) until it is done, but never longer than this: the fresh one
# takes ~0.1 s, and one stuck on a slow answer must not stop the history import (app.jobs.BacklogSlots).
BACKLOG_GIVES_WAY_SECONDS: Final = 0.5
# arq starts due jobs in the order of their score (the due time). An order a shop just sent is queued
# with a score this far in the past, so that it is started before any backlog job that is due —
# the history import's, queued by the hundred at once (app.queue.enqueue_orders). Its log line
# still tells the true time it waited (arq keeps the enqueue time in the job itself).
FRESH_HEAD_START_SECONDS: Final = 3600

# Redis keys owned by woobird (arq owns "arq:*").
RATE_LIMIT_KEY: Final = "woobird:moneybird:calls"
RATE_LIMIT_PAUSE_KEY: Final = "woobird:moneybird:paused-until"
REFERENCE_CACHE_KEY: Final = "woobird:moneybird:reference"
# The administration's contacts by e-mail (app/booking/contact_directory.py).
CONTACT_DIRECTORY_KEY: Final = "woobird:moneybird:contacts"
CONTACT_LOCK_PREFIX: Final = "woobird:lock:contact:"
ORDER_LOCK_PREFIX: Final = "woobird:lock:order:"
ALERT_SENT_PREFIX: Final = "woobird:alert:"
# The recent webhook deliveries' lags (app/delivery_lag.py), shared by every web process.
DELIVERY_LAG_KEY: Final = "woobird:webhook:lag"
# How long a web process gathers measured lags before it sends them to Redis together.
DELIVERY_LAG_FLUSH_SECONDS: Final = 1.0
# Signing in to /admin (app/admin/login_guard.py): failures per client and in all, lockouts,
# and the sessions signed out before they expired.
ADMIN_LOGIN_FAILURES_PREFIX: Final = "woobird:admin:login-failures:"
ADMIN_LOGIN_FAILURES_ALL: Final = "woobird:admin:login-failures"
ADMIN_LOGIN_LOCK_PREFIX: Final = "woobird:admin:login-lock:"
ADMIN_SESSION_REVOKED_PREFIX: Final = "woobird:admin:signed-out:"
# The set-up wizard: WooCommerce app authorizations (pending, then their outcome), Moneybird OAuth
# states, its background tasks; and the lock one OAuth token refresh holds across processes.
SETUP_SHOP_PENDING_PREFIX: Final = "woobird:setup:wc-auth:pending:"
SETUP_SHOP_RESULT_PREFIX: Final = "woobird:setup:wc-auth:result:"
SETUP_OAUTH_STATE_PREFIX: Final = "woobird:setup:mb-oauth:"
SETUP_TASK_PREFIX: Final = "woobird:setup:task:"
MONEYBIRD_REFRESH_LOCK_KEY: Final = "woobird:lock:moneybird-refresh"

REFERENCE_CACHE_TTL_SECONDS: Final = 3600

# The webhook endpoint.
WEBHOOK_PATH: Final = "/webhooks/woocommerce"
WEBHOOK_MAX_BODY_BYTES: Final = 1024 * 1024
# Moneybird's pushes (app/moneybird_pushes.py): de-duplicated by their Idempotency-Key for a week,
# and answered 200 without a signature only while woobird registers its webhook (Moneybird checks
# the url before it tells the secret).
MONEYBIRD_WEBHOOK_PATH: Final = "/webhooks/moneybird"
MONEYBIRD_PUSH_SEEN_PREFIX: Final = "woobird:moneybird:push:"
MONEYBIRD_PUSH_SEEN_SECONDS: Final = 7 * 24 * 3600
MONEYBIRD_WEBHOOK_REGISTERING_KEY: Final = "woobird:moneybird:webhook-registering"
MONEYBIRD_WEBHOOK_REGISTERING_SECONDS: Final = 60
SIGNATURE_HEADER: Final = "x-wc-webhook-signature"
TOPIC_HEADER: Final = "x-wc-webhook-topic"
ORDER_TOPICS: Final = frozenset({"order.created", "order.updated", "order.restored"})

# The web process (app/http_limits.py): what one client may hold before it is cut off. The
# Procfile's uvicorn options add the rest: --timeout-keep-alive 5 (idle between requests),
# --limit-concurrency 100 (then 503; with 1 MiB bodies that bounds buffered bodies to ~100 MiB),
# --timeout-graceful-shutdown 10 (open connections do not outlast SIGTERM).
HTTP_MAX_HEADER_BYTES: Final = 32 * 1024
HTTP_HEADER_TIMEOUT_SECONDS: Final = 10.0
HTTP_BODY_TIMEOUT_SECONDS: Final = 10.0

# The WooCommerce REST API lives under the shop URL.
WOOCOMMERCE_API_PREFIX: Final = "/wp-json/wc/v3"
# Orders and refunds are read with `?dp=6`: WooCommerce ≥ 10.0 rounds each rate's share of a line's
# tax to `dp` decimals (2 by default), and a line taxed at several rates can only be split exactly
# from the raw shares it stored (9.9 sent those whatever `dp` said).
WOOCOMMERCE_READ_DECIMALS: Final = 6

# Reconciliation looks back a little further than its watermark: WooCommerce's
# modified_after may be exclusive and clocks drift.
RECONCILE_OVERLAP_SECONDS: Final = 600

# Invoice reference: the order number as its own word, so find_by_reference is unambiguous.
INVOICE_REFERENCE_PREFIX: Final = "WooCommerce #"

# Reconciliation: one pass at a time even when a pass outlasts the interval; a pass stops paging
# after this long (well inside the job timeout) and the next pass goes on from its watermark.
RECONCILE_LOCK_KEY: Final = "woobird:lock:reconcile"
RECONCILE_PASS_BUDGET_SECONDS: Final = 90
# How many waiting ledger rows (orders, refunds) one reconciliation pass queues again; the next pass
# takes the rest.
REQUEUE_BATCH: Final = 500
# A ledger row left in "booking" this long has no live job: a worker died with Redis flushed.
RECONCILE_STALE_BOOKING_MARGIN: Final = 60
# With the default job timeout: a row in `booking` this long belongs to a worker that died.
RECONCILE_STALE_BOOKING_SECONDS: Final = WORKER_JOB_TIMEOUT_SECONDS + RECONCILE_STALE_BOOKING_MARGIN

# Backfill: Moneybird requests a new customer's order costs once the contacts are copied (contact,
# invoice, send, payment; a returning customer's one fewer, an external invoice's one fewer again),
# for the ETA and for how many backfill jobs may wait in the queue ahead of live orders.
BACKFILL_CALLS_PER_ORDER: Final = 4

# Refunds: one worker per refund at a time (credit invoices are created under this lock).
REFUND_LOCK_PREFIX: Final = "woobird:lock:refund:"

# Redis losing its data (a restart without persistence, a flush, a failover; app.booking.redis_marker):
# the marker key every worker looks for each REDIS_MARKER_CHECK_SECONDS; once it is missing, the
# waiting orders and refunds are queued again, to start REDIS_LOSS_GRACE_SECONDS later, by when every
# worker has looked again and written back the locks of the jobs it is still running.
REDIS_MARKER_KEY: Final = "woobird:redis-marker"
REDIS_MARKER_CHECK_SECONDS: Final = 1.0
# A process with nothing in flight (an idle worker, a web process that queued nothing for this
# long) has nothing Redis could lose, and looks for the marker only this often.
REDIS_MARKER_IDLE_CHECK_SECONDS: Final = 60.0
REDIS_LOSS_GRACE_SECONDS: Final = 3.0

# Order meta keys that may hold the customer's VAT number (VAT plugins differ): the default of
# WOOCOMMERCE_VAT_NUMBER_META_KEYS and of a plan made without settings.
VAT_NUMBER_META_KEYS: Final = (
    "_billing_vat_number",
    "_vat_number",
    "vat_number",
    "billing_vat",
    "_billing_vat",
    "_billing_eu_vat_number",
    "billing_eu_vat_number",
)

# The connection the environment's settings describe: a single-shop deployment's only one, and the
# one every row written before connections existed belongs to. Its Redis keys, job ids and invoice
# references stay as they were before connections existed.
ENVIRONMENT_CONNECTION_ID: Final = 1
