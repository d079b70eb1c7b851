"""Fix a mapping, then "Retry now": the corrected lines post (a real browser against the live server)."""

from __future__ import annotations

import pytest

from accounting.models import Posting
from connector.pipeline import sync_order
from tests.browser.conftest import PASSWORD
from tests.conftest import order_json
from tests.fakes import FakeBigCommerce
from tests.test_exactly_once import FaultyX3

pytestmark = pytest.mark.django_db(transaction=True)


def test_fix_a_mapping_then_retry_posts_the_corrected_lines(
    page, live_server, login, shot, tenant, django_user_model, monkeypatch
):
    bc, x3 = FakeBigCommerce(), FaultyX3()
    monkeypatch.setattr("connector.clients.bigcommerce_client", lambda tenant: bc)
    monkeypatch.setattr("connector.clients.x3_client", lambda tenant: x3)
    monkeypatch.setattr("connector.tasks.enqueue_posting", lambda pk: None)
    monkeypatch.setattr("connector.tasks.enqueue_order_sync", lambda *a: None)
    django_user_model.objects.create_superuser("root", "root@example.com", PASSWORD)
    bc.put_order(order_json(250, channel_id=7))
    posting = Posting.objects.get(pk=sync_order(tenant=tenant, order_id=250, trigger="webhook").posting_id)
    assert posting.status == Posting.Status.NEEDS_MAPPING

    login(page, "root")
    page.goto(f"{live_server.url}/admin/accounting/posting/{posting.pk}/change/")
    assert "There is no GL mapping for channel 7." in page.locator("#posting-banner").inner_text()
    with page.expect_navigation():
        page.locator("#posting-banner a", has_text="Open the channel mapping").click()
    assert page.input_value("#id_channel_id") == "7"  # the add form, filled in for this tenant and channel
    assert page.input_value("#id_tenant") == str(tenant.pk)
    for field, account in (
        ("receivable_account", "417000"),
        ("revenue_account", "707000"),
        ("shipping_account", "707800"),
        ("tax_account", "447570"),
    ):
        page.fill(f"#id_{field}", account)
    with page.expect_navigation():
        page.click("input[name=_save]")
    assert page.locator("ul.messagelist li.success").count() == 1

    page.goto(f"{live_server.url}/admin/accounting/posting/")
    page.check(f"input[name=_selected_action][value='{posting.pk}']")
    page.select_option("select[name=action]", "retry_now")
    with page.expect_navigation():
        page.click("button[name=index]")
    message = page.locator("ul.messagelist:not(.audit-chain) li")  # the audit-chain lines are separate
    assert message.count() == 1 and message.inner_text() == "Retry now: 1 posted."
    assert "success" in (message.get_attribute("class") or "")
    shot(page, "09-retry-after-mapping-fix")

    posting.refresh_from_db()
    assert posting.status == Posting.Status.POSTED
    assert len(x3.entries) == 1
    accounts = {line.account for line in x3.entries[0].lines}
    assert {"417000", "707000", "447570"} <= accounts


def test_a_bulk_retry_shows_its_progress_and_one_summary(
    page, live_server, login, shot, tenant, django_user_model, monkeypatch, settings
):
    from connector import bulk
    from connector.models import BulkOperation

    bc, x3 = FakeBigCommerce(), FaultyX3()
    monkeypatch.setattr("connector.clients.bigcommerce_client", lambda tenant: bc)
    monkeypatch.setattr("connector.clients.x3_client", lambda tenant: x3)
    monkeypatch.setattr("connector.tasks.enqueue_posting", lambda pk: None)
    monkeypatch.setattr("connector.tasks.enqueue_bulk", lambda pk: None)  # the worker is this test
    settings.CONNECTOR = {**settings.CONNECTOR, "BULK_INLINE_MAX": 1}
    django_user_model.objects.create_superuser("root", "root@example.com", PASSWORD)
    x3.create_fault = "refusal-400"
    for order_id in (260, 261, 262):
        bc.put_order(order_json(order_id))
        sync_order(tenant=tenant, order_id=order_id, trigger="webhook")
    x3.create_fault = "ok"
    csp_errors: list[str] = []
    page.on(
        "console", lambda msg: csp_errors.append(msg.text) if "Content Security Policy" in msg.text else None
    )

    login(page, "root")
    page.goto(f"{live_server.url}/admin/accounting/posting/")
    page.check("#action-toggle")
    page.select_option("select[name=action]", "retry_now")
    with page.expect_navigation():
        page.click("button[name=index]")
    batch = BulkOperation.objects.get()
    assert page.url.endswith(f"/admin/accounting/posting/bulk/{batch.pk}/")
    assert page.locator("#bulk-progress").get_attribute("value") == "0"
    assert page.locator("meta[http-equiv=refresh]").count() == 1
    shot(page, "10-bulk-progress")

    bulk.run_batch(batch.pk)
    page.reload()
    assert page.locator("#bulk-progress").get_attribute("value") == "3"
    assert page.locator("#bulk-summary li").inner_text() == "Retry now: 3 posted."
    assert page.locator("meta[http-equiv=refresh]").count() == 0
    shot(page, "11-bulk-done")
    assert csp_errors == [] and len(x3.entries) == 3
