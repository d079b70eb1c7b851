"""SQL statements per order on the happy path, pinned: a change that adds a query per order fails here.

The budget is the worker's whole task for a new paid order: load the tenant, re-read the order from BigCommerce,
plan the entry, post it to X3, and chain the history and call records (docs/operations.md, "Throughput").
"""

from __future__ import annotations

import pytest
import responses
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounting.audit_chain import verify_tenant
from accounting.models import Posting, PostingAttempt, PostingLog
from connector import tasks
from tests.conftest import X3_ENTRY_URL, order_json, order_url

# New paid order, posted: the tenant (1); planning: the order row's lock (a miss), the channel mapping, INSERT of
# the row, INSERT of its lines, the history line chained (head lock; INSERT + head UPDATE) (6 or 7); delivery: the
# claim, its lines, marked posted, the call and history records chained (head lock; two INSERTs + head UPDATE)
# (5 or 7). On PostgreSQL the chain's INSERTs and head UPDATE are one statement (accounting/audit_chain.py).
# Was 28 before issue 13.
BUDGET_NEW_ORDER = {"postgresql": 12, "sqlite": 15}


@pytest.fixture
def http():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


def _posted(number: str) -> dict:
    return {"$uuid": "6bc5644d-0000-4000-8000-000000000001", "NUM": number, "TYP": "ODG"}


def test_a_new_paid_order_costs_at_most_the_budgeted_sql_statements(tenant, http):
    # warm: one order first, so one-time work (the chain head's creation, caches) is not counted
    for order_id in (250, 251):
        http.get(order_url(order_id), json=order_json(order_id))
    http.post(X3_ENTRY_URL, json=_posted("ODG-1"), status=201)
    assert tasks.sync_order(tenant.pk, 250) == "created:posted"

    with CaptureQueriesContext(connection) as queries:
        result = tasks.sync_order(tenant.pk, 251)

    assert result == "created:posted"
    # SAVEPOINT / RELEASE come from the test's own transaction around each atomic block; in production an atomic
    # block is BEGIN / COMMIT, which the driver sends without a statement.
    statements = [
        q["sql"]
        for q in queries.captured_queries
        if not q["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))
    ]
    assert len(statements) <= BUDGET_NEW_ORDER[connection.vendor], "\n".join(statements)
    # and the work is all there: one posted entry with its lines, its call and history records, chain intact
    posting = Posting.objects.get(order_id=251)
    assert posting.status == Posting.Status.POSTED and posting.lines.count() > 0
    assert PostingAttempt.objects.filter(posting=posting).count() == 1
    assert list(PostingLog.objects.filter(posting=posting).values_list("to_status", flat=True)) == [
        Posting.Status.PENDING,
        Posting.Status.POSTED,
    ]
    assert verify_tenant(tenant).intact
