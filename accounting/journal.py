"""The journal builder: an order snapshot in, balanced journal lines out. Pure: no I/O, no ORM, no clock.

Rules (docs/accounting.md explains them for accountants):

* Amounts come from BigCommerce as sent; tax is never recomputed. Each component is rounded to the currency's minor
  unit (half-up), then the receivable line takes the order total and any difference between the total and the sum
  of the components goes to an explicit rounding line on the tenant's difference account. Above the tenant's
  threshold the entry is flagged for review, never silently absorbed.
* Debit receivable/clearing for the order total; credit product revenue, shipping, handling, gift wrapping, fees
  and sales tax; debit discounts (or net them against revenue when the channel has no discount account); debit
  cost of goods and credit inventory from the products' cost prices.
* A component that comes out negative is moved to the other side, so a normal entry never shows negative amounts.
  A storno entry (refund, reversal) is the same computation multiplied by -1 on the same sides.
* Tenders (docs/payments-and-currencies.md): the receivable is split into one debit per tender — gift certificates
  and store credit on their liability accounts, gateway payments on the clearing account of their tender mapping —
  and what no tender covers stays on the channel's receivable. The tenders come in as data (:class:`Tender`); the
  builder never fetches anything. Gift certificates sold credit the gift-certificate liability, not revenue.
* Currencies: :func:`in_store_currency` converts an order (and its refunds and tenders) to the store's default
  currency at the rate BigCommerce recorded on the order; the builder then rounds per component as always.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from integrations.bigcommerce.types import Order, Refund, Transaction
from integrations.currency import minor_unit

ZERO = Decimal(0)


def quantize(amount: Decimal, currency: str) -> Decimal:
    return amount.quantize(Decimal(1).scaleb(-minor_unit(currency)), rounding=ROUND_HALF_UP)


def threshold_text(threshold: Decimal, currency: str) -> str:
    """A threshold as people read amounts: at the currency's precision ("0.05", not the stored "0.0500"), with more
    decimals only when it has them ("0.005")."""
    at_precision = quantize(threshold, currency)
    return str(at_precision if at_precision == threshold else threshold.normalize())


@dataclass(frozen=True)
class Accounts:
    """The GL accounts of one channel mapping, with the fallbacks already applied by :meth:`from_mapping`."""

    receivable: str
    revenue: str
    shipping: str
    handling: str
    wrapping: str
    fee: str
    tax: str
    discount: str = ""  # blank: discounts reduce revenue
    cogs: str = ""  # blank: no cost-of-goods lines
    inventory: str = ""

    @classmethod
    def from_mapping(cls, mapping) -> Accounts:  # a ChannelMapping or anything with the same attributes
        return cls(
            receivable=mapping.receivable_account,
            revenue=mapping.revenue_account,
            shipping=mapping.shipping_account,
            handling=mapping.handling_account or mapping.shipping_account,
            wrapping=mapping.wrapping_account or mapping.revenue_account,
            fee=mapping.fee_account or mapping.revenue_account,
            tax=mapping.tax_account,
            discount=mapping.discount_account,
            cogs=mapping.cogs_account if mapping.inventory_account else "",
            inventory=mapping.inventory_account if mapping.cogs_account else "",
        )


@dataclass(frozen=True)
class Policy:
    rounding_account: str
    rounding_threshold: Decimal = Decimal("0.05")


@dataclass(frozen=True)
class TenderRule:
    """One tender mapping: payments at ``gateway`` (with ``method``, blank = any) go to a clearing ``account``."""

    gateway: str
    method: str
    account: str
    name: str = ""


@dataclass(frozen=True)
class TenderPolicy:
    """The tenant's tender accounts. Empty (the default) keeps one receivable line per order."""

    rules: tuple[TenderRule, ...] = ()
    # Liabilities. Gift certificates: those sold are credited, those redeemed debited. Store credit: what is used
    # as payment is debited, refunds paid back as store credit credited. Blank: the channel's receivable.
    gift_certificate_account: str = ""
    store_credit_account: str = ""

    def account_for(self, gateway: str, method: str = "") -> str:
        """The clearing account of a tender, or "" when unmapped. An exact (gateway, method) rule wins over the
        gateway's any-method rule; a refund payment (method unknown) takes the gateway's first rule."""
        gateway, method = gateway.lower(), method.lower()
        for rule in self.rules:
            if rule.gateway.lower() == gateway and method and rule.method.lower() == method:
                return rule.account
        for rule in self.rules:
            if rule.gateway.lower() == gateway and not rule.method:
                return rule.account
        if not method:
            return next((r.account for r in self.rules if r.gateway.lower() == gateway), "")
        return ""


@dataclass(frozen=True)
class Tender:
    """One way the order was paid, as data: ``kind`` gift_certificate, store_credit or gateway."""

    kind: str
    amount: Decimal
    gateway: str = ""
    method: str = ""

    @property
    def label(self) -> str:
        if self.kind == "gateway":
            return " ".join(x for x in (self.gateway, self.method.replace("_", " ")) if x) or "payment"
        return self.kind.replace("_", " ")


# Gateways / methods BigCommerce has used for gift certificates and store credit in transactions. Their amounts are
# taken from the order's own gift_certificate_amount / store_credit_amount, so these rows are skipped (no double count).
_NON_GATEWAY = frozenset({"giftcertificate", "gift_certificate", "storecredit", "store_credit"})


def order_tenders(order: Order, transactions: Sequence[Transaction] | None = None) -> tuple[Tender, ...]:
    """The order's tenders: gift certificates and store credit from the order's own amounts, then one tender per
    (gateway, method) from the v3 transactions (none when ``transactions`` is None: not fetched).

    Per (gateway, method) the money collected counts (successful purchase/capture events); a tender with no
    collection yet counts what was authorised (successful authorisations not voided), so an order paid by an
    authorised card books on that card's clearing account already. Test transactions count like real ones (a test
    store's books follow its test orders). Pending, refund, void and settled events add nothing.
    """
    tenders: list[Tender] = []
    if order.gift_certificate_amount:
        tenders.append(Tender("gift_certificate", order.gift_certificate_amount))
    if order.store_credit_amount:
        tenders.append(Tender("store_credit", order.store_credit_amount))
    collected: dict[tuple[str, str], Decimal] = {}
    authorised: dict[tuple[str, str], Decimal] = {}
    voided: set[tuple[str, str]] = set()
    for t in transactions or ():
        if t.gateway.lower() in _NON_GATEWAY or t.method.lower() in _NON_GATEWAY or t.status != "ok":
            continue
        key = (t.gateway, t.method)
        if t.collects_money:
            collected[key] = collected.get(key, ZERO) + t.amount
        elif t.event == "authorization":
            authorised[key] = authorised.get(key, ZERO) + t.amount
        elif t.event == "void":
            voided.add(key)
    for key in list(collected) + [k for k in authorised if k not in collected and k not in voided]:
        amount = collected.get(key, authorised.get(key, ZERO))
        if amount:
            tenders.append(Tender("gateway", amount, gateway=key[0], method=key[1]))
    return tuple(tenders)


def _tender_account(tender: Tender, tenders: TenderPolicy, default: str) -> str:
    if tender.kind == "gift_certificate":
        return tenders.gift_certificate_account or default
    if tender.kind == "store_credit":
        return tenders.store_credit_account or default
    return tenders.account_for(tender.gateway, tender.method) or default


def _receivable_parts(
    total: Decimal,
    tenders: Sequence[Tender],
    policy: TenderPolicy,
    default: str,
    currency: str,
    ref: str,
) -> tuple[list[tuple[str, Decimal, str]], Decimal]:
    """(account, amount, description) debits for the receivable, merged per account, and the amount by which
    the tenders exceed ``total`` (0 when they do not; that excess is the caller's to put on the rounding line).

    What no tender covers stays on the channel's receivable ``default`` (e.g. an unpaid or offline order).
    """
    merged: dict[str, tuple[Decimal, list[str]]] = {}
    covered = ZERO
    for tender in tenders:
        amount = quantize(tender.amount, currency)
        if not amount:
            continue
        covered += amount
        account = _tender_account(tender, policy, default)
        sum_, labels = merged.get(account, (ZERO, []))
        merged[account] = (sum_ + amount, [*labels, tender.label])
    rest = total - covered
    if rest > 0:
        sum_, labels = merged.get(default, (ZERO, []))
        merged[default] = (sum_ + rest, labels)
    parts = []
    for account, (amount, labels) in merged.items():
        suffix = f" ({', '.join(labels)})" if labels and account != default else ""
        parts.append((account, amount, f"{ref} receivable{suffix}"))
    return parts, (-rest if rest < 0 else ZERO)


# --- Currencies ---------------------------------------------------------------------------------------------------

_ORDER_MONEY = tuple(
    f.name for f in dataclasses.fields(Order) if f.type == "Decimal" and f.name != "store_default_rate"
)


def store_currency_rate(order: Order) -> tuple[str, Decimal] | None:
    """(store default currency, rate) when the order was paid in another currency than the store's default,
    else None. The rate is BigCommerce's ``store_default_to_transactional_exchange_rate`` recorded on the order:
    transactional amount = store-default amount x rate."""
    store = order.store_default_currency_code.upper()
    if not store or store == order.currency_code.upper() or order.store_default_rate <= 0:
        return None
    return store, order.store_default_rate


def in_store_currency(order: Order) -> Order:
    """The order with every amount converted to the store's default currency (amount / rate, unrounded: the
    builder rounds each component to the new currency and puts any difference on the rounding line). The same
    order when it is already in the store's currency."""
    found = store_currency_rate(order)
    if found is None:
        return order
    store, rate = found

    def conv(obj, names):
        return dataclasses.replace(obj, **{n: getattr(obj, n) / rate for n in names})

    product_money = [f.name for f in dataclasses.fields(order.products[0])] if order.products else []
    product_money = [n for n in product_money if isinstance(getattr(order.products[0], n), Decimal)]
    fee_money = ("cost_ex_tax", "cost_inc_tax", "cost_tax")
    return dataclasses.replace(
        conv(order, _ORDER_MONEY),
        currency_code=store,
        source_currency_code=order.currency_code,
        products=tuple(conv(p, product_money) for p in order.products),
        fees=tuple(conv(f, fee_money) for f in order.fees),
    )


def refund_in_store_currency(refund: Refund, order: Order) -> Refund:
    """A refund of ``order`` converted like the order (same rate: BigCommerce records one rate per order)."""
    found = store_currency_rate(order)
    if found is None:
        return refund
    _, rate = found
    return dataclasses.replace(
        refund,
        total_amount=refund.total_amount / rate,
        total_tax=refund.total_tax / rate,
        items=tuple(
            dataclasses.replace(
                i, requested_amount=None if i.requested_amount is None else i.requested_amount / rate
            )
            for i in refund.items
        ),
        payments=tuple(dataclasses.replace(p, amount=p.amount / rate) for p in refund.payments),
    )


def tenders_in_store_currency(tenders: Sequence[Tender], order: Order) -> tuple[Tender, ...]:
    found = store_currency_rate(order)
    if found is None:
        return tuple(tenders)
    return tuple(dataclasses.replace(t, amount=t.amount / found[1]) for t in tenders)


@dataclass(frozen=True)
class Line:
    role: str
    account: str
    debit: Decimal
    credit: Decimal
    description: str
    # Analytical dimensions (type, value) sent with the line; filled after the math by accounting.dimensions.
    dimensions: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Journal:
    currency: str
    lines: tuple[Line, ...]
    total: Decimal  # the receivable amount (negative on a storno entry)
    difference: Decimal  # the amount put on the rounding line, signed as a credit (0 when none)
    flagged: bool = False
    flag_reason: str = ""
    warnings: tuple[str, ...] = field(default=())

    @property
    def total_debit(self) -> Decimal:
        return sum((line.debit for line in self.lines), ZERO)

    @property
    def total_credit(self) -> Decimal:
        return sum((line.credit for line in self.lines), ZERO)

    @property
    def is_balanced(self) -> bool:
        return self.total_debit == self.total_credit

    @property
    def is_empty(self) -> bool:
        return not self.lines


def _net(ex_tax: Decimal, inc_tax: Decimal, tax: Decimal, inclusive: bool) -> Decimal:
    # With tax-inclusive pricing BigCommerce's *_inc_tax values are the actual ones (its *_ex_tax are estimates),
    # so net = inc - tax; otherwise *_ex_tax is actual. Either way the tax amount itself is BigCommerce's.
    return inc_tax - tax if inclusive else ex_tax


def build_order_journal(
    order: Order,
    accounts: Accounts,
    policy: Policy,
    *,
    tenders: Sequence[Tender] = (),
    tender_policy: TenderPolicy | None = None,
) -> Journal:
    """The full journal of an order as BigCommerce shows it now. Raises nothing for odd data: it flags it.

    ``tenders`` (see :func:`order_tenders`) split the receivable per tender on ``tender_policy``'s accounts; with
    none, or no policy, the receivable is one line on the channel's receivable account.
    """
    tp = tender_policy or TenderPolicy()
    cur = order.currency_code
    q = lambda amount: quantize(amount, cur)  # noqa: E731
    inc = order.is_tax_inclusive_pricing
    ref = f"Order {order.id}"

    # (role, account, natural side, amount): natural side "C" for income and liabilities, "D" for the rest.
    parts: list[tuple[str, str, str, Decimal, str]] = []
    revenue = q(_net(order.subtotal_ex_tax, order.subtotal_inc_tax, order.subtotal_tax, inc))
    # A gift certificate sold is a liability until it is redeemed, not revenue.
    if tp.gift_certificate_account:
        sold = q(
            sum(
                (
                    _net(p.total_ex_tax, p.total_inc_tax, p.total_tax, inc)
                    for p in order.products
                    if p.is_gift_certificate
                ),
                ZERO,
            )
        )
        if sold:
            revenue -= sold
            parts.append(
                ("gift_certificate", tp.gift_certificate_account, "C", sold, f"{ref} gift certificates sold")
            )
    discount = q(order.discount_amount)
    if accounts.discount:
        parts.append(("revenue", accounts.revenue, "C", revenue, f"{ref} product revenue"))
        parts.append(("discount", accounts.discount, "D", discount, f"{ref} discounts"))
    else:
        parts.append(
            ("revenue", accounts.revenue, "C", revenue - discount, f"{ref} product revenue net of discounts")
        )
    shipping = _net(order.shipping_cost_ex_tax, order.shipping_cost_inc_tax, order.shipping_cost_tax, inc)
    parts.append(("shipping", accounts.shipping, "C", q(shipping), f"{ref} shipping"))
    handling = _net(order.handling_cost_ex_tax, order.handling_cost_inc_tax, order.handling_cost_tax, inc)
    parts.append(("handling", accounts.handling, "C", q(handling), f"{ref} handling"))
    wrapping = _net(order.wrapping_cost_ex_tax, order.wrapping_cost_inc_tax, order.wrapping_cost_tax, inc)
    parts.append(("wrapping", accounts.wrapping, "C", q(wrapping), f"{ref} gift wrapping"))
    for fee in order.fees:
        amount = _net(fee.cost_ex_tax, fee.cost_inc_tax, fee.cost_tax, inc)
        parts.append(("fee", accounts.fee, "C", q(amount), f"{ref} fee {fee.name or fee.type}".strip()))
    parts.append(("tax", accounts.tax, "C", q(order.total_tax), f"{ref} sales tax"))

    total = q(order.total_inc_tax)
    debits, excess = _receivable_parts(total, tenders, tp, accounts.receivable, cur, ref)
    # Tenders above the order total: the excess is a difference, shown on the rounding line, never absorbed.
    receivable = total + excess
    credits = sum((amt if side == "C" else -amt for _, _, side, amt, _ in parts), ZERO)
    difference = receivable - credits
    for i, (account, amount, description) in enumerate(debits):
        parts.insert(i, ("receivable", account, "D", amount, description))
    if difference:
        parts.append(("rounding", policy.rounding_account, "C", difference, f"{ref} rounding/difference"))

    cogs = q(sum((p.cost_price_ex_tax * p.quantity for p in order.products), ZERO))
    warnings: list[str] = []
    if accounts.cogs and cogs:
        parts.append(("cogs", accounts.cogs, "D", cogs, f"{ref} cost of goods"))
        parts.append(("inventory", accounts.inventory, "C", cogs, f"{ref} inventory"))
    elif accounts.cogs and order.products and not cogs:
        warnings.append("No cost prices on the order's products: no cost-of-goods lines")

    flagged = abs(difference) > policy.rounding_threshold
    reason = (
        f"Components differ from the order total by {difference} {cur} "
        f"(threshold {threshold_text(policy.rounding_threshold, cur)} {cur})"
        if flagged
        else ""
    )
    return Journal(
        currency=cur,
        lines=tuple(_to_lines(parts)),
        total=receivable,
        difference=difference,
        flagged=flagged,
        flag_reason=reason,
        warnings=tuple(warnings),
    )


def _to_lines(parts: Iterable[tuple[str, str, str, Decimal, str]]) -> Iterable[Line]:
    for role, account, side, amount, description in parts:
        if not amount:
            continue
        if amount < 0:  # a negative income is an expense: show it on the other side, positive
            side, amount = ("D" if side == "C" else "C"), -amount
        debit, credit = (amount, ZERO) if side == "D" else (ZERO, amount)
        yield Line(role=role, account=account, debit=debit, credit=credit, description=description)


def negate(journal: Journal, *, description_prefix: str = "") -> Journal:
    """The storno of a journal: same accounts and sides, amounts multiplied by -1 (refunds, reversals)."""
    return Journal(
        currency=journal.currency,
        lines=tuple(
            Line(
                role=line.role,
                account=line.account,
                debit=ZERO - line.debit,
                credit=ZERO - line.credit,
                description=f"{description_prefix}{line.description}",
            )
            for line in journal.lines
        ),
        total=-journal.total,
        difference=-journal.difference,
        flagged=journal.flagged,
        flag_reason=journal.flag_reason,
        warnings=journal.warnings,
    )


# --- Later entries of an order: refunds and differences -----------------------------------------------------------

# The side each role normally sits on. Refunds, reversals and adjustments keep to it and change the sign instead
# ("storno"), so every later entry of an order reads against the same accounts and sides as the first one.
NATURAL_SIDE = {
    "receivable": "D",
    "discount": "D",
    "cogs": "D",
    "revenue": "C",
    "shipping": "C",
    "handling": "C",
    "wrapping": "C",
    "fee": "C",
    "tax": "C",
    "inventory": "C",
    "gift_certificate": "C",
    "refund": "C",
    "rounding": "C",
}


def natural_amount(line: Line) -> Decimal:
    """The line's amount measured on its role's natural side (negative when it sits on the other side)."""
    net_debit = line.debit - line.credit
    return net_debit if NATURAL_SIDE.get(line.role, "D") == "D" else ZERO - net_debit


def natural_line(role: str, account: str, amount: Decimal, description: str) -> Line:
    if NATURAL_SIDE.get(role, "D") == "D":
        return Line(role=role, account=account, debit=amount, credit=ZERO, description=description)
    return Line(role=role, account=account, debit=ZERO, credit=amount, description=description)


def totals_by_account(lines: Iterable[Line]) -> dict[tuple[str, str], Decimal]:
    totals: dict[tuple[str, str], Decimal] = {}
    for line in lines:
        key = (line.role, line.account)
        totals[key] = totals.get(key, ZERO) + natural_amount(line)
    return totals


def difference(target: Iterable[Line], posted: Iterable[Line], *, description: str) -> tuple[Line, ...]:
    """Lines that take what was posted to the target, per (role, account), on natural sides (storno style).

    Balanced whenever both inputs are. Empty when nothing changed. A channel change shows up as the old accounts
    going to zero and the new ones filling, in one entry.
    """
    want, have = totals_by_account(target), totals_by_account(posted)
    lines = []
    for key in list(have) + [k for k in want if k not in have]:
        delta = want.get(key, ZERO) - have.get(key, ZERO)
        if delta:
            role, account = key
            lines.append(natural_line(role, account, delta, f"{description} {role}"))
    return tuple(lines)


@dataclass(frozen=True)
class RefundPolicy:
    order_level: str = "refund_account"  # or "proportional"
    refund_account: str = ""  # blank: the revenue account
    restock_cogs: bool = False
    rounding_account: str = ""
    rounding_threshold: Decimal = Decimal("0.05")


def _allocate(total: Decimal, weights: list[Decimal], currency: str) -> list[Decimal]:
    """Split ``total`` in proportion to ``weights``, rounded to the currency, summing exactly to ``total``
    (largest remainder). Equal split when every weight is zero."""
    if not weights:
        return []
    step = Decimal(1).scaleb(-minor_unit(currency))
    base = sum(weights, ZERO)
    shares = [total * w / base for w in weights] if base else [total / len(weights)] * len(weights)
    rounded = [s.quantize(step, rounding="ROUND_DOWN") for s in shares]
    remainder = total - sum(rounded, ZERO)
    order = sorted(range(len(shares)), key=lambda i: shares[i] - rounded[i], reverse=True)
    i = 0
    while remainder and order:
        unit = step if remainder > 0 else -step
        rounded[order[i % len(order)]] += unit
        remainder -= unit
        i += 1
    return rounded


def build_refund_journal(
    refund,
    order: Order,
    accounts: Accounts,
    policy: RefundPolicy,
    *,
    tender_policy: TenderPolicy | None = None,
) -> Journal:
    """The positive journal of what one BigCommerce refund gives back; post it with :func:`negate`.

    Amounts come from the refund: ``total_amount`` goes to the receivable, ``total_tax`` to tax, and the rest is
    split over the refunded item types (PRODUCT → revenue, SHIPPING, HANDLING, GIFT_WRAPPING, FEE) in proportion
    to what each item was worth on the order (or its ``requested_amount``). ORDER-level ("custom amount") refunds
    carry no tax in BigCommerce: by policy they go to the refunds account, or are spread over the order's revenue,
    shipping and tax lines in proportion to the order's own entry.

    With a ``tender_policy`` the receivable side follows the refund's payments (``provider_id``): paid back as store
    credit → the store-credit liability; to a gateway with a tender mapping → its clearing account; else the
    channel's receivable. A refunded gift certificate product goes back to the gift-certificate liability.
    """
    tp = tender_policy or TenderPolicy()
    cur = order.currency_code
    q = lambda amount: quantize(amount, cur)  # noqa: E731
    ref = f"Refund {refund.id} of order {order.id}"
    products = {p.id: p for p in order.products}
    total, tax = q(refund.total_amount), q(refund.total_tax)

    order_level = q(sum((i.requested_amount or ZERO for i in refund.items if i.item_type == "ORDER"), ZERO))
    weighted: list[tuple[str, str, Decimal]] = []  # (role, account, weight) for the taxed, itemised part
    restock = ZERO
    for item in refund.items:
        kind = item.item_type
        if kind == "ORDER":
            continue
        product = products.get(item.item_id)
        if kind == "PRODUCT":
            qty = Decimal(item.quantity or 0)
            if item.requested_amount is not None:
                weight = item.requested_amount
            elif product is not None and product.quantity:
                weight = product.total_inc_tax / product.quantity * qty
            else:
                weight = ZERO
            if product is not None:
                restock += product.cost_price_ex_tax * qty
            if product is not None and product.is_gift_certificate and tp.gift_certificate_account:
                weighted.append(("gift_certificate", tp.gift_certificate_account, weight))
            else:
                weighted.append(("revenue", accounts.revenue, weight))
        elif kind == "SHIPPING":
            weighted.append(("shipping", accounts.shipping, _weight(item, order.shipping_cost_inc_tax)))
        elif kind == "HANDLING":
            weighted.append(("handling", accounts.handling, _weight(item, order.handling_cost_inc_tax)))
        elif kind == "GIFT_WRAPPING":
            wrap = (
                (product.wrapping_cost_ex_tax + product.wrapping_cost_tax)
                if product
                else order.wrapping_cost_inc_tax
            )
            weighted.append(("wrapping", accounts.wrapping, _weight(item, wrap)))
        elif kind == "FEE":
            fee = next((f.cost_inc_tax for f in order.fees if f.id == item.item_id), ZERO)
            weighted.append(("fee", accounts.fee, _weight(item, fee)))
        else:  # an item type BigCommerce may add later: treat it as revenue rather than lose it
            weighted.append(("revenue", accounts.revenue, _weight(item, ZERO)))

    itemised_net = total - tax - order_level
    if not weighted and itemised_net:
        weighted.append(("revenue", accounts.revenue, Decimal(1)))  # e.g. a tax-only adjustment with no items
    paid_back = [
        Tender(_payment_kind(p.provider_id), p.amount, gateway=p.provider_id)
        for p in refund.payments
        if not p.is_declined
    ]
    debits, excess = _receivable_parts(
        total, paid_back if tp != TenderPolicy() else (), tp, accounts.receivable, cur, ref
    )
    parts: list[tuple[str, str, Decimal, str]] = [
        ("receivable", account, amount, description) for account, amount, description in debits
    ]
    for (role, account, _), amount in zip(
        weighted, _allocate(itemised_net, [w for *_, w in weighted], cur), strict=True
    ):
        parts.append((role, account, amount, f"{ref} {role}"))
    parts.append(("tax", accounts.tax, tax, f"{ref} sales tax"))
    if order_level:
        if policy.order_level == "proportional":
            basis = [
                (line.role, line.account, natural_amount(line))
                for line in build_order_journal(
                    order, accounts, Policy(policy.rounding_account), tender_policy=tp
                ).lines
                if NATURAL_SIDE.get(line.role) == "C" and line.role not in ("inventory", "rounding")
            ]
            if not basis:
                basis = [("revenue", accounts.revenue, Decimal(1))]
            amounts = _allocate(order_level, [w for *_, w in basis], cur)
            for (role, account, _), amount in zip(basis, amounts, strict=True):
                parts.append((role, account, amount, f"{ref} order-level refund, {role} share"))
        else:
            parts.append(
                (
                    "refund",
                    policy.refund_account or accounts.revenue,
                    order_level,
                    f"{ref} order-level refund",
                )
            )

    credits = sum((amount for role, _, amount, _ in parts if role != "receivable"), ZERO)
    total += excess  # payments above the refund total: shown on the rounding line, never absorbed
    diff = total - credits
    if diff:
        parts.append(("rounding", policy.rounding_account, diff, f"{ref} rounding/difference"))
    restock = q(restock)
    if policy.restock_cogs and accounts.cogs and restock:
        parts.append(("cogs", accounts.cogs, restock, f"{ref} cost of goods returned to stock"))
        parts.append(("inventory", accounts.inventory, restock, f"{ref} inventory"))

    lines = tuple(
        natural_line(role, account, amount, desc) for role, account, amount, desc in parts if amount
    )
    flagged = abs(diff) > policy.rounding_threshold
    reason = f"Refund items differ from its total by {diff} {cur}" if flagged else ""
    return Journal(
        currency=cur, lines=lines, total=total, difference=diff, flagged=flagged, flag_reason=reason
    )


def _payment_kind(provider_id: str) -> str:
    provider = provider_id.lower()
    if provider in ("storecredit", "store_credit"):
        return "store_credit"
    if provider in ("giftcertificate", "gift_certificate"):
        return "gift_certificate"
    return "gateway"


def _weight(item, default: Decimal) -> Decimal:
    return item.requested_amount if item.requested_amount is not None else default
