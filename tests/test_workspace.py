"""The accountant's workspace: reconciliation, trial balance, dashboard and their exports."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import date
from decimal import Decimal

import pytest
from openpyxl import load_workbook

from accounting import figures
from accounting.models import Posting
from tests.books import add_posting, add_refund, november

S = Posting.Status
D = Decimal
NOV = figures.Period(date(2026, 11, 1), date(2026, 11, 30))
RECON = "/admin/workspace/reconciliation/"
TB = "/admin/workspace/trial-balance/"
DASH = "/admin/workspace/dashboard/"


@pytest.fixture
def month(tenant):
    november(tenant)
    return tenant


def test_reconciliation_rows_statuses_and_totals(month):
    result = figures.reconcile(month, NOV)
    rows = {(r.day, r.channel_id): r for r in result.rows}
    matched = rows[(date(2026, 11, 3), 1)]
    assert matched.status == figures.MATCHED and matched.orders == 2
    assert matched.bc["sales"] == D("162.00") == matched.gl["sales"]
    assert matched.gl["cogs"] == D("40.00") and matched.difference == 0
    differs = rows[(date(2026, 11, 3), 2)]
    assert differs.status == figures.DIFFERS and differs.problem_orders == [201]
    assert differs.bc["tax"] == D("8.00") and differs.gl["tax"] == D("7.00")
    assert differs.notes == "1 differs; tax +1.00"
    refund = rows[(date(2026, 11, 9), 1)]
    assert refund.status == figures.MATCHED and refund.bc["refunds"] == refund.gl["refunds"] == D("21.60")
    failed = rows[(date(2026, 11, 10), 1)]
    assert failed.status == figures.FAILED_STATUS
    assert failed.counts[figures.FAILED_STATUS] == 1 and failed.counts[figures.NOT_POSTED_YET] == 1
    assert failed.difference == D("50.00")  # 30 + 20 not in the GL yet
    (total,) = result.totals
    assert total.orders == 5 and total.refunds == 1
    assert total.bc["sales"] == D("312.00") and total.gl["sales"] == D("262.00")
    assert total.difference == D("50.00")
    assert all(r.day.month == 11 for r in result.rows)  # December's order is not in November


def test_edited_order_ties_out_on_its_own_day(tenant):
    base = add_posting(tenant, 300, day=date(2026, 11, 4), total="50.00", tax="4.00", shipping="5.00")
    newer = {**base.snapshot, "total_inc_tax": "60.00", "total_tax": "4.00", "shipping_cost_ex_tax": "5.00"}
    add_posting(
        tenant,
        300,
        day=date(2026, 11, 6),
        kind=Posting.Kind.ADJUSTMENT,
        key="adjustment:300:1",
        parent=base,
        snapshot=newer,
        gl=[("receivable", "411000", D("10.00"), 0), ("revenue", "701000", 0, D("10.00"))],
    )
    (row,) = figures.reconcile(tenant, NOV).rows
    assert row.day == date(2026, 11, 4) and row.status == figures.MATCHED and row.gl["sales"] == D("60.00")


def test_cancelled_order_counts_zero_and_its_reversal_matches(tenant):
    base = add_posting(tenant, 400, day=date(2026, 11, 4), total="50.00", tax="4.00", shipping="5.00")
    void = {**base.snapshot, "status_id": 5}
    add_posting(
        tenant,
        400,
        day=date(2026, 11, 5),
        kind=Posting.Kind.REVERSAL,
        key="reversal:400:1",
        parent=base,
        snapshot=void,
        gl=[
            ("receivable", "411000", D("-50.00"), 0),
            ("revenue", "701000", 0, D("-41.00")),
            ("shipping", "701800", 0, D("-5.00")),
            ("tax", "441570", 0, D("-4.00")),
        ],
    )
    (row,) = figures.reconcile(tenant, NOV).rows
    assert row.status == figures.MATCHED and row.bc["sales"] == 0 and row.gl["sales"] == 0


def test_trial_balance_balances_per_currency(month):
    result = figures.trial_balance(month, NOV)
    (total,) = result.totals
    assert total.debit == total.credit
    by_account = {(r.channel_id, r.account): r for r in result.rows}
    assert by_account[(1, "411000")].debit == D("162.00") - D("21.60")  # the refund is a storno debit
    assert by_account[(1, "411000")].credit == D("0.00")
    assert by_account[(1, "701000")].name == "Product revenue"
    # The refund's storno lines sit on the same sides with negative amounts.
    assert by_account[(1, "441570")].credit == D("12.00") - D("1.60")
    assert (1, "999") not in by_account  # December and unposted entries are not in November's balance


def test_periods():
    today = date(2026, 12, 3)
    assert figures.period_for("last_month", today) == NOV
    assert figures.period_for("month", today, on=date(2026, 2, 10)) == figures.Period(
        date(2026, 2, 1), date(2026, 2, 28)
    )
    assert figures.period_for("week", today) == figures.Period(date(2026, 11, 30), date(2026, 12, 6))
    with pytest.raises(figures.PeriodError):
        figures.period_for("custom", today, start=date(2026, 2, 1), end=date(2026, 1, 1))


def test_reconciliation_page(admin_client, month):
    page = admin_client.get(
        RECON, {"tenant": month.pk, "period": "custom", "start": "2026-11-01", "end": "2026-11-30"}
    )
    assert page.status_code == 200
    html = page.content.decode()
    assert "differs" in html and "failed" in html and "Total USD" in html
    assert "order_id__in=201" in html  # drill-down to the order behind the mismatch


def test_bad_period_is_a_400_with_words(admin_client, month):
    page = admin_client.get(
        RECON, {"tenant": month.pk, "period": "custom", "start": "2026-13-01", "end": "x"}
    )
    assert page.status_code == 400
    assert "must be a date like" in page.content.decode()


def _read_csv(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))


def test_reconciliation_exports_the_figures_on_screen(admin_client, month):
    params = {"tenant": month.pk, "period": "custom", "start": "2026-11-01", "end": "2026-11-30"}
    rows = _read_csv(admin_client.get(RECON, {**params, "export": "csv"}))
    header = rows[0]
    total = rows[-1]
    assert total[0] == "Total USD"
    assert total[header.index("BC sales")] == "312.00" and total[header.index("GL sales")] == "262.00"
    assert total[header.index("Difference")] == "50.00"
    book = load_workbook(io.BytesIO(admin_client.get(RECON, {**params, "export": "xlsx"}).content))
    sheet = book["Reconciliation"]
    values = list(sheet.values)
    assert list(values[0]) == header
    assert values[-1][header.index("BC sales")] == 312
    assert [str(v) if v is not None else "" for v in values[1]][: len(header)][0].startswith("2026-11-03")
    assert len(values) == len(rows)


def test_trial_balance_export(admin_client, month):
    params = {"tenant": month.pk, "period": "last_month", "export": "csv"}
    rows = _read_csv(
        admin_client.get(TB, {**params, "period": "custom", "start": "2026-11-01", "end": "2026-11-30"})
    )
    assert rows[0][:3] == ["Channel", "Account", "Name"]
    total = rows[-1]
    assert total[0] == "Total USD" and total[6] == total[7]


def test_dashboard_counts_and_links(admin_client, month):
    page = admin_client.get(DASH).content.decode()
    assert "Acme Ltd" in page
    assert "status__exact=needs_attention" in page
    # The chart's figures travel as json_script data for Chart.js; the table under it carries the same totals.
    chart = re.search(r'<canvas data-chart="(chart-[^"]+)"', page)
    assert chart, "no chart canvas"
    figures = json.loads(
        re.search(rf'<script id="{chart[1]}" type="application/json">(.*?)</script>', page, re.DOTALL)[1]
    )
    assert figures["unit"] == "USD" and len(figures["labels"]) == 30
    assert all(set(d) == {"label", "colour", "data"} for d in figures["datasets"])
    for dataset in figures["datasets"]:
        total = sum(Decimal(v) for v in dataset["data"])
        assert f"{total:,}" in page  # the legend table shows the same total at the currency's precision
    assert sum(Decimal(v) for d in figures["datasets"] for v in d["data"]) > 0
    assert "workspace/vendor/chart-4.4.7.umd.js" in page


def test_exports_need_the_export_permission(client, month, django_user_model):
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_posting"))
    month.users.add(user)
    client.force_login(user)
    assert client.get(RECON, {"tenant": month.pk}).status_code == 200
    assert client.get(RECON, {"tenant": month.pk, "export": "csv"}).status_code == 403


def _queries(client, url, params) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url, params).status_code == 200
    return len(ctx.captured_queries)


def test_pages_run_a_fixed_number_of_queries(admin_client, month):
    """No query per row: thirty more orders, refunds and failures cost no extra query on any page."""
    params = {"tenant": month.pk, "period": "custom", "start": "2026-11-01", "end": "2026-11-30"}
    pages = [(RECON, params), (TB, params), (DASH, {}), ("/admin/accounting/posting/", {})]
    before = [_queries(admin_client, url, p) for url, p in pages]
    for i in range(30):
        day = date(2026, 11, 1 + i % 28)
        parent = add_posting(
            month, 2000 + i, day=day, channel_id=1 + i % 3, total="12.34", tax="1.00", shipping="1"
        )
        if i % 5 == 0:
            add_refund(month, parent, 8000 + i, day=day, amount="2.00")
        if i % 7 == 0:
            add_posting(month, 3000 + i, day=day, status=S.NEEDS_MAPPING, channel_id=9)
    assert [_queries(admin_client, url, p) for url, p in pages] == before


def test_channel_filter_currency_precision_and_waiting_orders(tenant):
    add_posting(
        tenant, 600, day=date(2026, 11, 2), channel_id=1, total="108.00", tax="8.00", shipping="10.00"
    )
    add_posting(
        tenant,
        601,
        day=date(2026, 11, 2),
        channel_id=2,
        total="1500",
        tax="100",
        shipping="0",
        currency="JPY",
    )
    add_posting(tenant, 602, day=date(2026, 11, 2), channel_id=1, total="99.00", status=S.WAITING)
    only_2 = figures.reconcile(tenant, NOV, channel_id=2)
    (row,) = only_2.rows
    assert row.channel_id == 2 and row.currency == "JPY" and row.bc["sales"] == D("1500")
    assert str(row.bc["sales"]) == "1500"  # yen have no minor unit
    result = figures.reconcile(tenant, NOV)
    assert [t.currency for t in result.totals] == ["JPY", "USD"]
    usd = next(t for t in result.totals if t.currency == "USD")
    assert usd.orders == 1 and usd.bc["sales"] == D("108.00")  # the unconfirmed order is not a sale yet
    tb = figures.trial_balance(tenant, NOV, channel_id=2)
    assert {r.channel_id for r in tb.rows} == {2} and str(tb.totals[0].debit) == "1500"
