"""Guided setup page: step states from the database, outside calls only on POST buttons, tenant scoping, roles."""

from __future__ import annotations

import re

import pytest
import responses
from django.contrib.auth.models import Group
from django.utils import timezone

from accounting.models import ChannelMapping, GlAccount, GlChart, Posting
from connector.intake import ORDER_SCOPES
from connector.models import BigCommerceStore, SetupCheck, Tenant
from tests.conftest import BC_BASE, STORE_HASH, X3_ENTRY_URL, order_json, order_url
from tests.test_bc_connection import CHANNELS, HOOKS
from tests.test_commands import hook

API = f"{BC_BASE}/stores/{STORE_HASH}"


def page_url(tenant) -> str:
    return f"/admin/connector/tenant/{tenant.pk}/setup/"


@pytest.fixture
def http():
    # Nothing registered answers: a GET of the page that called out would fail with a ConnectionError.
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


def states(page: str) -> dict[str, str]:
    """step key → its state, read from the rendered page."""
    return dict(
        re.findall(r'id="step-([a-z_0-9]+)">\s*<h2><span class="setup-state setup-state-([a-z]+)"', page)
    )


def serve_store(http) -> None:
    http.get(f"{API}/v2/orders", status=204)
    http.get(f"{API}/v3/channels", json=CHANNELS)
    http.get(f"{API}/v3/hooks", json=HOOKS)


def test_a_get_calls_nothing_and_shows_each_step_state(admin_client, tenant, http):
    page = admin_client.get(page_url(tenant)).content.decode()
    assert len(http.calls) == 0
    got = states(page)
    assert got["bc_credentials"] == "done" and got["x3_settings"] == "done"
    assert got["bc_test"] == "missing" and "Not tested yet." in page
    assert got["channels"] == "missing" and got["mappings"] == "missing"
    assert got["chart"] == "optional" and got["preview"] == "missing" and got["webhooks"] == "missing"
    assert 'name="csrfmiddlewaretoken"' in page and "style=" not in page and "<script>" not in page


def test_missing_credentials_say_what_to_do(admin_client, tenant):
    BigCommerceStore.objects.filter(tenant=tenant).update(access_token="")
    page = admin_client.get(page_url(tenant)).content.decode()
    assert states(page)["bc_credentials"] == "missing"
    assert "The access token is not set." in page and "Open the tenant" in page


def test_bc_test_button_records_the_outcome_and_the_channels(admin_client, tenant, http):
    serve_store(http)
    answer = admin_client.post(page_url(tenant), {"action": "bc_test"})
    assert answer.status_code == 302
    check = SetupCheck.objects.get(tenant=tenant, step="bc_test")
    assert (
        check.ok
        and SetupCheck.objects.get(tenant=tenant, step="channels").details[0]["name"] == "Main storefront"
    )
    page = admin_client.get(page_url(tenant)).content.decode()
    got = states(page)
    assert got["bc_test"] == "done" and got["channels"] == "done"
    # channel 1 and 2 are mapped by the fixture; the store lists 1 and 2: mapped. Channel 3 is mapped but unknown.
    assert got["mappings"] == "done" and "The store does not list this channel." in page
    # New credentials make the last test stale.
    store = tenant.bigcommerce
    store.access_token = "a-new-token-0123456789"
    store.save()
    assert states(admin_client.get(page_url(tenant)).content.decode())["bc_test"] == "missing"


def test_a_401_is_failed_with_the_reason(admin_client, tenant, http):
    http.get(f"{API}/v2/orders", status=401, json={"status": 401, "title": "Unauthorized"})
    admin_client.post(page_url(tenant), {"action": "bc_test"})
    page = admin_client.get(page_url(tenant)).content.decode()
    assert states(page)["bc_test"] == "failed" and "✗" in page


def test_unmapped_channels_get_prefilled_add_links(admin_client, tenant, http):
    ChannelMapping.objects.filter(tenant=tenant, channel_id=2).delete()
    serve_store(http)
    admin_client.post(page_url(tenant), {"action": "channels"})
    page = admin_client.get(page_url(tenant)).content.decode()
    assert states(page)["mappings"] == "missing" and "1 of 2 channel(s) not mapped: 2 (Amazon EU)" in page
    assert (
        f"/admin/accounting/channelmapping/add/?tenant={tenant.pk}&amp;channel_id=2&amp;name=Amazon+EU"
        in page
    )
    add = admin_client.get(
        f"/admin/accounting/channelmapping/add/?tenant={tenant.pk}&channel_id=2&name=Amazon+EU"
    )
    assert 'value="Amazon EU"' in add.content.decode()
    # the channel step cached the store's channels: the add form picks channel 2 from the list by name
    assert '<option value="2" selected>2 · Amazon EU' in add.content.decode()


def test_x3_test_button_and_chart_step(admin_client, tenant, http):
    http.get(X3_ENTRY_URL, json={"$resources": []})
    admin_client.post(page_url(tenant), {"action": "x3_test"})
    check = SetupCheck.objects.get(tenant=tenant, step="x3_test")
    assert check.ok, check.summary
    assert [c.request.url.split("?")[0] for c in http.calls] == [X3_ENTRY_URL]
    GlChart.objects.create(tenant=tenant, ok=False, message="Sage X3 returned no accounts")
    page = admin_client.get(page_url(tenant)).content.decode()
    assert states(page)["x3_test"] == "done" and states(page)["chart"] == "failed"
    assert "The last read failed: Sage X3 returned no accounts" in page


def test_dry_run_button_renders_tables_and_stores_nothing(admin_client, tenant, http):
    GlAccount.objects.create(tenant=tenant, code="412000", name="Customers web", refreshed_at=timezone.now())
    order = order_json(250)
    http.get(
        f"{API}/v2/orders", json=[{k: order[k] for k in ("id", "date_modified", "status_id", "channel_id")}]
    )
    http.get(order_url(250), json=order)
    answer = admin_client.post(page_url(tenant), {"action": "preview", "last": "5"})
    page = answer.content.decode()
    assert answer.status_code == 200 and 'id="preview-order-250"' in page
    assert "Balanced" in page and "Customers web" in page and "BC-abc123-250" in page
    assert "is not in the Sage X3 chart of accounts" in page  # the other accounts: gaps
    assert Posting.objects.count() == 0
    assert all(c.request.url.startswith(BC_BASE) for c in http.calls)
    check = SetupCheck.objects.get(tenant=tenant, step="preview")
    assert not check.ok and "gap(s) to fix" in check.summary
    assert states(admin_client.get(page_url(tenant)).content.decode())["preview"] == "failed"


def test_dry_run_bad_number_is_400(admin_client, tenant):
    assert admin_client.post(page_url(tenant), {"action": "preview", "last": "abc"}).status_code == 400
    assert admin_client.post(page_url(tenant), {"action": "nothing"}).status_code == 400


def test_register_webhooks_button(admin_client, tenant, http):
    http.get(f"{API}/v3/hooks", json=HOOKS)
    created = http.post(f"{API}/v3/hooks", json={"data": hook(1, "store/order/created"), "meta": {}})
    admin_client.post(page_url(tenant), {"action": "webhooks", "base_url": "https://connector.example.com"})
    check = SetupCheck.objects.get(tenant=tenant, step="webhooks")
    assert created.call_count == len(ORDER_SCOPES) and check.ok
    assert check.summary == "Webhooks point at https://connector.example.com/webhooks/bigcommerce/acme/"
    assert states(admin_client.get(page_url(tenant)).content.decode())["webhooks"] == "done"
    bad = admin_client.post(page_url(tenant), {"action": "webhooks", "base_url": "not a url"}, follow=True)
    assert "Give the public address" in bad.content.decode()


def test_other_tenants_are_404_and_accountants_cannot_run_credential_steps(
    client, tenant, django_user_model, http
):
    other = Tenant.objects.create(slug="other", name="Other")
    user = django_user_model.objects.create_user("anna", password="pw-anna-123", is_staff=True)
    user.groups.add(Group.objects.get(name="Accountant"))
    tenant.users.add(user)
    client.force_login(user)
    assert client.get(page_url(other)).status_code == 404
    assert client.post(page_url(other), {"action": "bc_test"}).status_code == 404
    page = client.get(page_url(tenant)).content.decode()
    assert "An operator runs this step." in page and 'value="bc_test"' not in page
    assert client.post(page_url(tenant), {"action": "bc_test"}).status_code == 403
    assert len(http.calls) == 0
    index = client.get("/admin/connector/tenant/setup/").content.decode()
    assert "Acme Ltd" in index and "Other" not in index


def test_links_from_the_tenant_page_and_the_admin_index(admin_client, tenant):
    change = admin_client.get(f"/admin/connector/tenant/{tenant.pk}/change/").content.decode()
    assert f'href="/admin/connector/tenant/{tenant.pk}/setup/"' in change
    assert 'href="/admin/connector/tenant/setup/"' in admin_client.get("/admin/").content.decode()


def test_staff_without_tenant_permissions_cannot_open_it(client, tenant, django_user_model):
    user = django_user_model.objects.create_user("sam", password="pw-sam-12345", is_staff=True)
    tenant.users.add(user)
    client.force_login(user)
    assert client.get(page_url(tenant)).status_code == 403
