"""The Moneybird fake answers like Moneybird: wire shapes, validation, arithmetic, limits and faults."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from datetime import date, timedelta
from typing import Any

import httpx
import pytest

from app.sandbox.moneybird import MoneybirdSandbox, MoneybirdTransport, create_app
from app.sandbox.server import serve
from tests.server import serve_in_thread

JsonDict = dict[str, Any]


class FakeClock:
    def __init__(self, start: float = 1_790_000_000.25) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sandbox() -> MoneybirdSandbox:
    return MoneybirdSandbox()


def _client(sandbox: MoneybirdSandbox, *, token: str | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=MoneybirdTransport(sandbox),
        base_url=f"https://moneybird.test/api/v2/{sandbox.administration_id}",
        headers={"Authorization": f"Bearer {token or sandbox.token}"},
    )


@pytest.fixture
async def client(sandbox: MoneybirdSandbox) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(sandbox) as http:
        yield http


async def _contact(client: httpx.AsyncClient, **fields: Any) -> JsonDict:
    body = {"firstname": "Jan", "lastname": "Jansen", "send_invoices_to_email": "jan@example.com", **fields}
    body = {key: value for key, value in body.items() if value is not None}  # null is not a string: 422
    response = await client.post("/contacts.json", json={"contact": body})
    assert response.status_code == 201, response.text
    return dict(response.json())


def _line(sandbox: MoneybirdSandbox, price: str, *, amount: Any = 1, rate: int = 21) -> JsonDict:
    return {
        "description": f"item {price}",
        "price": price,
        "amount": amount,
        "tax_rate_id": sandbox.tax_rate_id(rate),
    }


async def _invoice(client: httpx.AsyncClient, contact_id: str, lines: Any, **fields: Any) -> JsonDict:
    body = {"contact_id": contact_id, "reference": "WooCommerce #1", "details_attributes": lines, **fields}
    response = await client.post("/sales_invoices.json", json={"sales_invoice": body})
    assert response.status_code == 201, response.text
    return dict(response.json())


async def _send(client: httpx.AsyncClient, invoice_id: str, method: str = "Manual") -> JsonDict:
    response = await client.patch(
        f"/sales_invoices/{invoice_id}/send_invoice.json",
        json={"sales_invoice_sending": {"delivery_method": method}},
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


async def _pay(
    client: httpx.AsyncClient, invoice_id: str, price: str, *, kind: str = "sales_invoices"
) -> httpx.Response:
    return await client.post(
        f"/{kind}/{invoice_id}/payments.json",
        json={"payment": {"payment_date": "2026-03-01", "price": price, "transaction_identifier": "tr_x"}},
    )


# -- auth, administrations, routing ------------------------------------------------------------


async def test_wrong_or_missing_token_is_401_invalid_grant(sandbox: MoneybirdSandbox) -> None:
    async with _client(sandbox, token="nope") as wrong:
        response = await wrong.get("/contacts.json")
    async with httpx.AsyncClient(
        transport=MoneybirdTransport(sandbox), base_url="https://m.test"
    ) as anonymous:
        missing = await anonymous.get("/api/v2/administrations.json")

    expected = {"error": "token is invalid", "symbolic": {"request": "invalid_grant"}}
    assert (response.status_code, response.json()) == (401, expected)
    assert (missing.status_code, missing.json()) == (401, expected)
    assert sandbox.calls("GET /contacts") == 1


async def test_administrations_with_and_without_format_suffix(
    sandbox: MoneybirdSandbox, client: httpx.AsyncClient
) -> None:
    for path in ("/api/v2/administrations.json", "/api/v2/administrations"):
        response = await client.get(f"https://moneybird.test{path}")
        assert response.status_code == 200
        [administration] = response.json()
        assert administration["id"] == sandbox.administration_id
        assert len(administration["id"]) == 18

    unknown = await client.get("https://moneybird.test/api/v2/123456789012345678/contacts.json")
    assert unknown.status_code == 404
    assert unknown.json()["symbolic"] == {"administration_id": "not_found"}


async def test_reference_data_is_seeded_and_filterable(
    sandbox: MoneybirdSandbox, client: httpx.AsyncClient
) -> None:
    rates = (
        await client.get("/tax_rates.json", params={"filter": "tax_rate_type:sales_invoice,percentage:21"})
    ).json()
    assert sorted((r["name"], r["country"]) for r in rates) == [("21% BE (OSS)", "BE"), ("21% btw", None)]
    oss = (await client.get("/tax_rates", params={"filter": "country:DE"})).json()
    assert [(r["percentage"], r["tax_rate_type"]) for r in oss] == [("19.0", "sales_invoice")]

    ledgers = (await client.get("/ledger_accounts.json")).json()
    revenue = {a["name"] for a in ledgers if a["account_type"] == "revenue"}
    assert {"Omzet", "Ongecategoriseerde inkomsten"} <= revenue
    workflows = (await client.get("/workflows.json")).json()
    default = next(w for w in workflows if w["type"] == "InvoiceWorkflow" and w["default"])
    assert (default["prices_are_incl_tax"], default["currency"], default["steps"][0]["due_interval"]) == (
        False,
        "EUR",
        14,
    )
    assert (await client.get("/identities/default.json")).json()[
        "administration_id"
    ] == sandbox.administration_id


# -- contacts ----------------------------------------------------------------------------------


async def test_contact_without_any_name_is_422_in_the_non_symbolic_shape(client: httpx.AsyncClient) -> None:
    response = await client.post("/contacts.json", json={"contact": {"send_invoices_to_email": "a@b.nl"}})

    assert response.status_code == 422
    body = response.json()
    assert body["error"] == {k: ["is required"] for k in ("firstname", "lastname", "company_name")}
    assert body["details"]["company_name"] == [{"error": "is required"}]


async def test_missing_root_key_is_400_with_symbolic(client: httpx.AsyncClient) -> None:
    for body in ({}, {"firstname": "Jan"}):
        missing = await client.post("/contacts.json", json=body)
        assert (missing.status_code, missing.json()) == (
            400,
            {"error": "Contact is required", "symbolic": {"contact": "required"}},
        )


async def test_contact_defaults_customer_id_and_email_alias(
    sandbox: MoneybirdSandbox, client: httpx.AsyncClient
) -> None:
    auto = await _contact(client)
    by_email_key = await _contact(
        client, send_invoices_to_email=None, email="piet@example.com", customer_id="woo-7"
    )

    assert (auto["country"], auto["delivery_method"], auto["customer_id"]) == ("NL", "Email", "1")
    assert auto["id"].isdigit()
    assert len(auto["id"]) == 18
    assert auto["events"][0]["action"] == "contact_created"
    assert by_email_key["send_invoices_to_email"] == by_email_key["email"] == "piet@example.com"

    found = await client.get("/contacts/customer_id/woo-7.json")
    assert found.json()["id"] == by_email_key["id"]
    missing = await client.get("/contacts/customer_id/woo-8.json")
    assert (missing.status_code, missing.json()["symbolic"]) == (404, {"customer_id": "not_found"})

    duplicate = await client.post(
        "/contacts.json", json={"contact": {"lastname": "X", "customer_id": "woo-7"}}
    )
    assert duplicate.status_code == 422
    assert duplicate.json()["error"] == {"customer_id": ["has already been taken"]}
    assert len(sandbox.contacts) == 2


async def test_hand_made_contact_gets_no_customer_id_of_ours(sandbox: MoneybirdSandbox) -> None:
    contact = sandbox.seed_contact(company_name="Bakkerij B.V.", send_invoices_to_email="info@bakkerij.nl")

    assert contact["customer_id"] == "1"
    assert sandbox.calls() == 0


async def test_query_search_is_fuzzy(sandbox: MoneybirdSandbox, client: httpx.AsyncClient) -> None:
    exact = await _contact(client, send_invoices_to_email="jan@example.com")
    near = await _contact(client, firstname="Jan", send_invoices_to_email="jan@example.com.au")
    await _contact(client, firstname="Kees", lastname="Bakker", send_invoices_to_email="kees@example.nl")

    response = await client.get("/contacts.json", params={"query": "JAN@example.com"})

    assert {c["id"] for c in response.json()} == {exact["id"], near["id"]}
    by_words = await client.get("/contacts.json", params={"query": "kees bakker"})
    assert [c["firstname"] for c in by_words.json()] == ["Kees"]


async def test_contact_update_and_filter(client: httpx.AsyncClient) -> None:
    contact = await _contact(client)

    updated = await client.patch(f"/contacts/{contact['id']}.json", json={"contact": {"city": "Utrecht"}})
    assert (updated.json()["city"], updated.json()["version"] > contact["version"]) == ("Utrecht", True)
    bad = await client.patch(
        f"/contacts/{contact['id']}.json", json={"contact": {"firstname": "", "lastname": ""}}
    )
    assert bad.status_code == 422
    filtered = await client.get("/contacts/filter.json", params={"filter": "first_name:jan"})
    assert [c["id"] for c in filtered.json()] == [contact["id"]]


# -- pagination --------------------------------------------------------------------------------


async def test_pagination_link_header_and_per_page_bounds(client: httpx.AsyncClient) -> None:
    for name in ("A", "B", "C"):
        await _contact(client, lastname=name)

    first = await client.get("/contacts.json", params={"per_page": 2})
    second = await client.get("/contacts.json", params={"per_page": 2, "page": 2})

    assert [c["lastname"] for c in first.json()] == ["A", "B"]
    assert 'rel="next"' in first.headers["link"]
    assert "page=2" in first.headers["link"]
    assert 'rel="prev"' not in first.headers["link"]
    assert [c["lastname"] for c in second.json()] == ["C"]
    assert 'rel="prev"' in second.headers["link"]
    assert 'rel="next"' not in second.headers["link"]
    assert "link" not in (await client.get("/contacts.json")).headers
    for per_page in (0, 101, "x"):
        bad = await client.get("/contacts.json", params={"per_page": per_page})
        assert (bad.status_code, bad.json()) == (400, {"error": "per_page does not have a valid value"})


# -- sales invoices ----------------------------------------------------------------------------

# Three separate lines of 0.12 at 21 %: per line 3 × round(0.0252) = 0.09, per rate round(0.0756) = 0.08.
# Two gross lines of 10.00 incl. 21 %: per line net 2 × 8.26, per rate net round(20 / 1.21) = 16.53.
ROUNDING_CASES = [
    ("per_line", False, ["0.12", "0.12", "0.12"], "0.36", "0.09", "0.45"),
    ("per_rate", False, ["0.12", "0.12", "0.12"], "0.36", "0.08", "0.44"),
    ("per_line", True, ["10.00", "10.00"], "16.52", "3.48", "20.0"),
    ("per_rate", True, ["10.00", "10.00"], "16.53", "3.47", "20.0"),
]


@pytest.mark.parametrize(("rounding", "incl", "prices", "excl", "tax", "total"), ROUNDING_CASES)
async def test_invoice_totals_follow_the_rounding_switch(
    sandbox: MoneybirdSandbox,
    client: httpx.AsyncClient,
    rounding: Any,
    incl: bool,
    prices: list[str],
    excl: str,
    tax: str,
    total: str,
) -> None:
    sandbox.rounding = rounding
    contact = await _contact(client)

    invoice = await _invoice(
        client, contact["id"], [_line(sandbox, p) for p in prices], prices_are_incl_tax=incl
    )

    assert (invoice["total_price_excl_tax"], invoice["total_price_incl_tax"]) == (excl, total)
    [tax_total] = invoice["tax_totals"]
    assert (tax_total["taxable_amount"], tax_total["tax_amount"]) == (excl, tax)
    assert invoice["total_unpaid"] == total


async def test_invoice_lifecycle_draft_send_partial_and_full_payment(
    sandbox: MoneybirdSandbox, client: httpx.AsyncClient
) -> None:
    contact = await _contact(client)
    lines = {"0": _line(sandbox, "129.95"), "1": {**_line(sandbox, "10,95", amount="2", rate=9)}}
    draft = await _invoice(client, contact["id"], lines)

    assert (draft["state"], draft["invoice_id"], draft["draft_id"]) == ("draft", None, 1)
    assert (draft["total_price_excl_tax"], draft["total_price_incl_tax"]) == ("151.85", "181.11")
    assert draft["details"][1]["amount_decimal"] == "2.0"
    assert draft["details"][1]["price"] == "10.95"
    assert draft["due_date"] == (sandbox.clock.today() + timedelta(days=14)).isoformat()

    refused = await _pay(client, draft["id"], "181.11")
    assert refused.status_code == 422
    assert "draft" in refused.json()["error"]["base"][0]

    sent = await _send(client, draft["id"])
    assert (sent["state"], sent["draft_id"]) == ("open", None)
    assert sent["invoice_id"] == f"{sandbox.clock.today().year}-0001"
    assert sent["invoice_date"] == sandbox.clock.today().isoformat()
    assert sent["payment_reference"]
    again = await _send(client, draft["id"])
    assert again["invoice_id"] == sent["invoice_id"]

    partial = await _pay(client, draft["id"], "100")
    assert partial.status_code == 201
    assert partial.json()["price"] == "100.0"
    after_partial = (await client.get(f"/sales_invoices/{draft['id']}.json")).json()
    assert (after_partial["state"], after_partial["total_unpaid"], after_partial["total_paid"]) == (
        "open",
        "81.11",
        "100.0",
    )
    assert (await _pay(client, draft["id"], "81.12")).status_code == 422  # overpayment
    assert (await _pay(client, draft["id"], "81.11")).status_code == 201
    paid = (await client.get(f"/sales_invoices/{draft['id']}.json")).json()
    assert (paid["state"], paid["total_unpaid"], paid["paid_at"]) == ("paid", "0.0", "2026-03-01")
    assert "sales_invoice_state_changed_to_paid" in [e["action"] for e in paid["events"]]


async def test_payment_body_is_validated(sandbox: MoneybirdSandbox, client: httpx.AsyncClient) -> None:
    contact = await _contact(client)
    invoice = await _send(client, (await _invoice(client, contact["id"], [_line(sandbox, "10")]))["id"])

    response = await client.post(f"/sales_invoices/{invoice['id']}/payments.json", json={"payment": {}})

    assert response.status_code == 422
    assert response.json()["error"]["price"] == ["can't be blank", "is not a number"]
    assert response.json()["details"]["payment_date"][0] == {"error": "blank"}


async def test_sending_needs_lines_and_an_address_for_email(
    sandbox: MoneybirdSandbox, client: httpx.AsyncClient
) -> None:
    no_email = await _contact(client, send_invoices_to_email="")
    empty = await _invoice(client, no_email["id"], [])
    filled = await _invoice(client, no_email["id"], [_line(sandbox, "5")])

    nothing = await client.patch(f"/sales_invoices/{empty['id']}/send_invoice.json", json={})
    by_email = await client.patch(
        f"/sales_invoices/{filled['id']}/send_invoice.json",
        json={"sales_invoice_sending": {"delivery_method": "Email"}},
    )

    assert (nothing.status_code, nothing.json()["symbolic"]) == (
        400,
        {"sales_invoice": "details_cannot_be_empty"},
    )
    assert (by_email.status_code, by_email.json()["error"]) == (422, {"email_address": ["can't be blank"]})


async def test_unknown_keys_and_bad_references_are_rejected(
    sandbox: MoneybirdSandbox, client: httpx.AsyncClient
) -> None:
    contact = await _contact(client)
    line = _line(sandbox, "10")

    response_only = await client.post(
        "/sales_invoices.json",
        json={
            "sales_invoice": {
                "contact_id": contact["id"],
                "details_attributes": [{**line, "amount_decimal": "1"}],
            }
        },
    )
    top_level = await client.post(
        "/sales_invoices.json", json={"sales_invoice": {"contact_id": contact["id"], "total_price": "1"}}
    )
    purchase_rate = await client.post(
        "/sales_invoices.json",
        json={
            "sales_invoice": {
                "contact_id": contact["id"],
                "details_attributes": [
                    {**line, "tax_rate_id": sandbox.tax_rate_id(21, tax_rate_type="purchase_invoice")}
                ],
            }
        },
    )
    three_decimals = await client.post(
        "/sales_invoices.json",
        json={
            "sales_invoice": {"contact_id": contact["id"], "details_attributes": [{**line, "price": "1.005"}]}
        },
    )
    unknown_contact = await client.post("/sales_invoices.json", json={"sales_invoice": {"contact_id": "123"}})

    assert (response_only.status_code, list(response_only.json()["error"])) == (
        422,
        ["details.amount_decimal"],
    )
    assert (top_level.status_code, list(top_level.json()["error"])) == (422, ["total_price"])
    assert (purchase_rate.status_code, list(purchase_rate.json()["error"])) == (422, ["details.tax_rate_id"])
    assert (three_decimals.status_code, list(three_decimals.json()["error"])) == (422, ["details.price"])
    assert unknown_contact.status_code == 400
    assert unknown_contact.json()["symbolic"] == {"sales_invoice": {"contact_id": "contact_invalid"}}
    assert sandbox.sales_invoices == {}


async def test_find_by_reference_404_then_oldest_match(
    sandbox: MoneybirdSandbox, client: httpx.AsyncClient
) -> None:
    missing = await client.get("/sales_invoices/find_by_reference/WooCommerce%20%231042.json")
    assert missing.status_code == 404
    assert missing.json() == {
        "error": "Sales invoice with reference: WooCommerce #1042 was not found",
        "symbolic": {"reference": "not_found"},
    }

    contact = await _contact(client)
    first = await _invoice(client, contact["id"], [_line(sandbox, "1")], reference="WooCommerce #1042")
    await _invoice(client, contact["id"], [_line(sandbox, "2")], reference="WooCommerce #1042")

    found = await client.get("/sales_invoices/find_by_reference/WooCommerce%20%231042.json")
    assert (found.status_code, found.json()["id"]) == (200, first["id"])
    listed = await client.get(
        "/sales_invoices.json", params={"filter": "reference:WooCommerce #1042,state:draft"}
    )
    assert len(listed.json()) == 2


async def test_only_drafts_change_lines(sandbox: MoneybirdSandbox, client: httpx.AsyncClient) -> None:
    contact = await _contact(client)
    draft = await _invoice(client, contact["id"], [_line(sandbox, "10")])
    detail_id = draft["details"][0]["id"]

    changed = await client.patch(
        f"/sales_invoices/{draft['id']}.json",
        json={
            "sales_invoice": {
                "details_attributes": [{"id": detail_id, "_destroy": True}, _line(sandbox, "20")]
            }
        },
    )
    assert [d["price"] for d in changed.json()["details"]] == ["20.0"]
    await _send(client, draft["id"])
    refused = await client.patch(
        f"/sales_invoices/{draft['id']}.json",
        json={"sales_invoice": {"details_attributes": [_line(sandbox, "1")]}},
    )
    assert refused.status_code == 422


# -- credit invoices ---------------------------------------------------------------------------


async def test_credit_invoice_duplicate_and_settlement(
    sandbox: MoneybirdSandbox, client: httpx.AsyncClient
) -> None:
    contact = await _contact(client)
    original = await _send(client, (await _invoice(client, contact["id"], [_line(sandbox, "300")]))["id"])

    duplicated = await client.patch(f"/sales_invoices/{original['id']}/duplicate_creditinvoice.json", json={})
    credit = duplicated.json()
    assert (duplicated.status_code, credit["state"], credit["original_sales_invoice_id"]) == (
        200,
        "draft",
        original["id"],
    )
    assert [(d["price"], d["amount_decimal"]) for d in credit["details"]] == [
        ("0.0", "1.0"),
        ("300.0", "-1.0"),
    ]
    assert (credit["total_price_excl_tax"], credit["total_price_incl_tax"]) == ("-300.0", "-363.0")

    await _send(client, credit["id"])
    settled = await client.patch(
        f"/sales_invoices/{credit['id']}/register_payment_creditinvoice.json", json={}
    )
    assert settled.status_code == 200
    assert (settled.json()["state"], settled.json()["payments"][0]["price"]) == ("paid", "-363.0")
    original_after = (await client.get(f"/sales_invoices/{original['id']}.json")).json()
    assert (original_after["state"], original_after["total_paid"]) == ("paid", "363.0")


async def test_partial_credit_invoice_with_negative_lines(
    sandbox: MoneybirdSandbox, client: httpx.AsyncClient
) -> None:
    contact = await _contact(client)
    credit = await _invoice(client, contact["id"], [_line(sandbox, "19.95", amount=-1)])

    assert (credit["total_price_incl_tax"], credit["tax_totals"][0]["tax_amount"]) == ("-24.14", "-4.19")
    await _send(client, credit["id"])
    assert (await _pay(client, credit["id"], "24.14")).status_code == 422  # wrong sign
    assert (await _pay(client, credit["id"], "-24.14")).status_code == 201
    assert sandbox.sales_invoices[credit["id"]]["state"] == "paid"


# -- external sales invoices -------------------------------------------------------------------


async def test_external_invoice_flow(sandbox: MoneybirdSandbox, client: httpx.AsyncClient) -> None:
    contact = await _contact(client)
    body: JsonDict = {"contact_id": contact["id"], "details_attributes": [_line(sandbox, "129.95")]}

    blank = await client.post("/external_sales_invoices.json", json={"external_sales_invoice": body})
    created = await client.post(
        "/external_sales_invoices.json",
        json={"external_sales_invoice": {**body, "reference": "WC-1", "source": "shop"}},
    )

    assert (blank.status_code, blank.json()["error"]) == (422, {"reference": ["can't be blank"]})
    invoice = created.json()
    assert created.status_code == 201
    assert (invoice["state"], invoice["entry_number"], invoice["origin"], invoice["date"]) == (
        "open",
        1,
        "api",
        sandbox.clock.today().isoformat(),
    )
    assert invoice["total_price_incl_tax"] == "157.24"
    paid = await _pay(client, invoice["id"], "157.24", kind="external_sales_invoices")
    assert (paid.status_code, paid.json()["invoice_type"]) == (201, "ExternalSalesInvoice")
    listed = await client.get(
        "/external_sales_invoices.json", params={"filter": f"state:paid,contact_id:{contact['id']}"}
    )
    assert [i["id"] for i in listed.json()] == [invoice["id"]]
    assert sandbox.external_sales_invoices[invoice["id"]]["paid_at"] == "2026-03-01"


# -- rate limit --------------------------------------------------------------------------------


async def test_rate_limit_429_has_absolute_epoch_and_does_not_use_a_slot(clock: FakeClock) -> None:
    sandbox = MoneybirdSandbox(rate_limit=(3, 60.0), clock=clock)
    async with _client(sandbox) as client:
        first_at = clock.now
        for _ in range(3):
            assert (await client.get("/workflows.json")).status_code == 200
            clock.now += 1
        throttled = await client.get("/workflows.json")
        assert throttled.status_code == 429
        assert throttled.text == "Retry later"
        reset = math.ceil(first_at + 60)
        assert throttled.headers["Retry-After"] == throttled.headers["RateLimit-Reset"] == str(reset)
        assert (throttled.headers["RateLimit-Limit"], throttled.headers["RateLimit-Remaining"]) == ("3", "0")
        assert (await client.get("/workflows.json")).status_code == 429  # refused requests take no slot

        clock.now = first_at + 60.01  # only the first request has left the window
        assert (await client.get("/workflows.json")).status_code == 200
        again = await client.get("/workflows.json")
        assert (again.status_code, again.headers["Retry-After"]) == (429, str(math.ceil(first_at + 1 + 60)))
    assert sandbox.count_429 == 3


# -- faults ------------------------------------------------------------------------------------


async def test_status_fault_answers_without_doing_the_work(
    sandbox: MoneybirdSandbox, client: httpx.AsyncClient
) -> None:
    sandbox.fail_next("POST /contacts", kind="status", status=503, times=2)

    failures = [await client.post("/contacts.json", json={"contact": {"lastname": "X"}}) for _ in range(2)]
    success = await client.post("/contacts.json", json={"contact": {"lastname": "X"}})

    assert [f.status_code for f in failures] == [503, 503]
    assert {f.headers["content-type"].split(";")[0] for f in failures} == {"text/plain", "application/json"}
    assert success.status_code == 201
    assert len(sandbox.contacts) == 1
    assert [r.fault for r in sandbox.requests] == ["status", "status", None]


async def test_timeout_fault_does_nothing_and_raises(
    sandbox: MoneybirdSandbox, client: httpx.AsyncClient
) -> None:
    contact = await _contact(client)
    sandbox.fail_next("POST /sales_invoices", kind="timeout")

    with pytest.raises(httpx.ReadTimeout):
        await _invoice(client, contact["id"], [_line(sandbox, "1")])

    assert sandbox.sales_invoices == {}
    assert sandbox.requests[-1].status is None
    assert sandbox.requests[-1].fault == "timeout"


async def test_lost_fault_does_the_work_but_the_client_never_hears(
    sandbox: MoneybirdSandbox, client: httpx.AsyncClient
) -> None:
    contact = await _contact(client)
    invoice = await _invoice(client, contact["id"], [_line(sandbox, "1")], reference="WooCommerce #9")
    sandbox.fail_next("PATCH /sales_invoices/{id}/send_invoice", kind="lost")
    sandbox.fail_next("*", kind="lost")

    with pytest.raises(httpx.ReadTimeout):
        await _send(client, invoice["id"])
    assert sandbox.sales_invoices[invoice["id"]]["state"] == "open"
    with pytest.raises(httpx.ReadTimeout):
        await _pay(client, invoice["id"], "1.21")
    assert sandbox.sales_invoices[invoice["id"]]["state"] == "paid"
    assert sandbox.calls("POST /sales_invoices/{sales_invoice_id}/payments") == 1


# -- over real HTTP ----------------------------------------------------------------------------


async def test_served_over_real_http(sandbox: MoneybirdSandbox) -> None:
    async with serve(create_app(sandbox)) as base_url, httpx.AsyncClient(base_url=base_url) as http:
        response = await http.get(
            "/api/v2/administrations.json", headers={"Authorization": f"Bearer {sandbox.token}"}
        )
    assert base_url.startswith("http://127.0.0.1:")
    assert response.status_code == 200
    assert response.json()[0]["id"] == sandbox.administration_id


def test_timeout_and_lost_faults_hang_until_the_client_gives_up_over_http(sandbox: MoneybirdSandbox) -> None:
    sandbox.timeout_seconds = 5
    sandbox.fail_next("GET /contacts", kind="timeout")
    sandbox.fail_next("POST /contacts", kind="lost")
    url: Callable[[str], str] = lambda base: f"{base}/api/v2/{sandbox.administration_id}/contacts.json"  # noqa: E731
    headers = {"Authorization": f"Bearer {sandbox.token}"}

    with serve_in_thread(create_app(sandbox)) as base_url:
        with pytest.raises(httpx.ReadTimeout):
            httpx.get(url(base_url), headers=headers, timeout=0.3)
        assert httpx.get(url(base_url), headers=headers, timeout=5).status_code == 200
        assert sandbox.contacts == {}
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(url(base_url), headers=headers, json={"contact": {"lastname": "Lost"}}, timeout=0.3)
    assert [c["lastname"] for c in sandbox.contacts.values()] == ["Lost"]


async def test_products_identifier_lookup_and_validation(
    sandbox: MoneybirdSandbox, client: httpx.AsyncClient
) -> None:
    ledger = sandbox.ledger_account_id("Omzet")
    body = {"title": "Mok", "identifier": "MOK-01", "price": "12,50", "ledger_account_id": ledger}

    created = await client.post("/products.json", json={"product": body})
    duplicate = await client.post("/products.json", json={"product": body})
    untitled = await client.post(
        "/products.json", json={"product": {"price": 1, "ledger_account_id": ledger}}
    )
    found = await client.get("/products/identifier/MOK-01.json")
    missing = await client.get("/products/identifier/NOPE.json")

    assert (created.status_code, created.json()["price"]) == (201, "12.5")
    assert duplicate.json()["error"] == {"identifier": ["has already been taken"]}
    assert untitled.json()["error"]["base"] == ["must contain a title or description"]
    assert found.json()["id"] == created.json()["id"]
    assert (missing.status_code, missing.json()) == (
        404,
        {"error": "record not found", "symbolic": {"id": "not_found"}},
    )


async def test_today_drives_due_dates(sandbox: MoneybirdSandbox, client: httpx.AsyncClient) -> None:
    contact = await _contact(client)
    old = await _invoice(client, contact["id"], [_line(sandbox, "5")], invoice_date="2020-01-01")

    sent = await _send(client, old["id"])

    assert (sent["due_date"], sent["state"]) == ("2020-01-15", "late")
    assert date.fromisoformat(sent["due_date"]) < sandbox.clock.today()


# -- what real Moneybirds do that woobird must survive ---------------------------------------------


async def test_a_total_can_differ_from_the_lines(
    sandbox: MoneybirdSandbox, client: httpx.AsyncClient
) -> None:
    contact = await _contact(client)
    sandbox.skew_next_totals("0.02")
    skewed = await _invoice(client, contact["id"], [_line(sandbox, "10.00")], prices_are_incl_tax=True)
    plain = await _invoice(client, contact["id"], [_line(sandbox, "10.00")], prices_are_incl_tax=True)
    # The same line: 10.00 incl. 21 % is 8.26 + 1.74; the skewed one carries two cents more VAT.
    assert (plain["total_price_incl_tax"], plain["tax_totals"][0]["tax_amount"]) == ("10.0", "1.74")
    assert (skewed["total_price_incl_tax"], skewed["tax_totals"][0]["tax_amount"]) == ("10.02", "1.76")
    assert skewed["total_unpaid"] == "10.02"
    sent = await _send(client, skewed["id"])  # the skew stays with the invoice as it changes
    assert sent["total_price_incl_tax"] == "10.02"


@pytest.mark.parametrize(
    ("scopes", "method", "path", "refusal"),
    [
        ({"sales_invoices"}, "GET", "/products.json", "No access to settings"),
        ({"sales_invoices"}, "GET", "/financial_accounts.json", "No access to settings"),
        ({"settings"}, "GET", "/sales_invoices.json", "No access to sales_invoices"),
        ({"estimates"}, "GET", "/document_styles.json", None),
        (
            {"bank"},
            "GET",
            "/tax_rates.json",
            "No access to sales_invoices or estimates or documents or settings",
        ),
        ({"sales_invoices"}, "GET", "/tax_rates.json", None),
        ({"sales_invoices"}, "GET", "/ledger_accounts.json", None),
        ({"sales_invoices"}, "GET", "/workflows.json", None),
        ({"documents"}, "GET", "/contacts.json", None),
        (
            {"time_entries"},
            "GET",
            "/contacts.json",
            "No access to sales_invoices or estimates or documents or bank or settings",
        ),
    ],
)
async def test_a_token_reaches_only_what_its_scopes_allow(
    sandbox: MoneybirdSandbox,
    client: httpx.AsyncClient,
    scopes: set[str],
    method: str,
    path: str,
    refusal: str | None,
) -> None:
    sandbox.token_scopes = frozenset(scopes)
    response = await client.request(method, path)
    if refusal is None:
        assert response.status_code == 200, response.text
    else:
        assert (response.status_code, response.json()) == (401, {"error": refusal})
    # The list of administrations needs no scope at all.
    async with httpx.AsyncClient(
        transport=MoneybirdTransport(sandbox),
        base_url="https://moneybird.test/api/v2",
        headers={"Authorization": f"Bearer {sandbox.token}"},
    ) as outside:
        assert (await outside.get("/administrations.json")).status_code == 200


async def test_an_archived_contact_keeps_its_customer_id_but_leaves_the_search(
    sandbox: MoneybirdSandbox, client: httpx.AsyncClient
) -> None:
    contact = await _contact(client, customer_id="woo-7")
    sandbox.archive_contact(contact["id"])
    assert (await client.get("/contacts.json", params={"query": "jan@example.com"})).json() == []
    found = await client.get(
        "/contacts.json", params={"query": "jan@example.com", "include_archived": "true"}
    )
    assert [c["id"] for c in found.json()] == [contact["id"]]
    by_key = await client.get("/contacts/customer_id/woo-7.json")
    assert (by_key.json()["id"], by_key.json()["archived"]) == (contact["id"], True)
    again = await client.post(
        "/contacts.json", json={"contact": {"firstname": "Jan", "customer_id": "woo-7"}}
    )
    assert again.status_code == 422
    assert again.json()["error"] == {"customer_id": ["has already been taken"]}


async def test_a_contact_is_deleted_only_while_no_invoice_uses_it(
    sandbox: MoneybirdSandbox, client: httpx.AsyncClient
) -> None:
    used, unused = await _contact(client), await _contact(client, send_invoices_to_email="piet@example.com")
    await _invoice(client, used["id"], [_line(sandbox, "5.00")])
    with pytest.raises(ValueError, match="in use"):
        sandbox.delete_contact(used["id"])
    sandbox.delete_contact(unused["id"])
    assert (await client.get(f"/contacts/{unused['id']}.json")).status_code == 404
    invalid = await client.post(
        "/sales_invoices.json",
        json={"sales_invoice": {"contact_id": unused["id"], "details_attributes": [_line(sandbox, "5.00")]}},
    )
    assert (invalid.status_code, invalid.json()["error"]) == (400, "Contact ID is invalid")


async def test_each_logged_request_carries_how_long_its_answer_took() -> None:
    # bench/bench_booking.py's floor is the fake's answers summed: its latency and its own handling.
    sandbox = MoneybirdSandbox(latency_seconds=0.03)
    async with _client(sandbox) as http:
        await _contact(http)
        await http.get("/contacts.json")
    answered = [(r.route, r.answered - r.time) for r in sandbox.requests if r.answered is not None]
    assert [route for route, _ in answered] == ["POST /contacts", "GET /contacts"]
    assert all(0.03 <= seconds < 1 for _, seconds in answered)
    sandbox.reset_requests()
    assert sandbox.requests == []
