"""The admin as an operations console: read-only records, re-post and retry actions that call the services."""

from __future__ import annotations

import pytest
import responses

from accounting.models import Posting
from connector.models import WebhookEvent
from connector.pipeline import sync_order
from tests.conftest import X3_ENTRY_URL, order_json, order_url

S = Posting.Status
CHANGELIST = "/admin/accounting/posting/"


@pytest.fixture
def http():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


def act(admin_client, action: str, ids: list[int], url: str = CHANGELIST):
    return admin_client.post(url, {"action": action, "_selected_action": ids}, follow=True)


def test_changelist_filters_and_search(admin_client, tenant, http):
    http.get(order_url(250), json=order_json(250, status_id=1))
    http.get(order_url(251), json=order_json(251, channel_id=99))
    sync_order(tenant=tenant, order_id=250, trigger="webhook")
    sync_order(tenant=tenant, order_id=251, trigger="webhook")
    page = admin_client.get(CHANGELIST, {"status__exact": "needs_mapping"}).content.decode()
    assert "251" in page and ">250<" not in page
    page = admin_client.get(CHANGELIST, {"q": "250"}).content.decode()
    assert "Waiting (order not confirmed)</b>" in page and "Needs mapping</b>" not in page


def test_posting_pages_are_read_only(admin_client, tenant, http):
    http.get(order_url(250), json=order_json(250))
    http.post(X3_ENTRY_URL, json={"NUM": "ODG-1"}, status=201)
    sync_order(tenant=tenant, order_id=250, trigger="webhook")
    posting = Posting.objects.get()
    url = f"{CHANGELIST}{posting.pk}/change/"
    page = admin_client.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert "ODG-1" in html and "127.20 = 127.20" in html
    assert 'name="_save"' not in html
    assert admin_client.post(url, {"description": "x"}).status_code == 403
    assert admin_client.post(f"{CHANGELIST}{posting.pk}/delete/", {"post": "yes"}).status_code == 403
    assert admin_client.get(f"{CHANGELIST}add/").status_code == 403


def test_repost_of_a_posted_order_posts_nothing(admin_client, tenant, http):
    http.get(order_url(250), json=order_json(250))
    http.post(X3_ENTRY_URL, json={"NUM": "ODG-1"}, status=201)
    sync_order(tenant=tenant, order_id=250, trigger="webhook")
    posting = Posting.objects.get()

    response = act(admin_client, "repost_orders", [posting.pk])

    # Nothing was done: said as a warning, never as a success.
    assert "Re-post order: 1 skipped because already posted." in response.content.decode()
    assert [m.level_tag for m in response.context["messages"]] == ["warning"]
    assert len([c for c in http.calls if c.request.method == "POST"]) == 1
    assert len([c for c in http.calls if c.request.method == "GET"]) == 2  # it did re-fetch the order


def test_repost_after_fixing_a_mapping_posts_and_records_the_user(admin_client, tenant, http):
    http.get(order_url(251), json=order_json(251, channel_id=99))
    sync_order(tenant=tenant, order_id=251, trigger="webhook")
    posting = Posting.objects.get()
    tenant.channel_mappings.filter(channel_id=1).update(channel_id=99)
    http.post(X3_ENTRY_URL, json={"NUM": "ODG-2"}, status=201)

    response = act(admin_client, "repost_orders", [posting.pk])

    posting.refresh_from_db()
    assert posting.status == S.POSTED and posting.x3_document_number == "ODG-2"
    assert posting.trigger == Posting.Trigger.ADMIN
    assert posting.log.filter(user__username="admin").exists()
    assert "Order 251: rebuilt from the current order (status: Posted)" in response.content.decode()


def test_retry_now_requeues_a_needs_attention_posting(admin_client, tenant, http):
    http.get(order_url(250), json=order_json(250))
    http.post(
        X3_ENTRY_URL, status=400, json={"$diagnoses": [{"$severity": "error", "$message": "Period closed"}]}
    )
    sync_order(tenant=tenant, order_id=250, trigger="webhook")
    posting = Posting.objects.get()
    assert posting.status == S.NEEDS_ATTENTION
    http.replace(responses.POST, X3_ENTRY_URL, json={"NUM": "ODG-3"}, status=201)

    act(admin_client, "retry_now", [posting.pk])

    posting.refresh_from_db()
    assert posting.status == S.POSTED and posting.x3_document_number == "ODG-3"


def test_actions_need_the_operate_permission(client, tenant, django_user_model, http):
    from django.contrib.auth.models import Permission

    http.get(order_url(250), json=order_json(250, status_id=1))
    sync_order(tenant=tenant, order_id=250, trigger="webhook")  # the action bar only shows with rows

    user = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_posting", "view_webhookevent"]))
    tenant.users.add(user)  # staff see only the tenants granted to them
    client.force_login(user)
    page = client.get(CHANGELIST).content.decode()
    assert "repost_orders" not in page
    user.user_permissions.add(Permission.objects.get(codename="operate_posting"))
    user = django_user_model.objects.get(pk=user.pk)
    client.force_login(user)
    assert "repost_orders" in client.get(CHANGELIST).content.decode()


def test_failed_event_retry_action(admin_client, tenant, http):
    http.get(order_url(250), status=404, json={"title": "not found"})
    event = WebhookEvent.objects.create(
        tenant=tenant,
        delivery_key="k",
        scope="store/order/created",
        order_id=250,
        body="{}",
        verified_by="custom_header",
    )
    from connector.pipeline import process_event

    process_event(event.pk)
    http.replace(responses.GET, order_url(250), json=order_json(250, status_id=1))

    act(admin_client, "retry_events", [event.pk], url="/admin/connector/webhookevent/")

    event.refresh_from_db()
    assert event.status == WebhookEvent.Status.PROCESSED
    assert Posting.objects.get().status == S.WAITING


def test_raw_payload_is_visible_on_the_event_page(admin_client, tenant):
    event = WebhookEvent.objects.create(
        tenant=tenant,
        delivery_key="k",
        scope="store/order/created",
        order_id=1,
        body='{"scope": "store/order/created", "marker": "xyz-raw"}',
        verified_by="custom_header",
    )
    assert "xyz-raw" in admin_client.get(f"/admin/connector/webhookevent/{event.pk}/change/").content.decode()
