"""The mapping form picks the channel from the store's channels by name (a real browser against the live server)."""

from __future__ import annotations

import pytest
from django.utils import timezone

from accounting.models import ChannelMapping
from connector.models import StoreChannel
from tests.browser.conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)


def test_pick_a_channel_by_name_and_a_wrong_one_lists_the_valid_ones(
    page, live_server, login, shot, tenant, django_user_model
):
    django_user_model.objects.create_superuser("root", "root@example.com", PASSWORD)
    for channel_id, name, kind in ((1, "Main storefront", "storefront"), (5, "Amazon EU", "marketplace")):
        StoreChannel.objects.create(
            tenant=tenant,
            channel_id=channel_id,
            name=name,
            type=kind,
            status="active",
            refreshed_at=timezone.now(),
        )
    login(page, "root")
    page.goto(f"{live_server.url}/admin/accounting/channelmapping/add/?tenant={tenant.pk}&channel_id=5")
    select = page.locator("select#id_channel_id")
    assert select.input_value() == "5" and page.locator("label[for=id_channel_id]").inner_text() == "Channel:"
    assert "5 · Amazon EU (marketplace, active)" in select.inner_text()
    shot(page, "14-mapping-channel-picker")
    for field, account in (
        ("receivable_account", "415000"),
        ("revenue_account", "705000"),
        ("shipping_account", "705800"),
        ("tax_account", "445570"),
    ):
        page.fill(f"#id_{field}", account)
    with page.expect_navigation():
        page.click("input[name=_save]")
    assert page.locator("ul.messagelist li.success").count() == 1
    saved = ChannelMapping.objects.get(tenant=tenant, channel_id=5, revenue_account="705000")
    assert saved.name == "Amazon EU"  # left blank: the store's name
