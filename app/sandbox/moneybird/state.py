"""State and switches of one fake Moneybird: administrations, records, faults, rate limit, request log."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from typing import Any, Literal

import httpx

from app.sandbox.moneybird.contacts import create_contact_record
from app.sandbox.moneybird.documents import register_payment
from app.sandbox.moneybird.oauth import MoneybirdOAuth
from app.sandbox.moneybird.records import Call, Rounding, SandboxAdministration
from app.sandbox.moneybird.scopes import ALL_SCOPES
from app.sandbox.moneybird.seed import seed_administration
from app.sandbox.moneybird.webhooks import Push, queue_pushes
from app.sandbox.moneybird.wire import Clock, IdMint, Record

FaultKind = Literal["status", "timeout", "lost"]

DEFAULT_TOKEN = "sandbox-token"


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # without /api/v2/<administration>, without .json
    query: dict[str, str]
    json: Any
    status: int | None  # None: the client never got an answer and nothing was done ('timeout')
    time: float
    route: str | None = None  # e.g. "POST /sales_invoices/{id}/payments"
    fault: FaultKind | None = None
    administration_id: str | None = None
    # When the answer had been handed to the server, on the same clock as `time`: the two apart are
    # the fake's whole answer time (its latency and its own handling), what a benchmark's floor is.
    answered: float | None = None


@dataclass
class Fault:
    route: str
    kind: FaultKind
    status: int
    times: int


class MoneybirdSandbox:
    """The state and switches of one fake Moneybird; see `app.sandbox.moneybird` for the behaviour."""

    def __init__(
        self,
        *,
        token: str = DEFAULT_TOKEN,
        token_scopes: frozenset[str] = ALL_SCOPES,
        administration_id: str | None = None,
        administration_name: str = "Sandbox B.V.",
        rounding: Rounding = "per_rate",
        rate_limit: tuple[int, float] | None = None,
        latency_seconds: float = 0.0,
        timeout_seconds: float = 30.0,
        clock: Callable[[], float] = time.time,
        web_url: str = "https://moneybird.sandbox.invalid",
    ) -> None:
        self.token = token
        # What the token was created with; a request outside them is refused (see scopes.py).
        self.token_scopes = token_scopes
        # OAuth apps' tokens are accepted next to the personal token (see `oauth`).
        self.oauth = MoneybirdOAuth()
        self.administration_name = administration_name
        self.rounding: Rounding = rounding
        self.rate_limit = rate_limit
        self.latency_seconds = latency_seconds
        self.timeout_seconds = timeout_seconds
        self.web_url = web_url
        self.clock = Clock(clock)
        self.ids = IdMint(lambda: self.clock.now())
        self.user_id = self.ids.next()
        self.lock = threading.RLock()
        self.administrations: dict[str, SandboxAdministration] = {}
        self.contacts: dict[str, Record] = {}
        self.sales_invoices: dict[str, Record] = {}
        self.external_sales_invoices: dict[str, Record] = {}
        self.products: dict[str, Record] = {}
        # Webhooks and the pushes made to them (see webhooks.py); tests point `push_client` at the
        # web app under test, a served fake without one sends over HTTP.
        self.webhooks: dict[str, Record] = {}
        self.pushes: list[Push] = []
        self.push_client: httpx.AsyncClient | None = None
        # The first retry of a push not answered 200 waits this long, each next one twice as long.
        self.push_retry_seconds = 1.0
        # A test that starts the web app before registering may name the secret the fake will hand out.
        self.next_webhook_secret: str | None = None
        self.requests: list[RecordedRequest] = []
        self.count_429 = 0
        self.faults: list[Fault] = []
        self.fault_bodies_sent = 0
        self._window: deque[float] = deque()
        # Sales invoices keep their due interval until they are sent; it is not a response field.
        self.due_intervals: dict[str, int] = {}
        # Invoices whose total Moneybird computes otherwise than their lines give (id → VAT off by).
        self.total_skews: dict[str, Decimal] = {}
        self._pending_skews: list[Decimal] = []
        self.administration_id = self.add_administration(
            administration_name, administration_id=administration_id
        )

    # -- switches ---------------------------------------------------------------------------

    def fail_next(self, route: str, *, kind: FaultKind, status: int = 500, times: int = 1) -> None:
        """Make the next `times` requests on `route` ('POST /sales_invoices', '*', ...) fail as `kind`."""
        if kind not in ("status", "timeout", "lost"):
            raise ValueError(f"unknown fault kind {kind!r}")
        with self.lock:
            self.faults.append(Fault(route=normalise_route(route), kind=kind, status=status, times=times))

    def skew_next_totals(self, amount: Decimal | str, *, times: int = 1) -> None:
        """Give the next `times` invoices created (sales or external) a VAT total `amount` off
        what their lines give, as a Moneybird rounding rule nobody predicted would."""
        with self.lock:
            self._pending_skews += [Decimal(amount)] * times

    def take_total_skew(self, document_id: str) -> None:
        with self.lock:
            if self._pending_skews:
                self.total_skews[document_id] = self._pending_skews.pop(0)

    def take_fault(self, method: str, template: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if _route_matches(fault.route, method, template):
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                    return fault
        return None

    def admit(self) -> float | None:
        """Sliding-window log over all requests of the token; the epoch when a slot frees, if refused."""
        if self.rate_limit is None:
            return None
        limit, window = self.rate_limit
        now = self.clock.now()
        with self.lock:
            while self._window and self._window[0] <= now - window:
                self._window.popleft()
            if len(self._window) >= limit:
                self.count_429 += 1
                return float(math.ceil(self._window[0] + window))
            self._window.append(now)
        return None

    # -- introspection ----------------------------------------------------------------------

    def calls(self, route: str | None = None) -> int:
        """How many requests reached the fake, optionally only those on `route` (any status)."""
        if route is None:
            return len(self.requests)
        wanted = normalise_route(route)
        return sum(
            1
            for r in self.requests
            if (r.route and _route_matches(wanted, r.method, r.route.split(" ", 1)[1]))
            or wanted == f"{r.method} {r.path}"
        )

    def mark_answered(self, recorded: RecordedRequest) -> None:
        """`recorded`'s answer has been sent: its `answered` is now (unless the log was reset meanwhile)."""
        with self.lock:
            for position in range(len(self.requests) - 1, -1, -1):
                if self.requests[position] is recorded:
                    self.requests[position] = replace(recorded, answered=self.clock.now())
                    return

    def reset_requests(self) -> None:
        with self.lock:
            self.requests.clear()
            self.count_429 = 0

    def administration(self, administration_id: str | None = None) -> SandboxAdministration:
        return self.administrations[administration_id or self.administration_id]

    def tax_rate_id(
        self,
        percentage: int | str | Decimal,
        *,
        tax_rate_type: str = "sales_invoice",
        country: str | None = None,
        name_contains: str | None = None,
        administration_id: str | None = None,
    ) -> str:
        """The id of a seeded tax rate, for tests: e.g. `tax_rate_id(21)`, `tax_rate_id(19, country='DE')`."""
        for rate in self.administration(administration_id).tax_rates.values():
            r = rate.record
            if (
                rate.percentage == Decimal(percentage)
                and r["tax_rate_type"] == tax_rate_type
                and r["country"] == country
                and (name_contains is None or name_contains.lower() in r["name"].lower())
            ):
                return str(r["id"])
        raise KeyError(f"no {tax_rate_type} tax rate of {percentage}% (country {country})")

    def ledger_account_id(self, name: str, *, administration_id: str | None = None) -> str:
        for account in self.administration(administration_id).ledger_accounts.values():
            if account["name"] == name:
                return str(account["id"])
        raise KeyError(f"no ledger account named {name!r}")

    # -- seeding ----------------------------------------------------------------------------

    def add_administration(self, name: str, *, administration_id: str | None = None) -> str:
        adm = seed_administration(self, name=name, administration_id=administration_id or self.ids.next())
        self.administrations[adm.id] = adm
        return adm.id

    def seed_contact(self, *, administration_id: str | None = None, **fields: Any) -> Record:
        """A contact 'made by hand' in Moneybird: validated like the API, customer_id auto-assigned."""
        with self.lock:
            return create_contact_record(self, self.administration(administration_id), dict(fields))

    def archive_contact(self, contact_id: str) -> Record:
        """What a bookkeeper's "Archiveren" does: the contact leaves searches, keeps its invoices and
        its customer_id (which a new contact then cannot take)."""
        with self.lock:
            contact = self.contacts[contact_id]
            contact["archived"] = True
            self.touch(contact, "contact_archived")
            return contact

    def delete_contact(self, contact_id: str) -> None:
        """A contact deleted in Moneybird; like the API, only one no invoice uses."""
        with self.lock:
            in_use = any(
                invoice.get("contact_id") == contact_id
                for store in (self.sales_invoices, self.external_sales_invoices)
                for invoice in store.values()
            )
            if in_use:
                raise ValueError(f"contact {contact_id} is in use by an invoice and cannot be deleted")
            del self.contacts[contact_id]

    def register_payment_from_bank(
        self, invoice_id: str, amount: Decimal | str, payment_date: date | None = None
    ) -> Record:
        """A bank transfer matched to the invoice, as Moneybird's bank reconciliation records it: the
        payment `POST …/payments` would make (same checks: no drafts, never more than is open), with
        its events (`payment_registered`, and `…_state_changed_to_paid` when it settles the rest)."""
        with self.lock:
            if invoice_id in self.sales_invoices:
                doc, kind = self.sales_invoices[invoice_id], "SalesInvoice"
            else:
                doc, kind = self.external_sales_invoices[invoice_id], "ExternalSalesInvoice"
            when = payment_date or self.clock.today()
            body = {"payment": {"payment_date": when.isoformat(), "price": str(amount)}}
            adm = self.administration(doc["administration_id"])
            call = Call(sandbox=self, adm=adm, params={"id": invoice_id}, query={}, body=body, url="")
            return register_payment(call, doc, invoice_type=kind)

    def lock_period(self, until: date | None, *, administration_id: str | None = None) -> None:
        """The bookkeeper locks the books up to `until` (a filed VAT return): Moneybird then refuses
        to delete or edit an invoice dated in it."""
        with self.lock:
            record = self.administration(administration_id).record
            record["period_locked_until"] = until.isoformat() if until else None

    def event(self, administration_id: str, action: str, data: Record | None = None) -> Record:
        stamp = self.clock.timestamp()
        return {
            "administration_id": administration_id,
            "user_id": self.user_id,
            "action": action,
            "link_entity_id": None,
            "link_entity_type": None,
            "data": data or {},
            "created_at": stamp,
            "updated_at": stamp,
        }

    def touch(self, record: Record, *actions: str, data: Record | None = None) -> None:
        """Bump version/updated_at and append one event per action."""
        record["version"] = self.clock.version()
        record["updated_at"] = self.clock.timestamp()
        for action in actions:
            record.setdefault("events", []).append(self.event(record["administration_id"], action, data))
            queue_pushes(self, record, action)


def normalise_route(route: str) -> str:
    """'post /sales_invoices/{sid}/payments.json' -> 'POST /sales_invoices/{}/payments'."""
    route = route.strip()
    if route == "*":
        return route
    method, _, path = route.partition(" ")
    path = path.strip()
    if path != "*":
        path = "/" + path.strip("/").removesuffix(".json")
        path = "/".join("{}" if part.startswith("{") else part for part in path.split("/"))
    return f"{method.upper()} {path}"


def _route_matches(wanted: str, method: str, template: str) -> bool:
    if wanted == "*":
        return True
    wanted_method, _, wanted_path = wanted.partition(" ")
    if wanted_method != method:
        return False
    return wanted_path == "*" or wanted_path == normalise_route(f"{method} {template}").split(" ", 1)[1]
