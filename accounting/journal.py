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
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from integrations.bigcommerce.types import Order

ZERO = Decimal(0)

# ISO 4217 minor units that are not 2. Anything else rounds to cents.
_MINOR_UNITS = {
    **dict.fromkeys(
        [
            "BIF",
            "CLP",
            "DJF",
            "GNF",
            "ISK",
            "JPY",
            "KMF",
            "KRW",
            "PYG",
            "RWF",
            "UGX",
            "VND",
            "VUV",
            "XAF",
            "XOF",
            "XPF",
        ],
        0,
    ),
    **dict.fromkeys(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"], 3),
}


def minor_unit(currency: str) -> int:
    return _MINOR_UNITS.get(currency.upper(), 2)


def quantize(amount: Decimal, currency: str) -> Decimal:
    return amount.quantize(Decimal(1).scaleb(-minor_unit(currency)), rounding=ROUND_HALF_UP)


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
class Line:
    role: str
    account: str
    debit: Decimal
    credit: Decimal
    description: str


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


def build_order_journal(order: Order, accounts: Accounts, policy: Policy) -> Journal:
    """The full journal of an order as BigCommerce shows it now. Raises nothing for odd data: it flags it."""
    cur = order.currency_code
    q = lambda amount: quantize(amount, cur)  # noqa: E731
    inc = order.is_tax_inclusive_pricing
    ref = f"Order {order.id}"

    # (role, account, natural side, amount): natural side "C" for income and liabilities, "D" for the rest.
    parts: list[tuple[str, str, str, Decimal, str]] = []
    revenue = q(_net(order.subtotal_ex_tax, order.subtotal_inc_tax, order.subtotal_tax, inc))
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

    receivable = q(order.total_inc_tax)
    credits = sum((amt if side == "C" else -amt for _, _, side, amt, _ in parts), ZERO)
    difference = receivable - credits
    parts.insert(0, ("receivable", accounts.receivable, "D", receivable, f"{ref} receivable"))
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
        f"Components differ from the order total by {difference} {cur} (threshold {policy.rounding_threshold})"
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
                debit=-line.debit,
                credit=-line.credit,
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
