"""Tenders, gift certificates, store credit and posting currencies (issue #12).

Pure builder tests first (split per tender, gift-certificate liability, refunds by payment provider, currency
conversion, properties), then the pipeline: the extra BigCommerce call only when it is needed, and at most once.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accounting.journal import (
    RefundPolicy,
    Tender,
    TenderPolicy,
    TenderRule,
    build_order_journal,
    build_refund_journal,
    in_store_currency,
    negate,
    order_tenders,
    refund_in_store_currency,
)
from accounting.models import Posting, TenderMapping
from connector.pipeline import sync_order
from integrations.bigcommerce.parsing import parse_transaction
from integrations.bigcommerce.types import Refund, RefundItem, RefundPayment, Transaction
from tests.conftest import order_json
from tests.fakes import FakeBigCommerce, FakeX3
from tests.test_journal import ACCOUNTS, POLICY, make_order

D = Decimal
S = Posting.Status
NOW = datetime(2026, 4, 10, 10, tzinfo=UTC)
GC, SC, CARD, PAYPAL = "419100", "419200", "512100", "512200"
TENDERS = TenderPolicy(
    rules=(
        TenderRule("braintree", "credit_card", CARD, "Cards"),
        TenderRule("paypalexpress", "", PAYPAL, "PayPal"),
    ),
    gift_certificate_account=GC,
    store_credit_account=SC,
)


def receivables(journal) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for line in journal.lines:
        if line.role == "receivable":
            out[line.account] = out.get(line.account, D(0)) + line.debit - line.credit
    return out


def by_account(*journals) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for journal in journals:
        for line in journal.lines:
            out[line.account] = out.get(line.account, D(0)) + line.debit - line.credit
    return out


def txn(
    gateway: str, amount: str, *, method: str = "credit_card", event: str = "purchase", status: str = "ok"
):
    return Transaction(
        id=1, event=event, method=method, gateway=gateway, amount=D(amount), currency="USD", status=status
    )


# --- The receivable, split per tender ------------------------------------------------------------------------------


def test_split_tender_gift_certificate_and_card_gives_two_receivable_lines():
    order = make_order(gift_certificate_amount=D("20.00"))  # total 97.20
    tenders = order_tenders(order, [txn("braintree", "77.20")])

    journal = build_order_journal(order, ACCOUNTS, POLICY, tenders=tenders, tender_policy=TENDERS)

    assert receivables(journal) == {GC: D("20.00"), CARD: D("77.20")}
    assert journal.total == D("97.20") and journal.is_balanced and journal.difference == 0


def test_unmapped_gateway_and_uncovered_rest_stay_on_the_channel_receivable():
    order = make_order()
    tenders = order_tenders(order, [txn("stripe", "50.00")])  # no mapping for stripe; 47.20 not paid yet

    journal = build_order_journal(order, ACCOUNTS, POLICY, tenders=tenders, tender_policy=TENDERS)

    assert receivables(journal) == {"411": D("97.20")}
    assert len([line for line in journal.lines if line.role == "receivable"]) == 1


def test_without_tenders_the_entry_is_unchanged():
    order = make_order(gift_certificate_amount=D("20.00"))
    assert build_order_journal(order, ACCOUNTS, POLICY, tenders=order_tenders(order)) == build_order_journal(
        order, ACCOUNTS, POLICY
    )


def test_store_credit_used_debits_the_store_credit_liability():
    order = make_order(store_credit_amount=D("97.20"))

    journal = build_order_journal(
        order, ACCOUNTS, POLICY, tenders=order_tenders(order), tender_policy=TENDERS
    )

    assert receivables(journal) == {SC: D("97.20")}


def test_authorised_card_counts_captured_card_once_and_void_and_errors_not():
    order = make_order()
    tenders = order_tenders(
        order,
        [
            txn("braintree", "97.20", event="authorization"),
            txn("braintree", "97.20", event="capture"),
            txn("paypalexpress", "10.00", method="electronic_wallet", event="authorization"),
            txn("paypalexpress", "10.00", method="electronic_wallet", event="void"),
            txn("stripe", "5.00", status="error"),
            txn("giftcertificate", "3.00", method="gift_certificate"),  # taken from the order's own amount
        ],
    )
    assert tenders == (Tender("gateway", D("97.20"), "braintree", "credit_card"),)


def test_tenders_above_the_order_total_go_to_the_rounding_line_and_are_flagged():
    order = make_order()
    tenders = (Tender("gateway", D("100.00"), "braintree", "credit_card"),)

    journal = build_order_journal(order, ACCOUNTS, POLICY, tenders=tenders, tender_policy=TENDERS)

    assert receivables(journal) == {CARD: D("100.00")}
    rounding = [line for line in journal.lines if line.role == "rounding"]
    assert [(line.account, line.credit) for line in rounding] == [("658", D("2.80"))]
    assert journal.flagged and journal.is_balanced


def test_method_specific_rule_wins_over_the_gateway_rule():
    policy = TenderPolicy(
        rules=(TenderRule("stripe", "", "A"), TenderRule("stripe", "electronic_wallet", "B"))
    )
    assert policy.account_for("stripe", "electronic_wallet") == "B"
    assert policy.account_for("stripe", "credit_card") == "A"
    assert policy.account_for("Stripe") == "A"  # a refund payment: provider only
    assert policy.account_for("square", "credit_card") == ""


# --- Gift certificates -------------------------------------------------------------------------------------------


def gc_product(**kw):
    product = replace(make_order().products[0], id=13, sku="GC", quantity=1, is_gift_certificate=True)
    return replace(product, total_ex_tax=D("50"), total_inc_tax=D("50"), total_tax=D("0"), **kw)


def test_gift_certificate_sold_credits_the_liability_not_revenue():
    plain = make_order()
    order = replace(
        plain,
        products=(*plain.products, gc_product()),
        subtotal_ex_tax=plain.subtotal_ex_tax + 50,
        subtotal_inc_tax=plain.subtotal_inc_tax + 50,
        total_ex_tax=plain.total_ex_tax + 50,
        total_inc_tax=plain.total_inc_tax + 50,
    )

    journal = build_order_journal(order, ACCOUNTS, POLICY, tender_policy=TENDERS)

    gc_lines = [(line.role, line.account, line.credit) for line in journal.lines if line.account == GC]
    assert gc_lines == [("gift_certificate", GC, D("50.00"))]
    revenue = sum((line.credit for line in journal.lines if line.role == "revenue"), D(0))
    assert revenue == D("80.00")  # the products only, as without the certificate
    assert journal.is_balanced and journal.difference == 0
    # without a liability account it stays revenue (as before this feature)
    before = build_order_journal(order, ACCOUNTS, POLICY)
    assert sum((line.credit for line in before.lines if line.role == "revenue"), D(0)) == D("130.00")


def test_gift_certificate_sold_then_redeemed_nets_to_zero_on_the_liability():
    plain = make_order()
    sold = replace(
        plain,
        id=1,
        products=(gc_product(),),
        subtotal_ex_tax=D(50),
        subtotal_inc_tax=D(50),
        subtotal_tax=D(0),
        shipping_cost_ex_tax=D(0),
        shipping_cost_inc_tax=D(0),
        shipping_cost_tax=D(0),
        total_ex_tax=D(50),
        total_inc_tax=D(50),
        total_tax=D(0),
    )
    redeemed = make_order(id=2, gift_certificate_amount=D("50.00"))
    first = build_order_journal(
        sold, ACCOUNTS, POLICY, tenders=order_tenders(sold, [txn("braintree", "50")]), tender_policy=TENDERS
    )
    second = build_order_journal(
        redeemed,
        ACCOUNTS,
        POLICY,
        tenders=order_tenders(redeemed, [txn("braintree", "47.20")]),
        tender_policy=TENDERS,
    )

    assert by_account(first)[GC] == D("-50.00")  # credited when sold
    assert by_account(second)[GC] == D("50.00")  # debited when redeemed
    assert by_account(first, second)[GC] == 0


# --- Refunds by the tender they were paid back to ------------------------------------------------------------------


def refund(total: str, *payments: tuple[str, str], items=()) -> Refund:
    return Refund(
        id=9,
        order_id=250,
        created=NOW,
        reason="",
        total_amount=D(total),
        total_tax=D(0),
        items=tuple(items) or (RefundItem("ORDER", 250, None, D(total)),),
        payments=tuple(
            RefundPayment(id=i, provider_id=p, amount=D(a), offline=False, is_declined=False)
            for i, (p, a) in enumerate(payments)
        ),
    )


def test_refund_paid_back_as_store_credit_credits_the_store_credit_liability():
    entry = negate(
        build_refund_journal(
            refund("30.00", ("storecredit", "30.00")),
            make_order(),
            ACCOUNTS,
            RefundPolicy(rounding_account="658"),
            tender_policy=TENDERS,
        )
    )
    assert receivables(entry) == {SC: D("-30.00")}  # storno on the debit side: a credit of the liability
    assert "411" not in by_account(entry) and entry.is_balanced


def test_refund_credits_the_clearing_account_of_the_gateway_it_was_paid_back_to():
    entry = negate(
        build_refund_journal(
            refund("30.00", ("braintree", "20.00"), ("storecredit", "10.00")),
            make_order(),
            ACCOUNTS,
            RefundPolicy(rounding_account="658"),
            tender_policy=TENDERS,
        )
    )
    assert receivables(entry) == {CARD: D("-20.00"), SC: D("-10.00")}
    assert entry.total == D("-30.00") and entry.is_balanced


def test_refund_to_an_unmapped_provider_or_without_tender_policy_stays_on_the_receivable():
    r = refund("30.00", ("square", "30.00"))
    with_policy = build_refund_journal(
        r, make_order(), ACCOUNTS, RefundPolicy("refund_account", "", False, "658")
    )
    assert receivables(with_policy) == {"411": D("30.00")}
    mapped = build_refund_journal(
        r, make_order(), ACCOUNTS, RefundPolicy(rounding_account="658"), tender_policy=TENDERS
    )
    assert receivables(mapped) == {"411": D("30.00")}


def test_refunded_gift_certificate_product_goes_back_to_the_liability():
    plain = make_order()
    order = replace(plain, products=(*plain.products, gc_product()))
    r = refund("50.00", ("braintree", "50.00"), items=[RefundItem("PRODUCT", 13, 1, None)])

    entry = build_refund_journal(
        r, order, ACCOUNTS, RefundPolicy(rounding_account="658"), tender_policy=TENDERS
    )

    assert [(line.role, line.account, line.credit) for line in entry.lines if line.role != "receivable"] == [
        ("gift_certificate", GC, D("50.00"))
    ]


# --- Currencies ---------------------------------------------------------------------------------------------------


def eur_order():
    # A EUR order on a USD store; BigCommerce recorded 1 USD = 0.92 EUR (store default -> transactional).
    return make_order(currency_code="EUR", store_default_currency_code="USD", store_default_rate=D("0.92"))


def test_conversion_to_the_store_currency_rounds_per_component_with_the_difference_on_the_rounding_line():
    order = in_store_currency(eur_order())

    journal = build_order_journal(order, ACCOUNTS, POLICY)

    assert journal.currency == "USD" and order.source_currency_code == "EUR"
    # 97.20 / 0.92 = 105.652... -> 105.65; components 86.96 + 10.87 + 7.83 (tax) = 105.66
    assert journal.total == D("105.65")
    assert journal.difference == D("-0.01")
    assert journal.is_balanced
    assert build_order_journal(eur_order(), ACCOUNTS, POLICY).total == D("97.20")  # transactional: as sent


def test_refund_converts_at_the_order_rate():
    r = refund_in_store_currency(refund("9.20", ("braintree", "9.20")), eur_order())
    assert r.total_amount == D("10") and r.payments[0].amount == D("10")


def test_an_order_already_in_the_store_currency_is_not_converted():
    order = make_order(store_default_currency_code="USD", store_default_rate=D("1"))
    assert in_store_currency(order) is order


# --- Properties ---------------------------------------------------------------------------------------------------

amounts = st.decimals(min_value=0, max_value=5000, places=4)


@settings(max_examples=150, deadline=None)
@given(
    shipping=amounts,
    gc=st.decimals(min_value=0, max_value=200, places=2),
    sc=st.decimals(min_value=0, max_value=200, places=2),
    card=st.decimals(min_value=0, max_value=5000, places=4),
    wallet=st.decimals(min_value=0, max_value=500, places=4),
    rate=st.decimals(min_value=D("0.01"), max_value=200, places=6),
    convert=st.booleans(),
)
def test_property_entries_balance_and_tender_lines_sum_to_the_receivable(
    shipping, gc, sc, card, wallet, rate, convert
):
    order = make_order(
        shipping_cost_ex_tax=shipping,
        shipping_cost_inc_tax=shipping,
        shipping_cost_tax=D(0),
        total_inc_tax=D("86.40") + shipping,
        gift_certificate_amount=gc,
        store_credit_amount=sc,
        currency_code="EUR",
        store_default_currency_code="USD",
        store_default_rate=rate,
    )
    tenders = order_tenders(
        order, [txn("braintree", str(card)), txn("paypalexpress", str(wallet), method="x")]
    )
    if convert:
        order, tenders = in_store_currency(order), tuple(replace(t, amount=t.amount / rate) for t in tenders)

    journal = build_order_journal(order, ACCOUNTS, POLICY, tenders=tenders, tender_policy=TENDERS)

    assert journal.is_balanced
    assert sum(receivables(journal).values(), D(0)) == journal.total
    assert journal.total >= D(0)
    # every line carries the currency's precision; nothing silently absorbed: difference is on the rounding line
    rounding = sum((line.credit - line.debit for line in journal.lines if line.role == "rounding"), D(0))
    assert rounding == journal.difference
    storno = negate(journal)
    assert storno.is_balanced and all(v == 0 for v in by_account(journal, storno).values())


@settings(max_examples=150, deadline=None)
@given(
    total=st.decimals(min_value=0, max_value=500, places=2),
    paid=st.lists(
        st.tuples(st.sampled_from(["braintree", "storecredit", "square", "paypalexpress"]), amounts),
        max_size=3,
    ),
)
def test_property_refunds_mirror_and_balance(total, paid):
    r = refund(str(total), *[(p, str(a)) for p, a in paid])

    journal = build_refund_journal(
        r, make_order(), ACCOUNTS, RefundPolicy(rounding_account="658"), tender_policy=TENDERS
    )
    entry = negate(journal)

    assert journal.is_balanced and entry.is_balanced
    assert sum(receivables(journal).values(), D(0)) == journal.total == -entry.total
    assert journal.total >= total  # never less than BigCommerce's refund; any excess is on the rounding line


# --- The pipeline: the extra call only when needed ----------------------------------------------------------------


@pytest.fixture
def bc():
    return FakeBigCommerce()


@pytest.fixture
def x3():
    return FakeX3()


@pytest.fixture
def sync(tenant, bc, x3):
    def run(order_id: int = 250):
        return sync_order(tenant=tenant, order_id=order_id, trigger="webhook", bc_client=bc, x3_client=x3)

    return run


def entry_accounts(x3, index=-1) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for line in x3.entries[index].lines:
        out[line.account] = out.get(line.account, D(0)) + line.debit - line.credit
    return out


@pytest.mark.django_db
def test_no_tender_mapping_no_transactions_call(tenant, bc, x3, sync):
    tenant.gift_certificate_account = GC
    tenant.save()
    bc.put_order(order_json(250, gift_certificate_amount="20.0000"))

    assert sync().posting_status == S.POSTED

    assert bc.transaction_calls == 0  # gift certificates are on the order itself
    assert entry_accounts(x3)[GC] == D("20.00")
    assert entry_accounts(x3)["412000"] == D("77.20")


@pytest.mark.django_db
def test_tender_mapping_one_transactions_call_per_sync(tenant, bc, x3, sync):
    TenderMapping.objects.create(tenant=tenant, gateway="Braintree", method="", account=CARD)
    bc.put_order(order_json(250))
    bc.add_transaction(250, gateway="braintree", amount="97.20")

    sync()
    assert bc.transaction_calls == 1
    assert entry_accounts(x3)[CARD] == D("97.20") and "412000" not in entry_accounts(x3)
    assert TenderMapping.objects.get().gateway == "braintree"  # stored lower-case, as BigCommerce sends it

    sync()  # a replay: one call again, nothing new posted
    assert bc.transaction_calls == 2 and len(x3.entries) == 1


@pytest.mark.django_db
def test_no_transactions_call_for_void_or_fully_gift_certificate_paid_orders(tenant, bc, sync):
    TenderMapping.objects.create(tenant=tenant, gateway="braintree", account=CARD)
    bc.put_order(order_json(250, status_id=5))
    bc.put_order(order_json(251, gift_certificate_amount="97.2000"))

    sync(250)
    sync(251)

    assert bc.transaction_calls == 0


@pytest.mark.django_db
def test_refund_to_store_credit_through_the_pipeline(tenant, bc, x3, sync):
    tenant.store_credit_account = SC
    tenant.save()
    bc.put_order(order_json(250))
    sync()
    bc.add_refund(
        250, 900, total="10.00", items=[{"item_type": "ORDER", "item_id": 250, "requested_amount": "10"}]
    )
    bc.refunds[250][0]["payments"][0]["provider_id"] = "storecredit"
    bc.put_order(order_json(250, status_id=14))

    sync()

    refund_entry = entry_accounts(x3)
    assert refund_entry[SC] == D("-10.00") and "412000" not in refund_entry
    assert bc.transaction_calls == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("policy", "currency", "total", "source"),
    [("transactional", "EUR", D("97.20"), None), ("store_default", "USD", D("105.65"), "EUR")],
)
def test_eur_order_on_a_usd_store_posts_per_policy(tenant, bc, x3, sync, policy, currency, total, source):
    tenant.posting_currency_policy = policy
    tenant.save()
    bc.put_order(
        order_json(
            250,
            currency="EUR",
            store_default_currency_code="USD",
            store_default_to_transactional_exchange_rate="0.9200000000",
        )
    )

    sync()

    posting = Posting.objects.get(idempotency_key="order:250")
    # the rate BigCommerce recorded is carried either way; only a converted entry names its source currency
    assert (posting.currency, posting.total, posting.exchange_rate) == (currency, total, D("0.92"))
    assert posting.source_currency == (source or "")
    entry = x3.entries[-1]
    assert entry.currency == currency
    # X3 gets the rate only for an entry in the order's own (foreign) currency
    assert entry.exchange_rate == (None if source else D("0.92"))
    assert sum(line.debit for line in entry.lines) == sum(line.credit for line in entry.lines)

    # a later policy change does not move the posted order to another currency
    tenant.posting_currency_policy = "transactional" if policy == "store_default" else "store_default"
    tenant.save()
    bc.put_order(
        order_json(
            250,
            currency="EUR",
            shipping_ex="12.00",
            store_default_currency_code="USD",
            store_default_to_transactional_exchange_rate="0.9200000000",
        )
    )
    sync()
    adjustment = Posting.objects.get(idempotency_key="adjustment:250:1")
    assert adjustment.currency == currency


# --- BigCommerce parsing ------------------------------------------------------------------------------------------


def test_parse_transaction_spec_example():
    row = {
        "event": "purchase",
        "method": "credit_card",
        "amount": D("3.4"),
        "currency": "EUR",
        "gateway": "2checkout",
        "status": "ok",
        "test": True,
        "payment_method_id": "braintree.card",
        "id": 7,
        "order_id": "250",
    }
    t = parse_transaction(row)
    assert (t.id, t.gateway, t.method, t.amount, t.currency, t.collects_money) == (
        7,
        "2checkout",
        "credit_card",
        D("3.4"),
        "EUR",
        True,
    )
    assert t.payment_method_id == "braintree.card"


# --- Tender mappings: admin, import, validation against the chart -------------------------------------------------


@pytest.fixture
def chart(tenant):
    from accounting.chart import store_chart
    from integrations.sagex3.accounts import Account

    store_chart(tenant.pk, [Account("512100", "Braintree clearing"), Account("411000", "Customers")])
    return tenant


@pytest.mark.django_db
def test_tender_mapping_account_is_checked_against_the_chart(chart):
    from django.core.exceptions import ValidationError

    with pytest.raises(
        ValidationError, match="512101 is not in the Sage X3 chart of accounts. Did you mean 512100"
    ):
        TenderMapping(tenant=chart, gateway="braintree", account="512101").full_clean()
    TenderMapping(tenant=chart, gateway="braintree", account="512100").full_clean()


@pytest.mark.django_db
def test_tender_mapping_import_and_tenant_file(chart):
    import tablib

    from accounting.admin import TenderMappingResource
    from connector.configuration import ConfigurationError, apply_document

    dataset = tablib.Dataset(headers=["tenant", "gateway", "method", "account", "name"])
    dataset.append(["acme", "braintree", "", "999999", "Cards"])
    assert TenderMappingResource().import_data(dataset, dry_run=False).has_validation_errors()
    dataset = tablib.Dataset(headers=["tenant", "gateway", "method", "account", "name"])
    dataset.append(["acme", "braintree", "", "512100", "Cards"])
    assert not TenderMappingResource().import_data(dataset, dry_run=False).has_errors()
    assert TenderMapping.objects.get(tenant=chart).account == "512100"

    with pytest.raises(ConfigurationError, match=r"\[tenders\[0\]\] account"):
        apply_document({"tenant": {"slug": "acme"}, "tenders": [{"gateway": "stripe", "account": "1"}]})
    with pytest.raises(ConfigurationError, match="gateway is required"):
        apply_document({"tenant": {"slug": "acme"}, "tenders": [{"account": "512100"}]})


@pytest.mark.django_db
def test_tender_mapping_admin_lists_with_account_names(admin_client, chart):
    TenderMapping.objects.create(tenant=chart, gateway="braintree", account="512100", name="Cards")

    page = admin_client.get("/admin/accounting/tendermapping/").content.decode()

    assert "Braintree clearing" in page and "any method" in page
    assert admin_client.get("/admin/accounting/tendermapping/export/").status_code == 200
    tenant_page = admin_client.get(f"/admin/connector/tenant/{chart.pk}/change/").content.decode()
    assert "Payments and currencies" in tenant_page and "store_credit_account" in tenant_page


# --- The rate in the X3 bodies: one optional mapping key per method -------------------------------------------------


def test_x3_bodies_send_the_rate_only_when_mapped_and_known():
    from tests.integrations.test_sagex3_rest import make_client as rest_client
    from tests.integrations.test_sagex3_rest import make_entry as rest_entry
    from tests.integrations.test_sagex3_soap import make_client as soap_client
    from tests.test_x3_graphql import StaticTokens, client_with
    from tests.test_x3_graphql import make_entry as graphql_entry

    with_rate = replace(rest_entry(), exchange_rate=D("0.92"))
    from integrations.sagex3.types import DEFAULT_REST_MAPPING

    mapped = rest_client({"header": {**DEFAULT_REST_MAPPING["header"], "exchange_rate": "RATDIV"}})
    assert mapped.build_payload(with_rate)["RATDIV"] == D("0.92")
    assert "RATDIV" not in mapped.build_payload(rest_entry())  # no rate: not sent
    assert "RATDIV" not in rest_client().build_payload(with_rate)  # not mapped (the default): not sent

    from integrations.sagex3.soap import DEFAULT_SOAP_MAPPING

    soap = soap_client(mapping={"header": {**DEFAULT_SOAP_MAPPING["header"], "exchange_rate": "RATDIV"}})
    assert 'NAME="RATDIV" TYPE="Decimal">0.92<' in soap.build_object_xml(with_rate)
    assert "RATDIV" not in soap.build_object_xml(rest_entry())

    from integrations.sagex3.graphql_mapping import DEFAULT_VARIABLES

    variables = {"data": {**DEFAULT_VARIABLES["data"], "rate": "${exchange_rate}"}}
    graphql = client_with(StaticTokens("t"), mapping={"variables": variables})
    assert graphql.build_variables(replace(graphql_entry(), exchange_rate=D("0.92")))["data"]["rate"] == D(
        "0.92"
    )


@pytest.mark.django_db
def test_refund_of_a_converted_order_posts_in_the_store_currency(tenant, bc, x3, sync):
    tenant.posting_currency_policy = "store_default"
    tenant.save()
    eur = {"currency": "EUR", "store_default_currency_code": "USD"}
    rate = {"store_default_to_transactional_exchange_rate": "0.9200000000"}
    bc.put_order(order_json(250, **eur, **rate))
    sync()
    bc.add_refund(
        250, 901, total="9.20", items=[{"item_type": "ORDER", "item_id": 250, "requested_amount": "9.20"}]
    )
    bc.put_order(order_json(250, status_id=14, **eur, **rate))

    sync()

    refund = Posting.objects.get(idempotency_key="refund:250:901")
    assert (refund.status, refund.currency, refund.total) == (S.POSTED, "USD", D("-10.00"))
    assert D(refund.snapshot["refund"]["total_amount"]) == D("10")  # reconciliation reads it in USD too
    assert refund.source_currency == "EUR" and x3.entries[-1].currency == "USD"


def test_parse_order_reads_gift_certificate_lines_and_the_store_currency():
    from integrations.bigcommerce.parsing import consignment_products, parse_order

    raw = order_json(
        250,
        currency="EUR",
        store_default_currency_code="USD",
        store_default_to_transactional_exchange_rate="0.92",
    )
    raw["consignments"]["shipping"][0]["line_items"][1]["type"] = "giftcertificate"
    order = parse_order(raw, consignment_products(raw))
    assert [p.is_gift_certificate for p in order.products] == [False, True]
    assert (order.currency_code, order.store_default_currency_code, order.store_default_rate) == (
        "EUR",
        "USD",
        D("0.92"),
    )
    for odd in ("", None, "abc", "0", "-1"):
        raw["store_default_to_transactional_exchange_rate"] = odd
        assert parse_order(raw, consignment_products(raw)).store_default_rate == 1


@settings(max_examples=100, deadline=None)
@given(
    card=st.decimals(min_value=0, max_value=200, places=2),
    credit=st.decimals(min_value=0, max_value=50, places=2),
)
def test_property_a_refund_paid_back_to_each_tender_mirrors_the_order_on_its_accounts(card, credit):
    order = make_order(
        subtotal_ex_tax=card + credit,
        subtotal_inc_tax=card + credit,
        subtotal_tax=D(0),
        shipping_cost_ex_tax=D(0),
        shipping_cost_inc_tax=D(0),
        shipping_cost_tax=D(0),
        total_ex_tax=card + credit,
        total_inc_tax=card + credit,
        total_tax=D(0),
        store_credit_amount=credit,
        products=(),
    )
    entry = build_order_journal(
        order,
        ACCOUNTS,
        POLICY,
        tenders=order_tenders(order, [txn("braintree", str(card))]),
        tender_policy=TENDERS,
    )
    back = negate(
        build_refund_journal(
            refund(str(card + credit), ("braintree", str(card)), ("storecredit", str(credit))),
            order,
            ACCOUNTS,
            RefundPolicy(rounding_account="658"),
            tender_policy=TENDERS,
        )
    )

    assert entry.is_balanced and back.is_balanced
    both = by_account(entry, back)
    assert both.get(CARD, D(0)) == 0 and both.get(SC, D(0)) == 0 and both.get("411", D(0)) == 0
