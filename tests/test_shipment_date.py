"""GL date on shipment (Tenant.gl_date_policy "shipped_last"): an order is recognised once nothing is left to ship,
on the date of its last shipment; until then it waits. See docs/decisions/0027-revenue-on-shipment.md."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal as D

import pytest

from accounting.models import Posting
from connector.models import Tenant
from connector.pipeline import sync_order
from connector.summaries import close_due_days
from integrations.bigcommerce.parsing import parse_order
from tests.conftest import order_json
from tests.fakes import FakeBigCommerce, FakeX3

S, K = Posting.Status, Posting.Kind
CREATED = "Thu, 05 Mar 2026 10:00:00 +0000"
PART_SHIPPED = "Fri, 06 Mar 2026 09:00:00 +0000"
FULLY_SHIPPED = "Mon, 09 Mar 2026 15:00:00 +0000"


@pytest.fixture
def bc():
    return FakeBigCommerce()


@pytest.fixture
def x3():
    return FakeX3()


@pytest.fixture
def shipped_tenant(tenant):
    tenant.gl_date_policy = Tenant.GlDatePolicy.SHIPPED_LAST
    tenant.save()
    return tenant


def shipped_order(shipped: tuple[int, int], *, status_id: int, modified: str, date_shipped: str = "", **kw):
    """Order 250 (2 mugs, 1 tee) with ``shipped`` quantities of its two lines."""
    data = order_json(
        250,
        status_id=status_id,
        date_created=CREATED,
        date_modified=modified,
        date_shipped=date_shipped,
        **kw,
    )
    for line, quantity in zip(data["consignments"]["shipping"][0]["line_items"], shipped, strict=True):
        line["type"] = "physical"
        line["quantity_shipped"] = quantity
    return data


def run(tenant, bc, x3, trigger="webhook"):
    return sync_order(tenant=tenant, order_id=250, trigger=trigger, bc_client=bc, x3_client=x3)


def test_the_order_knows_when_nothing_is_left_to_ship():
    assert not parse_order(shipped_order((0, 0), status_id=11, modified=CREATED)).is_fully_shipped
    assert not parse_order(shipped_order((2, 0), status_id=3, modified=CREATED)).is_fully_shipped
    assert parse_order(shipped_order((2, 1), status_id=3, modified=CREATED)).is_fully_shipped
    assert parse_order(shipped_order((0, 0), status_id=2, modified=CREATED)).is_fully_shipped  # says Shipped
    refunded = shipped_order((2, 0), status_id=14, modified=CREATED)
    refunded["consignments"]["shipping"][0]["line_items"][1]["quantity_refunded"] = 1  # the tee never ships
    assert parse_order(refunded).is_fully_shipped
    digital = shipped_order((0, 0), status_id=11, modified=CREATED)
    for line in digital["consignments"]["shipping"][0]["line_items"]:
        line["type"] = "digital"
    assert parse_order(digital).is_fully_shipped  # nothing to ship: nothing to wait for
    assert (
        parse_order(shipped_order((2, 1), status_id=2, modified=CREATED, date_shipped="junk")).date_shipped
        is None
    )


def test_an_order_waits_for_its_last_shipment_then_posts_once_on_that_date(shipped_tenant, bc, x3):
    bc.put_order(shipped_order((0, 0), status_id=11, modified=CREATED))
    run(shipped_tenant, bc, x3)
    base = Posting.objects.get(kind=K.ORDER)
    assert base.status == S.WAITING and x3.entries == []
    assert base.log.last().message == "Waiting for shipment"

    # the first parcel leaves: Partially Shipped, still waiting
    bc.put_order(shipped_order((2, 0), status_id=3, modified=PART_SHIPPED, date_shipped=PART_SHIPPED))
    run(shipped_tenant, bc, x3)
    base.refresh_from_db()
    assert base.status == S.WAITING and x3.entries == []

    # the last one: Shipped. Booked on the day of that shipment, not on the first one's nor on the order's
    bc.put_order(shipped_order((2, 1), status_id=2, modified=FULLY_SHIPPED, date_shipped=PART_SHIPPED))
    run(shipped_tenant, bc, x3)
    base.refresh_from_db()
    assert base.status == S.POSTED and base.gl_date == date(2026, 3, 9)
    assert len(x3.entries) == 1

    # a replay, or the reconciliation poll finding the same order again, posts nothing more
    run(shipped_tenant, bc, x3, trigger="reconcile")
    assert len(x3.entries) == 1 and Posting.objects.filter(kind__in=(K.ADJUSTMENT, K.REVERSAL)).count() == 0


def test_an_order_first_seen_fully_shipped_is_booked_on_its_shipping_date(shipped_tenant, bc, x3):
    bc.put_order(shipped_order((2, 1), status_id=2, modified=FULLY_SHIPPED, date_shipped=PART_SHIPPED))
    run(shipped_tenant, bc, x3)
    base = Posting.objects.get(kind=K.ORDER)
    assert base.status == S.POSTED and base.gl_date == date(2026, 3, 6)


@pytest.mark.parametrize(
    "policy, expected",
    [(Tenant.GlDatePolicy.CREATED, date(2026, 3, 5)), (Tenant.GlDatePolicy.CONFIRMED, date(2026, 3, 5))],
)
def test_the_other_policies_do_not_wait_for_shipment(tenant, bc, x3, policy, expected):
    tenant.gl_date_policy = policy
    tenant.save()
    bc.put_order(shipped_order((0, 0), status_id=11, modified=PART_SHIPPED))
    run(tenant, bc, x3)
    base = Posting.objects.get(kind=K.ORDER)
    assert base.status == S.POSTED and base.gl_date == expected


def test_the_mapping_version_is_the_one_in_force_on_the_shipment_date(shipped_tenant, bc, x3):
    from accounting.models import ChannelMapping

    mapping = ChannelMapping.objects.get(tenant=shipped_tenant, channel_id=2)
    later = ChannelMapping.objects.get(pk=mapping.pk)
    later.pk, later.effective_from, later.revenue_account = None, date(2026, 3, 8), "707999"
    later.save()
    bc.put_order(shipped_order((0, 0), status_id=11, modified=CREATED))
    run(shipped_tenant, bc, x3)
    bc.put_order(shipped_order((2, 1), status_id=2, modified=FULLY_SHIPPED, date_shipped=FULLY_SHIPPED))
    run(shipped_tenant, bc, x3)
    assert "707999" in {line.account for line in x3.entries[0].lines}


def test_refunds_before_shipment_wait_and_post_after_the_order(shipped_tenant, bc, x3):
    bc.put_order(shipped_order((0, 0), status_id=11, modified=CREATED))
    run(shipped_tenant, bc, x3)
    # a mug is refunded before anything ships: the refund waits for the order's own entry
    bc.add_refund(
        250, 1, total="21.60", tax="1.60", items=[{"item_type": "PRODUCT", "item_id": 11, "quantity": 1}]
    )
    refunded = shipped_order((0, 0), status_id=14, modified=PART_SHIPPED)
    refunded["consignments"]["shipping"][0]["line_items"][0]["quantity_refunded"] = 1
    bc.put_order(refunded)
    sync_order(
        tenant=shipped_tenant, order_id=250, trigger="webhook", refund_id=1, bc_client=bc, x3_client=x3
    )
    assert x3.entries == []
    assert Posting.objects.get(kind=K.REFUND).status == S.WAITING

    # the rest ships: the order posts, then its refund
    shipped = shipped_order((1, 1), status_id=14, modified=FULLY_SHIPPED, date_shipped=FULLY_SHIPPED)
    shipped["consignments"]["shipping"][0]["line_items"][0]["quantity_refunded"] = 1
    bc.put_order(shipped)
    run(shipped_tenant, bc, x3)
    assert [e.reference for e in x3.entries] == ["BC-abc123-250", "BC-abc123-250-R1"]
    assert x3.receivable_total() == D("97.20") - D("21.60")
    assert Posting.objects.get(kind=K.ORDER).gl_date == date(2026, 3, 9)


def test_a_cancelled_order_never_shipped_posts_nothing(shipped_tenant, bc, x3):
    bc.put_order(shipped_order((0, 0), status_id=11, modified=CREATED))
    run(shipped_tenant, bc, x3)
    bc.put_order(shipped_order((0, 0), status_id=5, modified=PART_SHIPPED))
    run(shipped_tenant, bc, x3)
    assert Posting.objects.get(kind=K.ORDER).status == S.SKIPPED and x3.entries == []


def test_in_daily_summary_mode_the_shipment_date_decides_the_day(shipped_tenant, bc, x3, monkeypatch):
    queued: list[int] = []
    monkeypatch.setattr("connector.tasks.enqueue_posting", queued.append)
    shipped_tenant.posting_mode = Tenant.PostingMode.DAILY_SUMMARY
    shipped_tenant.save()
    bc.put_order(shipped_order((0, 0), status_id=11, modified=CREATED))
    run(shipped_tenant, bc, x3)
    # the order's creation day closes: nothing of this order is in it
    assert close_due_days(now=datetime(2026, 3, 6, 1, 30, tzinfo=UTC)) == "summaries=0"
    bc.put_order(shipped_order((2, 1), status_id=2, modified=FULLY_SHIPPED, date_shipped=FULLY_SHIPPED))
    run(shipped_tenant, bc, x3)
    base = Posting.objects.get(kind=K.ORDER)
    assert base.status == S.IN_SUMMARY and base.gl_date == date(2026, 3, 9)
    assert close_due_days(now=datetime(2026, 3, 9, 1, 30, tzinfo=UTC)) == "summaries=0"  # Mar 8 has nothing
    assert close_due_days(now=datetime(2026, 3, 10, 1, 30, tzinfo=UTC)) == "summaries=1"
    summary = Posting.objects.get(kind=K.SUMMARY)
    assert summary.gl_date == date(2026, 3, 9) and list(
        summary.members.values_list("order_id", flat=True)
    ) == [250]


def test_the_reconciliation_poll_picks_up_a_shipment_whose_webhook_was_lost(
    shipped_tenant, bc, x3, monkeypatch
):
    from connector.reconcile import reconcile_tenant

    queued: list[int] = []
    monkeypatch.setattr(
        "connector.tasks.enqueue_order_sync", lambda tenant_id, order_id: queued.append(order_id)
    )
    now = datetime(2026, 3, 9, 16, 0, tzinfo=UTC)
    bc.put_order(shipped_order((0, 0), status_id=11, modified=CREATED))
    run(shipped_tenant, bc, x3)
    assert (
        reconcile_tenant(
            shipped_tenant, bc_client=bc, now=datetime(2026, 3, 5, 12, 0, tzinfo=UTC)
        ).orders_queued
        == 0
    )
    # shipped; the statusUpdated webhook never arrives
    bc.put_order(shipped_order((2, 1), status_id=2, modified=FULLY_SHIPPED, date_shipped=FULLY_SHIPPED))
    reconcile_tenant(shipped_tenant, bc_client=bc, now=now)
    assert queued == [250]
    run(shipped_tenant, bc, x3, trigger="reconcile")  # what the queued sync does
    assert Posting.objects.get(kind=K.ORDER).status == S.POSTED and len(x3.entries) == 1
