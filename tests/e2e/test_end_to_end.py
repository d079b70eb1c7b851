"""The whole job over real HTTP: simulated BigCommerce sends signed webhooks to the running connector, whose
workers re-read orders from the simulator and post to the simulated Sage X3."""

from __future__ import annotations

from decimal import Decimal

import pytest

from accounting.models import Posting
from simulators.stack import STORE_HASH, wait_for
from tests.e2e.conftest import settle

pytestmark = pytest.mark.e2e
S = Posting.Status


def posted(count: int):
    return lambda: Posting.objects.filter(status=S.POSTED).count() >= count


def order(stack, channel_id: int, **fields):
    lines = fields.pop("lines", [{"name": "Mug", "price": "12.50", "quantity": 2, "cost_price": "4.00"}])
    return stack.bc.create_order(
        STORE_HASH, status_id=11, channel_id=channel_id, lines=lines, shipping_cost="5.00", **fields
    )["order"]


def test_orders_from_three_channels_post_to_their_own_accounts(stack):
    # given three paid orders, one per storefront channel
    orders = {channel: order(stack, channel) for channel in (1, 2, 3)}

    # when BigCommerce's webhooks reach the connector
    wait_for(posted(3), timeout=60, what="three postings")

    # then X3 holds exactly one balanced entry per order, on that channel's accounts
    receivables = {1: "411000", 2: "411100", 3: "467000"}
    revenue = {1: "707000", 2: "707100", 3: "707200"}
    for channel, data in orders.items():
        entries = stack.entries(reference=f"BC-{STORE_HASH}-{data['id']}")
        assert len(entries) == 1
        lines = entries[0]["GACCENTRYD"]
        accounts = {line["ACC"] for line in lines}
        assert {receivables[channel], revenue[channel]} <= accounts
        assert sum(Decimal(str(line["DEB"])) for line in lines) == sum(
            Decimal(str(line["CDT"])) for line in lines
        )
        receivable = next(line for line in lines if line["ACC"] == receivables[channel])
        assert Decimal(str(receivable["DEB"])) == Decimal(data["total_inc_tax"])
        posting = Posting.objects.get(order_id=data["id"])
        assert posting.x3_document_number == entries[0]["NUM"]


def test_duplicate_deliveries_and_x3_errors_change_nothing(stack):
    # given BigCommerce delivers every webhook twice and X3 fails the first two creates with a 503
    stack.bc.webhook_settings(duplicate_rate=1.0)
    stack.x3.set_faults(fail_next=2, fail_status=503, methods=["POST"])
    data = order(stack, 2)

    # when the workers (and the sweep) are done
    settle(stack, posted(1))
    stack.bc.wait_for_webhooks()
    stack.manage("sweep")

    # then one entry, one posting, and every delivery was acknowledged
    assert len(stack.entries(reference=f"BC-{STORE_HASH}-{data['id']}")) == 1
    assert Posting.objects.filter(order_id=data["id"]).count() == 1
    deliveries = stack.bc.deliveries(STORE_HASH)
    assert deliveries and all(d.get("status") == 200 for d in deliveries if d.get("status") is not None)


def test_commit_then_dropped_response_leaves_exactly_one_entry(stack):
    # given X3 will store the next entry and then drop the connection without answering
    stack.x3.set_faults(drop_after_commit_next=1, methods=["POST"])
    data = order(stack, 1)

    # when the connector retries after the unknown outcome
    settle(stack, posted(1), what="the dropped posting")

    # then X3 holds the entry once: the retry found it by reference instead of posting again
    reference = f"BC-{STORE_HASH}-{data['id']}"
    assert len(stack.entries(reference=reference)) == 1
    posting = Posting.objects.get(order_id=data["id"])
    outcomes = list(posting.attempt_log.values_list("operation", "outcome"))
    assert ("create", "unknown") in outcomes and ("find", "ok") in outcomes


def test_refund_posts_a_negative_entry_on_the_order_accounts(stack):
    data = order(stack, 3)
    wait_for(posted(1), timeout=60, what="the order")
    stack.bc.refund(STORE_HASH, data["id"], full=True)
    settle(stack, posted(2), what="the refund")
    refund = Posting.objects.get(order_id=data["id"], kind=Posting.Kind.REFUND)
    assert refund.total == -Decimal(data["total_inc_tax"])
    entry = stack.entries(reference=refund.reference)[0]
    assert {line["ACC"] for line in entry["GACCENTRYD"]} <= {"467000", "707200", "708520", "445711"}
