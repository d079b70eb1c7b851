"""Re-read from BigCommerce over real HTTP: an order edited and another placed while no webhook came are found by the
re-read of the period and posted through the normal pipeline (the adjustment and the missing entry, once each)."""

from __future__ import annotations

import time

import pytest
from django.db.models import Max, Min

from accounting.models import Posting
from connector import reconcile, tasks
from connector.models import Tenant
from simulators.stack import STORE_HASH, wait_for

pytestmark = pytest.mark.e2e
LINES = [{"name": "Mug", "price": "12.50", "quantity": 2, "cost_price": "4.00"}]


def test_reread_posts_what_the_webhooks_missed(stack, monkeypatch):
    first = stack.bc.create_order(STORE_HASH, status_id=11, channel_id=1, lines=LINES, shipping_cost="5.00")[
        "order"
    ]
    wait_for(
        lambda: Posting.objects.filter(status=Posting.Status.POSTED).count() == 1, timeout=60, what="order"
    )
    # Webhooks lost: an edit of the first order and a second order never reach the connector. BigCommerce's
    # date_modified has whole seconds, and an order planned from a modification of the same second counts as current:
    # make the edit a later modification, as a person's edit is.
    time.sleep(1.1)
    stack.bc.edit_order(STORE_HASH, first["id"], shipping_cost="9.00", fire_webhooks=False)
    second = stack.bc.create_order(
        STORE_HASH, status_id=11, channel_id=1, lines=LINES, shipping_cost="5.00", fire_webhooks=False
    )["order"]

    tenant = Tenant.objects.get()
    days = Posting.objects.aggregate(start=Min("gl_date"), end=Max("gl_date"))
    monkeypatch.setattr(
        tasks, "enqueue_reread", lambda run_id: None
    )  # run it here, not in the stack's workers
    started = reconcile.start_reread(tenant, days["start"], days["end"], channel_id=None)
    synced: list[int] = []
    monkeypatch.setattr(tasks, "enqueue_order_sync", lambda tenant_id, order_id: synced.append(order_id))
    assert reconcile.run_reread(started.run.pk) == "2 checked, 2 queued"
    assert sorted(synced) == sorted([first["id"], second["id"]])
    started.run.refresh_from_db()
    assert started.run.status == "done" and "2 differed from what was posted" in started.run.message

    # The queued syncs go through the normal pipeline (here run in the test process, as a worker would).
    from connector.pipeline import sync_order_by_id

    for order_id in synced:
        sync_order_by_id(tenant.pk, order_id)
    kinds = set(Posting.objects.filter(status=Posting.Status.POSTED).values_list("order_id", "kind"))
    assert kinds == {(first["id"], "order"), (first["id"], "adjustment"), (second["id"], "order")}
    assert len(stack.entries(reference=f"BC-{STORE_HASH}-{second['id']}")) == 1
    # A second re-read finds everything current.
    again = reconcile.start_reread(tenant, days["start"], days["end"], channel_id=None)
    assert reconcile.run_reread(again.run.pk) == "2 checked, 0 queued"
