"""A fake Moneybird API v2 that behaves like the real one: the test double and the demo backend.

Use it in-process (tests):

    sandbox = MoneybirdSandbox()
    async with httpx.AsyncClient(
        transport=MoneybirdTransport(sandbox),
        base_url=f"https://moneybird.test/api/v2/{sandbox.administration_id}",
        headers={"Authorization": f"Bearer {sandbox.token}"},
    ) as client:
        ...

or over real HTTP (the sandbox demo, chaos tests):

    async with serve(create_app(sandbox)) as base_url:   # app.sandbox.server
        ...  # point the real client at f"{base_url}/api/v2"

Modules: `state` (the sandbox object, switches, request log), `records` (an administration, a
request and its reply as handlers see them), `api` (routing, auth, rate limit, faults,
transport), `contacts`, `invoices`, `external`, `documents` (lines, totals, payments), `reference`
(tax rates, ledger accounts, workflows, products), `request_keys` (allowed request keys), `wire`
(wire formats), `seed` (a fresh administration).

Faithful to the reference (docs/OpenAPI): Bearer auth with the invalid_grant 401; root-key
wrapping with "<Model> is required" 400s; 18-digit string ids (accepted as strings or ints);
BigDecimal-style money strings; "10,95" money input; the 422 shapes; per_page 1..100;
`find_by_reference` 404 body; drafts → send → open; payment bodies; credit invoices; external
invoices created open with an entry_number; 429 with `Retry later` and absolute-epoch headers;
scopes per route from the document's security blocks (`token_scopes`, every scope by default):
a request outside them is 401 `{"error": "No access to settings"}`, as the document's examples
show (scopes.py); archived contacts (`archive_contact`, or PATCH …/archive) leave searches
unless `include_archived=true` but are still found by customer_id, whose value stays taken.

What tests switch on to meet what a real administration does: `skew_next_totals(amount)` gives
the next invoices a VAT total off what their lines give (a rounding rule nobody predicted);
`delete_contact(id)` deletes a contact no invoice uses, as a bookkeeper can;
`edit_in_web_app(sandbox, id, price=…)` changes a sent invoice's line the way Moneybird's web app
lets a bookkeeper (the API refuses it), and `lock_period(until)` locks the books up to a date.

Where Moneybird's behaviour is unconfirmed, the fake picks the stricter reasonable answer:

- Unknown keys anywhere in a create/update body (top level, inside the root object, inside a
  detail line, including the array form of `details_attributes`) → 422
  `{"error": {"<key>": ["is not a permitted attribute"]}, ...}`; nested keys read `details.<key>`.
  Exception: contact `email` is accepted and copied to `send_invoices_to_email`.
- Types are checked against the schema: a string field given null or a number is a 422.
- Duplicate contact `customer_id` → 422 `{"customer_id": ["has already been taken"]}` (a guess;
  the spec only says "should be unique"). Auto-assigned customer ids are "1", "2", ….
- Unknown `contact_id` on a sales invoice → 400 "Contact ID is invalid" (the external-invoice
  shape); unknown workflow/document style/tax rate/ledger/project/product → 422 "is not found";
  a purchase-invoice or otherwise non-sales tax rate on a line → 422 on `details.tax_rate_id`;
  a ledger account not allowed on sales invoices → 422. A line needs a `price` (or a product);
  prices with more than 2 decimals → 422. `is_optional`/`is_selected` (estimates only) → 422.
- VAT rounding is the `rounding` switch ('per_rate' default, 'per_line'); ROUND_HALF_UP (away
  from zero, so a credit invoice is exactly the negation). Incl-tax: gross is kept, net derived.
  Invoice `discount` is applied to each line value before rounding. `_base` amounts equal the
  document amounts (no exchange rates).
- `find_by_reference` matches exactly and returns the oldest (lowest id) when several share it;
  it finds drafts too. `filter=reference:` is an exact match (pipe for several).
- Payments on a draft/scheduled invoice → 422 `{"error": {"base": ["Cannot register a payment on
  a draft invoice; send the invoice first"]}, ...}`. Partial payments keep the state; the payment
  that settles the rest makes it `paid` with `paid_at` = that payment's date. A price of 0, a
  price of the wrong sign, more than is open, or any payment on a paid invoice → 422.
  Missing `payment` root → 400 "Payment is required".
- Sending: a non-draft may be sent again (only a send event is added). A contact whose delivery
  method is not Email/Peppol/Manual is sent by Email. Peppol without `si_identifier` → 422. An
  invoice whose due date has already passed becomes `late` at once; a zero-total invoice becomes
  `paid` at once (same for zero-total external invoices on create). Only drafts may change lines,
  contact, currency, incl/excl, discount or invoice date (422 otherwise).
- `duplicate_creditinvoice` of a draft → 422. `register_payment_creditinvoice` when either invoice
  cannot take the payment (e.g. the original is already paid) → 422 symbolic `not_payable`.
- DELETE of a sales invoice with payments → 422, dated in a locked period → 400 symbolic
  `period_locked`; of a contact used by an invoice → 422. Deleting a payment reopens a paid
  invoice (`open`, or `late` past its due date).
- `POST …/synchronization` answers the records with the ids sent, whatever their date (it takes
  no filter); at most 100.
- Unknown administration → 404 `{"error": "SandboxAdministration not found", "symbolic":
  {"administration_id": "not_found"}}`; unknown route → 404 symbolic `route`.
- Lists: default per_page 50 (products 10); `Link` only when there is another page; contact
  `query` is case-insensitive substring matching of every word over name, address, e-mail,
  phone, customer_id, tax and bank fields (so `jan@example.com` also finds `jan@example.com.au`).
  Unknown `filter` keys are ignored; bad values are 400 `{"symbolic": {"filter": "invalid"}}`.
- Rate limit: a sliding-window log over every authenticated request of the token; 401s are not
  counted and a 429 does not use a slot. 429 carries `RateLimit-Limit`, `RateLimit-Remaining: 0`,
  and `RateLimit-Reset`/`Retry-After` = the epoch second (rounded up) when the oldest request in
  the window leaves it. 2xx responses carry no RateLimit headers.
- Faults are taken after auth and the rate limit (a faulted request used a slot). 'status'
  answers without doing the work (5xx bodies alternate HTML text and JSON; 429 gets the real
  headers). 'timeout' does nothing; 'lost' does the work. In-process both raise
  `httpx.ReadTimeout`; over real HTTP both hang for `timeout_seconds` (ending early when the
  client hangs up), then 'timeout' answers 504 and 'lost' sends the real answer.
"""

from __future__ import annotations

from app.sandbox.moneybird.api import MoneybirdTransport, create_app, match_route, sandbox_transport
from app.sandbox.moneybird.documents import compute_totals
from app.sandbox.moneybird.invoices import edit_in_web_app
from app.sandbox.moneybird.records import Rounding, SandboxAdministration
from app.sandbox.moneybird.state import DEFAULT_TOKEN, FaultKind, MoneybirdSandbox, RecordedRequest
from app.sandbox.moneybird.wire import ApiError, money_str

__all__ = [
    "DEFAULT_TOKEN",
    "SandboxAdministration",
    "ApiError",
    "FaultKind",
    "MoneybirdSandbox",
    "MoneybirdTransport",
    "RecordedRequest",
    "Rounding",
    "compute_totals",
    "create_app",
    "edit_in_web_app",
    "match_route",
    "money_str",
    "sandbox_transport",
]
