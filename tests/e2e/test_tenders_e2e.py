"""Tenders over real HTTP: a gift certificate + card order read from the simulated BigCommerce (with its v3
transactions) posts one receivable line per tender to the simulated Sage X3."""

from __future__ import annotations

from decimal import Decimal

import pytest

from accounting.models import Posting, TenderMapping
from connector.models import Tenant
from simulators.stack import STORE_HASH
from tests.e2e.conftest import settle

pytestmark = pytest.mark.e2e
S = Posting.Status


def test_split_tender_posts_a_line_per_tender(stack):
    tenant = Tenant.objects.get()
    tenant.gift_certificate_account = "419100"
    tenant.save()
    TenderMapping.objects.create(tenant=tenant, gateway="braintree", account="511200", name="Cards")

    data = stack.bc.create_order(
        STORE_HASH,
        status_id=11,
        channel_id=1,
        lines=[{"name": "Mug", "price": "12.50", "quantity": 2, "cost_price": "4.00"}],
        shipping_cost="5.00",
        payment_provider_id="braintree",
        payment_status="captured",
        gift_certificate_amount="10.00",
    )["order"]

    settle(stack, lambda: Posting.objects.filter(status=S.POSTED).count() >= 1, timeout=90, what="the order")

    entry = stack.entries(reference=f"BC-{STORE_HASH}-{data['id']}")[0]
    debits = {
        line["ACC"]: Decimal(str(line["DEB"])) for line in entry["GACCENTRYD"] if Decimal(str(line["DEB"]))
    }
    assert debits["419100"] == Decimal("10.00")
    assert debits["511200"] == Decimal(data["total_inc_tax"]) - 10
    assert "411000" not in debits  # nothing left on the channel's receivable
