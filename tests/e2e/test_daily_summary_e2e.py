"""Daily summary mode over real HTTP: a day of orders becomes one X3 entry per channel and currency."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from accounting.models import Posting
from connector.models import Tenant
from simulators.stack import STORE_HASH, TENANT, wait_for

pytestmark = pytest.mark.e2e
S, K = Posting.Status, Posting.Kind


def test_a_day_of_orders_becomes_one_entry_per_channel_and_currency(stack):
    # given a tenant in daily summary mode and yesterday's paid orders: two on channel 1, one on channel 2
    Tenant.objects.filter(slug=TENANT).update(posting_mode=Tenant.PostingMode.DAILY_SUMMARY)
    yesterday = (timezone.now() - timedelta(days=1)).replace(hour=12, minute=0, second=0, microsecond=0)
    orders = [
        stack.bc.create_order(
            STORE_HASH,
            status_id=11,
            channel_id=channel,
            date_created=yesterday.isoformat(),
            lines=[{"name": "Mug", "price": "12.50", "quantity": 2, "cost_price": "4.00"}],
            shipping_cost="5.00",
        )["order"]
        for channel in (1, 1, 2)
    ]
    in_summary = Posting.objects.filter(kind=K.ORDER, status=S.IN_SUMMARY)
    wait_for(lambda: in_summary.count() >= 3, timeout=60, what="three orders planned into the summary")
    assert stack.entries() == []  # nothing goes to X3 by itself

    # when yesterday is closed (twice: a repeated run changes nothing) and the workers deliver
    stack.manage("close_summaries")
    stack.manage("close_summaries")
    summaries = Posting.objects.filter(kind=K.SUMMARY)
    wait_for(lambda: summaries.filter(status=S.POSTED).count() == 2, timeout=60, what="two posted summaries")

    # then X3 holds one balanced entry per channel, and its receivable is the channel's orders' total
    assert summaries.count() == 2
    for channel, receivable in ((1, "411000"), (2, "411100")):
        summary = summaries.get(channel_id=channel)
        entries = stack.entries(reference=summary.reference)
        assert len(entries) == 1
        lines = entries[0]["GACCENTRYD"]
        assert sum(Decimal(str(line["DEB"])) for line in lines) == sum(
            Decimal(str(line["CDT"])) for line in lines
        )
        expected = sum(Decimal(o["total_inc_tax"]) for o in orders if o["channel_id"] == channel)
        assert sum(Decimal(str(line["DEB"])) for line in lines if line["ACC"] == receivable) == expected
        assert summary.members.count() == (2 if channel == 1 else 1)
    assert len(stack.entries()) == 2
