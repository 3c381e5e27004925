"""The set-up wizard's steps as plain functions: the web pages (app/admin/setup_routes.py) only
render them. Each step reuses what the CLI does (`check`, `setup`, `products`, `backfill`,
`webhook install`) and writes through the settings store (app/settings_store.py).

Modules: `progress` (which step is done, what comes next), `shop` (step 1: the shop's address,
WooCommerce's app authorization, the key check), `moneybird_connect` (step 3: token or OAuth, the
administration), `bookkeeping` (step 4: ledger account, workflow, style, VAT mapping), `tasks`
(steps 2 and 5: product transfer and backfill queued for the worker, progress in Redis; the worker
runs them in slices, `task_jobs`) and `install` (step 6: the webhook and the final check).
"""
