"""The postings list as a failure queue that explains itself, and the banner on a posting that needs a person."""

from __future__ import annotations

from datetime import date

from accounting.models import ChannelMapping, Posting
from tests.books import add_posting

S = Posting.Status
CHANGELIST = "/admin/accounting/posting/"
DAY = date(2026, 11, 5)


def test_reason_column_keeps_x3_message(admin_client, tenant):
    p = add_posting(
        tenant, 700, day=DAY, status=S.NEEDS_ATTENTION, last_error="GACCENTRY: period 11/2026 closed"
    )
    Posting.objects.filter(pk=p.pk).update(attempts=1)
    page = admin_client.get(CHANGELIST).content.decode()
    assert "Sage X3 refused the entry: GACCENTRY: period 11/2026 closed" in page


def test_inactive_mapping_is_named_as_such(admin_client, tenant):
    ChannelMapping.objects.filter(tenant=tenant, channel_id=3).update(is_active=False)
    add_posting(tenant, 701, day=DAY, channel_id=3, status=S.NEEDS_MAPPING)
    add_posting(tenant, 702, day=DAY, channel_id=9, status=S.NEEDS_MAPPING)
    page = admin_client.get(CHANGELIST).content.decode()
    assert "The GL mapping for channel 3 exists but is switched off (inactive)." in page
    assert "There is no GL mapping for channel 9." in page


def test_totals_of_filtered_rows_and_flag_only_when_flagged(admin_client, tenant):
    add_posting(tenant, 710, day=DAY, total="10.10")
    add_posting(tenant, 711, day=DAY, total="1000.05", flagged=True)
    add_posting(tenant, 712, day=DAY, total="5.00", currency="EUR")
    page = admin_client.get(CHANGELIST).content.decode()
    totals = page.split('id="posting-totals"')[1]
    assert "1,010.15 USD" in totals and "5.00 EUR" in totals
    assert page.count("⚑ flagged") == 1
    assert "icon-no.svg" not in page  # no red "not flagged" marks
    page = admin_client.get(CHANGELIST, {"currency": "EUR"}).content.decode()
    assert "1,010.15" not in page.split('id="posting-totals"')[1]


def test_banner_says_what_happened_and_what_to_do(admin_client, tenant):
    p = add_posting(
        tenant, 720, day=DAY, status=S.NEEDS_ATTENTION, last_error="Account 707999 does not exist"
    )
    Posting.objects.filter(pk=p.pk).update(attempts=1)
    html = admin_client.get(f"{CHANGELIST}{p.pk}/change/").content.decode()
    banner = html.split('id="posting-banner"')[1].split("</div>")[0]
    assert "Sage X3 refused this entry" in banner and "Account 707999 does not exist" in banner
    assert "Re-post order" in banner
    posted = add_posting(tenant, 721, day=DAY)
    assert 'id="posting-banner"' not in admin_client.get(f"{CHANGELIST}{posted.pk}/change/").content.decode()


def test_lines_at_currency_precision_with_the_unused_side_blank(admin_client, tenant):
    p = add_posting(tenant, 730, day=DAY, total="1234.50", tax="0", shipping="0")
    html = admin_client.get(f"{CHANGELIST}{p.pk}/change/").content.decode()
    lines = html.split('id="lines-group"')[1].split('id="log-group"')[0]
    assert "1,234.50" in lines and "1234.5000" not in lines and "0.0000" not in lines
    squeezed = "".join(lines.split())
    assert '<tdclass="field-credit_amount"><p></p></td>' in squeezed  # the unused side is blank
    assert "Total (receivable)" in html and "1,234.50 USD" in html
