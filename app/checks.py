"""What `woobird check` and the set-up wizard's last step look at: the live shop, Moneybird, Redis
and the ledger, each found fine or wrong with the fix in plain words.

Also the shop's VAT rates and the Moneybird tax rate the worker would book each one with, which
`woobird setup` and the wizard's bookkeeping step propose.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from urllib.parse import urlsplit

from arq.connections import ArqRedis
from sqlalchemy import text

from app.address_guard import AllowedAddresses
from app.clients import moneybird_client, shop_client
from app.connections import connection_path, sqlite_connections_problem
from app.constants import ENVIRONMENT_CONNECTION_ID, MONEYBIRD_WEBHOOK_PATH, QUEUE_NAME, WEBHOOK_PATH
from app.db import create_engine, session_factory
from app.delivery_lag import ADVICE, recent_lags
from app.i18n import N_, Message
from app.invoicing.reference import AdministrationReference, TaxRate
from app.invoicing.vat import EXPORT, REVERSE_CHARGE, RateBook, VatRefusal, describe_key, normalise_tax_key
from app.moneybird.errors import MoneybirdAuthError, MoneybirdConfigurationError, MoneybirdError
from app.moneybird.reference import load_reference
from app.payment_webhook import payment_pushes_wanted
from app.queue import connect
from app.settings import Settings
from app.woocommerce.client import WooCommerceClient
from app.woocommerce.errors import AuthProblem, WooCommerceAuthError, WooCommerceError
from app.woocommerce.webhook_setup import WEBHOOK_TOPIC, our_webhooks

# The subjects that are not a setting's name (those read the same in every language).
WEBHOOK = N_("webhook")
DELIVERY = N_("webhook delivery")
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# The setting `check` names for each way the shop refuses the key (the message says the fix).
AUTH_PROBLEM_SETTING: dict[AuthProblem, str] = {
    "not_authenticated": N_("WooCommerce authentication"),
    "unknown_key": "WOOCOMMERCE_CONSUMER_KEY",
    "wrong_secret": "WOOCOMMERCE_CONSUMER_SECRET",
    "clock": N_("clock"),
    "no_rights": "WOOCOMMERCE_CONSUMER_KEY",
}


@dataclass(frozen=True)
class CheckResult:
    """One thing `check` looked at: fine, or wrong with the fix in plain words.

    The subject is a setting's name or a message id (N_), the message a Message: both are shown in
    the reader's language (app.i18n.shown) and compared as their English."""

    subject: str
    ok: bool
    message: str
    warning: bool = False


class Checker:
    def __init__(
        self,
        settings: Settings,
        *,
        shop_allowed: AllowedAddresses | None = None,
        connection_id: int = ENVIRONMENT_CONNECTION_ID,
        connection_name: str | None = None,
    ) -> None:
        self.settings = settings
        self.shop_allowed = shop_allowed  # the wizard's: the shop reached through the address guard
        self.connection_id = connection_id
        # The connection's own webhook URLs (/webhooks/…/<name> for another than connection 1).
        self.webhook_path = connection_path(WEBHOOK_PATH, connection_id=connection_id, name=connection_name)
        self.moneybird_path = connection_path(
            MONEYBIRD_WEBHOOK_PATH, connection_id=connection_id, name=connection_name
        )
        self.findings: list[CheckResult] = []

    def good(self, subject: str, message: str) -> None:
        self.findings.append(CheckResult(subject, True, message))

    def bad(self, subject: str, message: str) -> None:
        self.findings.append(CheckResult(subject, False, message))

    def note(self, subject: str, message: str) -> None:
        self.findings.append(CheckResult(subject, True, message, warning=True))

    async def run(self) -> list[CheckResult]:
        problems = self.settings.problems()
        for name, why in problems.items():
            self.bad(name, why)
        shop_ready = not {"WOOCOMMERCE_URL", "WOOCOMMERCE_CONSUMER_KEY", "WOOCOMMERCE_CONSUMER_SECRET"} & set(
            problems
        )
        moneybird_ready = not {"MONEYBIRD_API_TOKEN", "MONEYBIRD_ADMINISTRATION_ID"} & set(problems)
        shop_rates: list[tuple[str, Decimal, str]] | None = None
        if shop_ready:
            shop_rates = await self.check_shop()
        reference = await self.check_moneybird() if moneybird_ready else None
        if reference is not None and shop_rates is not None:
            self.check_tax_rates(shop_rates, reference)
        await self.check_services()
        return self.findings

    async def check_shop(self) -> list[tuple[str, Decimal, str]] | None:
        url = self.settings.woocommerce_url
        if urlsplit(url).scheme != "https":
            self.note(
                "WOOCOMMERCE_URL",
                Message(
                    "%(url)s uses plain HTTP: woobird signs every request (OAuth 1.0a), so the secret never "
                    "travels, but orders and customer data do, unencrypted — fine on this machine or a LAN, "
                    "use the https:// address for a shop on the internet",
                    url=url,
                ),
            )
        async with shop_client(self.settings, allowed=self.shop_allowed) as shop:
            try:
                await shop.get_json("/system_status")
                self.good("WooCommerce", Message("%(url)s answers and accepts the consumer key", url=url))
                rates = await shop_tax_rates(shop)
                await self.check_webhook(shop)
                if self.settings.open_invoice_payment_methods:
                    await self.check_payment_methods(shop)
            except WooCommerceAuthError as exc:
                self.bad(
                    AUTH_PROBLEM_SETTING[exc.problem],
                    Message("the shop refused woobird: %(error)s", error=exc),
                )
                return None
            except WooCommerceError as exc:
                self.bad(
                    "WOOCOMMERCE_URL",
                    Message("could not talk to the shop at %(url)s: %(error)s", url=url, error=exc),
                )
                return None
        return rates

    async def check_webhook(self, shop: WooCommerceClient) -> None:
        hooks = [hook for hook in await shop.list_webhooks() if hook.topic == WEBHOOK_TOPIC]
        public_url = self.settings.public_url
        wanted = f"{public_url.rstrip('/')}{self.webhook_path}" if public_url else None
        ours = our_webhooks(hooks, wanted, path=self.webhook_path)
        if not ours:
            where = wanted or f"…{self.webhook_path}"
            self.bad(
                WEBHOOK,
                Message(
                    "the shop has no %(topic)s webhook delivering to %(where)s: "
                    "run `woobird webhook install`",
                    topic=WEBHOOK_TOPIC,
                    where=where,
                )
                if wanted
                else Message(
                    "the shop has no %(topic)s webhook delivering to %(where)s: "
                    "run `woobird webhook install` after setting PUBLIC_URL",
                    topic=WEBHOOK_TOPIC,
                    where=where,
                ),
            )
            return
        hook = ours[0]
        if hook.status != "active":
            self.bad(
                WEBHOOK,
                Message(
                    "webhook #%(webhook)s is %(status)s (WooCommerce disables a webhook after repeated "
                    "failed deliveries): run `woobird webhook install` to switch it back on; reconciliation "
                    "has been covering for it",
                    webhook=hook.id,
                    status=hook.status,
                ),
            )
        elif wanted and hook.delivery_url != wanted:
            self.bad(
                WEBHOOK,
                Message(
                    "webhook #%(webhook)s delivers to %(url)s, but PUBLIC_URL says %(wanted)s: run "
                    "`woobird webhook install` to point it at this woobird",
                    webhook=hook.id,
                    url=hook.delivery_url,
                    wanted=wanted,
                ),
            )
        else:
            self.good(
                WEBHOOK,
                Message(
                    "#%(webhook)s %(status)s, delivering %(topic)s to %(url)s",
                    webhook=hook.id,
                    status=hook.status,
                    topic=WEBHOOK_TOPIC,
                    url=hook.delivery_url,
                ),
            )
        if not wanted:
            self.note(
                "PUBLIC_URL",
                Message("not set, so the webhook's address could not be compared with woobird's"),
            )

    async def check_payment_methods(self, shop: WooCommerceClient) -> None:
        """Each OPEN_INVOICE_PAYMENT_METHODS id against the shop's gateways: a typo books nothing."""
        gateways = {gateway.id: gateway for gateway in await shop.list_payment_gateways()}
        for method in self.settings.open_invoice_payment_methods:
            gateway = gateways.get(method)
            if gateway is None:
                self.bad(
                    "OPEN_INVOICE_PAYMENT_METHODS",
                    Message(
                        "the shop has no payment method %(method)r, so its orders never get an open invoice; "
                        "the shop's payment methods are: %(known)s",
                        method=method,
                        known=", ".join(sorted(gateways)) or Message("none"),
                    ),
                )
            elif not gateway.enabled:
                self.note(
                    "OPEN_INVOICE_PAYMENT_METHODS",
                    Message(
                        "%(method)s (%(title)s) is switched off in the shop: no new orders will use it",
                        method=method,
                        title=gateway.title,
                    ),
                )
            else:
                self.good(
                    "OPEN_INVOICE_PAYMENT_METHODS",
                    Message(
                        "%(method)s (%(title)s) orders get an open invoice",
                        method=method,
                        title=gateway.title,
                    ),
                )

    async def check_moneybird(self) -> AdministrationReference | None:
        try:
            async with moneybird_client(self.settings) as moneybird:
                reference = await load_reference(moneybird)
        except MoneybirdAuthError as exc:
            self.bad(
                "MONEYBIRD_API_TOKEN",
                Message(
                    "Moneybird refused the token (%(error)s). Make a new personal API token under Moneybird "
                    "→ Settings → External and AI integrations and put it in MONEYBIRD_API_TOKEN.",
                    error=exc,
                ),
            )
            return None
        except MoneybirdConfigurationError as exc:
            self.bad(
                "MONEYBIRD_ADMINISTRATION_ID",
                Message("%(error)s. `woobird setup` lists the administrations.", error=exc),
            )
            return None
        except MoneybirdError as exc:
            self.bad("Moneybird", Message("could not talk to Moneybird: %(error)s", error=exc))
            return None
        name = reference.extra.get("administration_name", reference.administration_id)
        self.good(
            "Moneybird",
            Message(
                "token accepted, administration %(administration)s (%(name)s)",
                administration=reference.administration_id,
                name=name,
            ),
        )
        self.check_choices(reference)
        if payment_pushes_wanted(self.settings):
            await self.check_payment_webhook()
        return reference

    async def check_payment_webhook(self) -> None:
        """Open invoices: Moneybird's pushes need the `settings` scope and woobird's webhook registered."""
        wanted = (self.settings.public_url or "").rstrip("/") + self.moneybird_path
        try:
            async with moneybird_client(self.settings) as moneybird:
                hooks = await moneybird.list_webhooks()
        except MoneybirdAuthError as exc:
            self.bad(
                "MONEYBIRD_API_TOKEN",
                Message(
                    "Moneybird refused to show its webhooks (%(error)s): open invoices need a token with the "
                    "`settings` scope next to `sales_invoices` (Moneybird → Settings → External and AI "
                    "integrations), then `woobird webhook install`",
                    error=exc,
                ),
            )
            return
        except MoneybirdError as exc:
            self.bad("Moneybird", Message("could not read Moneybird's webhooks: %(error)s", error=exc))
            return
        if not any(hook.url == wanted and hook.deactivated_at is None for hook in hooks):
            self.note(
                N_("Moneybird webhook"),
                Message(
                    "no active webhook delivers to %(url)s: payments of open invoices are found by each "
                    "reconciliation pass only; run `woobird webhook install` to hear them at once",
                    url=wanted,
                ),
            )
        elif self.settings.moneybird_webhook_secret is None:
            self.bad(
                "MONEYBIRD_WEBHOOK_SECRET",
                Message(
                    "woobird's webhook is registered in Moneybird but its secret is not set, so every push "
                    "is refused: run `woobird webhook install` again (it replaces the webhook, keeps the "
                    "secret)"
                ),
            )
        else:
            self.good(N_("Moneybird webhook"), Message("Moneybird pushes payments to %(url)s", url=wanted))

    def check_choices(self, reference: AdministrationReference) -> None:
        s = self.settings
        accounts = {a.id for a in reference.revenue_accounts()}
        for name, value in (
            ("MONEYBIRD_LEDGER_ACCOUNT_ID", s.moneybird_ledger_account_id),
            ("MONEYBIRD_SHIPPING_LEDGER_ACCOUNT_ID", s.moneybird_shipping_ledger_account_id),
        ):
            if value and value not in accounts:
                self.bad(
                    name,
                    Message(
                        "%(value)s is not an active revenue ledger account for sales invoices: "
                        "`woobird setup`",
                        value=value,
                    ),
                )
        workflows = {w.id for w in reference.workflows if w.type == "InvoiceWorkflow" and w.active}
        if s.moneybird_workflow_id and s.moneybird_workflow_id not in workflows:
            self.bad(
                "MONEYBIRD_WORKFLOW_ID",
                Message("%(value)s is not an active invoice workflow", value=s.moneybird_workflow_id),
            )
        styles = {d.id for d in reference.document_styles}
        if s.moneybird_document_style_id and s.moneybird_document_style_id not in styles:
            self.bad(
                "MONEYBIRD_DOCUMENT_STYLE_ID",
                Message("%(value)s is not a document style", value=s.moneybird_document_style_id),
            )

    def check_tax_rates(
        self, shop_rates: list[tuple[str, Decimal, str]], reference: AdministrationReference
    ) -> None:
        """Every VAT rate the shop charges, and both zero-rate treatments, must find one Moneybird rate."""
        book = RateBook(reference=reference, overrides=self.settings.moneybird_tax_rates)
        keys: list[tuple[str, str]] = [
            (key, Message("the shop's %(rate)s (%(pct)s %%)", rate=label, pct=percentage_text(percentage)))
            for key, percentage, label in shop_rates
        ]
        keys += [(key, describe_key(key)) for key in (REVERSE_CHARGE, EXPORT) if key in book.overrides]
        wrong = 0
        for key, what in keys:
            try:
                book.rate(key)
            except VatRefusal as refusal:
                wrong += 1
                self.bad(
                    "MONEYBIRD_TAX_RATES",
                    Message(
                        "%(what)s: %(reason)s. To fix: %(fix)s",
                        what=what,
                        reason=refusal.reason,
                        fix=refusal.fix,
                    ),
                )
        if keys and not wrong:
            rates = ", ".join(f"{key} → {book.rate(key).name}" for key, _ in keys)
            self.good(
                N_("tax rates"),
                Message("every VAT rate of the shop has its Moneybird tax rate (%(rates)s)", rates=rates),
            )

    async def check_delivery_lag(self, redis: ArqRedis) -> None:
        try:
            lags = await recent_lags(redis, connection_id=self.connection_id)
        except Exception as exc:  # a statistic: say so, it is not the reason orders would not book
            self.note(
                DELIVERY,
                Message(
                    "the recent deliveries' lags could not be read (%(error)s)", error=type(exc).__name__
                ),
            )
            return
        if lags.slow:
            self.note(
                DELIVERY,
                Message(
                    "the shop's webhooks arrive late (%(lag)s): %(advice)s",
                    lag=lags.describe(),
                    advice=Message(ADVICE),
                ),
            )
        else:
            self.good(DELIVERY, lags.describe())

    async def check_services(self) -> None:
        redis = connect(self.settings.redis_url, tls_verify=self.settings.redis_tls_verify)
        try:
            await redis.ping()
            depth = await redis.zcard(QUEUE_NAME)
            self.good("Redis", Message("answers; %(depth)s job(s) queued", depth=depth))
        except Exception as exc:
            self.bad(
                "REDIS_URL",
                Message(
                    "Redis does not answer (%(error)s); start it or fix REDIS_URL",
                    error=f"{type(exc).__name__}: {exc}",
                ),
            )
        else:
            await self.check_delivery_lag(redis)
        finally:
            await redis.aclose()
        engine = create_engine(self.settings.database_url)
        try:
            async with engine.connect() as connection:
                await connection.execute(text("SELECT count(*) FROM orders"))
            async with session_factory(engine)() as session:
                too_many = await sqlite_connections_problem(session, base=self.settings)
            self.good(N_("database"), Message("reachable and migrated"))
            if too_many is not None:
                self.bad("DATABASE_URL", too_many)
        except Exception as exc:
            self.bad(
                "DATABASE_URL",
                Message(
                    "the ledger is not usable (%(error)s); run `woobird migrate`", error=type(exc).__name__
                ),
            )
        finally:
            await engine.dispose()


async def shop_tax_rates(shop: WooCommerceClient) -> list[tuple[str, Decimal, str]]:
    """The shop's VAT rates as (mapping key, percentage, label), one per distinct key."""
    found: dict[str, tuple[str, Decimal, str]] = {}
    base_country = await _base_country(shop)
    for raw in await shop.get_json("/taxes", per_page=100):
        percentage = Decimal(str(raw.get("rate") or "0"))
        country = str(raw.get("country") or "").upper()
        foreign = bool(country) and country != base_country
        key = normalise_tax_key(f"{country}:{percentage}" if foreign else str(percentage))
        found.setdefault(key, (key, percentage, str(raw.get("name") or key)))
    return list(found.values())


async def _base_country(shop: WooCommerceClient) -> str:
    try:
        setting = await shop.get_json("/settings/general/woocommerce_default_country")
    except WooCommerceError:
        return "NL"
    return str(setting.get("value") or "NL").split(":")[0].upper()


def propose_tax_rate(key: str, reference: AdministrationReference) -> TaxRate | None:
    """The one active sales tax rate that books a shop rate (or treatment), found as the worker would."""
    try:
        return RateBook(reference=reference).rate(key)
    except VatRefusal:
        return None


def percentage_text(value: Decimal) -> str:
    return format(value.normalize(), "f")
