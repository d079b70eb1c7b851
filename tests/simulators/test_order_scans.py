"""Order scans against the BigCommerce simulator: an order modified during a scan must not hide another one.

With page numbers (the code before keyset paging), an order on a page already read that is modified moves to the
end of the ``date_modified`` sort, every later order shifts one place back, and the first order of the next page
is never read. The store here holds more than one 250-order page so the default page size is exercised.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from connector.pipeline import orders_modified_between
from connector.reconcile import reconcile_tenant
from integrations.bigcommerce.client import BigCommerceClient, StoreConfig

STORE = "usstore01"
SINCE = datetime(2000, 1, 1, tzinfo=UTC)


def listed_orders(bc) -> dict[int, datetime]:
    """Every order the list endpoint shows (not deleted, not incomplete), straight from the simulator's data."""
    orders = bc.app.stores[STORE].data.orders.values()
    return {o.id: o.date_modified for o in orders if not o.is_deleted and o.status_id != 0}


@pytest.fixture
def store(bc):
    bc.ctl.generate_orders(STORE, 600, seed=11, fire_webhooks=False)
    assert len(listed_orders(bc)) > 500  # more than two pages of 250
    return bc


def modifying_client(bc) -> tuple[BigCommerceClient, list[int]]:
    """A real client; after its first list request, the oldest order already read is edited in the store."""
    client = BigCommerceClient(
        StoreConfig(store_hash=STORE, access_token="tok-us", api_base_url=bc.base_url, max_inline_wait=0)
    )
    edited: list[int] = []
    original = client.list_orders

    def list_orders(**params):
        rows = original(**params)
        if not edited and rows:
            edited.append(rows[0]["id"])
            bc.ctl.edit_order(STORE, rows[0]["id"], staff_notes="edited during the scan", fire_webhooks=False)
        return rows

    client.list_orders = list_orders  # type: ignore[method-assign]
    return client, edited


def test_range_replay_sees_every_order_modified_mid_scan(store):
    expected = set(listed_orders(store))
    client, edited = modifying_client(store)

    ids = list(orders_modified_between(None, SINCE, bc_client=client))

    assert edited, "the scan must have modified an order"
    assert set(ids) == expected
    assert len(ids) == len(expected)  # each once, the edited order included


def test_range_replay_upper_bound_is_sent_to_bigcommerce(store):
    dates = sorted(listed_orders(store).values())
    until = dates[len(dates) // 2]
    client = BigCommerceClient(
        StoreConfig(store_hash=STORE, access_token="tok-us", api_base_url=store.base_url)
    )

    ids = list(orders_modified_between(None, SINCE, until, bc_client=client))

    assert set(ids) == {i for i, when in listed_orders(store).items() if when <= until}
    assert all("max_date_modified=" in record.url for record in client.call_log)
    assert len(client.call_log) <= 3  # no paging through the orders after `until`


@pytest.mark.django_db
def test_reconciliation_sees_every_order_modified_mid_scan(store, tenant, monkeypatch):
    queued: list[int] = []
    monkeypatch.setattr(
        "connector.tasks.enqueue_order_sync", lambda tenant_id, order_id: queued.append(order_id)
    )
    expected = set(listed_orders(store))
    client, edited = modifying_client(store)
    tenant.reconciled_until = SINCE
    client.list_hooks = lambda: []  # type: ignore[method-assign]

    result = reconcile_tenant(tenant, bc_client=client, now=datetime.now(UTC))

    assert edited
    assert expected <= set(queued)
    assert result.orders_queued == len(expected)


def test_a_second_shared_by_more_than_a_page_of_orders_is_read_by_id(store):
    # 300 orders modified in the same second: a date keyset alone cannot get past it
    same = datetime(2026, 1, 15, 12, 0, 0, tzinfo=UTC)
    data = store.app.stores[STORE].data
    crowded = sorted(listed_orders(store))[:300]
    for order_id in crowded:
        data.orders[order_id].date_modified = same
    client = BigCommerceClient(
        StoreConfig(store_hash=STORE, access_token="tok-us", api_base_url=store.base_url)
    )

    ids = list(orders_modified_between(None, SINCE, bc_client=client))

    assert sorted(ids) == sorted(listed_orders(store))
    assert any("sort=id:asc" in r.url and "min_id=" in r.url for r in client.call_log)
