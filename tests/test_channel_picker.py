"""The channel mapping form and import pick the channel among the store's channels (cached from /v3/channels)."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from accounting.models import ChannelMapping
from connector.models import StoreChannel, Tenant
from tests.test_mapping_versions import import_rows, row

ADD = "/admin/accounting/channelmapping/add/"


def cache_channels(tenant, *channels: tuple[int, str]) -> None:
    for channel_id, name in channels:
        StoreChannel.objects.create(
            tenant=tenant,
            channel_id=channel_id,
            name=name,
            type="storefront" if channel_id == 1 else "marketplace",
            status="active",
            refreshed_at=timezone.now(),
        )


def channel_select(page: str) -> str:
    found = re.search(r'<select name="channel_id"[^>]*>(.*?)</select>', page, re.DOTALL)
    assert found, "the channel is not a list"
    return found.group(1)


def add_form_data(tenant, channel_id, effective_from="2026-01-01") -> dict:
    return {
        "tenant": tenant.pk,
        "channel_id": channel_id,
        "effective_from": effective_from,
        "name": "Web",
        "is_active": "on",
        "receivable_account": "411000",
        "revenue_account": "701000",
        "shipping_account": "708000",
        "tax_account": "445700",
        "dimensions": "{}",
    }


def test_add_form_lists_the_tenants_store_channels_with_the_linked_one_selected(admin_client, tenant):
    cache_channels(tenant, (1, "Main storefront"), (2, "Amazon EU"))
    page = admin_client.get(ADD, {"tenant": tenant.pk, "channel_id": 2}).content.decode()
    options = channel_select(page)
    assert "1 · Main storefront (storefront, active)" in options
    assert '<option value="2" selected>2 · Amazon EU (marketplace, active)</option>' in options
    assert "not in the list BigCommerce last gave" not in page


def test_a_linked_channel_missing_from_the_list_is_not_silently_replaced(admin_client, tenant):
    cache_channels(tenant, (1, "Main storefront"))
    page = admin_client.get(ADD, {"tenant": tenant.pk, "channel_id": 7}).content.decode()
    options = channel_select(page)
    assert options.strip().startswith('<option value="">— pick') and "selected" not in options
    assert "Channel 7 (from the link you followed) is not in the list BigCommerce last gave" in page


def test_without_cached_names_the_channel_stays_a_number_with_how_to_load_names(admin_client, tenant):
    page = admin_client.get(ADD, {"tenant": tenant.pk, "channel_id": 2}).content.decode()
    assert '<select name="channel_id"' not in page
    assert re.search(r'<input type="number" name="channel_id" value="2"', page)
    assert "Refresh channel names" in page and "reconciliation page" in page
    # and any number saves
    response = admin_client.post(ADD, add_form_data(tenant, 9))
    assert response.status_code == 302 and ChannelMapping.objects.filter(tenant=tenant, channel_id=9).exists()


def test_saving_a_channel_the_store_does_not_have_lists_the_valid_ones(admin_client, tenant):
    cache_channels(tenant, (1, "Main storefront"), (2, "Amazon EU"))
    response = admin_client.post(ADD, add_form_data(tenant, 9))
    assert response.status_code == 200
    page = response.content.decode()
    assert "Channel 9 is not one of this store&#x27;s channels" in page
    assert "1 · Main storefront (storefront, active); 2 · Amazon EU (marketplace, active)" in page
    assert not ChannelMapping.objects.filter(tenant=tenant, channel_id=9).exists()

    ok = admin_client.post(ADD, add_form_data(tenant, 2, effective_from="2026-02-01"))
    assert ok.status_code == 302
    assert ChannelMapping.objects.filter(tenant=tenant, channel_id=2, effective_from="2026-02-01").exists()


def test_change_form_keeps_an_already_mapped_channel_the_store_no_longer_lists(admin_client, tenant):
    cache_channels(tenant, (1, "Main storefront"), (2, "Amazon EU"))
    mapping = ChannelMapping.objects.get(tenant=tenant, channel_id=3)
    url = f"/admin/accounting/channelmapping/{mapping.pk}/change/"
    options = channel_select(admin_client.get(url).content.decode())
    assert '<option value="3" selected>3 · not in the store&#x27;s channel list any more' in options
    assert "— pick" not in options
    data = add_form_data(tenant, 3, effective_from=mapping.effective_from.isoformat())
    data["name"] = "Renamed"
    assert admin_client.post(url, data).status_code == 302
    mapping.refresh_from_db()
    assert mapping.name == "Renamed"


def test_another_merchants_channels_are_never_listed(client, tenant, django_user_model):
    other = Tenant.objects.create(slug="other", name="Other Shop", rounding_account="658000")
    cache_channels(other, (5, "Secret outlet"))
    user = django_user_model.objects.create_user("op", password="pw-op-12345", is_staff=True)
    user.groups.add(Group.objects.get(name="Operator"))
    tenant.users.add(user)
    client.force_login(user)
    page = client.get(ADD, {"tenant": other.pk}).content.decode()
    assert "Secret outlet" not in page and '<select name="channel_id"' not in page
    # posting the other tenant is refused by the scoped tenant field, whatever the channel
    response = client.post(ADD, add_form_data(other, 5))
    assert response.status_code == 200 and not ChannelMapping.objects.filter(tenant=other).exists()


def test_import_refuses_a_channel_the_store_does_not_have_in_plain_words(tenant):
    cache_channels(tenant, (1, "Main storefront"), (2, "Amazon EU"))
    bad = import_rows(row(channel_id=9, effective_from="2026-04-01"))
    assert bad.has_validation_errors()
    errors = str(bad.invalid_rows[0].error_dict)
    assert "Channel 9 is not one of this store's channels" in errors and "2 · Amazon EU" in errors
    assert not ChannelMapping.objects.filter(tenant=tenant, channel_id=9).exists()

    good = import_rows(row(channel_id=2, effective_from="2026-04-01"))
    assert not good.has_validation_errors() and not good.has_errors()
    # an existing version of a channel the store no longer lists stays importable (its channel did exist)
    kept = import_rows(row(channel_id=3, name="Channel three"))
    assert not kept.has_validation_errors(), kept.invalid_rows and kept.invalid_rows[0].error_dict


def test_import_without_cached_names_accepts_any_channel(tenant):
    result = import_rows(row(channel_id=9, effective_from="2026-04-01"))
    assert not result.has_validation_errors() and not result.has_errors()


@pytest.mark.parametrize("who", ["failure queue", "guided setup"])
def test_links_that_prefill_the_add_form_keep_working(admin_client, tenant, who):
    cache_channels(tenant, (1, "Main storefront"), (2, "Amazon EU"))
    ChannelMapping.objects.filter(tenant=tenant, channel_id=2).delete()
    query = {"tenant": tenant.pk, "channel_id": 2}
    if who == "guided setup":
        query["name"] = "Amazon EU"
    page = admin_client.get(ADD, query).content.decode()
    assert '<option value="2" selected>' in channel_select(page)
    assert f'<option value="{tenant.pk}" selected>' in page


def test_postings_filter_by_channel_shows_names_and_keeps_the_channel_id_parameter(admin_client, tenant):
    from datetime import date

    from tests.books import add_posting

    cache_channels(tenant, (1, "Main storefront"), (2, "Amazon EU"))
    add_posting(tenant, 501, day=date(2026, 11, 3), channel_id=1)
    add_posting(tenant, 502, day=date(2026, 11, 3), channel_id=2)
    listing = admin_client.get("/admin/accounting/posting/").content.decode()
    filters = listing.split('id="changelist-filter"')[1]
    assert "2 · Amazon EU" in filters and "1 · Main storefront" in filters
    only_2 = admin_client.get("/admin/accounting/posting/", {"channel_id": 2}).content.decode()
    assert "Order 502" in only_2 and "Order 501" not in only_2
    bad = admin_client.get("/admin/accounting/posting/", {"channel_id": "x"})
    assert bad.status_code == 200 and "Order 501" not in bad.content.decode()


def test_without_a_tenant_the_form_says_how_to_get_the_list(admin_client, tenant):
    cache_channels(tenant, (1, "Main storefront"))
    page = admin_client.get(ADD).content.decode()
    assert '<select name="channel_id"' not in page and "guided setup" in page
    # the posted tenant's channels are still checked
    response = admin_client.post(ADD, add_form_data(tenant, 9))
    assert response.status_code == 200 and "Channel 9 is not one of this store" in response.content.decode()
