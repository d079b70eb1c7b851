"""Review before posting: entries wait as "awaiting approval" with a preview; approval goes through the one gate."""

from __future__ import annotations

import csv
import json

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
