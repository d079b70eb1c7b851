"""Review before posting: entries wait as "awaiting approval" with a preview; approval goes through the one gate."""

from __future__ import annotations

import csv
import html
import json
import re

import pytest

from accounting.models import Posting
from connector.models import Tenant
from connector.operations import approve, reject
from connector.pipeline import deliver_posting, sync_order
from tests.conftest import X3_PASSWORD, order_json
from tests.fakes import FakeBigCommerce, FakeX3

S = Posting.Status


@pytest.fixture
def systems(tenant, monkeypatch):
    bc, x3, queued = FakeBigCommerce(), FakeX3(), []
    monkeypatch.setattr("connector.clients.bigcommerce_client", lambda tenant: bc)
    monkeypatch.setattr("connector.clients.x3_client", lambda tenant: x3)
    monkeypatch.setattr("connector.tasks.enqueue_posting", queued.append)
    return bc, x3, queued


def set_policy(tenant, policy: str) -> None:
    tenant.review_policy = policy
    tenant.save()


def test_review_all_holds_every_entry_until_approved(tenant, systems, admin_user):
    bc, x3, queued = systems
    set_policy(tenant, Tenant.ReviewPolicy.ALL)
    bc.put_order(order_json(250))
    result = sync_order(tenant=tenant, order_id=250, trigger="webhook")
    posting = Posting.objects.get(pk=result.posting_id)
    assert posting.status == S.AWAITING_APPROVAL and x3.entries == [] and result.submitted == ()
    assert posting.lines.count() > 0  # the preview has the lines that will be sent
    assert "awaiting an accountant's approval" in posting.log.last().message

    assert approve(Posting.objects.filter(pk=posting.pk), user=admin_user) == 1
    assert queued == [posting.pk]
    assert deliver_posting(posting.pk) == "posted"
    assert [e.reference for e in x3.entries] == [posting.reference]
    approved = posting.log.get(to_status=S.PENDING, from_status=S.AWAITING_APPROVAL)
    assert approved.user == admin_user and "Approved by admin" in approved.message


def test_flagged_policy_holds_only_entries_flagged_for_rounding(tenant, systems):
    bc, x3, _ = systems
    set_policy(tenant, Tenant.ReviewPolicy.FLAGGED)
    bc.put_order(order_json(250))
    bc.put_order(order_json(251, total_inc_tax="98.21"))  # one cent BigCommerce cannot explain: flagged
    sync_order(tenant=tenant, order_id=250, trigger="webhook")
    sync_order(tenant=tenant, order_id=251, trigger="webhook")
    statuses = dict(Posting.objects.values_list("order_id", "status"))
    assert statuses == {250: S.POSTED, 251: S.AWAITING_APPROVAL}
    assert Posting.objects.get(order_id=251).flagged


def test_nothing_is_sent_before_approval_by_sweep_or_retry(tenant, systems):
    from connector.operations import retry_now
    from connector.pipeline import sweep

    bc, x3, queued = systems
    set_policy(tenant, Tenant.ReviewPolicy.ALL)
    bc.put_order(order_json(250))
    posting = Posting.objects.get(pk=sync_order(tenant=tenant, order_id=250, trigger="webhook").posting_id)
    sweep()
    assert retry_now(Posting.objects.all()) == 0
    for pk in queued:
        deliver_posting(pk)
    assert deliver_posting(posting.pk) == "not-due"
    assert x3.entries == []


def test_a_changed_order_is_rebuilt_and_still_waits(tenant, systems):
    bc, x3, _ = systems
    set_policy(tenant, Tenant.ReviewPolicy.ALL)
    bc.put_order(order_json(250))
    sync_order(tenant=tenant, order_id=250, trigger="webhook")
    bc.put_order(order_json(250, shipping_ex="20.00", shipping_tax="1.60"))
    sync_order(tenant=tenant, order_id=250, trigger="webhook")
    posting = Posting.objects.get()
    assert posting.status == S.AWAITING_APPROVAL
    assert posting.snapshot["shipping_cost_ex_tax"] in ("20.00", "20.0000", "20")
    assert x3.entries == []


def test_reject_sends_nothing_and_says_who(tenant, systems, admin_user):
    bc, x3, _ = systems
    set_policy(tenant, Tenant.ReviewPolicy.ALL)
    bc.put_order(order_json(250))
    posting = Posting.objects.get(pk=sync_order(tenant=tenant, order_id=250, trigger="webhook").posting_id)
    assert reject(Posting.objects.all(), user=admin_user) == 1
    posting.refresh_from_db()
    assert posting.status == S.SKIPPED and x3.entries == []
    assert "Rejected by admin" in posting.log.last().message
    assert approve(Posting.objects.all(), user=admin_user) == 0  # no longer awaiting


def test_admin_shows_the_exact_x3_request_and_approves(tenant, systems, admin_client):
    bc, x3, queued = systems
    set_policy(tenant, Tenant.ReviewPolicy.ALL)
    bc.put_order(order_json(250))
    posting = Posting.objects.get(pk=sync_order(tenant=tenant, order_id=250, trigger="webhook").posting_id)
    page = admin_client.get(f"/admin/accounting/posting/{posting.pk}/change/").content.decode()
    assert "What is sent to X3" in page
    assert posting.reference in page and X3_PASSWORD not in page

    response = admin_client.post(
        "/admin/accounting/posting/", {"action": "approve", "_selected_action": [posting.pk]}, follow=True
    )
    assert "Approve and post: 1 approved and queued for posting." in response.content.decode()
    assert queued == [posting.pk]


def test_the_preview_is_the_body_the_rest_client_sends(tenant):
    from accounting.posting import entry_for
    from connector.clients import x3_client

    posting = Posting.objects.create(
        tenant=tenant, idempotency_key="order:9", order_id=9, reference="BC-abc123-9", currency="USD"
    )
    posting.lines.create(line_no=1, role="receivable", account="411000", debit="10.00")
    posting.lines.create(line_no=2, role="revenue", account="701000", credit="10.00")
    preview = x3_client(tenant).preview(entry_for(posting))
    body = json.loads(preview)
    assert "BC-abc123-9" in preview
    lines = next(v for v in body.values() if isinstance(v, list))
    amounts = sorted(str(value) for row in lines for value in row.values() if isinstance(value, int | float))
    assert "10.0" in amounts  # amounts are JSON numbers, as create_entry sends them


def test_the_dashboard_counts_entries_awaiting_approval(tenant, systems, admin_client):
    bc, _, _ = systems
    set_policy(tenant, Tenant.ReviewPolicy.ALL)
    bc.put_order(order_json(250))
    sync_order(tenant=tenant, order_id=250, trigger="webhook")
    response = admin_client.get("/admin/workspace/dashboard/?export=csv")
    rows = list(csv.reader(response.content.decode().splitlines()))
    header = next(r for r in rows if "Awaiting approval" in r)
    counts = next(r for r in rows[rows.index(header) + 1 :] if r and r[0] == "Acme Ltd")
    assert counts[header.index("Awaiting approval")] == "1"


# --- the posting page's buttons --------------------------------------------------------------------------------------


def awaiting(tenant, bc, order_id: int = 250) -> Posting:
    set_policy(tenant, Tenant.ReviewPolicy.ALL)
    bc.put_order(order_json(order_id))
    return Posting.objects.get(pk=sync_order(tenant=tenant, order_id=order_id, trigger="webhook").posting_id)


def test_posting_page_explains_the_wait_and_approves_with_one_button(tenant, systems, admin_client):
    bc, x3, queued = systems
    posting = awaiting(tenant, bc)
    url = f"/admin/accounting/posting/{posting.pk}/change/"
    page = admin_client.get(url).content.decode()
    banner = page.split('id="posting-banner"')[1].split("</div>")[0]
    assert "Awaiting your approval" in banner and "Nothing has been sent to Sage X3 yet" in banner
    assert 'value="approve"' in banner and 'value="reject"' in banner and "csrfmiddlewaretoken" in banner
    shown = html.unescape(page.split('class="x3-request">')[1].split("</pre>")[0])
    assert '"REFINT": "BC-abc123-250"' in shown and '"DEB": 97.20' in shown  # laid out; values as sent

    response = admin_client.post(f"/admin/accounting/posting/{posting.pk}/decide/", {"decision": "approve"})
    assert response.status_code == 302 and response["Location"] == url
    assert queued == [posting.pk] and Posting.objects.get(pk=posting.pk).status == S.PENDING
    page = admin_client.get(url).content.decode()
    assert "approved and queued for posting" in page and "not in the books yet" in page
    assert deliver_posting(posting.pk) == "posted" and len(x3.entries) == 1


def test_reject_button_sends_nothing_and_a_get_changes_nothing(tenant, systems, admin_client):
    bc, x3, queued = systems
    posting = awaiting(tenant, bc)
    decide = f"/admin/accounting/posting/{posting.pk}/decide/"
    assert admin_client.get(decide).status_code == 302
    assert Posting.objects.get(pk=posting.pk).status == S.AWAITING_APPROVAL
    admin_client.post(decide, {"decision": "something"})
    assert Posting.objects.get(pk=posting.pk).status == S.AWAITING_APPROVAL
    admin_client.post(decide, {"decision": "reject"})
    assert Posting.objects.get(pk=posting.pk).status == S.SKIPPED and queued == [] and x3.entries == []


def test_buttons_need_the_operate_permission_and_the_tenant(tenant, systems, client, django_user_model):
    from django.contrib.auth.models import Group

    bc, _, queued = systems
    posting = awaiting(tenant, bc)
    operator = django_user_model.objects.create_user("op", password="pw-op-12345", is_staff=True)
    operator.groups.add(Group.objects.get(name="Operator"))  # may see postings, may not approve
    tenant.users.add(operator)
    client.force_login(operator)
    page = client.get(f"/admin/accounting/posting/{posting.pk}/change/").content.decode()
    assert 'value="approve"' not in page
    assert (
        client.post(f"/admin/accounting/posting/{posting.pk}/decide/", {"decision": "approve"}).status_code
        == 403
    )

    stranger = django_user_model.objects.create_user("acc", password="pw-acc-12345", is_staff=True)
    stranger.groups.add(Group.objects.get(name="Accountant"))  # may approve, but not this merchant's entries
    client.force_login(stranger)
    response = client.post(f"/admin/accounting/posting/{posting.pk}/decide/", {"decision": "approve"})
    assert response.status_code == 404 and queued == []
    assert Posting.objects.get(pk=posting.pk).status == S.AWAITING_APPROVAL


def test_history_and_entry_fields_use_words_not_codes(tenant, systems, admin_client):
    bc, _, _ = systems
    posting = awaiting(tenant, bc)
    page = admin_client.get(f"/admin/accounting/posting/{posting.pk}/change/").content.decode()
    history = page.split('id="log-group"')[1]
    assert re.search(r'class="field-to_status_words">\s*<p>Awaiting approval</p>', history), history[:3000]
    assert "11 · Awaiting Fulfillment" in page and "2 · Channel 2" in page


def test_readable_json_adds_only_whitespace():
    from accounting.admin import readable_json

    body = '{"a":[1.00,{"b":"x,\\"}y"}],"c":{},"d":[],"e":"k: v"}'
    laid_out = readable_json(body)
    assert json.loads(laid_out) == json.loads(body)
    assert "1.00," in laid_out and '"x,\\"}y"' in laid_out and '"e": "k: v"' in laid_out
    assert laid_out.count("\n") > 5
    assert readable_json("<soap>1.00</soap>") == "<soap>1.00</soap>"
