"""An entry whose date falls in a closed X3 period: park it, move it to the next period, or hold it until it opens."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.utils import timezone

from accounting.models import Posting
from connector.models import Tenant
from connector.pipeline import deliver_posting, sweep, sync_order
from integrations.errors import PermanentError
from integrations.sagex3.types import Entry, PostedEntry
from tests.conftest import order_json
from tests.fakes import FakeBigCommerce

S = Posting.Status


class PeriodX3:
    """X3 with closed periods, refusing the way the simulator (and X3's GESGAS check) words it."""

    def __init__(self) -> None:
        self.closed: set[str] = set()
        self.entries: list[Entry] = []
        self.call_log: list = []
        self.calls = 0

    def create_entry(self, entry: Entry) -> PostedEntry:
        self.calls += 1
        period = f"{entry.accounting_date:%Y-%m}"
        if period in self.closed:
            raise PermanentError(
                f"X3 refused the request: Accounting date {entry.accounting_date}: period {period} is closed"
            )
        self.entries.append(entry)
        return PostedEntry(document_number=f"ODG-{len(self.entries):06d}", reference=entry.reference)

    def find_entry(self, reference: str) -> PostedEntry | None:
        return next((PostedEntry("ODG", reference) for e in self.entries if e.reference == reference), None)


@pytest.fixture
def x3(tenant, monkeypatch):
    bc, x3, queued = FakeBigCommerce(), PeriodX3(), []
    for order_id in (250, 251, 252):
        bc.put_order(order_json(order_id))  # dated 2026-03-05
    monkeypatch.setattr("connector.clients.bigcommerce_client", lambda tenant: bc)
    monkeypatch.setattr("connector.clients.x3_client", lambda tenant: x3)
    monkeypatch.setattr("connector.tasks.enqueue_posting", queued.append)
    x3.queued = queued
    x3.closed = {"2026-03"}
    return x3


def policy(tenant, value) -> None:
    tenant.closed_period_policy = value
    tenant.save()


def test_park_needs_a_person_and_says_where_to_reopen(tenant, x3):
    sync_order(tenant=tenant, order_id=250, trigger="webhook")
    posting = Posting.objects.get()
    assert posting.status == S.NEEDS_ATTENTION
    assert "Period 2026-03 is closed in X3" in posting.last_error and "Re-open period" in posting.last_error


def test_next_period_posts_on_the_first_open_day_with_the_original_date(tenant, x3):
    policy(tenant, Tenant.ClosedPeriodPolicy.NEXT_PERIOD)
    x3.closed = {"2026-03", "2026-04"}
    sync_order(tenant=tenant, order_id=250, trigger="webhook")
    for _ in range(3):
        posting = Posting.objects.get()
        if posting.status == S.POSTED:
            break
        deliver_posting(posting.pk)
    posting.refresh_from_db()
    assert posting.status == S.POSTED and posting.attempts == 1  # closed periods spent no attempts
    assert posting.gl_date == date(2026, 5, 1) and posting.original_gl_date == date(2026, 3, 5)
    [entry] = x3.entries
    assert entry.accounting_date == date(2026, 5, 1)
    assert "dated 2026-03-05; period 2026-03 closed" in entry.description


def test_wait_holds_and_one_probe_per_period_releases_the_rest(tenant, x3, settings):
    policy(tenant, Tenant.ClosedPeriodPolicy.WAIT)
    for order_id in (250, 251, 252):
        sync_order(tenant=tenant, order_id=order_id, trigger="webhook")
    held = Posting.objects.filter(status=S.HELD)
    assert held.count() == 3 and set(held.values_list("held_period", flat=True)) == {"2026-03"}
    assert "Held until period 2026-03 is open" in held.first().last_error
    calls = x3.calls

    # nothing is due yet: the sweep sends nothing
    x3.queued.clear()
    sweep()
    assert x3.queued == []

    # the recheck time comes while the period is still closed: one entry is tried, not three
    Posting.objects.update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    sweep()
    assert len(x3.queued) == 1
    deliver_posting(x3.queued.pop())
    assert x3.calls == calls + 1 and Posting.objects.filter(status=S.HELD).count() == 3

    # the accountant re-opens the period: the next probe posts and the others follow at once
    x3.closed = set()
    Posting.objects.update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    sweep()
    [probe] = x3.queued
    x3.queued.clear()
    assert deliver_posting(probe) == "posted"
    assert len(x3.queued) == 2
    for pk in list(x3.queued):
        assert deliver_posting(pk) == "posted"
    assert len(x3.queued) == 2  # released once: posting the others rang no second doorbell
    assert set(Posting.objects.values_list("status", flat=True)) == {S.POSTED}
    assert all(e.accounting_date == date(2026, 3, 5) for e in x3.entries)


def test_other_refusals_are_not_taken_for_a_closed_period(tenant, x3, monkeypatch):
    policy(tenant, Tenant.ClosedPeriodPolicy.WAIT)

    def refuse(entry):
        raise PermanentError("X3 refused the request: account 701000 does not exist")

    monkeypatch.setattr(x3, "create_entry", refuse)
    sync_order(tenant=tenant, order_id=250, trigger="webhook")
    assert Posting.objects.get().status == S.NEEDS_ATTENTION
