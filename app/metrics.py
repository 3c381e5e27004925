"""Prometheus metrics, served at /metrics. Names follow `woobird_<what>_<unit>`."""

from prometheus_client import Counter, Gauge, Histogram

DELIVERIES = Counter(
    "woobird_webhook_deliveries_total",
    "WooCommerce webhook deliveries by outcome (queued, duplicate, ignored, ping, unauthorized, unavailable) "
    "and connection (its id)",
    ["outcome", "connection"],
)
MONEYBIRD_PUSHES = Counter(
    "woobird_moneybird_pushes_total",
    "Moneybird webhook pushes by outcome (queued, duplicate, ignored, check, unauthorized, unavailable) "
    "and connection (its id)",
    ["outcome", "connection"],
)
# `connection` is the connection id: bounded, and never the shop's address.
JOBS = Counter(
    "woobird_jobs_total", "Booking jobs by kind, outcome and connection", ["kind", "outcome", "connection"]
)
MONEYBIRD_CALLS = Counter(
    "woobird_moneybird_requests_total", "Requests to Moneybird by method and status", ["method", "status"]
)
MONEYBIRD_THROTTLED = Counter("woobird_moneybird_429_total", "429 answers from Moneybird")
MONEYBIRD_SECONDS = Histogram("woobird_moneybird_request_seconds", "Moneybird request duration")
BOOKING_SECONDS = Histogram(
    "woobird_order_booking_seconds",
    "From an order job starting to its invoice being paid",
    buckets=(0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30, 60, 300),
)
DELIVERY_LAG = Histogram(
    "woobird_webhook_delivery_lag_seconds",
    "From the order's last change in the shop (date_modified_gmt) to its webhook arriving; "
    "0 when the shop's clock runs ahead, at most a day",
    ["connection"],
    buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 900, 3600, 86400),
)
QUEUE_DEPTH = Gauge("woobird_queue_depth", "Jobs waiting in the arq queue")
ORDERS_BY_STATE = Gauge("woobird_orders", "Orders in the ledger by state", ["state"])
LAST_RECONCILE = Gauge(
    "woobird_last_reconcile_success_timestamp", "Unix time of the last successful reconciliation"
)
LAST_REDIS_LOSS = Gauge(
    "woobird_last_redis_loss_timestamp",
    "Unix time a worker last found Redis without woobird's marker (its data lost) and queued the waiting "
    "orders and refunds again",
)
