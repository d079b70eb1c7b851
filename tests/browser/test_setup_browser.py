"""The guided setup in a real browser: an operator tests the store, reads the channels and runs the dry run."""

from __future__ import annotations

import pytest
import responses

from accounting.models import ChannelMapping, Posting
from tests.browser.conftest import PASSWORD
from tests.conftest import BC_BASE, STORE_HASH, order_json, order_url
from tests.test_bc_connection import CHANNELS, HOOKS

pytestmark = pytest.mark.django_db(transaction=True)
API = f"{BC_BASE}/stores/{STORE_HASH}"


def test_guided_setup_dry_run(page, live_server, login, shot, tenant, django_user_model):
    django_user_model.objects.create_superuser("olga", "olga@example.com", PASSWORD)
    ChannelMapping.objects.filter(tenant=tenant, channel_id=2).delete()
    violations: list[str] = []
    page.on(
        "console", lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None
    )
    orders = [order_json(251, channel_id=2), order_json(250, channel_id=1, total_inc_tax="98.21")]
    with responses.RequestsMock(assert_all_requests_are_fired=False) as http:
        http.add_passthru(live_server.url)
        http.get(
            f"{API}/v2/orders",
            json=[{k: o[k] for k in ("id", "date_modified", "status_id", "channel_id")} for o in orders],
        )
        for order in orders:
            http.get(order_url(order["id"]), json=order)
        http.get(f"{API}/v3/channels", json=CHANNELS)
        http.get(f"{API}/v3/hooks", json=HOOKS)

        login(page, "olga")
        with page.expect_navigation():
            page.click("#setup-links >> text=Guided setup")
        with page.expect_navigation():
            page.click("#setup-tenants >> text=Acme Ltd")
        assert page.locator("#step-bc_test .setup-state").inner_text().lower() == "missing"
        assert len(http.calls) == 0  # opening the page calls nothing

        with page.expect_navigation():
            page.click("#step-bc_test input[type=submit]")
        assert page.locator("#step-bc_test .setup-state").inner_text().lower() == "done"
        assert page.locator("#step-channels .setup-state").inner_text().lower() == "done"
        mappings = page.locator("#step-mappings")
        assert mappings.locator(".setup-state").first.inner_text().lower() == "missing"
        assert "2 (Amazon EU)" in mappings.inner_text()

        page.fill("#id_last", "2")
        with page.expect_navigation():
            page.click("#step-preview input[type=submit]")
        preview = page.locator("#setup-preview")
        assert "nothing sent to Sage X3" in preview.inner_text()
        order_250 = page.locator("#preview-order-250")
        assert "Balanced" in order_250.inner_text() and order_250.locator("tr.setup-rounding").count() == 1
        assert "No GL mapping for channel 2" in page.locator("#preview-order-251").inner_text()
        shot(page, "setup-01-guided-setup-dry-run")
    assert Posting.objects.count() == 0
    assert violations == []
