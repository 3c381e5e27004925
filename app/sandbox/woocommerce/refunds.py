"""Refunds in the fake shop: `wc_create_refund` and the refund resources the REST API shows."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from app.sandbox.woocommerce.precision import DEFAULT_DP, with_precision
from app.sandbox.woocommerce.state import ShopState, apply_status, php_price, refresh_derived, set_date
from app.sandbox.woocommerce.wire import CENT, JsonDict, money, parse_gmt, raw_decimal, wc_dates


class ShopRefunds(ShopState):
    """Refunding orders, as the shop's admin screen and `wc_create_refund` do."""

    def add_refund(
        self,
        order_id: int,
        *,
        amount: Decimal | str | None,
        reason: str = "",
        line_items: Mapping[int, int] | Sequence[Mapping[str, Any]] | None = None,
        shipping: bool = False,
        refunded_payment: bool = True,
    ) -> JsonDict:
        """`wc_create_refund`: a refund resource, the order's `refunds[]` entry and a new modified date.

        `line_items` is either `{order_item_id: quantity}` (pro-rata amounts) or the REST form
        `[{"id", "quantity", "refund_total", "refund_tax": [{"id", "refund_total"}]}]`.
        `shipping=True` refunds every shipping line in full. `amount=None` means the sum of the
        refunded lines. The order's own amounts never change; a refund that leaves nothing to refund
        sets the status to `refunded`. Raises ValueError for amounts WooCommerce refuses.
        """
        order = self._order(order_id)
        items = [self._refund_item(order, spec) for spec in _refund_specs(line_items)]
        ship = [self._refund_shipping(line) for line in order["shipping_lines"]] if shipping else []
        lines_total = sum((_line_gross(line) for line in items + ship), Decimal(0))
        refund_amount = -lines_total if amount is None else Decimal(str(amount))
        remaining = self._remaining_refundable(order)
        if refund_amount <= 0 or refund_amount > remaining:
            raise ValueError(f"Invalid refund amount {refund_amount} (refundable: {remaining})")

        moment = self.clock.later_than(parse_gmt(order.get("date_modified_gmt")))
        refund = self._refund_document(
            order, amount=refund_amount, reason=reason, items=items, ship=ship, moment=moment
        )
        refund["refunded_payment"] = refunded_payment
        self.refunds.setdefault(order_id, []).append(refund)
        order["refunds"] = [{"id": refund["id"], "reason": reason, "total": money(-refund_amount)}] + list(
            order["refunds"]
        )
        if refund_amount == remaining:
            apply_status(order, "refunded", at=moment)
        set_date(order, "date_modified", moment)
        refresh_derived(order)
        return refund

    def delete_refund(self, order_id: int, refund_id: int) -> None:
        """Remove a refund; the order's status is left as it is (WooCommerce does not revert it)."""
        order = self._order(order_id)
        kept = [refund for refund in self.refunds.get(order_id, []) if refund["id"] != refund_id]
        if len(kept) == len(self.refunds.get(order_id, [])):
            raise KeyError(f"no refund {refund_id} on order {order_id}")
        self.refunds[order_id] = kept
        order["refunds"] = [entry for entry in order["refunds"] if entry["id"] != refund_id]
        moment = self.clock.later_than(parse_gmt(order.get("date_modified_gmt")))
        set_date(order, "date_modified", moment)

    def refund_view(self, order_id: int, refund: Mapping[str, Any], *, dp: int = DEFAULT_DP) -> JsonDict:
        base = self._api_url(f"/orders/{order_id}/refunds")
        return with_precision(dict(refund), version=self.woocommerce_version, dp=dp) | {
            "_links": {
                "self": [{"href": f"{base}/{refund['id']}", "targetHints": {"allow": ["GET", "DELETE"]}}],
                "collection": [{"href": base}],
                "up": [{"href": self._api_url(f"/orders/{order_id}")}],
            }
        }

    def _remaining_refundable(self, order: Mapping[str, Any]) -> Decimal:
        refunded = sum(
            (Decimal(refund["amount"]) for refund in self.refunds.get(order["id"], [])), Decimal(0)
        )
        return Decimal(order["total"]) - refunded

    def _refund_item(self, order: Mapping[str, Any], spec: Mapping[str, Any]) -> JsonDict:
        original = next((line for line in order["line_items"] if line["id"] == int(spec["id"])), None)
        if original is None:
            raise ValueError(f"order {order['id']} has no line item {spec['id']}")
        ordered = Decimal(str(original["quantity"]))
        quantity = Decimal(str(spec.get("quantity", original["quantity"])))
        if not 0 <= quantity <= ordered:
            raise ValueError(f"cannot refund {quantity} of line {original['id']} (ordered: {ordered})")
        share = quantity / ordered if ordered else Decimal(0)
        total = _explicit_or(spec.get("refund_total"), Decimal(original["total"]) * share)
        explicit_taxes = {int(tax["id"]): tax["refund_total"] for tax in spec.get("refund_tax", [])}
        taxes = {
            int(tax["id"]): _explicit_or(explicit_taxes.get(int(tax["id"])), _raw(tax["total"]) * share)
            for tax in original.get("taxes", [])
        }
        tax_total = sum(taxes.values(), Decimal(0))
        return {
            "id": self._item_id(),
            "name": original["name"],
            "product_id": original.get("product_id", 0),
            "variation_id": original.get("variation_id", 0),
            "quantity": -int(quantity),
            "tax_class": original.get("tax_class", ""),
            "subtotal": money(-total),
            "subtotal_tax": money(-tax_total),
            "total": money(-total),
            "total_tax": money(-tax_total),
            # Stored as given, like any tax WooCommerce keeps (`-5.2`, `0`); 10.0 pads it on the wire.
            "taxes": [
                {"id": rate, "total": raw_decimal(-t), "subtotal": raw_decimal(-t)}
                for rate, t in taxes.items()
            ],
            "meta_data": [self._meta("_refunded_item_id", str(original["id"]))],
            "sku": original.get("sku", ""),
            "price": php_price(-total, -int(quantity)),
            "image": original.get("image", {"id": "", "src": ""}),
            "parent_name": original.get("parent_name"),
        }

    def _refund_shipping(self, original: Mapping[str, Any]) -> JsonDict:
        return {
            "id": self._item_id(),
            "method_title": original.get("method_title", ""),
            "method_id": original.get("method_id", ""),
            "instance_id": original.get("instance_id", ""),
            "total": money(-Decimal(original["total"])),
            "total_tax": money(-Decimal(original.get("total_tax", "0"))),
            "taxes": [
                {"id": tax["id"], "total": raw_decimal(-_raw(tax["total"])), "subtotal": ""}
                for tax in original.get("taxes", [])
            ],
            "tax_status": original.get("tax_status", "taxable"),
            "meta_data": [self._meta("_refunded_item_id", str(original["id"]))],
        }

    def _refund_document(
        self,
        order: Mapping[str, Any],
        *,
        amount: Decimal,
        reason: str,
        items: list[JsonDict],
        ship: list[JsonDict],
        moment: datetime,
    ) -> JsonDict:
        local, gmt = wc_dates(moment)
        return {
            "id": self._post_id(),
            "date_created": local,
            "date_created_gmt": gmt,
            "amount": money(amount),
            "reason": reason,
            "refunded_by": 1,
            "refunded_payment": True,
            "meta_data": [],
            "line_items": items,
            "shipping_lines": ship,
            "tax_lines": self._refund_tax_lines(order, items, ship),
            "fee_lines": [],
        }

    def _refund_tax_lines(
        self, order: Mapping[str, Any], items: list[JsonDict], ship: list[JsonDict]
    ) -> list[JsonDict]:
        item_tax = _taxes_by_rate(items)
        ship_tax = _taxes_by_rate(ship)
        lines = []
        for tax_line in order["tax_lines"]:
            rate = tax_line["rate_id"]
            if rate not in item_tax and rate not in ship_tax:
                continue
            lines.append(
                {
                    "id": self._item_id(),
                    "rate_code": tax_line["rate_code"],
                    "rate_id": rate,
                    "label": tax_line["label"],
                    "compound": tax_line.get("compound", False),
                    "tax_total": money(item_tax.get(rate, 0)),
                    "shipping_tax_total": money(ship_tax.get(rate, 0)),
                    "rate_percent": tax_line.get("rate_percent"),
                    "meta_data": [],
                }
            )
        return lines


def _raw(value: Any) -> Decimal:
    return Decimal(str(value)) if value not in (None, "") else Decimal(0)


def _explicit_or(explicit: Any, pro_rata: Decimal) -> Decimal:
    value = Decimal(str(explicit)) if explicit not in (None, "") else pro_rata
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def _refund_specs(
    line_items: Mapping[int, int] | Sequence[Mapping[str, Any]] | None,
) -> list[Mapping[str, Any]]:
    if line_items is None:
        return []
    if isinstance(line_items, Mapping):
        return [{"id": item_id, "quantity": quantity} for item_id, quantity in line_items.items()]
    return list(line_items)


def _line_gross(line: Mapping[str, Any]) -> Decimal:
    return Decimal(line["total"]) + Decimal(line["total_tax"])


def _taxes_by_rate(lines: Iterable[Mapping[str, Any]]) -> dict[int, Decimal]:
    totals: dict[int, Decimal] = {}
    for line in lines:
        for tax in line.get("taxes", []):
            totals[tax["id"]] = totals.get(tax["id"], Decimal(0)) + _raw(tax["total"])
    return totals
