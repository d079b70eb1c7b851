"""Daily summary posting mode: one X3 entry per channel, currency and day (docs/decisions/0022)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accounting.journal import Line, build_order_journal, difference
from accounting.models import Posting
from accounting.summary import (
    MemberLine,
    SummaryPolicy,
    aggregate,
    goes_into_summary,
    is_day_closed,
    split_parts,
    totals_by_account,
)
from connector.models import Tenant
from connector.operations import approve
from connector.pipeline import deliver_posting, sweep, sync_order
from connector.summaries import close_due_days
from tests.conftest import order_json
from tests.fakes import FakeBigCommerce, FakeX3
from tests.test_journal import ACCOUNTS, POLICY, make_order, orders

S, K = Posting.Status, Posting.Kind
D = Decimal
MAR_5 = "Thu, 05 Mar 2026 10:00:00 +0000"
MAR_6 = "Fri, 06 Mar 2026 10:00:00 +0000"
AFTER_MAR_5 = datetime(2026, 3, 6, 1, 30, tzinfo=UTC)  # midnight + 60 minutes' grace passed (UTC)
AFTER_MAR_6 = datetime(2026, 3, 7, 1, 30, tzinfo=UTC)


# --- The pure part: both modes book the same amounts ---------------------------------------------------------------


@st.composite
def histories(draw):
    """Random order histories: each order posted, maybe edited (an adjustment), maybe cancelled (a reversal)."""
    members: list[MemberLine] = []
    for n in range(draw(st.integers(1, 6))):
        first = replace(draw(orders()), id=n + 1)
        posted = list(build_order_journal(first, ACCOUNTS, POLICY).lines)
        entries = [posted]
        if draw(st.booleans()):  # edited: only the difference is booked
            edited = build_order_journal(replace(draw(orders()), id=n + 1), ACCOUNTS, POLICY).lines
            entries.append(list(difference(edited, posted, description="adj")))
            posted = list(edited)
        if draw(st.booleans()):  # cancelled: everything booked so far is taken back
            entries.append(list(difference((), [line for e in entries for line in e], description="rev")))
        for i, lines in enumerate(entries):
            members += [MemberLine(posting_id=10 * n + i, order_id=n + 1, line=line) for line in lines]
    return members


@settings(max_examples=200, deadline=None)
@given(members=histories(), max_lines=st.integers(3, 12))
def test_summary_and_per_order_modes_book_the_same_amount_on_every_account(members, max_lines):
    per_order = totals_by_account(m.line for m in members)
    lines = aggregate(members, label="Daily summary")
    parts = split_parts(lines, max_lines=max_lines, clearing_account="CLEAR", label="x")

    assert totals_by_account(line.as_line() for line in lines) == per_order
    summarised = totals_by_account(line.as_line() for part in parts for line in part)
    assert summarised == per_order  # the clearing account nets to zero over the parts
    for part in parts:
        assert len(part) <= max_lines
        assert sum(line.net for line in part) == 0  # every part balances by itself
    for line in lines:  # drill-down: every line is the sum of the member amounts behind it
        assert sum(s.amount for s in line.sources) == line.net
        assert line.debit >= 0 and line.credit >= 0 and not (line.debit and line.credit)


def test_lines_aggregate_by_account_role_and_dimensions():
    line = Line(role="revenue", account="701", debit=D(0), credit=D("10.00"), description="")
    members = [
        MemberLine(1, 101, line, {"CCT": "A"}),
        MemberLine(2, 102, line, {"CCT": "A"}),
        MemberLine(3, 103, line, {"CCT": "B"}),
        MemberLine(4, 104, replace(line, role="shipping")),
    ]
    lines = aggregate(members)
    assert [(x.role, x.dimensions, x.credit) for x in lines] == [
        ("revenue", {"CCT": "A"}, D("20.00")),
        ("revenue", {"CCT": "B"}, D("10.00")),
        ("shipping", None, D("10.00")),
    ]
    assert [s.order_id for s in lines[0].sources] == [101, 102]


def test_a_split_summary_needs_a_clearing_account():
    lines = aggregate(
        MemberLine(1, 1, replace(ln, account=f"A{i}"))
        for i, ln in enumerate(build_order_journal(make_order(), ACCOUNTS, POLICY).lines)
    )
    assert len(lines) > 3
    with pytest.raises(ValueError, match="clearing account"):
        split_parts(lines, max_lines=3, clearing_account="")
    assert split_parts(lines, max_lines=len(lines), clearing_account="") == (lines,)  # fits: untouched


def test_mode_applies_by_the_entry_date_and_channel():
    policy = SummaryPolicy(daily_summary=True, mode_from=date(2026, 3, 15), channels=(2,))
    assert goes_into_summary(policy, date(2026, 3, 15), 2)
    assert not goes_into_summary(policy, date(2026, 3, 14), 2)
    assert not goes_into_summary(policy, date(2026, 3, 20), 1)  # not a summarised channel
    back = SummaryPolicy(daily_summary=False, mode_from=date(2026, 4, 1))  # switching back to per order
    assert goes_into_summary(back, date(2026, 3, 31), 2) and not goes_into_summary(back, date(2026, 4, 1), 2)
    assert not goes_into_summary(SummaryPolicy(daily_summary=False), date(2026, 3, 1), 2)


def test_a_day_closes_at_the_cutoff_plus_grace_in_the_tenants_zone():
    import zoneinfo

    paris = zoneinfo.ZoneInfo("Europe/Paris")
    policy = SummaryPolicy(daily_summary=True, cutoff=time(6, 0))
    day = date(2026, 3, 5)
    assert not is_day_closed(policy, day, paris, datetime(2026, 3, 6, 5, 59, tzinfo=UTC))  # 06:59 in Paris
    assert is_day_closed(
        policy, day, paris, datetime(2026, 3, 6, 6, 0, tzinfo=UTC)
    )  # 07:00 = 06:00 + 1 h grace


# --- With the database: the closing task, exactly once --------------------------------------------------------------


@pytest.fixture
def systems(tenant, monkeypatch):
    bc, x3, queued = FakeBigCommerce(), FakeX3(), []
    monkeypatch.setattr("connector.clients.bigcommerce_client", lambda tenant: bc)
    monkeypatch.setattr("connector.clients.x3_client", lambda tenant: x3)
    monkeypatch.setattr("connector.tasks.enqueue_posting", queued.append)
    monkeypatch.setattr("connector.tasks.enqueue_order_sync", lambda *a: None)
    tenant.posting_mode = Tenant.PostingMode.DAILY_SUMMARY
    tenant.save()
    return bc, x3, queued


def sync(bc, tenant, order_id: int, **order) -> None:
    bc.put_order(order_json(order_id, **order))
    sync_order(tenant=tenant, order_id=order_id, trigger="webhook")


def deliver_all(queued: list[int]) -> list[str]:
    results = [deliver_posting(pk) for pk in queued]
    queued.clear()
    return results


def account_totals_in_x3(x3: FakeX3) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = {}
    for entry in x3.entries:
        for line in entry.lines:
            totals[line.account] = totals.get(line.account, D(0)) + line.debit - line.credit
    return {account: amount for account, amount in totals.items() if amount}


def member_totals(tenant) -> dict[str, Decimal]:
    from accounting.planning import lines_of

    members = Posting.objects.filter(tenant=tenant).exclude(kind=K.SUMMARY).exclude(status=S.SKIPPED)
    return totals_by_account(lines_of(members))


def test_a_day_of_orders_becomes_one_entry_per_channel_and_currency(tenant, systems):
    bc, x3, queued = systems
    sync(bc, tenant, 250, date_created=MAR_5)
    sync(bc, tenant, 251, date_created=MAR_5)
    sync(bc, tenant, 252, date_created=MAR_5, channel_id=1)
    sync(bc, tenant, 253, date_created=MAR_5, currency="EUR")
    sync(bc, tenant, 254, date_created=MAR_6)  # the next day: not closed yet
    members = Posting.objects.filter(kind=K.ORDER)
    assert set(members.values_list("status", flat=True)) == {S.IN_SUMMARY} and x3.entries == []
    assert all(m.lines.exists() for m in members)  # each keeps its own lines: drill-down and reconciliation

    assert close_due_days(now=datetime(2026, 3, 6, 0, 30, tzinfo=UTC)) == "summaries=0"  # within the grace
    assert close_due_days(now=AFTER_MAR_5) == "summaries=3"
    assert deliver_all(queued) == ["posted"] * 3
    assert len(x3.entries) == 3
    summaries = Posting.objects.filter(kind=K.SUMMARY)
    assert {(s.channel_id, s.currency, s.gl_date) for s in summaries} == {
        (2, "USD", date(2026, 3, 5)),
        (1, "USD", date(2026, 3, 5)),
        (2, "EUR", date(2026, 3, 5)),
    }
    usd2 = summaries.get(channel_id=2, currency="USD")
    assert usd2.idempotency_key == "summary:2:USD:2026-03-05:1:1"
    assert usd2.status == S.POSTED and len(usd2.reference) <= 25
    assert sorted(usd2.members.values_list("order_id", flat=True)) == [250, 251]
    for line in usd2.snapshot["lines"]:  # every summary line drills down to the orders behind it
        assert {s["order"] for s in line["sources"]} <= {250, 251}
        assert sum(D(s["amount"]) for s in line["sources"]) == D(line["amount"])
    assert Posting.objects.get(order_id=254, kind=K.ORDER).summary is None
    # same amounts per account as the per-order entries of the summarised day
    day = Posting.objects.filter(kind=K.ORDER, gl_date=date(2026, 3, 5))
    from accounting.planning import lines_of

    assert account_totals_in_x3(x3) == totals_by_account(lines_of(day))


def test_closing_twice_or_after_a_lost_run_posts_each_order_once(tenant, systems):
    bc, x3, queued = systems
    sync(bc, tenant, 250, date_created=MAR_5)
    assert close_due_days(now=AFTER_MAR_5) == "summaries=1"
    assert close_due_days(now=AFTER_MAR_5) == "summaries=0"  # a second run finds nothing left
    summary = Posting.objects.get(kind=K.SUMMARY)
    queued.clear()  # the doorbell was lost: the sweep finds the pending summary in the database
    Posting.objects.filter(pk=summary.pk).update(updated_at=datetime(2026, 3, 6, tzinfo=UTC))
    sweep()
    assert queued == [summary.pk]
    assert deliver_all(queued + queued) == ["posted", "not-due"]  # the gate sends it once
    assert len(x3.entries) == 1
    assert close_due_days(now=AFTER_MAR_6) == "summaries=0"


def test_a_concurrent_closer_that_lost_the_race_creates_nothing(tenant, systems, monkeypatch):
    from connector import summaries

    bc, x3, queued = systems
    sync(bc, tenant, 250, date_created=MAR_5)
    first = summaries.close_day(tenant, 2, "USD", date(2026, 3, 5))
    assert len(first) == 1
    # a closer that started after the first committed finds no entries left: it rolls back, no empty summary
    assert summaries.close_day(tenant, 2, "USD", date(2026, 3, 5)) == []
    # one that counted the summaries before the first committed wants the same key: the unique key refuses it
    sync(bc, tenant, 251, date_created=MAR_5)
    monkeypatch.setattr(summaries, "_next_seq", lambda *args: 1)
    assert summaries.close_day(tenant, 2, "USD", date(2026, 3, 5)) == []
    assert Posting.objects.get(order_id=251).summary is None  # still waiting for a summary: nothing lost
    monkeypatch.undo()
    assert Posting.objects.filter(kind=K.SUMMARY).count() == 1
    assert len(summaries.close_day(tenant, 2, "USD", date(2026, 3, 5))) == 1
    assert Posting.objects.get(order_id=251).summary.idempotency_key == "summary:2:USD:2026-03-05:2:1"


def test_a_late_refund_goes_into_the_next_summary_never_into_the_posted_one(tenant, systems):
    bc, x3, queued = systems
    sync(bc, tenant, 250, date_created=MAR_5)
    close_due_days(now=AFTER_MAR_5)
    deliver_all(queued)
    first = Posting.objects.get(kind=K.SUMMARY)
    first_lines = list(first.lines.values_list("account", "debit", "credit"))

    bc.add_refund(
        250,
        1,
        total="21.60",
        tax="1.60",
        items=[{"item_type": "PRODUCT", "item_id": 11, "quantity": 1}],
        created="2026-03-05T18:00:00+00:00",  # dated on the closed day, arrived after its summary was posted
    )
    sync(bc, tenant, 250, date_created=MAR_5, status_id=14)
    refund = Posting.objects.get(kind=K.REFUND)
    assert refund.status == S.IN_SUMMARY and refund.lines.exists()
    assert close_due_days(now=AFTER_MAR_6) == "summaries=1"
    deliver_all(queued)
    second = Posting.objects.get(kind=K.SUMMARY, idempotency_key__endswith=":2:1")
    assert second.status == S.POSTED and list(second.members.all()) == [refund]
    assert list(first.lines.values_list("account", "debit", "credit")) == first_lines
    assert len(x3.entries) == 2 and account_totals_in_x3(x3) == member_totals(tenant)


def test_an_edit_after_the_summary_posted_is_an_adjustment_in_the_next_open_summary(tenant, systems):
    bc, x3, queued = systems
    sync(bc, tenant, 250, date_created=MAR_5, date_modified=MAR_5)
    close_due_days(now=AFTER_MAR_5)
    deliver_all(queued)
    sync(bc, tenant, 250, date_created=MAR_5, date_modified=MAR_6, shipping_ex="15.00")
    adjustment = Posting.objects.get(kind=K.ADJUSTMENT)
    assert adjustment.status == S.IN_SUMMARY and adjustment.gl_date == date(2026, 3, 6)
    close_due_days(now=AFTER_MAR_6)
    deliver_all(queued)
    assert adjustment.__class__.objects.get(pk=adjustment.pk).summary.gl_date == date(2026, 3, 6)
    assert len(x3.entries) == 2 and account_totals_in_x3(x3) == member_totals(tenant)


def test_switching_mode_mid_month_posts_every_order_exactly_once(tenant, systems):
    bc, x3, queued = systems
    tenant.posting_mode_from = date(2026, 3, 15)
    tenant.save()
    days = {300: "10", 301: "14", 302: "15", 303: "20", 304: "20"}
    for order_id, day in days.items():
        sync(bc, tenant, order_id, date_created=f"Tue, {day} Mar 2026 12:00:00 +0000")
    status = dict(Posting.objects.filter(kind=K.ORDER).values_list("order_id", "status"))
    assert status == {300: S.POSTED, 301: S.POSTED, 302: S.IN_SUMMARY, 303: S.IN_SUMMARY, 304: S.IN_SUMMARY}
    close_due_days(now=datetime(2026, 3, 31, tzinfo=UTC))
    close_due_days(now=datetime(2026, 3, 31, tzinfo=UTC))
    deliver_all(queued)
    references = [e.reference for e in x3.entries]
    assert len(references) == len(set(references)) == 4  # 2 orders by themselves + 2 days (15th, 20th)
    posted_alone = {p.order_id for p in Posting.objects.filter(kind=K.ORDER, status=S.POSTED)}
    summarised = {p.order_id for p in Posting.objects.filter(kind=K.ORDER, summary__status=S.POSTED)}
    assert posted_alone | summarised == set(days) and not posted_alone & summarised
    assert account_totals_in_x3(x3) == member_totals(tenant)


def test_a_summary_over_the_line_limit_is_split_into_balanced_parts(tenant, systems):
    bc, x3, queued = systems
    tenant.summary_max_lines = 3
    tenant.summary_clearing_account = "471000"
    tenant.save()
    sync(bc, tenant, 250, date_created=MAR_5)
    sync(bc, tenant, 251, date_created=MAR_5, shipping_ex="12.00")
    close_due_days(now=AFTER_MAR_5)
    parts = list(Posting.objects.filter(kind=K.SUMMARY).order_by("id"))
    assert len(parts) > 1 and all(p.lines.count() <= 3 for p in parts)
    assert [p.idempotency_key.rsplit(":", 1)[1] for p in parts] == [str(n) for n in range(1, len(parts) + 1)]
    assert all(p.parent_id == parts[0].pk for p in parts[1:])
    assert "part 1 of" in parts[0].description
    assert deliver_all(queued) == ["posted"] * len(parts)  # FakeX3 refuses an unbalanced entry
    totals = account_totals_in_x3(x3)
    assert "471000" not in totals  # the clearing account nets to zero
    assert totals == member_totals(tenant)


def test_review_before_post_holds_the_summary_not_its_orders(tenant, systems, admin_user):
    bc, x3, queued = systems
    tenant.review_policy = Tenant.ReviewPolicy.ALL
    tenant.save()
    sync(bc, tenant, 250, date_created=MAR_5)
    assert Posting.objects.get(order_id=250).status == S.IN_SUMMARY
    assert close_due_days(now=AFTER_MAR_5) == "summaries=0"  # built, but held for approval
    summary = Posting.objects.get(kind=K.SUMMARY)
    assert summary.status == S.AWAITING_APPROVAL and summary.lines.exists() and x3.entries == []
    assert approve(Posting.objects.filter(pk=summary.pk), user=admin_user) == 1
    assert deliver_all(queued) == ["posted"]
    assert len(x3.entries) == 1


def test_reconciliation_counts_a_summarised_order_as_posted_once_its_summary_is(tenant, systems):
    from accounting.figures import FAILED_STATUS, MATCHED, NOT_POSTED_YET, Period, reconcile

    bc, x3, queued = systems
    sync(bc, tenant, 250, date_created=MAR_5)
    period = Period(date(2026, 3, 1), date(2026, 3, 31))
    assert reconcile(tenant, period).rows[0].counts[NOT_POSTED_YET] == 1
    close_due_days(now=AFTER_MAR_5)
    assert reconcile(tenant, period).rows[0].counts[NOT_POSTED_YET] == 1  # built, not sent yet
    summary = Posting.objects.get(kind=K.SUMMARY)
    Posting.objects.filter(pk=summary.pk).update(status=S.NEEDS_ATTENTION)  # X3 refused the summary
    assert reconcile(tenant, period).rows[0].counts[FAILED_STATUS] == 1
    Posting.objects.filter(pk=summary.pk).update(status=S.PENDING)
    deliver_all(queued)
    row = reconcile(tenant, period).rows[0]
    assert row.counts[MATCHED] == 1 and row.gl["sales"] == row.bc["sales"]


def test_rejecting_a_summary_rejects_its_entries_and_a_change_brings_them_back(tenant, systems, admin_user):
    from connector.operations import reject

    bc, x3, queued = systems
    tenant.review_policy = Tenant.ReviewPolicy.ALL
    tenant.summary_max_lines = 3
    tenant.summary_clearing_account = "471000"
    tenant.save()
    sync(bc, tenant, 250, date_created=MAR_5, date_modified=MAR_5)
    close_due_days(now=AFTER_MAR_5)
    parts = Posting.objects.filter(kind=K.SUMMARY)
    assert parts.count() > 1
    assert reject(parts.filter(parent__isnull=True), user=admin_user) == 1
    assert set(parts.values_list("status", flat=True)) == {S.SKIPPED}  # every part goes with it
    member = Posting.objects.get(order_id=250)
    assert member.status == S.SKIPPED and member.summary is None and x3.entries == []
    sync(bc, tenant, 250, date_created=MAR_5, date_modified=MAR_6, shipping_ex="11.00")  # the order changes
    member.refresh_from_db()
    assert member.status == S.IN_SUMMARY and member.summary is None  # back, for the next summary


def test_admin_shows_a_summarys_entries_and_links_each_entry_to_its_summary(tenant, systems, admin_client):
    from django.urls import reverse

    bc, x3, queued = systems
    sync(bc, tenant, 250, date_created=MAR_5)
    sync(bc, tenant, 251, date_created=MAR_5)
    close_due_days(now=AFTER_MAR_5)
    summary = Posting.objects.get(kind=K.SUMMARY)
    page = admin_client.get(reverse("admin:accounting_posting_change", args=[summary.pk])).content.decode()
    assert "Orders behind each line" in page and "order 250:" in page and "order 251:" in page
    listing = admin_client.get(
        reverse("admin:accounting_posting_changelist") + f"?summary__id__exact={summary.pk}"
    )
    assert listing.status_code == 200
    text = listing.content.decode()
    assert "Order 250" in text and "Order 251" in text and "(in summary)" in text
    assert reverse("admin:accounting_posting_change", args=[summary.pk]) in text  # each entry links to it


def test_tenant_admin_offers_the_posting_mode_and_refuses_an_unknown_time_zone(tenant, admin_client):
    from django.urls import reverse

    url = reverse("admin:connector_tenant_change", args=[tenant.pk])
    page = admin_client.get(url).content.decode()
    assert "Posting mode" in page and "summary_max_lines" in page
    from django.core.exceptions import ValidationError

    tenant.business_time_zone = "Mars/Olympus"
    with pytest.raises(ValidationError, match="not a time zone"):
        tenant.full_clean()


@pytest.mark.django_db(transaction=True)
def test_closers_racing_for_one_day_build_one_summary(tenant, monkeypatch):
    """Many closers at once (two schedulers, a lost-and-repeated run): one summary, each entry in it once."""
    import threading

    from django.db import connection, connections

    from connector import summaries

    if connection.vendor == "sqlite":
        pytest.skip("SQLite serialises writers; this race is checked on PostgreSQL")
    bc = FakeBigCommerce()
    monkeypatch.setattr("connector.clients.bigcommerce_client", lambda tenant: bc)
    tenant.posting_mode = Tenant.PostingMode.DAILY_SUMMARY
    tenant.save()
    for order_id in (250, 251, 252):
        sync(bc, tenant, order_id, date_created=MAR_5)
    barrier = threading.Barrier(6)
    results: list[list[int]] = []

    def closer():
        try:
            barrier.wait()
            results.append(summaries.close_day(tenant, 2, "USD", date(2026, 3, 5)))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=closer) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(len(r) for r in results) == [0] * 5 + [1]
    summary = Posting.objects.get(kind=K.SUMMARY)
    assert sorted(summary.members.values_list("order_id", flat=True)) == [250, 251, 252]


def test_a_day_that_cannot_be_built_does_not_hold_up_the_others(tenant, systems, monkeypatch):
    from connector import summaries

    bc, x3, queued = systems
    sync(bc, tenant, 250, date_created=MAR_5)
    sync(bc, tenant, 251, date_created=MAR_5, channel_id=1)
    real = summaries._close_day

    def failing(tenant, channel_id, *args):
        if channel_id == 1:
            raise RuntimeError("boom")
        return real(tenant, channel_id, *args)

    monkeypatch.setattr(summaries, "_close_day", failing)
    assert close_due_days(now=AFTER_MAR_5) == "summaries=1"
    assert Posting.objects.get(order_id=251).summary is None  # tried again by the next run
    monkeypatch.undo()
    assert close_due_days(now=AFTER_MAR_5) == "summaries=1"
    assert Posting.objects.get(order_id=251).summary is not None


def test_flagged_review_holds_a_summary_with_a_flagged_entry_and_channels_can_stay_per_order(tenant, systems):
    bc, x3, queued = systems
    tenant.review_policy = Tenant.ReviewPolicy.FLAGGED
    tenant.summary_channels = [2, 3]
    tenant.save()
    sync(bc, tenant, 250, date_created=MAR_5)
    sync(bc, tenant, 251, date_created=MAR_5, total_inc_tax="98.21")  # a cent BigCommerce cannot explain
    sync(bc, tenant, 252, date_created=MAR_5, channel_id=3)
    sync(bc, tenant, 253, date_created=MAR_5, channel_id=1)  # channel 1 stays per order
    statuses = dict(Posting.objects.filter(kind=K.ORDER).values_list("order_id", "status"))
    assert statuses == {250: S.IN_SUMMARY, 251: S.IN_SUMMARY, 252: S.IN_SUMMARY, 253: S.POSTED}
    close_due_days(now=AFTER_MAR_5)
    held = Posting.objects.get(kind=K.SUMMARY, channel_id=2)
    assert held.status == S.AWAITING_APPROVAL and held.flagged and "Order 251" in held.flag_reason
    assert Posting.objects.get(kind=K.SUMMARY, channel_id=3).status == S.PENDING


def test_the_day_is_the_tenants_business_day(tenant, systems):
    bc, x3, queued = systems
    tenant.business_time_zone = "America/New_York"
    tenant.save()
    sync(bc, tenant, 250, date_created="Fri, 06 Mar 2026 02:00:00 +0000")  # 21:00 on the 5th in New York
    assert Posting.objects.get(order_id=250).gl_date == date(2026, 3, 5)
    assert close_due_days(now=datetime(2026, 3, 6, 5, 59, tzinfo=UTC)) == "summaries=0"  # 00:59 in New York
    assert close_due_days(now=datetime(2026, 3, 6, 6, 0, tzinfo=UTC)) == "summaries=1"  # midnight + 1 h grace


def test_an_alarm_says_when_closed_days_wait_for_their_summary(tenant, systems):
    from connector.alerts import gather_conditions

    bc, x3, queued = systems
    sync(bc, tenant, 250, date_created=MAR_5)
    assert not [c for c in gather_conditions(tenant, AFTER_MAR_5) if c.key == "summaries_overdue"]  # on time
    late = datetime(2026, 3, 6, 4, 0, tzinfo=UTC)  # the day closed at 01:00; the task runs every 15 minutes
    (alarm,) = [c for c in gather_conditions(tenant, late) if c.key == "summaries_overdue"]
    assert "2026-03-05 (1)" in alarm.title and "close_summaries" in alarm.advice
    close_due_days(now=late)
    assert not [c for c in gather_conditions(tenant, late) if c.key == "summaries_overdue"]


def test_an_operator_can_close_a_day_early_and_later_entries_go_into_its_next_summary(tenant, systems):
    from io import StringIO

    from django.core.management import CommandError, call_command

    bc, x3, queued = systems
    sync(bc, tenant, 250, date_created=MAR_5)
    out = StringIO()
    call_command("close_summaries", "--day", "2026-03-05", "--tenant", "acme", stdout=out)
    assert (
        out.getvalue().strip() == "2026-03-05: summaries=1"
    )  # the day is not over (no --now): closed anyway
    assert deliver_all(queued) == ["posted"]
    sync(bc, tenant, 251, date_created=MAR_5)  # arrives after the early close
    call_command("close_summaries", "--day", "2026-03-05", stdout=out)
    deliver_all(queued)
    keys = sorted(Posting.objects.filter(kind=K.SUMMARY).values_list("idempotency_key", flat=True))
    assert keys == ["summary:2:USD:2026-03-05:1:1", "summary:2:USD:2026-03-05:2:1"]
    assert len(x3.entries) == 2 and account_totals_in_x3(x3) == member_totals(tenant)
    call_command("close_summaries", "--day", "2026-03-05", stdout=out)  # nothing left: nothing new
    assert Posting.objects.filter(kind=K.SUMMARY).count() == 2
    with pytest.raises(CommandError, match="YYYY-MM-DD"):
        call_command("close_summaries", "--day", "5/3/2026")
    with pytest.raises(CommandError, match="needs --tenant"):
        call_command("close_summaries", "--day", "today")
    with pytest.raises(CommandError, match="No tenant"):
        call_command("close_summaries", "--day", "today", "--tenant", "nope")
