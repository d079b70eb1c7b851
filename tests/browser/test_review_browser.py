"""Review before posting: an entry waits with the exact X3 request; the accountant approves it and it posts."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from accounting.models import Posting
from connector.models import Tenant
from connector.pipeline import deliver_posting, sync_order
from tests.browser.conftest import PASSWORD
from tests.conftest import order_json
from tests.fakes import FakeBigCommerce
from tests.test_exactly_once import FaultyX3

pytestmark = pytest.mark.django_db(transaction=True)


def test_approve_then_post(page, live_server, login, shot, tenant, django_user_model, monkeypatch):
    bc, x3, queued = FakeBigCommerce(), FaultyX3(), []
    monkeypatch.setattr("connector.clients.bigcommerce_client", lambda tenant: bc)
    monkeypatch.setattr("connector.clients.x3_client", lambda tenant: x3)
    monkeypatch.setattr("connector.tasks.enqueue_posting", queued.append)  # the worker is this test
    monkeypatch.setattr("connector.tasks.enqueue_order_sync", lambda *a: None)
    tenant.review_policy = Tenant.ReviewPolicy.ALL
    tenant.save()
    accountant = django_user_model.objects.create_user("anna", password=PASSWORD, is_staff=True)
    accountant.groups.add(Group.objects.get(name="Accountant"))
    tenant.users.add(accountant)
    csp_errors: list[str] = []
    page.on(
        "console", lambda msg: csp_errors.append(msg.text) if "Content Security Policy" in msg.text else None
    )

    bc.put_order(order_json(250))
    posting = Posting.objects.get(pk=sync_order(tenant=tenant, order_id=250, trigger="webhook").posting_id)
    assert posting.status == Posting.Status.AWAITING_APPROVAL and x3.entries == []

    login(page, "anna")
    page.goto(f"{live_server.url}/admin/accounting/posting/{posting.pk}/change/")
    banner = page.locator("#posting-banner").inner_text()
    assert "Awaiting your approval" in banner and "Nothing has been sent to Sage X3" in banner
    shot(page, "12-awaiting-approval")
    preview = page.locator(".field-x3_preview pre").inner_text().replace(" ", "").replace("\n", "")
    assert (
        f'"REFINT":"{posting.reference}"' in preview and '"ACC":"412000"' in preview
    )  # the api1 body, channel 2
    assert '"DEB":97.20' in preview  # the receivable at the currency's precision

    with page.expect_navigation():
        page.locator("#posting-banner button", has_text="Approve and post").click()
    message = page.locator("ul.messagelist:not(.audit-chain) li")
    assert message.count() == 1 and "approved and queued for posting" in message.inner_text()
    assert page.locator(".field-status .readonly").inner_text() == "Pending"  # approved, not yet in X3
    assert "not in the books yet" in page.locator("#posting-banner").inner_text()
    shot(page, "12b-approved-queued")
    assert queued == [posting.pk]
    assert deliver_posting(posting.pk) == "posted"  # the worker picks it up

    page.reload()
    posting.refresh_from_db()
    assert posting.status == Posting.Status.POSTED and len(x3.entries) == 1
    assert x3.entries[0].reference == posting.reference
    assert page.locator(".field-status .readonly").inner_text() == "Posted"
    assert page.locator(".field-x3_document_number .readonly").inner_text() == posting.x3_document_number
    assert page.locator("#posting-banner").count() == 0
    shot(page, "13-approved-and-posted")

    page.goto(f"{live_server.url}/admin/accounting/posting/")
    assert "Posted" in page.locator(f"input[value='{posting.pk}'] >> xpath=../..").inner_text()
    assert csp_errors == []
