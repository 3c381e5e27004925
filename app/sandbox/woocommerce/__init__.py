"""A fake WooCommerce shop: the REST v3 API and the webhook sender, faithful where woobird can tell.

Used three ways: tests drive `ShopSandbox` directly, the sandbox demo serves `create_app(shop)` over
real HTTP to the real web and worker processes, and the chaos suite pushes hundreds of orders
through it. A fake that accepts anything proves nothing, so this one refuses what WooCommerce
refuses (bad credentials, `per_page=500`, unknown ids, invalid topics) with WooCommerce's own error
bodies, and sends webhooks the way `WC_Webhook::deliver()` does — compact `wp_json_encode` bytes,
base64 HMAC-SHA256 signature, failure counting that disables a webhook on its 7th consecutive
failure, unsigned `webhook_id=N` pings that only count when answered with exactly 200.

Modules: `shop` (`ShopSandbox`: orders, catalog, tax table, faults, request log), `refunds`,
`webhooks` (registry and delivery), `state` (what those share, order document rules), `api` (the
REST app), `args` (REST argument parsing), `auth` (who is calling: keys over TLS, OAuth 1.0a over plain
HTTP), `wire` (constants, wire formats, records), and the
checkout arithmetic that builds orders whose numbers add up: `cart` (WooCommerce's cart totals)
and `checkout` (the order document).

Deliberate simplifications (WooCommerce behaviour that woobird does not depend on):
- the order totals are whatever the caller puts in the document: checkout arithmetic lives in
  `checkout`, never in the shop;
- refund lines are pro-rata (line total x refunded quantity / quantity, rounded half-up to cents),
  as the admin screen pre-fills them; stock meta is not touched.

Time comes from a simulated clock (`now()`, `advance()`), so tests can move days in a line, and
an order's `date_modified` always moves forward even when it is saved twice in one second.
"""

from __future__ import annotations

from app.sandbox.woocommerce.api import create_app
from app.sandbox.woocommerce.shop import ShopSandbox
from app.sandbox.woocommerce.wire import sign, wc_dates, wp_json_encode

__all__ = ["ShopSandbox", "create_app", "sign", "wc_dates", "wp_json_encode"]
