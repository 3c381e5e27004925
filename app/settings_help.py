"""One sentence per setting, for people: `.env.example`, `app.json`, `woobird setup` and the README
all say the same thing, and a test checks that every field of `Settings` is described here.
"""

from __future__ import annotations

from typing import Final

# Environment name → what it is and where to find it. Order follows app/settings.py.
SETTING_HELP: Final[dict[str, str]] = {
    "WOOCOMMERCE_URL": "The shop's base URL with https, e.g. https://shop.example.nl.",
    "WOOCOMMERCE_CONSUMER_KEY": "WooCommerce → Settings → Advanced → REST API → Add key, Read/Write.",
    "WOOCOMMERCE_CONSUMER_SECRET": "The cs_… secret shown once next to the consumer key.",
    "WOOCOMMERCE_WEBHOOK_SECRET": "Secret of the order.updated webhook; `woobird webhook install` makes one.",
    "WOOCOMMERCE_VAT_NUMBER_META_KEYS": "Order meta keys that may hold the customer's VAT number.",
    "MONEYBIRD_API_TOKEN": "Moneybird → Settings → External and AI integrations → personal API token.",
    "MONEYBIRD_ADMINISTRATION_ID": "The number in the Moneybird URL; `woobird setup` lists them.",
    "MONEYBIRD_API_URL": "Moneybird's API base URL; change only for a test server.",
    "MONEYBIRD_RATE_LIMIT": "Requests per seconds woobird may spend, all processes together (150/300).",
    "MONEYBIRD_TAX_RATES": 'Shop VAT rate → Moneybird tax rate id, JSON: {"21":"…","reverse_charge":"…"}.',
    "MONEYBIRD_LEDGER_ACCOUNT_ID": "Revenue ledger account for order lines (empty: Moneybird's default).",
    "MONEYBIRD_SHIPPING_LEDGER_ACCOUNT_ID": "Revenue ledger account for shipping (empty: as order lines).",
    "MONEYBIRD_WORKFLOW_ID": "Invoice workflow (empty: the administration's default invoice workflow).",
    "MONEYBIRD_DOCUMENT_STYLE_ID": "Document style of the invoices (empty: the default style).",
    "MONEYBIRD_TIMEOUT_SECONDS": "How long one Moneybird request may take before it counts as failed.",
    "MONEYBIRD_CLIENT_ID": "Client id of your Moneybird OAuth app, for the wizard's Connect with Moneybird.",
    "MONEYBIRD_CLIENT_SECRET": "Client secret of that OAuth app (moneybird.com/user/applications).",
    "MONEYBIRD_REFRESH_TOKEN": "OAuth refresh token; the set-up wizard stores it, never set it by hand.",
    "MONEYBIRD_OAUTH_URL": "Moneybird's OAuth base URL; change only for a test server.",
    "SYNC_ORDER_STATUSES": "Order statuses that get an invoice once paid, comma-separated (completed).",
    "SYNC_SINCE": "Book orders paid from this moment (ISO 8601); empty: from woobird's first start.",
    "INVOICE_KIND": "sales_invoice (Moneybird numbers it) or external_sales_invoice (the shop's number).",
    "INVOICE_EXACT_VAT": "true: add a correction line so VAT per rate matches the shop's to the cent.",
    "RECONCILE_INTERVAL_SECONDS": "How often the shop is polled for orders a webhook missed (at least 30).",
    "WORKER_JOB_TIMEOUT_SECONDS": "Longest a job may run (120 s); a killed worker's job resumes after it.",
    "REDIS_URL": "Redis for the queue; Heroku and Fly set it with their Redis add-on.",
    "REDIS_TLS_VERIFY": "Verify the Redis TLS certificate (Heroku's is self-signed: leave false there).",
    "DATABASE_URL": "PostgreSQL for the ledger (postgres://…); empty: a local SQLite file woobird.db.",
    "PORT": "Port of the web process; Heroku and Fly set it.",
    "PUBLIC_URL": "Where the shop reaches woobird, e.g. https://woobird.example.nl (for the webhook).",
    "ADMIN_TOKEN": "Protects the dashboard; any long random string (openssl rand -hex 24).",
    "SECRET_KEY": (
        "Encrypts the secrets the set-up wizard stores; 32+ random characters (openssl rand -hex 32)."
    ),
    "LOG_LEVEL": "DEBUG, INFO, WARNING or ERROR.",
    "LOG_FORMAT": "console (readable) or json (for log services).",
    "ALERT_WEBHOOK_URL": "Slack/Teams/any URL that gets a POST when an order fails to book.",
    "ALERT_EMAIL_TO": "E-mail address that hears about failed orders (needs the SMTP settings).",
    "SMTP_HOST": "Mail server for alerts.",
    "SMTP_PORT": "Mail server port (587 with STARTTLS).",
    "SMTP_USERNAME": "Mail server login.",
    "SMTP_PASSWORD": "Mail server password.",
    "SMTP_FROM": "Sender address of alert e-mails.",
    "SMTP_STARTTLS": "Use STARTTLS with the mail server.",
    "WOOBIRD_SANDBOX": "Set by `woobird run` for the built-in demo only; never set it yourself.",
}
