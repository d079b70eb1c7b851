"""Exactly once on every path that sends to X3, and a long X3 outage that parks nothing.

"An earlier send may have reached X3" is a fact of the posting (``may_exist_in_x3``): no retry counter, operator
action or sweep can erase it, so a lost response never becomes a second X3 entry.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from accounting.models import Posting, X3Circuit
from connector.operations import repost_orders, retry_now
from connector.pipeline import deliver_posting as submit_posting
from connector.pipeline import sweep, sync_order
from integrations.errors import BadResponseError, PermanentError, RetryableError
from integrations.sagex3.types import Entry, PostedEntry
from tests.conftest import order_json
from tests.fakes import FakeBigCommerce

S = Posting.Status

# What X3 does with a create request: whether the entry is committed, and what we get back.
CREATE_FAULTS = {
    "ok": (True, None),
    "commit-then-drop": (
        True,
        lambda: RetryableError("read timeout", outcome_unknown=True, unavailable=True),
    ),
    "refused": (False, lambda: RetryableError("connection refused", unavailable=True)),
    "5xx-before-commit": (False, lambda: RetryableError("HTTP 503", outcome_unknown=True, unavailable=True)),
    "5xx-after-commit": (True, lambda: RetryableError("HTTP 502", outcome_unknown=True, unavailable=True)),
    "2xx-with-errors-committed": (True, lambda: PermanentError("X3 reported errors", outcome_unknown=True)),
    "refusal-400": (False, lambda: PermanentError("X3 refused: period closed")),
    "locked-423": (False, lambda: RetryableError("record locked")),
}
FIND_FAULTS = {
    "ok": None,
    "down": lambda: RetryableError("connection refused", unavailable=True),
    "bad-json": lambda: BadResponseError("proxy error page"),
}


class FaultyX3:
    """X3 at the client interface, with a scripted fault for the next create and the next lookup."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self.call_log: list = []
        self.create_fault = "ok"
        self.find_fault = "ok"
        self.calls = 0

    def create_entry(self, entry: Entry) -> PostedEntry:
        self.calls += 1
        commits, error = CREATE_FAULTS[self.create_fault]
        if commits:
            self.entries.append(entry)
        if error is not None:
            raise error()
        return PostedEntry(document_number=f"ODG-{len(self.entries):06d}", reference=entry.reference)

    def find_entry(self, reference: str) -> PostedEntry | None:
        self.calls += 1
        error = FIND_FAULTS[self.find_fault]
        if error is not None:
            raise error()
        for i, entry in enumerate(self.entries, start=1):
            if entry.reference == reference:
                return PostedEntry(document_number=f"ODG-{i:06d}", reference=reference)
        return None

    def count(self, reference: str) -> int:
        return sum(1 for e in self.entries if e.reference == reference)


@pytest.fixture
def fakes(tenant, monkeypatch, settings):
    """Every path (worker, sweep, retry, re-post) gets the same fake systems; the queue only records the bell."""
    bc, x3 = FakeBigCommerce(), FaultyX3()
    queued: list[int] = []
    monkeypatch.setattr("connector.clients.bigcommerce_client", lambda tenant: bc)
    monkeypatch.setattr("connector.clients.x3_client", lambda tenant: x3)
    monkeypatch.setattr("connector.tasks.enqueue_posting", queued.append)
    monkeypatch.setattr("connector.tasks.enqueue_order_sync", lambda *a: None)
    monkeypatch.setattr("connector.tasks.enqueue_event", lambda *a: None)
    monkeypatch.setattr("connector.tasks.ring_events_doorbell", lambda: None)
    settings.CONNECTOR = {**settings.CONNECTOR, "MAX_ATTEMPTS": 3, "STALE_AFTER_SECONDS": 0}
    bc.put_order(order_json(250))
    return bc, x3, queued


def make_due(*postings) -> None:
    past = timezone.now() - timedelta(seconds=1)
    Posting.objects.filter(pk__in=[p.pk for p in postings]).update(next_attempt_at=past)
    X3Circuit.objects.filter(opened_at__isnull=False).update(next_probe_at=past)


def test_retry_now_after_a_lost_response_does_not_post_twice(tenant, fakes):
    """Reproduces the defect: X3 commits and drops the response, lookups fail until the posting gives up, an
    accountant presses Retry now. Before the fix, the reset attempt counter skipped the lookup."""
    _, x3, _ = fakes
    x3.create_fault = "commit-then-drop"
    posting = Posting.objects.get(pk=sync_order(tenant=tenant, order_id=250, trigger="webhook").posting_id)
    assert x3.count(posting.reference) == 1
    x3.find_fault = "bad-json"  # X3 answers lookups with garbage: a retryable error that spends attempts
    for _ in range(3):
        make_due(posting)
        submit_posting(posting.pk)
    posting.refresh_from_db()
    assert posting.status == S.NEEDS_ATTENTION and posting.may_exist_in_x3

    x3.create_fault = x3.find_fault = "ok"
    assert retry_now(Posting.objects.filter(pk=posting.pk)) == 1
    assert submit_posting(posting.pk) == "found-existing"
    posting.refresh_from_db()
    assert posting.status == S.POSTED and x3.count(posting.reference) == 1


def test_an_error_answer_to_a_write_is_checked_before_a_retry(tenant, fakes):
    _, x3, _ = fakes
    x3.create_fault = "2xx-with-errors-committed"
    posting = Posting.objects.get(pk=sync_order(tenant=tenant, order_id=250, trigger="webhook").posting_id)
    posting.refresh_from_db()
    assert posting.status == S.NEEDS_ATTENTION and posting.may_exist_in_x3

    x3.create_fault = "ok"
    retry_now(Posting.objects.filter(pk=posting.pk))
    assert submit_posting(posting.pk) == "found-existing"
    assert x3.count(posting.reference) == 1


def test_a_refusal_that_provably_did_not_reach_x3_needs_no_lookup(tenant, fakes):
    _, x3, _ = fakes
    x3.create_fault = "refusal-400"
    posting = Posting.objects.get(pk=sync_order(tenant=tenant, order_id=250, trigger="webhook").posting_id)
    posting.refresh_from_db()
    assert posting.status == S.NEEDS_ATTENTION and not posting.may_exist_in_x3
    x3.create_fault, x3.find_fault = "ok", "down"  # a lookup would fail: none must be made
    assert retry_now(Posting.objects.filter(pk=posting.pk)) == 1  # rebuilt from the order, then sent
    posting.refresh_from_db()
    assert posting.status == S.POSTED and x3.count(posting.reference) == 1


def test_repost_after_a_lost_response_finds_the_entry(tenant, fakes):
    _, x3, _ = fakes
    x3.create_fault = "2xx-with-errors-committed"
    posting = Posting.objects.get(pk=sync_order(tenant=tenant, order_id=250, trigger="webhook").posting_id)
    x3.create_fault = "ok"
    repost_orders(Posting.objects.filter(pk=posting.pk))
    posting.refresh_from_db()
    assert x3.count(posting.reference) == 1
    retry_now(Posting.objects.filter(pk=posting.pk))
    submit_posting(posting.pk)
    posting.refresh_from_db()
    assert posting.status == S.POSTED and x3.count(posting.reference) == 1


# --- A long X3 outage ------------------------------------------------------------------------------------------


def test_a_six_hour_outage_parks_nothing_and_probes_sparingly(tenant, fakes, monkeypatch):
    """40 orders arrive during a 6-hour outage; the sweep runs every simulated minute. Nothing reaches
    needs_attention, X3 sees a bounded number of probes, and everything posts once X3 is back."""
    bc, x3, queued = fakes
    clock = [timezone.now()]
    monkeypatch.setattr("django.utils.timezone.now", lambda: clock[0])
    orders = range(1000, 1040)
    for order_id in orders:
        bc.put_order(order_json(order_id))

    x3.create_fault = x3.find_fault = "refused"
    x3.find_fault = "down"
    outage_calls = 0
    for minute in range(6 * 60):
        if minute < len(orders):  # one new order a minute, delivered at once (the webhook path)
            sync_order(tenant=tenant, order_id=orders[minute], trigger="webhook")
        sweep()
        while queued:
            submit_posting(queued.pop(0))
        clock[0] += timedelta(minutes=1)
    outage_calls = x3.calls
    assert not Posting.objects.filter(status=S.NEEDS_ATTENTION).exists()
    circuit = X3Circuit.objects.get(tenant=tenant)
    assert circuit.is_open
    # threshold failures to open it, then at most one probe per interval (capped at 5 minutes)
    assert outage_calls <= 3 + 6 * 60 / 5 + 10, outage_calls

    x3.create_fault = x3.find_fault = "ok"
    for _ in range(15):
        sweep()
        while queued:
            submit_posting(queued.pop(0))
        clock[0] += timedelta(minutes=1)
    assert set(Posting.objects.values_list("status", flat=True)) == {S.POSTED}
    assert all(x3.count(ref) == 1 for ref in Posting.objects.values_list("reference", flat=True))
    assert len(x3.entries) == len(orders)
    circuit.refresh_from_db()
    assert not circuit.is_open and circuit.failures == 0


def test_x3_answering_again_resumes_the_waiting_postings_at_once(tenant, fakes):
    bc, x3, queued = fakes
    for order_id in (301, 302, 303, 304):
        bc.put_order(order_json(order_id))
    x3.create_fault = "refused"
    for order_id in (301, 302, 303, 304):
        sync_order(tenant=tenant, order_id=order_id, trigger="webhook")
    assert X3Circuit.objects.get(tenant=tenant).is_open
    waiting = Posting.objects.filter(status=S.RETRY)
    assert waiting.count() == 4 and all(p.attempts == 0 for p in waiting)

    x3.create_fault = "ok"
    make_due(waiting.first())
    queued.clear()
    assert submit_posting(waiting.first().pk) == "posted"  # the probe
    assert len(queued) == 3  # the others were made due and queued by the probe that found X3 back
    for pk in queued:
        assert submit_posting(pk) == "posted"


def test_refusals_still_need_a_person_while_x3_is_up(tenant, fakes):
    _, x3, _ = fakes
    x3.create_fault = "refusal-400"
    sync_order(tenant=tenant, order_id=250, trigger="webhook")
    assert Posting.objects.get().status == S.NEEDS_ATTENTION
    assert not X3Circuit.objects.filter(opened_at__isnull=False).exists()


# --- Everything mixed: at most one X3 entry per reference --------------------------------------------------------


class Operations(RuleBasedStateMachine):
    """Operator actions, faults, sweeps and dying workers in any order; X3 never holds a reference twice."""

    def __init__(self, tenant, x3: FaultyX3, queued: list[int]) -> None:
        super().__init__()
        self.tenant, self.x3, self.queued = tenant, x3, queued
        self.savepoint = transaction.savepoint()
        x3.entries.clear()
        x3.create_fault = x3.find_fault = "ok"
        self.posting: Posting | None = None

    @initialize(fault=st.sampled_from(sorted(CREATE_FAULTS)))
    def order_arrives(self, fault):
        self.x3.create_fault = fault
        result = sync_order(tenant=self.tenant, order_id=250, trigger="webhook")
        self.posting = Posting.objects.get(pk=result.posting_id)

    @rule(create=st.sampled_from(sorted(CREATE_FAULTS)), find=st.sampled_from(sorted(FIND_FAULTS)))
    def worker_delivers(self, create, find):
        self.x3.create_fault, self.x3.find_fault = create, find
        make_due(self.posting)
        submit_posting(self.posting.pk)

    @rule()
    def accountant_presses_retry_now(self):
        retry_now(Posting.objects.filter(pk=self.posting.pk))

    @rule(create=st.sampled_from(sorted(CREATE_FAULTS)))
    def accountant_reposts_the_order(self, create):
        self.x3.create_fault, self.x3.find_fault = create, "ok"
        repost_orders(Posting.objects.filter(pk=self.posting.pk))

    @rule()
    def worker_dies_after_x3_committed(self):
        class Crash(BaseException):
            pass

        def crash(entry):
            self.x3.entries.append(entry)
            raise Crash

        self.x3.find_fault = "ok"
        original, self.x3.create_entry = self.x3.create_entry, crash
        make_due(self.posting)
        try:
            submit_posting(self.posting.pk)
        except Crash:
            pass
        finally:
            self.x3.create_entry = original

    @rule()
    def sweep_runs(self):
        self.queued.clear()
        sweep()
        for pk in list(self.queued):
            submit_posting(pk)

    @invariant()
    def at_most_one_entry_per_reference(self):
        if self.posting is not None:
            assert self.x3.count(self.posting.reference) <= 1

    def teardown(self):
        try:
            if self.posting is not None:
                self.x3.create_fault = self.x3.find_fault = "ok"
                for _ in range(3):
                    retry_now(Posting.objects.filter(pk=self.posting.pk))
                    make_due(self.posting)
                    Posting.objects.filter(pk=self.posting.pk, status=S.POSTING).update(status=S.UNKNOWN)
                    submit_posting(self.posting.pk)
                self.posting.refresh_from_db()
                assert self.posting.status == S.POSTED, self.posting.last_error
                assert self.x3.count(self.posting.reference) == 1
        finally:
            transaction.savepoint_rollback(self.savepoint)


def test_operator_actions_faults_and_sweeps_never_post_twice(tenant, fakes):
    _, x3, queued = fakes
    run_state_machine_as_test(
        lambda: Operations(tenant, x3, queued),
        settings=hyp_settings(
            max_examples=60,
            stateful_step_count=12,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
