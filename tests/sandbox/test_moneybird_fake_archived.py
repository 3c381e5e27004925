"""The fake Moneybird treats archived contacts as Moneybird does (OpenAPI; shops' reports).

- `PATCH /contacts/{id}/archive` answers 204 without a body; archiving twice is a 400.
- `GET /contacts/{id}` finds an archived contact only with `include_archived=true`, like the lists.
- A new invoice or external invoice for an archived (or unknown) contact is refused with 400
  `Contact ID is invalid`, `symbolic: {<root>: {contact_id: contact_invalid}}` — the documented
  answer for an unknown contact, and what shops see for an archived one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.sandbox.moneybird import MoneybirdSandbox, MoneybirdTransport


@pytest.fixture
async def client() -> AsyncIterator[tuple[MoneybirdSandbox, httpx.AsyncClient]]:
    sandbox = MoneybirdSandbox()
    async with httpx.AsyncClient(
        transport=MoneybirdTransport(sandbox),
        base_url=f"https://moneybird.test/api/v2/{sandbox.administration_id}",
        headers={"Authorization": f"Bearer {sandbox.token}"},
    ) as http:
        yield sandbox, http


def _line(sandbox: MoneybirdSandbox) -> dict[str, Any]:
    return {"description": "Vaas", "price": "24.95", "amount": "1", "tax_rate_id": sandbox.tax_rate_id(21)}


async def test_an_archived_contact_is_hidden_and_refuses_new_invoices(
    client: tuple[MoneybirdSandbox, httpx.AsyncClient],
) -> None:
    sandbox, http = client
    created = await http.post("/contacts.json", json={"contact": {"firstname": "Els", "lastname": "Kok"}})
    contact_id = created.json()["id"]
    bodies = {
        "/sales_invoices.json": {
            "sales_invoice": {"contact_id": contact_id, "details_attributes": [_line(sandbox)]}
        },
        "/external_sales_invoices.json": {
            "external_sales_invoice": {
                "contact_id": contact_id,
                "reference": "WooCommerce #1",
                "details_attributes": [_line(sandbox)],
            }
        },
    }

    archived = await http.patch(f"/contacts/{contact_id}/archive.json")
    assert (archived.status_code, archived.content) == (204, b"")
    again = await http.patch(f"/contacts/{contact_id}/archive.json")
    assert again.status_code == 400
    assert (await http.get(f"/contacts/{contact_id}.json")).status_code == 404
    shown = await http.get(f"/contacts/{contact_id}.json", params={"include_archived": "true"})
    assert (shown.status_code, shown.json()["archived"]) == (200, True)
    for path, body in bodies.items():
        refused = await http.post(path, json=body)
        root = next(iter(body))
        assert refused.status_code == 400
        assert refused.json() == {
            "error": "Contact ID is invalid",
            "symbolic": {root: {"contact_id": "contact_invalid"}},
        }
    assert sandbox.sales_invoices == {}
    assert sandbox.external_sales_invoices == {}
