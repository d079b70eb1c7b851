"""BigCommerce test connection (unit HTTP): each scope tried read-only, 403s reported per scope, the admin page."""

from __future__ import annotations

import pytest
import responses

from connector.clients import bigcommerce_client
from integrations.bigcommerce.connection import check_store
from tests.conftest import ACCESS_TOKEN, BC_BASE, STORE_HASH

API = f"{BC_BASE}/stores/{STORE_HASH}"
CHANNELS = {
    "data": [
        {
            "id": 1,
            "name": "Main storefront",
            "type": "storefront",
            "platform": "bigcommerce",
            "status": "active",
        },
        {"id": 2, "name": "Amazon EU", "type": "marketplace", "platform": "amazon", "status": "connected"},
    ],
    "meta": {"pagination": {"total": 2, "count": 2, "per_page": 50, "current_page": 1, "total_pages": 1}},
}
HOOKS = {
    "data": [],
    "meta": {"pagination": {"total": 0, "count": 0, "per_page": 50, "current_page": 1, "total_pages": 1}},
}
FORBIDDEN = {"status": 403, "title": "You don't have a required scope to access the endpoint"}


@pytest.fixture
def http():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


def test_all_scopes_present(tenant, http):
    http.get(f"{API}/v2/orders", status=204)
    http.get(f"{API}/v3/channels", json=CHANNELS)
    http.get(f"{API}/v3/hooks", json=HOOKS)
    check = check_store(bigcommerce_client(tenant))
    assert check.ok
    assert [c.name for c in check.channels] == ["Main storefront", "Amazon EU"]
    assert "no orders yet" in check.steps[2].detail


def test_orders_scope_missing_is_reported_and_the_rest_checked(tenant, http):
    http.get(f"{API}/v2/orders", status=403, json=FORBIDDEN)
    http.get(f"{API}/v3/channels", json=CHANNELS)
    http.get(f"{API}/v3/hooks", status=403, json=FORBIDDEN)
    check = check_store(bigcommerce_client(tenant))
    assert [(s.name.split(":")[0], s.ok) for s in check.steps] == [
        ("Store reachable", True),
        ("Access token accepted", True),
        ("Orders", False),
        ("Channels", True),
        ("Webhooks", False),
    ]
    assert "required scope" in check.steps[2].detail


def test_unreachable_store(tenant, http):
    import requests

    http.get(f"{API}/v2/orders", body=requests.ConnectionError("refused"))
    check = check_store(bigcommerce_client(tenant))
    assert [s.name for s in check.steps] == ["Store reachable"] and not check.ok


def test_admin_page_lists_steps_and_channels(admin_client, tenant, http):
    http.get(
        f"{API}/v2/orders",
        json=[
            {"id": 1, "date_modified": "Tue, 03 Nov 2026 10:00:00 +0000", "status_id": 11, "channel_id": 1}
        ],
    )
    http.get(f"{API}/v3/channels", json=CHANNELS)
    http.get(f"{API}/v3/hooks", json=HOOKS)
    url = f"/admin/connector/tenant/{tenant.pk}/bc-test/"
    assert "read-only calls" in admin_client.get(url).content.decode()
    html = admin_client.post(url).content.decode()
    assert "✓ Store reachable" in html and "✓ Orders: read" in html and "All checks passed." in html
    assert "Amazon EU (marketplace, amazon, connected)" in html
    assert ACCESS_TOKEN not in html
    change = admin_client.get(f"/admin/connector/tenant/{tenant.pk}/change/").content.decode()
    assert url in change
