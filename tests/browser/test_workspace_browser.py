"""The accountant's month-end in a real browser: log in, dashboard, reconciliation, exports, failure banner."""

from __future__ import annotations

import csv
import io
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone
from openpyxl import load_workbook

from accounting.models import Posting
from tests.books import add_posting, november
from tests.browser.conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)
# What the Accountant group holds (tests/test_access.py checks the migration creates it); the live-server tests
# flush the database between tests, which removes the migration's groups, so the fixture builds the same one.
ACCOUNTANT = (
    "view_posting",
    "view_postingline",
    "view_postinglog",
    "view_postingattempt",
    "view_channelmapping",
    "operate_posting",
    "export_posting",
    "view_tenant",
    "view_webhookevent",
)
NOVEMBER = "?period=custom&start=2026-11-01&end=2026-11-30"


@pytest.fixture
def accountant(tenant, django_user_model):
    user = django_user_model.objects.create_user("alice", password=PASSWORD, is_staff=True)
    user.groups.add(Group.objects.get(name="Accountant"))
    tenant.users.add(user)
    november(tenant)
    return user


def test_login_and_dashboard_numbers(page, live_server, login, shot, accountant, tenant):
    today = timezone.localdate()
    add_posting(tenant, 900, day=today, total="250.00", tax="20.00", shipping="5.00")
    add_posting(tenant, 901, day=today, total="49.99", tax="4.00", shipping="0")
    login(page, "alice")
    assert page.locator("#workspace-links").is_visible()
    shot(page, "01-admin-index")
    with page.expect_navigation():
        page.click("#workspace-links >> text=Dashboard")
    card = page.locator(f"#tenant-{tenant.slug}")
    posted = card.locator("table.ws-posted tbody tr").first
    cells = posted.locator("td").all_inner_texts()
    assert cells[:3] == ["1 · Channel 1", "USD", "299.99"] and cells[3] == "2"
    attention = card.locator("table.ws-attention td").all_inner_texts()
    assert attention[0] == "1"  # needs attention: order 103
    page.wait_for_selector("canvas[data-drawn=true]")  # Chart.js (served from our static files) drew it
    lines = page.evaluate("Chart.getChart(document.querySelector('canvas[data-chart]')).data.datasets.length")
    assert lines == 1
    shot(page, "02-dashboard")
    with page.expect_navigation():
        card.locator("table.ws-attention td a").first.click()
    assert "status__exact=needs_attention" in page.url
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1 and "period 11/2026 is closed" in rows.first.inner_text()
    shot(page, "03-failure-queue")


def test_reconciliation_of_a_month(page, live_server, login, shot, accountant, tenant):
    login(page, "alice")
    page.goto(f"{live_server.url}/admin/workspace/reconciliation/")
    page.select_option("#ws-period", "custom")
    page.fill("input[name=start]", "2026-11-01")
    page.fill("input[name=end]", "2026-11-30")
    with page.expect_navigation():
        page.click("#ws-filters input[type=submit]")
    table = page.locator("#recon")
    statuses = [t.split("\n")[0] for t in table.locator("tbody tr td:nth-child(3)").all_inner_texts()]
    assert statuses == ["matched", "differs", "matched", "failed"]
    total = table.locator("tfoot tr").first.locator("td").all_inner_texts()
    assert [total[0], total[1], total[2].split("\n")[0], total[3]] == ["Total USD", "", "failed", "50.00"]
    assert "tax +1.00" in table.locator("tbody tr", has_text="differs").inner_text()
    assert total[7] == "312.00" and total[11] == "262.00"  # BigCommerce sales, GL sales
    shot(page, "04-reconciliation")
    with page.expect_navigation():
        table.locator("tbody tr", has_text="differs").locator("a", has_text="differs").click()
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1 and "201" in rows.first.inner_text()
    page.goto(f"{live_server.url}/admin/workspace/trial-balance/{NOVEMBER}&tenant={tenant.pk}")
    total = page.locator("#tb tfoot tr td").all_inner_texts()
    assert total[6] == total[7]
    shot(page, "05-trial-balance")
    with page.expect_navigation():
        page.locator("#tb tbody tr", has_text="701000").locator("a").first.click()
    assert page.locator("#line-totals").is_visible()
    shot(page, "06-lines-drill-down")


def test_exports_read_back(page, live_server, login, accountant, tenant):
    login(page, "alice")
    page.goto(f"{live_server.url}/admin/workspace/reconciliation/{NOVEMBER}&tenant={tenant.pk}")
    on_screen = page.locator("#recon tfoot tr td").all_inner_texts()
    with page.expect_download() as csv_download:
        page.click("#export-csv")
    rows = list(csv.reader(io.StringIO(Path(csv_download.value.path()).read_text(encoding="utf-8-sig"))))
    status, notes = on_screen[2].split("\n", 1)  # the status cell's second line is the file's last column
    assert rows[-1][:18] == [t.replace(",", "") for t in [*on_screen[:2], status, *on_screen[3:18]]]
    assert (
        rows[-1][18]
        == notes
        == "1 failed; 1 not posted yet; 1 differs; sales +50.00; tax +17.00; shipping +20.00"
    )
    with page.expect_download() as xlsx_download:
        page.click("#export-xlsx")
    assert xlsx_download.value.suggested_filename.endswith(".xlsx")
    sheet = load_workbook(io.BytesIO(Path(xlsx_download.value.path()).read_bytes()))["Reconciliation"]
    values = list(sheet.values)
    cent = Decimal("0.01")
    assert [Decimal(str(v)).quantize(cent) for v in values[-1][7:18]] == [
        Decimal(t.replace(",", "")) for t in on_screen[7:18]
    ]
    assert len(values) == len(rows)


def test_failure_banner(page, live_server, login, shot, accountant, tenant):
    login(page, "alice")
    refused = Posting.objects.get(order_id=103)
    page.goto(f"{live_server.url}/admin/accounting/posting/{refused.pk}/change/")
    banner = page.locator("#posting-banner")
    assert banner.is_visible()
    text = banner.inner_text()
    assert (
        "Sage X3 refused this entry" in text
        and "period 11/2026 is closed" in text
        and "Re-post order" in text
    )
    # The banner is the first thing on the page, above the fields.
    assert banner.bounding_box()["y"] < page.locator("fieldset").first.bounding_box()["y"]
    shot(page, "07-failure-banner")
    add_posting(tenant, 950, day=date(2026, 11, 12), channel_id=7, status=Posting.Status.NEEDS_MAPPING)
    unmapped = Posting.objects.get(order_id=950)
    page.goto(f"{live_server.url}/admin/accounting/posting/{unmapped.pk}/change/")
    assert "There is no GL mapping for channel 7." in page.locator("#posting-banner").inner_text()
    shot(page, "08-needs-mapping-banner")


def test_reread_and_tie_out_sections(page, live_server, login, shot, accountant, tenant, monkeypatch):
    from connector import tasks
    from connector.models import ReReadRun, TieOutRow, TieOutRun

    monkeypatch.setattr(tasks, "enqueue_reread", lambda run_id: None)  # the queue is not under test here
    missing = Posting.objects.filter(tenant=tenant, status=Posting.Status.POSTED).first()
    run = TieOutRun.objects.create(
        tenant=tenant,
        period_start=date(2026, 11, 1),
        period_end=date(2026, 11, 30),
        status="done",
        checked=4,
        matched=3,
        missing=1,
        compared="document number, accounting date, currency",
        message="The REST api1 + HTTP Basic lookup does not return the lines, so amounts could not be compared.",
        finished_at=timezone.now(),
    )
    TieOutRow.objects.create(
        run=run,
        posting=missing,
        reference="BC-acme-101",
        problem="missing",
        detail="X3 has no entry with this reference.",
    )
    login(page, "alice")
    page.goto(f"{live_server.url}/admin/workspace/reconciliation/{NOVEMBER}&tenant={tenant.pk}")
    assert "checked 4 entries" in page.locator("#tie-out-status").inner_text()
    assert page.locator("#tie-out-table tbody tr").count() == 1
    with page.expect_navigation():
        page.click("#reread-button")
    assert (
        "Re-reading 30 days from BigCommerce; refresh in a minute."
        in page.locator(".messagelist").inner_text()
    )
    assert "waiting for a worker" in page.locator("#reread-status").inner_text()
    assert ReReadRun.objects.get().status == "queued"
    shot(page, "07-reread-and-tie-out")
    with page.expect_navigation():
        page.locator("#tie-out-table tbody tr a").first.click()
    assert f"/admin/accounting/posting/{missing.pk}/change/" in page.url
