"""Tenant isolation and roles: a staff user sees only the tenants granted to them, everywhere in the admin."""

from __future__ import annotations

from datetime import date

import pytest
from django.contrib.auth.models import Group

from accounting.models import ChannelMapping, Posting
from connector.access import tenants_for
from connector.models import Tenant, WebhookEvent
from tests.books import add_posting

CHANGELIST = "/admin/accounting/posting/"
DAY = date(2026, 11, 5)


@pytest.fixture
def two_tenants(db):
    a = Tenant.objects.create(slug="alpha", name="Alpha Shop", rounding_account="658000")
    b = Tenant.objects.create(slug="bravo", name="Bravo Shop", rounding_account="658000")
    ChannelMapping.objects.create(
        tenant=b,
        channel_id=1,
        receivable_account="411",
        revenue_account="701",
        shipping_account="708",
        tax_account="4457",
        name="Bravo web",
    )
    add_posting(a, 1001, day=DAY, total="111.11")
    add_posting(b, 9009, day=DAY, total="999.99")
    add_posting(b, 9010, day=DAY, status=Posting.Status.NEEDS_ATTENTION, last_error="Period closed")
    WebhookEvent.objects.create(tenant=b, scope="store/order/created", order_id=9009, delivery_key="k-b")
    return a, b


@pytest.fixture
def accountant_a(two_tenants, django_user_model):
    a, _ = two_tenants
    user = django_user_model.objects.create_user("anna", password="pw-anna-123", is_staff=True)
    user.groups.add(Group.objects.get(name="Accountant"))
    a.users.add(user)
    return user


@pytest.fixture
def client_a(client, accountant_a):
    client.force_login(accountant_a)
    return client


def test_groups_are_created_by_migration(db):
    accountant = set(Group.objects.get(name="Accountant").permissions.values_list("codename", flat=True))
    operator = set(Group.objects.get(name="Operator").permissions.values_list("codename", flat=True))
    assert {"view_posting", "operate_posting", "export_posting"} <= accountant
    assert "change_tenant" not in accountant and "change_channelmapping" not in accountant
    assert {"change_tenant", "change_x3connection", "change_channelmapping"} <= operator
    assert "operate_posting" not in operator


def test_tenants_for(two_tenants, accountant_a, admin_user):
    a, b = two_tenants
    assert list(tenants_for(accountant_a)) == [a]
    assert set(tenants_for(admin_user)) == {a, b}


def test_other_tenants_posting_is_404(client_a, two_tenants):
    _, b = two_tenants
    other = Posting.objects.get(order_id=9009)
    assert client_a.get(f"{CHANGELIST}{other.pk}/change/").status_code == 404
    assert client_a.get(f"{CHANGELIST}{other.pk}/history/").status_code == 404
    own = Posting.objects.get(order_id=1001)
    assert client_a.get(f"{CHANGELIST}{own.pk}/change/").status_code == 200


def test_lists_show_only_own_tenants(client_a, two_tenants):
    page = client_a.get(CHANGELIST).content.decode()
    assert "1001" in page and "9009" not in page and "9010" not in page and "Bravo" not in page
    page = client_a.get(CHANGELIST, {"q": "9009"}).content.decode()
    assert "0 results" in page  # a superuser gets "1 result" here
    page = client_a.get("/admin/connector/webhookevent/").content.decode()
    assert "9009" not in page
    page = client_a.get("/admin/connector/tenant/").content.decode()
    assert "Alpha Shop" in page and "Bravo Shop" not in page
    _, b = two_tenants
    assert client_a.get(f"/admin/connector/tenant/{b.pk}/change/").status_code == 404
    page = client_a.get("/admin/accounting/channelmapping/").content.decode()
    assert "Bravo web" not in page


def test_actions_cannot_touch_other_tenants(client_a, two_tenants):
    other = Posting.objects.get(order_id=9010)
    client_a.post(CHANGELIST, {"action": "retry_now", "_selected_action": [other.pk]}, follow=True)
    other.refresh_from_db()
    assert other.status == Posting.Status.NEEDS_ATTENTION and other.attempts == 0


def test_superuser_sees_every_tenant(admin_client, two_tenants):
    page = admin_client.get(CHANGELIST).content.decode()
    assert "1001" in page and "9009" in page


def test_only_a_superuser_grants_tenants(client, two_tenants, django_user_model):
    a, b = two_tenants
    operator = django_user_model.objects.create_user("otto", password="pw-otto-123", is_staff=True)
    operator.groups.add(Group.objects.get(name="Operator"))
    a.users.add(operator)
    client.force_login(operator)
    page = client.get(f"/admin/connector/tenant/{a.pk}/change/").content.decode()
    assert 'name="users"' not in page


def test_workspace_shows_only_own_tenants(client_a, two_tenants):
    a, b = two_tenants
    params = {"period": "custom", "start": "2026-11-01", "end": "2026-11-30"}
    for url in ("/admin/workspace/reconciliation/", "/admin/workspace/trial-balance/"):
        assert client_a.get(url, {**params, "tenant": b.pk}).status_code == 404
        page = client_a.get(url, params).content.decode()
        assert "Alpha Shop" in page and "Bravo Shop" not in page and "999.99" not in page
        export = client_a.get(url, {**params, "export": "csv"}).content.decode("utf-8-sig")
        assert "111.11" in export and "999.99" not in export
    assert client_a.get("/admin/workspace/dashboard/", {"tenant": b.pk}).status_code == 404
    page = client_a.get("/admin/workspace/dashboard/").content.decode()
    assert "Alpha Shop" in page and "Bravo Shop" not in page
    export = client_a.get("/admin/workspace/dashboard/", {"export": "csv"}).content.decode("utf-8-sig")
    assert "Alpha Shop" in export and "Bravo" not in export


def test_lines_drill_down_shows_only_own_tenants(client_a, two_tenants):
    page = client_a.get("/admin/accounting/postingline/").content.decode()
    assert ">Order 1001</a>" in page and "9009" not in page
