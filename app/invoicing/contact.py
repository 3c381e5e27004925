"""The Moneybird contact an order's invoice goes to, taken from the billing address."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from app.woocommerce.models import Order


@dataclass(frozen=True, slots=True)
class PlanContact:
    email: str
    company_name: str
    firstname: str
    lastname: str
    address1: str
    address2: str
    zipcode: str
    city: str
    country: str
    phone: str
    tax_number: str
    # Stable across orders of the same customer, so the booking step can find the contact again.
    customer_id: str

    @property
    def display_name(self) -> str:
        person = f"{self.firstname} {self.lastname}".strip()
        return self.company_name or person or self.email


def customer_id(order: Order) -> str:
    """`woo-<id>` for a registered customer; guests are recognised by their e-mail address."""
    if order.customer_id:
        return f"woo-{order.customer_id}"
    email = (order.billing.email or "").strip().lower()
    if not email:
        # A guest without an e-mail address cannot be recognised again; the order is all we know.
        return f"woo-order-{order.id}"
    return f"woo-guest-{hashlib.sha256(email.encode()).hexdigest()[:12]}"


def plan_contact(order: Order, *, tax_number: str | None) -> PlanContact:
    billing = order.billing
    return PlanContact(
        email=(billing.email or "").strip(),
        company_name=billing.company.strip(),
        firstname=billing.first_name.strip(),
        lastname=billing.last_name.strip(),
        address1=billing.address_1.strip(),
        address2=billing.address_2.strip(),
        zipcode=billing.postcode.strip(),
        city=billing.city.strip(),
        country=billing.country.strip().upper(),
        phone=billing.phone.strip(),
        tax_number=tax_number or "",
        customer_id=customer_id(order),
    )
