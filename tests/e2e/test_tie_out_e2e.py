"""Tie-out against the simulated Sage X3 over real HTTP: entries posted by the running connector are read back by
reference; one deleted in X3 shows as missing, one edited there as differing, the rest as matched."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db.models import Max, Min
from django.test import Client

from accounting.models import Posting
from connector import tasks, tieout
from connector.models import Tenant, TieOutRow
from simulators.stack import STORE_HASH, wait_for

pytestmark = pytest.mark.e2e


def test_tie_out_finds_what_was_deleted_or_edited_in_x3(stack, monkeypatch):
    orders = [
        stack.bc.create_order(
            STORE_HASH,
            status_id=11,
            channel_id=channel,
            lines=[{"name": "Mug", "price": "12.50", "quantity": 2, "cost_price": "4.00"}],
            shipping_cost="5.00",
        )["order"]
        for channel in (1, 2, 3)
    ]
    wait_for(
        lambda: Posting.objects.filter(status=Posting.Status.POSTED).count() >= 3,
        timeout=60,
        what="3 postings",
    )
    refs = [f"BC-{STORE_HASH}-{o['id']}" for o in orders]
    assert stack.x3.delete_entry(refs[0]) == 1
    assert stack.x3.alter_entry(refs[1], ACCDAT="2020-01-31") == 1

    tenant = Tenant.objects.get()
    days = Posting.objects.aggregate(start=Min("gl_date"), end=Max("gl_date"))
    monkeypatch.setattr(
        tasks, "enqueue_tie_out", lambda run_id: None
    )  # run it here, not in the stack's workers
    run, created = tieout.start_tie_out(tenant, days["start"], days["end"], channel_id=None)
    assert created
    assert tieout.run_tie_out(run.pk, pause=0) == "3 checked, 1 missing, 1 differ"
    run.refresh_from_db()
    assert (run.status, run.matched) == ("done", 1)
    assert run.compared == "document number, accounting date, currency"  # api1 $query: no lines
    problems = {r.reference: (r.problem, r.detail) for r in TieOutRow.objects.filter(run=run)}
    assert problems[refs[0]][0] == "missing"
    assert problems[refs[1]][0] == "differs" and "accounting date: X3 has 2020-01-31" in problems[refs[1]][1]

    admin = get_user_model().objects.create_superuser("boss", password="pw")
    client = Client()
    client.force_login(admin)
    page = client.get(
        "/admin/workspace/reconciliation/",
        {"tenant": tenant.pk, "period": "custom", "start": days["start"], "end": days["end"]},
    ).content.decode()
    assert "X3 tie-out: checked 3 entries" in page and "1 missing, 1 differs" in page
    assert "amounts could not be compared" in page
