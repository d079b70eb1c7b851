"""The reconciliation poll finds what webhooks missed and re-activates hooks BigCommerce switched off."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from connector.models import Tenant
from connector.pipeline import sync_order
from connector.reconcile import reconcile_all, reconcile_tenant
from integrations.bigcommerce.types import Hook
from tests.conftest import order_json
from tests.fakes import FakeBigCommerce, FakeX3

NOW = datetime(2026, 3, 6, 12, 0, tzinfo=UTC)


@pytest.fixture
def queued(monkeypatch):
    calls: list[tuple[int, int]] = []
    monkeypatch.setattr("connector.tasks.enqueue_order_sync", lambda t, o: calls.append((t, o)))
    return calls


def test_orders_and_refunds_the_webhooks_missed_are_queued(tenant, queued):
    bc, x3 = FakeBigCommerce(), FakeX3()
    # 250 was synced from its latest version; 251 never reached us; 252 changed after we saw it
    bc.put_order(order_json(250))
    bc.put_order(order_json(251))
    bc.put_order(order_json(252, status_id=7))
    for order_id in (250, 252):
        sync_order(tenant=tenant, order_id=order_id, trigger="webhook", bc_client=bc, x3_client=x3)
    bc.put_order(order_json(252, status_id=11, date_modified="Thu, 05 Mar 2026 23:00:00 +0000"))
    # a refund of 250 whose webhook was lost
    bc.add_refund(
        250,
        9,
        total="21.60",
        tax="1.60",
        created="2026-03-06T10:00:00+00:00",
        items=[{"item_type": "PRODUCT", "item_id": 11, "quantity": 1}],
    )

    result = reconcile_tenant(tenant, bc_client=bc, now=NOW)

    assert sorted(o for _, o in queued) == [250, 251, 252]
    assert (result.orders_checked, result.orders_queued, result.refunds_queued) == (3, 2, 1)
    tenant.refresh_from_db()
    assert tenant.reconciled_until == NOW


def test_nothing_is_queued_when_the_books_are_current_and_the_checkpoint_moves_on(tenant, queued):
    bc, x3 = FakeBigCommerce(), FakeX3()
    bc.put_order(order_json(250))
    sync_order(tenant=tenant, order_id=250, trigger="webhook", bc_client=bc, x3_client=x3)
    assert reconcile_tenant(tenant, bc_client=bc, now=NOW).orders_queued == 0
    assert queued == []
    # the next run starts from the checkpoint: an order modified long before it is not listed again
    tenant.refresh_from_db()
    assert reconcile_tenant(tenant, bc_client=bc, now=NOW).orders_checked == 0


def test_deactivated_hooks_for_this_tenant_are_switched_back_on(tenant, queued):
    bc = FakeBigCommerce()
    bc.hooks = [
        Hook(
            id=1,
            scope="store/order/created",
            destination="https://c.example.com/webhooks/bigcommerce/acme/",
            is_active=False,
        ),
        Hook(
            id=2, scope="store/order/created", destination="https://other.example.com/hook", is_active=False
        ),
    ]
    assert reconcile_tenant(tenant, bc_client=bc, now=NOW).hooks_reactivated == 1
    assert [h.is_active for h in bc.hooks] == [True, False]


def test_a_bigcommerce_failure_keeps_the_checkpoint(tenant, queued, monkeypatch):
    from integrations.errors import RetryableError

    class Down(FakeBigCommerce):
        def list_orders(self, **kw):
            raise RetryableError("BigCommerce is down")

    monkeypatch.setattr("connector.clients.bigcommerce_client", lambda t: Down())
    assert reconcile_all() == "acme: error"
    assert Tenant.objects.get(pk=tenant.pk).reconciled_until is None


def test_the_schedules_exist_after_migrate(db):
    from django_q.models import Schedule

    assert set(Schedule.objects.values_list("name", "func")) >= {
        ("connector-sweep", "connector.tasks.sweep"),
        ("connector-reconcile", "connector.tasks.reconcile"),
    }
