from decimal import Decimal
from io import StringIO

from django.core.management import call_command

from connector.pipeline import sync_order
from tests.conftest import order_json
from tests.fakes import FakeBigCommerce, FakeX3


def test_report_shows_statuses_account_movements_and_problems(tenant):
    bc, x3 = FakeBigCommerce(), FakeX3()
    bc.put_order(order_json(250))
    bc.put_order(order_json(251, channel_id=99))
    for order_id in (250, 251):
        sync_order(tenant=tenant, order_id=order_id, trigger="webhook", bc_client=bc, x3_client=x3)
    out = StringIO()
    call_command("report", "--tenant", "acme", stdout=out)
    text = out.getvalue()
    assert "Posted" in text and "Needs mapping" in text
    assert "  412000       USD           97.20           0.00          97.20\n" in text
    assert "order:251" in text and "channel 99" in text
    assert Decimal("97.20") == x3.receivable_total()
