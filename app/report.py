"""The month report: what the shop sold against what Moneybird booked, per VAT rate, every difference named.

It is read from the ledger alone (no API calls): for each booked order woobird wrote down the
shop's total and VAT per Moneybird tax rate next to the invoice's, at the moment it was booked;
what the last verification (app.booking.verify) found changed in Moneybird since is listed too.
A month is a calendar month in the Netherlands (Europe/Amsterdam), the period of a VAT return;
an order belongs to the month it was paid in.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.table import Table
from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.connection_scope import connection_of_sessions
from app.connections import connection_label
from app.i18n import N_, WORDS, Language, Message, money_text, shown, translate
from app.schema import Finding, FindingKind, FindingState, OrderRecord, OrderState, RefundRecord, RefundState

REPORT_TIMEZONE = ZoneInfo("Europe/Amsterdam")
ZERO = Decimal("0.00")
_MONTH = re.compile(r"(\d{4})-(\d{2})")
_WAITING = {OrderState.QUEUED.value, OrderState.BOOKING.value}
# What verification finds changed in Moneybird after booking, as the report's "what" column says it.
DRIFT = {
    FindingKind.INVOICE_DELETED.value: N_("deleted in Moneybird"),
    FindingKind.INVOICE_CHANGED.value: N_("changed in Moneybird"),
    FindingKind.INVOICE_REOPENED.value: N_("reopened in Moneybird"),
}
# The other kinds of difference, as the "what" column says them (message ids: shown translated).
WHAT_TOTAL = N_("total")
WHAT_VAT = N_("vat")
WHAT_NOT_BOOKED = N_("not booked")
WHAT_REFUND = N_("refund")


@dataclass(frozen=True, slots=True)
class RateTotals:
    """One Moneybird tax rate over the booked orders of the month."""

    tax_rate_id: str
    label: str
    shop_vat: Decimal
    moneybird_vat: Decimal
    orders: int

    @property
    def difference(self) -> Decimal:
        return self.moneybird_vat - self.shop_vat


@dataclass(frozen=True, slots=True)
class Difference:
    """One order (or refund) whose books differ from the shop, and how."""

    order_id: int
    order_number: str
    what: str  # WHAT_VAT, WHAT_TOTAL, WHAT_NOT_BOOKED, WHAT_REFUND or one of DRIFT's
    shop: Decimal | None
    moneybird: Decimal | None
    note: str  # a Message, or the words of whoever refused (kept as they said it)
    tax_rate_id: str | None = None
    invoice_number: str | None = None

    @property
    def difference(self) -> Decimal | None:
        if self.shop is None or self.moneybird is None:
            return None
        return self.moneybird - self.shop


@dataclass(frozen=True, slots=True)
class MonthRefunds:
    count: int
    booked: int
    not_booked: int
    refunded: Decimal
    credited: Decimal


@dataclass
class MonthReport:
    month: str
    start: datetime
    end: datetime
    rates: list[RateTotals] = field(default_factory=list)
    shop_total: Decimal = ZERO  # what the customers of booked orders paid
    moneybird_total: Decimal = ZERO  # the invoices booked for them
    unbooked_total: Decimal = ZERO  # shop totals of orders paid this month and not (yet) booked
    counts: dict[str, int] = field(default_factory=dict)
    differences: list[Difference] = field(default_factory=list)
    refunds: MonthRefunds | None = None
    # Whose shop: the connection's name (None: the only one, the environment's).
    connection: str | None = None

    @property
    def booked(self) -> int:
        return self.counts.get(OrderState.BOOKED.value, 0)

    @property
    def awaiting_payment(self) -> int:
        """Open invoices: booked (their VAT counts), the customer has not paid yet."""
        return self.counts.get(OrderState.AWAITING_PAYMENT.value, 0)

    @property
    def failed(self) -> int:
        return self.counts.get(OrderState.FAILED.value, 0)

    @property
    def waiting(self) -> int:
        return sum(self.counts.get(state, 0) for state in _WAITING)

    @property
    def before_since(self) -> int:
        return self.counts.get(OrderState.BEFORE_SINCE.value, 0)

    @property
    def in_balance(self) -> bool:
        return not self.differences


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """`2026-11` → its first moment and the next month's first moment, in UTC."""
    match = _MONTH.fullmatch(month.strip())
    if not match or not 1 <= int(match[2]) <= 12:
        raise ValueError(f"expected a month as YYYY-MM, e.g. 2026-11, got {month!r}")
    year, number = int(match[1]), int(match[2])
    start = datetime(year, number, 1, tzinfo=REPORT_TIMEZONE)
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=REPORT_TIMEZONE)
    return start.astimezone(UTC), end.astimezone(UTC)


async def monthly_report(
    sessions: async_sessionmaker[AsyncSession],
    *,
    month: str,
    tax_rates: dict[str, str] | None = None,
    rate_names: Mapping[str, str] | None = None,
) -> MonthReport:
    """Compare the month's shop totals with its booked invoices; `tax_rates` is MONEYBIRD_TAX_RATES."""
    start, end = month_bounds(month)
    async with sessions() as session:
        orders = await _orders_in(session, start=start, end=end)
        refunds = await _refunds_in(session, start=start, end=end)
        drift = await _drift_of(session, [order.order_id for order in orders])
        connection = await connection_label(session, connection_of_sessions(sessions))
    report = MonthReport(month=month.strip(), start=start, end=end, connection=connection)
    labels = {rate_id: f"{key}%" if key[:1].isdigit() else key for key, rate_id in (tax_rates or {}).items()}
    # Moneybird's own names ("21% btw") when the reference data is at hand read best of all.
    labels.update(rate_names or {})
    _add_orders(report, orders, labels=labels)
    if refunds:
        _add_refunds(report, refunds, numbers={order.order_id: order.order_number for order in orders})
    _add_drift(report, drift, numbers={order.order_id: order.order_number for order in orders})
    return report


async def _orders_in(session: AsyncSession, *, start: datetime, end: datetime) -> Sequence[OrderRecord]:
    paid_in = and_(OrderRecord.date_paid >= start, OrderRecord.date_paid < end)
    created_in = and_(
        OrderRecord.date_paid.is_(None), OrderRecord.created_at >= start, OrderRecord.created_at < end
    )
    query = select(OrderRecord).where(or_(paid_in, created_in)).order_by(OrderRecord.order_id)
    return (await session.execute(query)).scalars().all()


async def _refunds_in(session: AsyncSession, *, start: datetime, end: datetime) -> Sequence[RefundRecord]:
    query = (
        select(RefundRecord)
        .where(RefundRecord.created_at >= start, RefundRecord.created_at < end)
        .order_by(RefundRecord.refund_id)
    )
    return (await session.execute(query)).scalars().all()


async def _drift_of(session: AsyncSession, order_ids: Sequence[int]) -> Sequence[Finding]:
    if not order_ids:
        return []
    query = select(Finding).where(
        Finding.kind.in_(list(DRIFT)),
        Finding.state == FindingState.OPEN.value,
        Finding.order_id.in_(list(order_ids)),
    )
    return (await session.execute(query.order_by(Finding.order_id, Finding.id))).scalars().all()


def _add_drift(report: MonthReport, findings: Sequence[Finding], *, numbers: dict[int, str]) -> None:
    for finding in findings:
        order_id = finding.order_id or 0
        report.differences.append(
            Difference(
                order_id=order_id,
                order_number=numbers.get(order_id, str(order_id)),
                what=DRIFT[finding.kind],
                shop=None,
                moneybird=None,
                note=finding.message,
            )
        )


def _add_orders(report: MonthReport, orders: Sequence[OrderRecord], *, labels: dict[str, str]) -> None:
    counts: dict[str, int] = defaultdict(int)
    shop_vat: dict[str, Decimal] = defaultdict(lambda: ZERO)
    booked_vat: dict[str, Decimal] = defaultdict(lambda: ZERO)
    rate_orders: dict[str, int] = defaultdict(int)
    for order in orders:
        counts[order.state] += 1
        if order.state in (OrderState.BOOKED, OrderState.AWAITING_PAYMENT):
            _add_booked(report, order, shop_vat=shop_vat, booked_vat=booked_vat, rate_orders=rate_orders)
        elif order.state == OrderState.FAILED or order.state in _WAITING:
            _add_unbooked(report, order)
    report.counts = dict(counts)
    report.rates = [
        RateTotals(
            tax_rate_id=rate_id,
            label=labels.get(rate_id, rate_id),
            shop_vat=shop_vat[rate_id],
            moneybird_vat=booked_vat[rate_id],
            orders=rate_orders[rate_id],
        )
        for rate_id in sorted(rate_orders)
    ]


def _add_booked(
    report: MonthReport,
    order: OrderRecord,
    *,
    shop_vat: dict[str, Decimal],
    booked_vat: dict[str, Decimal],
    rate_orders: dict[str, int],
) -> None:
    shop, booked = order.order_total, order.invoice_total
    report.shop_total += shop or ZERO
    report.moneybird_total += booked or ZERO
    if shop is None or booked is None or shop != booked:
        report.differences.append(
            Difference(
                order_id=order.order_id,
                order_number=order.order_number,
                what=WHAT_TOTAL,
                shop=shop,
                moneybird=booked,
                note=Message("invoice total differs from what the customer paid"),
                invoice_number=order.invoice_number,
            )
        )
    for row in order.vat_differences():
        rate_id = str(row["tax_rate_id"])
        shop_amount, booked_amount = Decimal(row["shop"]), Decimal(row["moneybird"])
        shop_vat[rate_id] += shop_amount
        booked_vat[rate_id] += booked_amount
        rate_orders[rate_id] += 1
        if shop_amount != booked_amount:
            report.differences.append(
                Difference(
                    order_id=order.order_id,
                    order_number=order.order_number,
                    what=WHAT_VAT,
                    shop=shop_amount,
                    moneybird=booked_amount,
                    note=Message("Moneybird's VAT rounding differs from the shop's"),
                    tax_rate_id=rate_id,
                    invoice_number=order.invoice_number,
                )
            )


def _add_unbooked(report: MonthReport, order: OrderRecord) -> None:
    report.unbooked_total += order.order_total or ZERO
    note: str
    if order.state == OrderState.FAILED:
        note = order.error or Message("failed")
    else:
        note = Message("waiting (%(state)s)", state=Message(WORDS.get(order.state, order.state)))
    report.differences.append(
        Difference(
            order_id=order.order_id,
            order_number=order.order_number,
            what=WHAT_NOT_BOOKED,
            shop=order.order_total,
            moneybird=None,
            note=note,
        )
    )


def _add_refunds(report: MonthReport, refunds: Sequence[RefundRecord], *, numbers: dict[int, str]) -> None:
    booked = [refund for refund in refunds if refund.state == RefundState.BOOKED]
    report.refunds = MonthRefunds(
        count=len(refunds),
        booked=len(booked),
        not_booked=sum(1 for r in refunds if r.state != RefundState.BOOKED),
        refunded=sum((abs(r.amount) for r in refunds), ZERO),
        credited=sum((abs(r.credit_total or ZERO) for r in booked), ZERO),
    )
    for refund in refunds:
        number = numbers.get(refund.order_id, str(refund.order_id))
        if refund.state != RefundState.BOOKED:
            state = Message(WORDS.get(refund.state, refund.state))
            note: Message = (
                Message(
                    "refund %(refund)s not credited (%(state)s): %(error)s",
                    refund=refund.refund_id,
                    state=state,
                    error=refund.error,
                )
                if refund.error
                else Message(
                    "refund %(refund)s not credited (%(state)s)", refund=refund.refund_id, state=state
                )
            )
            credited = None
        elif refund.credit_total is None or abs(refund.credit_total) != abs(refund.amount):
            credit = refund.credit_invoice_number or refund.credit_invoice_id
            note = Message("credit invoice %(credit)s differs from the refund", credit=credit)
            credited = None if refund.credit_total is None else abs(refund.credit_total)
        else:
            continue
        report.differences.append(
            Difference(
                order_id=refund.order_id,
                order_number=number,
                what=WHAT_REFUND,
                shop=abs(refund.amount),
                moneybird=credited,
                note=note,
                invoice_number=refund.credit_invoice_number,
            )
        )


# ── rendering ────────────────────────────────────────────────────────────────────────────────


def _money(value: Decimal | None, language: Language) -> str:
    return "—" if value is None else money_text(value, language)


def render_report(report: MonthReport, console: Console, *, language: Language) -> None:
    """Print the report for `woobird report --month YYYY-MM`, in `language` (the LANGUAGE setting)."""

    def _(message: str, /, **params: object) -> str:
        return translate(language, message, **params)

    console.print(
        _(
            "[bold]Month report %(month)s of connection %(connection)s[/bold] "
            "(paid in Europe/Amsterdam time)",
            month=report.month,
            connection=report.connection,
        )
        if report.connection
        else _("[bold]Month report %(month)s[/bold] (paid in Europe/Amsterdam time)", month=report.month)
    )
    counts = {
        "booked": report.booked,
        "failed": report.failed,
        "waiting": report.waiting,
        "before": report.before_since,
    }
    console.print(
        _(
            "booked %(booked)s · open invoices awaiting payment %(awaiting)s · failed %(failed)s · "
            "waiting %(waiting)s · before SYNC_SINCE %(before)s",
            awaiting=report.awaiting_payment,
            **counts,
        )
        if report.awaiting_payment
        else _(
            "booked %(booked)s · failed %(failed)s · waiting %(waiting)s · before SYNC_SINCE %(before)s",
            **counts,
        )
    )
    totals = Table(title=_("Totals of booked orders"), show_edge=False)
    for column in ("", _("shop"), "Moneybird", _("difference")):
        totals.add_column(column, justify="right" if column else "left")
    totals.add_row(
        _("incl. VAT"),
        _money(report.shop_total, language),
        _money(report.moneybird_total, language),
        _money(report.moneybird_total - report.shop_total, language),
    )
    console.print(totals)
    rates = Table(title=_("VAT per rate"), show_edge=False)
    for column in (_("rate"), _("orders"), _("shop VAT"), _("Moneybird VAT"), _("difference")):
        rates.add_column(column, justify="right" if rates.columns else "left")
    for rate in report.rates:
        rates.add_row(
            rate.label,
            str(rate.orders),
            _money(rate.shop_vat, language),
            _money(rate.moneybird_vat, language),
            _money(rate.difference, language),
        )
    console.print(rates)
    if report.unbooked_total:
        console.print(
            _(
                "Not booked: %(amount)s paid by customers this month",
                amount=_money(report.unbooked_total, language),
            )
        )
    if report.refunds is not None:
        refunds = report.refunds
        console.print(
            _(
                "Refunds: %(count)s (%(booked)s credited, %(not_booked)s not) — "
                "refunded %(refunded)s, credited %(credited)s",
                count=refunds.count,
                booked=refunds.booked,
                not_booked=refunds.not_booked,
                refunded=_money(refunds.refunded, language),
                credited=_money(refunds.credited, language),
            )
        )
    _render_differences(report, console, language=language)


def _render_differences(report: MonthReport, console: Console, *, language: Language) -> None:
    if report.in_balance:
        console.print(
            "[green]" + translate(language, "No differences: every order is booked to the cent.") + "[/green]"
        )
        return
    table = Table(
        title=translate(language, "Differences (%(count)s)", count=len(report.differences)), show_edge=False
    )
    columns = ("order", "what", "rate", "shop", "Moneybird", "difference", "note")
    headers = (N_("order"), N_("what"), N_("rate"), N_("shop"), "Moneybird", N_("difference"), N_("note"))
    for column, header in zip(columns, headers, strict=True):
        table.add_column(
            shown(header, language),
            justify="right" if column in {"shop", "Moneybird", "difference"} else "left",
        )
    for item in report.differences:
        table.add_row(
            item.order_number or str(item.order_id),
            shown(item.what, language),
            item.tax_rate_id or "",
            _money(item.shop, language),
            _money(item.moneybird, language),
            _money(item.difference, language),
            shown(item.note, language),
        )
    console.print(table)
