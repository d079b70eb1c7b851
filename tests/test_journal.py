"""The pure journal builder: balance, totals, rounding line, discounts, COGS, storno."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accounting.journal import Accounts, Policy, build_order_journal, minor_unit, negate, quantize
from integrations.bigcommerce.types import Order, OrderFee, OrderProduct

D = Decimal
ACCOUNTS = Accounts(
    receivable="411",
    revenue="701",
    shipping="708",
    handling="709",
    wrapping="7010",
    fee="7011",
    tax="4457",
    discount="709D",
    cogs="601",
    inventory="371",
)
POLICY = Policy(rounding_account="658", rounding_threshold=D("0.05"))
NOW = datetime(2026, 3, 5, 21, 40, tzinfo=UTC)


def make_order(**kw) -> Order:
    base = dict(
        id=250,
        channel_id=2,
        status_id=11,
        status="Awaiting Fulfillment",
        payment_status="captured",
        date_created=NOW,
        date_modified=NOW,
        currency_code="USD",
        is_tax_inclusive_pricing=False,
        subtotal_ex_tax=D("80.0000"),
        subtotal_inc_tax=D("86.4000"),
        subtotal_tax=D("6.4000"),
        shipping_cost_ex_tax=D("10.0000"),
        shipping_cost_inc_tax=D("10.8000"),
        shipping_cost_tax=D("0.8000"),
        handling_cost_ex_tax=D("0"),
        handling_cost_inc_tax=D("0"),
        handling_cost_tax=D("0"),
        wrapping_cost_ex_tax=D("0"),
        wrapping_cost_inc_tax=D("0"),
        wrapping_cost_tax=D("0"),
        discount_amount=D("0"),
        coupon_discount=D("0"),
        total_ex_tax=D("90.0000"),
        total_inc_tax=D("97.2000"),
        total_tax=D("7.2000"),
        products=(
            OrderProduct(
                id=11,
                product_id=1,
                sku="A",
                name="A",
                quantity=2,
                total_ex_tax=D("40"),
                total_inc_tax=D("43.2"),
                total_tax=D("3.2"),
                cost_price_ex_tax=D("7.5"),
            ),
            OrderProduct(
                id=12,
                product_id=2,
                sku="B",
                name="B",
                quantity=1,
                total_ex_tax=D("40"),
                total_inc_tax=D("43.2"),
                total_tax=D("3.2"),
                cost_price_ex_tax=D("15"),
            ),
        ),
    )
    base.update(kw)
    return Order(**base)


def by_role(journal):
    return {line.role: (line.account, line.debit, line.credit) for line in journal.lines}


def test_a_simple_order_posts_receivable_revenue_shipping_tax_and_cogs():
    journal = build_order_journal(make_order(), ACCOUNTS, POLICY)

    assert by_role(journal) == {
        "receivable": ("411", D("97.20"), D("0")),
        "revenue": ("701", D("0"), D("80.00")),
        "shipping": ("708", D("0"), D("10.00")),
        "tax": ("4457", D("0"), D("7.20")),
        "cogs": ("601", D("30.00"), D("0")),
        "inventory": ("371", D("0"), D("30.00")),
    }
    assert journal.is_balanced and journal.total == D("97.20")
    assert journal.difference == 0 and not journal.flagged


def test_discount_goes_to_the_discount_account_or_reduces_revenue():
    order = make_order(discount_amount=D("5.0000"), total_inc_tax=D("92.2000"))

    with_account = by_role(build_order_journal(order, ACCOUNTS, POLICY))
    netted = by_role(build_order_journal(order, replace(ACCOUNTS, discount=""), POLICY))

    assert with_account["discount"] == ("709D", D("5.00"), D("0"))
    assert with_account["revenue"] == ("701", D("0"), D("80.00"))
    assert "discount" not in netted
    assert netted["revenue"] == ("701", D("0"), D("75.00"))


def test_an_inconsistent_order_gets_a_rounding_line_and_is_flagged_above_threshold():
    # BigCommerce's own spec example does not add up; the difference must be explicit, never absorbed.
    small = build_order_journal(make_order(total_inc_tax=D("97.2300")), ACCOUNTS, POLICY)
    large = build_order_journal(make_order(total_inc_tax=D("96.0000")), ACCOUNTS, POLICY)

    assert by_role(small)["rounding"] == ("658", D("0"), D("0.03"))
    assert small.is_balanced and not small.flagged
    assert by_role(large)["rounding"] == ("658", D("1.20"), D("0"))
    assert large.is_balanced and large.flagged
    assert "1.20" in large.flag_reason


def test_tax_inclusive_orders_take_net_as_inc_minus_tax():
    # ex-tax values are estimates for tax-inclusive stores; inc and tax are actual.
    order = make_order(
        is_tax_inclusive_pricing=True, subtotal_ex_tax=D("79.9999"), shipping_cost_ex_tax=D("9.9")
    )
    roles = by_role(build_order_journal(order, ACCOUNTS, POLICY))
    assert roles["revenue"][2] == D("80.00")
    assert roles["shipping"][2] == D("10.00")


def test_handling_wrapping_and_fees_have_their_own_lines():
    order = make_order(
        handling_cost_ex_tax=D("2"),
        handling_cost_inc_tax=D("2"),
        wrapping_cost_ex_tax=D("3"),
        wrapping_cost_inc_tax=D("3"),
        fees=(
            OrderFee(
                id=1,
                type="custom_fee",
                name="Eco",
                cost_ex_tax=D("1.5"),
                cost_inc_tax=D("1.5"),
                cost_tax=D("0"),
            ),
        ),
        total_inc_tax=D("103.7000"),
    )
    journal = build_order_journal(order, ACCOUNTS, POLICY)
    roles = by_role(journal)
    assert roles["handling"] == ("709", D("0"), D("2.00"))
    assert roles["wrapping"] == ("7010", D("0"), D("3.00"))
    assert roles["fee"] == ("7011", D("0"), D("1.50"))
    assert journal.difference == 0


def test_zero_decimal_currency_rounds_to_whole_units():
    order = make_order(
        currency_code="JPY",
        subtotal_ex_tax=D("1000.4"),
        total_inc_tax=D("1090.6"),
        shipping_cost_ex_tax=D("10.2"),
        subtotal_tax=D("80"),
        total_tax=D("80"),
        shipping_cost_tax=D("0"),
        products=(),
    )
    journal = build_order_journal(order, ACCOUNTS, POLICY)
    assert all(
        line.debit == line.debit.to_integral() and line.credit == line.credit.to_integral()
        for line in journal.lines
    )
    assert journal.total == D("1091") and journal.is_balanced
    assert minor_unit("KWD") == 3 and quantize(D("1.23456"), "KWD") == D("1.235")


def test_no_cogs_without_both_accounts_and_a_warning_without_cost_prices():
    no_cogs = build_order_journal(make_order(), replace(ACCOUNTS, cogs="", inventory=""), POLICY)
    assert {"cogs", "inventory"}.isdisjoint(by_role(no_cogs))

    products = tuple(replace(p, cost_price_ex_tax=D("0")) for p in make_order().products)
    costless = build_order_journal(make_order(products=products), ACCOUNTS, POLICY)
    assert "cogs" not in by_role(costless) and costless.warnings


def test_negative_component_moves_to_the_other_side():
    # A discount larger than product revenue (free items + paid shipping) nets revenue below zero.
    order = make_order(discount_amount=D("85"), total_inc_tax=D("12.2000"))
    roles = by_role(build_order_journal(order, replace(ACCOUNTS, discount=""), POLICY))
    assert roles["revenue"] == ("701", D("5.00"), D("0"))


def test_negate_keeps_accounts_and_sides_with_negative_amounts():
    journal = build_order_journal(make_order(), ACCOUNTS, POLICY)
    storno = negate(journal)
    assert by_role(storno)["receivable"] == ("411", D("-97.20"), D("0"))
    assert by_role(storno)["revenue"] == ("701", D("0"), D("-80.00"))
    assert storno.is_balanced and storno.total == D("-97.20")


# --- Property-based: any order, however inconsistent, gives a balanced entry whose receivable is its total. ----

amounts = st.decimals(min_value=0, max_value=100000, places=4, allow_nan=False, allow_infinity=False)
currencies = st.sampled_from(["USD", "EUR", "JPY", "KWD", "GBP"])


@st.composite
def orders(draw):
    products = tuple(
        OrderProduct(
            id=i,
            product_id=i,
            sku=f"S{i}",
            name="x",
            quantity=draw(st.integers(1, 50)),
            total_ex_tax=draw(amounts),
            total_inc_tax=draw(amounts),
            total_tax=draw(amounts),
            cost_price_ex_tax=draw(amounts),
        )
        for i in range(draw(st.integers(0, 5)))
    )
    fees = tuple(
        OrderFee(
            id=i,
            type="custom_fee",
            name="f",
            cost_ex_tax=draw(amounts),
            cost_inc_tax=draw(amounts),
            cost_tax=draw(amounts),
        )
        for i in range(draw(st.integers(0, 2)))
    )
    fields = {
        name: draw(amounts)
        for name in (
            "subtotal_ex_tax",
            "subtotal_inc_tax",
            "subtotal_tax",
            "shipping_cost_ex_tax",
            "shipping_cost_inc_tax",
            "shipping_cost_tax",
            "handling_cost_ex_tax",
            "handling_cost_inc_tax",
            "handling_cost_tax",
            "wrapping_cost_ex_tax",
            "wrapping_cost_inc_tax",
            "wrapping_cost_tax",
            "discount_amount",
            "total_ex_tax",
            "total_inc_tax",
            "total_tax",
        )
    }
    return make_order(
        currency_code=draw(currencies),
        is_tax_inclusive_pricing=draw(st.booleans()),
        products=products,
        fees=fees,
        **fields,
    )


@settings(max_examples=300, deadline=None)
@given(order=orders(), netted=st.booleans())
def test_any_order_gives_a_balanced_entry_with_the_order_total_as_receivable(order, netted):
    accounts = replace(ACCOUNTS, discount="") if netted else ACCOUNTS
    journal = build_order_journal(order, accounts, POLICY)

    assert journal.is_balanced
    assert journal.total == quantize(order.total_inc_tax, order.currency_code)
    receivable = [line for line in journal.lines if line.role == "receivable"]
    assert sum(line.debit - line.credit for line in receivable) == journal.total
    assert all(line.debit >= 0 and line.credit >= 0 for line in journal.lines)
    assert all(not (line.debit and line.credit) for line in journal.lines)
    assert journal.flagged == (abs(journal.difference) > POLICY.rounding_threshold)
    # the only line not taken from BigCommerce is the rounding line, and it carries exactly the difference
    rounding = sum(
        (line.credit - line.debit for line in journal.lines if line.role == "rounding"), Decimal(0)
    )
    assert rounding == journal.difference


@settings(max_examples=100, deadline=None)
@given(order=orders())
def test_a_storno_cancels_the_entry_line_for_line(order):
    journal = build_order_journal(order, ACCOUNTS, POLICY)
    storno = negate(journal)
    assert storno.is_balanced
    for a, b in zip(journal.lines, storno.lines, strict=True):
        assert (a.account, a.debit + b.debit, a.credit + b.credit) == (b.account, 0, 0)


@pytest.mark.parametrize("currency,places", [("USD", 2), ("JPY", 0), ("BHD", 3), ("eur", 2)])
def test_minor_units(currency, places):
    assert minor_unit(currency) == places
