import csv
import re
from datetime import date
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from accounting.models import Posting
from connector.pipeline import sync_order
from tests.books import add_posting, add_refund
from tests.conftest import order_json
from tests.fakes import FakeBigCommerce, FakeX3


def test_report_shows_statuses_account_movements_and_problems(tenant):
    bc, x3 = FakeBigCommerce(), FakeX3()
    bc.put_order(order_json(250))
    bc.put_order(order_json(251, channel_id=99))
    for order_id in (250, 251):
        sync_order(tenant=tenant, order_id=order_id, trigger="webhook", bc_client=bc, x3_client=x3)
    out = StringIO()
    call_command("report", "--tenant", "acme", stdout=out)
    text = out.getvalue()
    assert "Posted" in text and "Needs mapping" in text
    assert (
        "  412000       USD           97.20           0.00          97.20  Receivable / payment clearing\n"
        in text
    )
    assert "order:251" in text and "channel 99" in text
    assert Decimal("97.20") == x3.receivable_total()


# --- Dates, kinds, CSV, bad input -----------------------------------------------------------------------------------


def _march_books(tenant):
    """In March: order 301 (posted), its refund (posted), an adjustment (needs attention), order 302 skipped.
    Outside: order 300 posted in February, order 303 posted in April, a reversal in April."""
    feb = add_posting(tenant, 300, day=date(2026, 2, 27), total="50.00", tax="0", shipping="0")
    mar = add_posting(tenant, 301, day=date(2026, 3, 2), total="108.00", tax="8.00", shipping="10.00")
    add_refund(tenant, mar, 9001, day=date(2026, 3, 9), amount="20.00")
    add_posting(
        tenant,
        301,
        day=date(2026, 3, 10),
        kind=Posting.Kind.ADJUSTMENT,
        key="adjustment:301:1",
        total="5.00",
        tax="0",
        shipping="0",
        status=Posting.Status.NEEDS_ATTENTION,
        last_error="X3 refused the entry",
    )
    add_posting(tenant, 302, day=date(2026, 3, 31), status=Posting.Status.SKIPPED)
    add_posting(tenant, 303, day=date(2026, 4, 1), total="70.00", tax="0", shipping="0")
    add_posting(
        tenant,
        300,
        day=date(2026, 4, 2),
        kind=Posting.Kind.REVERSAL,
        key="reversal:300:1",
        parent=feb,
        total="-50.00",
        tax="0",
        shipping="0",
    )


def test_report_counts_and_sums_only_the_gl_dates_asked_for(tenant):
    _march_books(tenant)
    out = StringIO()
    call_command("report", "--tenant", "acme", "--from", "2026-03-01", "--to", "2026-03-31", stdout=out)
    text = out.getvalue()
    assert "GL dates 2026-03-01 to 2026-03-31" in text
    # Postings by status: the February and April entries are not counted.
    assert re.search(r"^  Posted +2$", text, re.MULTILINE), text
    assert re.search(r"^  Needs attention +1$", text, re.MULTILINE)
    assert re.search(r"^  Skipped +1$", text, re.MULTILINE)
    # Entries by kind: posted, failed, skipped, not posted yet.
    assert re.search(r"^  orders +1 +0 +1 +0$", text, re.MULTILINE), text
    assert re.search(r"^  refunds +1 +0 +0 +0$", text, re.MULTILINE)
    assert re.search(r"^  adjustments +0 +1 +0 +0$", text, re.MULTILINE)
    assert re.search(r"^  reversals +0 +0 +0 +0$", text, re.MULTILINE)
    assert re.search(r"^  total +2 +1 +1 +0$", text, re.MULTILINE)
    # Receivable: 108.00 order - 20.00 refund, nothing of February's 50.00 or April's 70.00.
    assert re.search(r"^  411000 +USD +88\.00 +0\.00 +88\.00  Receivable", text, re.MULTILINE), text
    assert "adjustment:301:1" in text and "X3 refused the entry" in text

    everything = StringIO()
    call_command("report", "--tenant", "acme", stdout=everything)
    assert re.search(r"^  Posted +5$", everything.getvalue(), re.MULTILINE)
    assert re.search(r"^  reversals +1 +0 +0 +0$", everything.getvalue(), re.MULTILINE)
    assert re.search(r"^  411000 +USD +158\.00 +0\.00 +158\.00", everything.getvalue(), re.MULTILINE)


def test_report_csv_has_the_figures_of_the_text(tenant, tmp_path):
    _march_books(tenant)
    dates = ("--tenant", "acme", "--from", "2026-03-01", "--to", "2026-03-31")
    target = tmp_path / "march.csv"
    call_command("report", *dates, "--format", "csv", "--output", str(target), stderr=StringIO())
    with target.open(newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert list(rows[0]) == [
        "section",
        "key",
        "label",
        "status",
        "currency",
        "count",
        "debit",
        "credit",
        "net",
    ]

    def pick(section, key, status=None):
        return [
            r for r in rows if r["section"] == section and r["key"] == key and status in (None, r["status"])
        ]

    assert pick("status", "posted")[0]["count"] == "2"
    assert pick("status", "needs_attention")[0]["count"] == "1"
    assert pick("entries", "order", "posted")[0]["count"] == "1"
    assert pick("entries", "order", "skipped")[0]["count"] == "1"
    assert pick("entries", "adjustment", "failed")[0]["count"] == "1"
    assert pick("entries", "reversal", "posted")[0]["count"] == "0"
    receivable = pick("account", "411000")[0]
    assert (receivable["currency"], receivable["debit"], receivable["credit"], receivable["net"]) == (
        "USD",
        "88.00",
        "0.00",
        "88.00",
    )
    assert receivable["label"].startswith("Receivable")
    assert pick("attention", "adjustment:301:1")[0]["label"] == "X3 refused the entry"
    assert "2026-02" not in target.read_text() and len(pick("account", "411000")) == 1

    # The same to standard output.
    out = StringIO()
    call_command("report", *dates, "--format", "csv", stdout=out)
    assert out.getvalue().replace("\r\n", "\n") == target.read_text().replace("\r\n", "\n")


def test_report_amounts_at_the_currency_precision(tenant):
    add_posting(tenant, 400, day=date(2026, 3, 2), total="1500", tax="0", shipping="0", currency="JPY")
    add_posting(tenant, 401, day=date(2026, 3, 2), total="12.345", tax="0", shipping="0", currency="KWD")
    out = StringIO()
    call_command("report", "--tenant", "acme", stdout=out)
    assert re.search(r"^  411000 +JPY +1500 +0 +1500", out.getvalue(), re.MULTILINE), out.getvalue()
    assert re.search(r"^  411000 +KWD +12\.345 +0\.000 +12\.345", out.getvalue(), re.MULTILINE)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--from", "2026-13-01"), "--from '2026-13-01' is not a date"),
        (("--to", "31/03/2026"), "--to '31/03/2026' is not a date"),
        (("--from", "2026-04-01", "--to", "2026-03-01"), "--to (2026-03-01) is before --from (2026-04-01)"),
        (("--tenant", "nobody"), "No tenant 'nobody'; tenants: acme"),
        (("--format", "xlsx"), "invalid choice: 'xlsx'"),
        (("--bogus",), "unrecognized arguments: --bogus"),
    ],
)
def test_report_bad_input_is_one_line_and_exit_code_2(tenant, args, message):
    with pytest.raises(CommandError, match=re.escape(message)) as raised:
        call_command("report", *args)
    assert raised.value.returncode == 2
    assert "\n" not in str(raised.value)
