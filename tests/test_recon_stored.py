"""The reconciliation from the figures stored on each entry equals the one computed from snapshots and lines.

A varied month: orders posted, failed, pending, awaiting approval, skipped, void, adjusted, reversed, refunded, in a
daily summary posted or not, on several channels and currencies (one without decimals), plus entries that must be
left out (another month, another tenant, an order still waiting). docs/decisions/0030-reconciliation-figures-stored.md
"""

from __future__ import annotations

import importlib
from datetime import date
from decimal import Decimal

import pytest
from django.db import connection

from accounting import figures
from accounting.models import Posting
from connector.models import Tenant
from tests.books import add_posting, add_refund, order_snapshot
from tests.recon_reference import assert_same, old_reconcile

S = Posting.Status
K = Posting.Kind
D = Decimal
NOV = figures.Period(date(2026, 11, 1), date(2026, 11, 30))


def _adjust(
    tenant, base, n, *, day, status=S.POSTED, kind=K.ADJUSTMENT, channel_id=None, snapshot=None, gl=None
):
    return add_posting(
        tenant,
        base.order_id,
        day=day,
        channel_id=channel_id or base.channel_id,
        currency=base.currency,
        kind=kind,
        key=f"{kind}:{base.order_id}:{n}",
        parent=base,
        status=status,
        snapshot=snapshot or base.snapshot,
        gl=gl or [],
    )


def _summary(tenant, key: str, status: str, day: date) -> Posting:
    summary = Posting.objects.create(
        tenant=tenant, idempotency_key=key, kind=K.SUMMARY, order_id=0, gl_date=day, currency="USD"
    )
    Posting.objects.filter(pk=summary.pk).update(status=status)
    return summary


def _into(posting: Posting, summary: Posting | None) -> None:
    Posting.objects.filter(pk=posting.pk).update(status=S.IN_SUMMARY, summary=summary)


def varied_month(tenant) -> None:
    d2, d5, d9 = date(2026, 11, 2), date(2026, 11, 5), date(2026, 11, 9)
    # Channel 1, USD.
    o501 = add_posting(tenant, 501, day=d2, total="108.00", tax="8.00", shipping="10.00", cogs="40")
    inclusive = order_snapshot(
        502,
        channel_id=1,
        total="120.00",
        tax="8.00",
        shipping="0",
        is_tax_inclusive_pricing=True,
        shipping_cost_inc_tax="10.80",
        shipping_cost_tax="0.80",
        handling_cost_inc_tax="2.16",
        handling_cost_tax="0.16",
    )
    o502 = add_posting(tenant, 502, day=d2, total="120.00", tax="8.00", shipping="12.00", snapshot=inclusive)
    o503 = add_posting(tenant, 503, day=d2, total="30.00", status=S.NEEDS_ATTENTION)
    add_posting(tenant, 504, day=d2, total="20.00", status=S.PENDING)
    add_posting(tenant, 505, day=d2, total="25.00", status=S.AWAITING_APPROVAL)
    add_posting(tenant, 506, day=d5, total="26.00", status=S.RETRY)
    add_posting(tenant, 507, day=d5, total="27.00", status=S.SKIPPED)  # void before anything was posted
    o508 = add_posting(tenant, 508, day=d5, total="50.00", tax="4.00", shipping="5.00")
    reversal = [
        ("receivable", "411000", D("-50.00"), 0),
        ("revenue", "701000", 0, D("-41.00")),
        ("shipping", "701800", 0, D("-5.00")),
        ("tax", "441570", 0, D("-4.00")),
    ]
    _adjust(tenant, o508, 1, day=d9, kind=K.REVERSAL, snapshot={**o508.snapshot, "status_id": 5}, gl=reversal)
    o509 = add_posting(tenant, 509, day=d5, total="50.00", tax="4.00", shipping="5.00")
    _adjust(
        tenant,
        o509,
        1,
        day=d9,
        kind=K.REVERSAL,
        status=S.PENDING,
        snapshot={**o509.snapshot, "status_id": 6},
        gl=reversal,
    )
    o510 = add_posting(tenant, 510, day=d5, total="50.00", tax="4.00", shipping="5.00")
    more = {**o510.snapshot, "total_inc_tax": "60.00"}
    _adjust(
        tenant,
        o510,
        1,
        day=d9,
        snapshot=more,
        gl=[("receivable", "411000", D("10.00"), 0), ("revenue", "701000", 0, D("10.00"))],
    )
    _adjust(tenant, o510, 2, day=d9, status=S.SKIPPED, snapshot={**more, "total_inc_tax": "70.00"})
    o511 = add_posting(tenant, 511, day=d5, total="50.00", tax="4.00", shipping="5.00")
    _adjust(
        tenant, o511, 1, day=d9, status=S.NEEDS_ATTENTION, snapshot={**o511.snapshot, "total_inc_tax": "55"}
    )
    add_posting(
        tenant,
        512,
        day=d5,
        total="40.00",
        snapshot={
            **order_snapshot(512, channel_id=1, total="40.00", tax="8.00", shipping="10.00"),
            "is_deleted": True,
        },
    )
    o513 = add_posting(tenant, 513, day=d5, total="70.00", tax="5.00", shipping="5.00")
    moved = [("receivable", "411000", D("-70.00"), 0), ("receivable", "412000", D("70.00"), 0)]
    _adjust(tenant, o513, 1, day=d9, channel_id=2, snapshot={**o513.snapshot, "channel_id": 2}, gl=moved)
    # Refunds: matched, waiting, differing, failed (twice, one order), skipped, in a posted summary, on a moved order.
    add_refund(tenant, o501, 9001, day=d9, amount="21.60", tax="1.60")
    add_refund(tenant, o501, 9002, day=d9, amount="5.00", status=S.WAITING)
    add_refund(tenant, o502, 9003, day=d9, amount="10.00", status=S.NEEDS_ATTENTION)
    add_refund(tenant, o503, 9004, day=d9, amount="3.00", status=S.NEEDS_ATTENTION)
    add_refund(tenant, o503, 9005, day=d9, amount="4.00", status=S.HELD)
    add_refund(tenant, o508, 9006, day=d9, amount="1.00", status=S.SKIPPED)
    add_refund(tenant, o513, 9007, day=d9, amount="7.00")
    add_posting(  # BigCommerce refunded 6.50, the entry's lines say 6.00
        tenant,
        510,
        day=d9,
        kind=K.REFUND,
        refund_id=9008,
        parent=o510,
        total="-6.00",
        snapshot={"order": o510.snapshot, "refund": {"id": 9008, "total_amount": "6.50"}},
        gl=[("receivable", "411000", D("-6.00"), 0), ("revenue", "701000", 0, D("-6.00"))],
    )
    # Channel 2, EUR: matched and a tax line that differs; a refund whose figures differ from its lines.
    o601 = add_posting(
        tenant, 601, day=d2, channel_id=2, currency="EUR", total="80.00", tax="10.00", shipping="0"
    )
    add_posting(
        tenant,
        602,
        day=d2,
        channel_id=2,
        currency="EUR",
        total="100.00",
        tax="8.00",
        shipping="0",
        gl=[
            ("receivable", "412000", D("100.00"), 0),
            ("revenue", "702000", 0, D("93.00")),
            ("tax", "442570", 0, D("7.00")),
        ],
    )
    add_refund(tenant, o601, 9101, day=d9, amount="10.00", tax="1.25")
    # Channel 3, JPY (no decimals): BigCommerce's 1000.4 is 1000 yen.
    add_posting(
        tenant,
        701,
        day=d2,
        channel_id=3,
        currency="JPY",
        total="1000",
        tax="0",
        shipping="0",
        snapshot=order_snapshot(701, channel_id=3, total="1000.4", tax="0", shipping="0", currency="JPY"),
    )
    add_posting(
        tenant,
        702,
        day=d2,
        channel_id=3,
        currency="JPY",
        total="2000",
        tax="100",
        shipping="0",
        gl=[("receivable", "413000", D("1999"), 0)],
    )
    # Daily summary mode: two members of a posted summary, one of a summary not posted yet, one not summarised yet.
    posted, waiting = (
        _summary(tenant, "summary:1", S.POSTED, d5),
        _summary(tenant, "summary:2", S.PENDING, d5),
    )
    for order_id, summary in ((801, posted), (802, posted), (803, waiting), (804, None)):
        _into(
            add_posting(tenant, order_id, day=d5, total="33.00", tax="3.00", shipping="0", status=S.PENDING),
            summary,
        )
    _into(
        add_refund(
            tenant,
            Posting.objects.get(idempotency_key="order:801"),
            9201,
            day=d9,
            amount="3.00",
            status=S.PENDING,
        ),
        posted,
    )
    # Left out: another month, an order still waiting, another tenant's order.
    add_posting(tenant, 901, day=date(2026, 12, 1), total="999.00")
    add_posting(tenant, 902, day=d2, total="10.00", status=S.WAITING)
    other = Tenant.objects.create(slug="other", name="Other Ltd")
    add_posting(other, 501, day=d2, total="500.00")


@pytest.fixture
def month(tenant):
    varied_month(tenant)
    return tenant


@pytest.mark.parametrize("channel_id", [None, 1, 2, 3])
def test_stored_figures_give_the_same_reconciliation_row_by_row(month, channel_id):
    new = figures.reconcile(month, NOV, channel_id=channel_id)
    assert new.rows  # the comparison below compares something
    assert_same(new, old_reconcile(month, NOV, channel_id=channel_id))


def test_hand_checked_rows(month):
    rows = {(r.day, r.channel_id, r.currency): r for r in figures.reconcile(month, NOV).rows}
    first = rows[(date(2026, 11, 2), 1, "USD")]
    assert first.orders == 5 and first.counts == {
        "matched": 2,
        "not posted yet": 2,
        "differs": 0,
        "failed": 1,
    }
    assert first.problem_orders == [503, 504, 505]
    # 502 under tax-inclusive pricing: shipping and handling net of their tax (10 + 2); the four others 10 each.
    assert first.bc["shipping"] == D("12.00") + 4 * D("10.00")
    jpy = rows[(date(2026, 11, 2), 3, "JPY")]
    assert str(jpy.bc["sales"]) == "3000" and jpy.gl["sales"] == D("2999") and jpy.problem_orders == [702]
    summarised = rows[(date(2026, 11, 5), 1, "USD")]
    assert summarised.counts["not posted yet"] >= 3  # 509's pending reversal, 803 and 804
    refunds = rows[(date(2026, 11, 9), 1, "USD")]
    # Failed refunds of 502 and 503 (twice): each order once; the waiting one; the one that differs.
    assert sorted(refunds.problem_orders) == [501, 502, 503, 510]
    assert refunds.bc["refunds"] - refunds.gl["refunds"] == D("5.00") + D("10.00") + D("7.00") + D("0.50")


def test_the_migration_fills_the_figures_of_existing_entries(month):
    expected = figures.reconcile(month, NOV)
    Posting.objects.update(**dict.fromkeys(figures.STORED_FIELDS, D(0)))
    assert figures.reconcile(month, NOV).totals != expected.totals  # zeroed: the figures are gone
    migration = importlib.import_module("accounting.migrations.0020_reconciliation_figures")
    migration.fill_figures(django_apps(), type("Editor", (), {"connection": connection})())
    assert_same(figures.reconcile(month, NOV), expected)


def django_apps():
    from django.apps import apps

    return apps
