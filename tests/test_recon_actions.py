"""Reconciliation page actions: channel names from BigCommerce (cached, with fallbacks), the queued re-read of a
period from BigCommerce, and the tie-out against Sage X3 (missing, differs, matched, X3 down)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
import requests
import responses
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from accounting.models import Posting
from connector import reconcile, tasks, tieout
from connector.models import ReReadRun, StoreChannel, Tenant, TieOutRow, TieOutRun
from integrations.errors import PermanentError, RetryableError
from integrations.sagex3.types import DEFAULT_REST_MAPPING, PostedEntry
from tests.books import add_posting
from tests.conftest import BC_BASE, STORE_HASH
from tests.fakes import FakeBigCommerce

API = f"{BC_BASE}/stores/{STORE_HASH}"
RECON = "/admin/workspace/reconciliation/"
REREAD = "/admin/workspace/reconciliation/re-read/"
TIEOUT = "/admin/workspace/reconciliation/tie-out/"
CHANNELS_URL = "/admin/workspace/reconciliation/channels/"
NOV = {"period": "custom", "start": "2026-11-01", "end": "2026-11-30"}
CHANNELS = {
    "data": [
        {
            "id": 1,
            "name": "Main storefront",
            "type": "storefront",
            "platform": "bigcommerce",
            "status": "active",
        },
        {"id": 2, "name": "Amazon EU", "type": "marketplace", "platform": "amazon", "status": "connected"},
    ],
    "meta": {"pagination": {"total": 2, "count": 2, "per_page": 50, "current_page": 1, "total_pages": 1}},
}


@pytest.fixture(autouse=True)
def _no_failure_memo():
    cache.clear()  # the "BigCommerce was down a minute ago" memo must not leak between tests
    yield
    cache.clear()


@pytest.fixture
def http():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


@pytest.fixture
def bc_down(http):
    http.get(f"{API}/v3/channels", body=requests.ConnectionError("connection refused"))
    return http


@pytest.fixture
def queued(monkeypatch):
    """What the actions ring: run ids per task, and order syncs."""
    seen: dict[str, list] = {"reread": [], "tieout": [], "orders": []}
    monkeypatch.setattr(tasks, "enqueue_reread", lambda run_id: seen["reread"].append(run_id))
    monkeypatch.setattr(tasks, "enqueue_tie_out", lambda run_id: seen["tieout"].append(run_id))
    monkeypatch.setattr(tasks, "enqueue_order_sync", lambda t, o: seen["orders"].append(o))
    return seen


def _fresh_names(tenant, **names):
    for channel_id, name in names.items():
        StoreChannel.objects.create(
            tenant=tenant, channel_id=int(channel_id[1:]), name=name, refreshed_at=timezone.now()
        )


def _accountant(django_user_model, *tenants, name="accountant"):
    user = django_user_model.objects.create_user(name, password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name="Accountant"))
    for t in tenants:
        t.users.add(user)
    return user


def _other_tenant() -> Tenant:
    return Tenant.objects.create(slug="other", name="Other Ltd", rounding_account="658000")


# --- Channel names -------------------------------------------------------------------------------------------------


def test_channel_names_come_from_bigcommerce_and_are_cached(admin_client, tenant, http):
    http.get(f"{API}/v3/channels", json=CHANNELS)
    add_posting(tenant, 101, day=date(2026, 11, 3), channel_id=2)
    page = admin_client.get(RECON, {"tenant": tenant.pk, **NOV}).content.decode()
    assert "2 · Amazon EU" in page and "Channel 2" not in page
    assert '<option value="2">2 · Amazon EU</option>' in page  # the channel picker names them too
    picked = admin_client.get(RECON, {"tenant": tenant.pk, **NOV, "channel": "02"}).content.decode()
    assert '<option value="2" selected>2 · Amazon EU</option>' in picked
    stored = StoreChannel.objects.get(tenant=tenant, channel_id=2)
    assert (stored.name, stored.platform, stored.status) == ("Amazon EU", "amazon", "connected")
    admin_client.get(RECON, {"tenant": tenant.pk, **NOV})
    assert len(http.calls) == 1  # fresh for 24 hours: not read again
    # The exports carry the same labels as the screen.
    rows = list(
        csv.reader(
            io.StringIO(
                admin_client.get(RECON, {"tenant": tenant.pk, **NOV, "export": "csv"}).content.decode(
                    "utf-8-sig"
                )
            )
        )
    )
    assert rows[1][1] == "2 · Amazon EU"


def test_bigcommerce_down_falls_back_to_cache_then_mapping_then_number(admin_client, tenant, bc_down):
    StoreChannel.objects.create(
        tenant=tenant, channel_id=1, name="Main storefront", refreshed_at=timezone.now() - timedelta(days=3)
    )
    add_posting(tenant, 101, day=date(2026, 11, 3), channel_id=1)
    add_posting(tenant, 201, day=date(2026, 11, 3), channel_id=2)
    add_posting(tenant, 901, day=date(2026, 11, 3), channel_id=9)
    response = admin_client.get(RECON, {"tenant": tenant.pk, **NOV})
    assert response.status_code == 200
    page = response.content.decode()
    assert "1 · Main storefront" in page  # the cache, though stale
    assert "2 · Channel 2" in page  # the channel mapping's name
    assert ">9<" in page  # only the number
    assert "Channel names could not be refreshed from BigCommerce" in page
    admin_client.get(RECON, {"tenant": tenant.pk, **NOV})
    assert len(bc_down.calls) == 1  # not tried again on every page while the store is down


def test_refresh_button_and_postings_list_use_the_names(admin_client, tenant, http):
    http.get(f"{API}/v3/channels", json=CHANNELS)
    add_posting(tenant, 101, day=date(2026, 11, 3), channel_id=2)
    response = admin_client.post(CHANNELS_URL, {"tenant": tenant.pk, **NOV}, follow=True)
    assert "Read 2 channel names from BigCommerce." in response.content.decode()
    assert response.redirect_chain[0][0].startswith(RECON + f"?tenant={tenant.pk}&period=custom")
    listing = admin_client.get("/admin/accounting/posting/").content.decode()
    assert "2 · Amazon EU" in listing
    lines = admin_client.get("/admin/accounting/postingline/").content.decode()
    assert "2 · Amazon EU" in lines


def test_refresh_button_says_so_when_bigcommerce_is_down(admin_client, tenant, bc_down):
    _fresh_names(tenant, c1="Main storefront")
    response = admin_client.post(CHANNELS_URL, {"tenant": tenant.pk, **NOV}, follow=True)
    page = response.content.decode()
    assert response.status_code == 200 and "BigCommerce could not be read" in page
    assert StoreChannel.objects.get(tenant=tenant, channel_id=1).name == "Main storefront"


def test_tenant_admin_action_refreshes_channel_names(admin_client, tenant, http):
    http.get(f"{API}/v3/channels", json=CHANNELS)
    admin_client.post(
        "/admin/connector/tenant/",
        {"action": "refresh_channel_names", "_selected_action": [tenant.pk]},
        follow=True,
    )
    assert set(StoreChannel.objects.values_list("name", flat=True)) == {"Main storefront", "Amazon EU"}


# --- Re-read from BigCommerce --------------------------------------------------------------------------------------


def test_reread_is_queued_and_says_so(admin_client, tenant, queued, django_capture_on_commit_callbacks):
    _fresh_names(tenant, c1="Main storefront")
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(REREAD, {"tenant": tenant.pk, **NOV, "channel": "1"})
    assert response.status_code == 302
    assert (
        response["Location"]
        == f"{RECON}?tenant={tenant.pk}&period=custom&start=2026-11-01&end=2026-11-30&channel=1"
    )
    run = ReReadRun.objects.get()
    assert queued["reread"] == [run.pk]
    assert (run.status, run.period_start, run.period_end, run.channel_id) == (
        "queued",
        date(2026, 11, 1),
        date(2026, 11, 30),
        1,
    )
    page = admin_client.get(response["Location"]).content.decode()
    assert "Re-reading 30 days from BigCommerce; refresh in a minute." in page
    assert "waiting for a worker" in page
    # A second click while it is queued starts nothing new.
    admin_client.post(REREAD, {"tenant": tenant.pk, **NOV})
    assert ReReadRun.objects.count() == 1


def _modified(day: int) -> str:
    return datetime(2026, 11, day, 12, 0, tzinfo=UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")


def test_reread_queues_syncs_for_what_differs_only(admin_client, tenant, queued):
    from tests.conftest import order_json

    bc = FakeBigCommerce()
    for order_id, day in ((101, 3), (102, 4), (103, 5)):
        bc.put_order(order_json(order_id, channel_id=1, date_modified=_modified(day)))
    current = add_posting(tenant, 101, day=date(2026, 11, 3))
    stale = add_posting(tenant, 102, day=date(2026, 11, 4))
    Posting.objects.filter(pk=current.pk).update(order_modified_at=datetime(2026, 11, 3, 12, tzinfo=UTC))
    Posting.objects.filter(pk=stale.pk).update(order_modified_at=datetime(2026, 11, 1, 9, tzinfo=UTC))
    run = ReReadRun.objects.create(
        tenant=tenant, period_start=date(2026, 11, 1), period_end=date(2026, 11, 30)
    )
    assert reconcile.run_reread(run.pk, bc_client=bc) == "3 checked, 2 queued"
    assert sorted(queued["orders"]) == [102, 103]  # edited since it was posted, and never posted
    run.refresh_from_db()
    assert (run.status, run.orders_checked, run.orders_queued) == ("done", 3, 2)
    assert reconcile.run_reread(run.pk, bc_client=bc) == "not-due"  # a run runs once
    page = admin_client.get(RECON, {"tenant": tenant.pk, **NOV}).content.decode()
    assert "3 order(s) read; 2 differed from what was posted and were queued" in page


def test_reread_when_bigcommerce_is_down_changes_nothing(tenant, queued):
    class Down(FakeBigCommerce):
        def list_orders(self, **kwargs):
            raise RetryableError("BigCommerce answered 503 Service Unavailable")

    run = ReReadRun.objects.create(
        tenant=tenant, period_start=date(2026, 11, 1), period_end=date(2026, 11, 30)
    )
    assert reconcile.run_reread(run.pk, bc_client=Down()) == "failed"
    run.refresh_from_db()
    assert run.status == "failed" and "BigCommerce could not be read: BigCommerce answered 503" in run.message
    assert queued["orders"] == []


def test_actions_are_post_only_scoped_and_need_the_permission(client, tenant, queued, django_user_model):
    other = _other_tenant()
    user = _accountant(django_user_model, tenant)
    client.force_login(user)
    for url in (REREAD, TIEOUT, CHANNELS_URL):
        assert client.get(url, {"tenant": tenant.pk, **NOV}).status_code == 405
        assert client.post(url, {"tenant": other.pk, **NOV}).status_code == 404  # another merchant's tenant
        assert client.post(url, {**NOV}).status_code == 404
    viewer = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(
        *Group.objects.get(name="Accountant").permissions.exclude(codename="operate_posting")
    )
    tenant.users.add(viewer)
    client.force_login(viewer)
    assert client.post(REREAD, {"tenant": tenant.pk, **NOV}).status_code == 403
    assert client.post(TIEOUT, {"tenant": tenant.pk, **NOV}).status_code == 403
    assert "reread-button" not in client.get(RECON, {"tenant": tenant.pk, **NOV}).content.decode()
    assert not ReReadRun.objects.exists() and not TieOutRun.objects.exists()


def test_actions_need_the_csrf_token(tenant, queued, django_user_model):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(_accountant(django_user_model, tenant))
    assert strict.post(REREAD, {"tenant": tenant.pk, **NOV}).status_code == 403
    assert not ReReadRun.objects.exists()


# --- Tie-out against X3 --------------------------------------------------------------------------------------------


class FakeX3Lookup:
    """find_entry as the api1 client answers it: the $query row, with the lines when the facet lists them."""

    mapping = DEFAULT_REST_MAPPING

    def __init__(self, entries: dict[str, dict | Exception | None]) -> None:
        self.entries = entries
        self.call_log: list = []
        self.looked_up: list[str] = []

    def find_entry(self, reference: str) -> PostedEntry | None:
        self.looked_up.append(reference)
        found = self.entries.get(reference)
        if isinstance(found, Exception):
            raise found
        if found is None:
            return None
        return PostedEntry(document_number=found["NUM"], reference=reference, raw=found)


def _x3_row(posting: Posting, **changes) -> dict:
    lines = [
        {"ACC": line.account, "DEB": str(line.debit), "CDT": str(line.credit)}
        for line in posting.lines.order_by("line_no")
    ]
    row = {
        "NUM": posting.x3_document_number,
        "REFINT": posting.reference,
        "ACCDAT": posting.gl_date.isoformat(),
        "CUR": posting.currency,
        "GACCENTRYD": lines,
    }
    row.update(changes)
    return row


def _posted(tenant, order_id: int, day: int, **kwargs) -> Posting:
    posting = add_posting(tenant, order_id, day=date(2026, 11, day), **kwargs)
    Posting.objects.filter(pk=posting.pk).update(reference=f"BC-acme-{order_id}")
    posting.refresh_from_db()
    return posting


@pytest.fixture
def books(tenant):
    matched = _posted(tenant, 101, 3)
    missing = _posted(tenant, 102, 4)
    differs = _posted(tenant, 103, 5, channel_id=2)
    add_posting(
        tenant, 104, day=date(2026, 11, 6), status=Posting.Status.NEEDS_ATTENTION
    )  # not posted: not checked
    rows = _x3_row(differs)["GACCENTRYD"]
    rows[0] = {**rows[0], "DEB": "90.00"}
    rows[1] = {**rows[1], "CDT": str(Decimal(rows[1]["CDT"]) - 10)}
    return tenant, {
        matched.reference: _x3_row(matched),
        missing.reference: None,
        differs.reference: _x3_row(differs, GACCENTRYD=rows, ACCDAT="2026-11-06"),
    }


def _run(tenant, client, **kwargs) -> TieOutRun:
    run = TieOutRun.objects.create(
        tenant=tenant, period_start=date(2026, 11, 1), period_end=date(2026, 11, 30), **kwargs
    )
    tieout.run_tie_out(run.pk, x3_client=client, sleep=lambda s: None)
    run.refresh_from_db()
    return run


def test_tie_out_finds_missing_and_different_entries(admin_client, books):
    tenant, entries = books
    _fresh_names(tenant, c1="Main storefront", c2="Amazon EU")
    run = _run(tenant, FakeX3Lookup(entries))
    assert (run.status, run.checked, run.matched, run.missing, run.differs) == ("done", 3, 1, 1, 1)
    assert run.compared == "document number, accounting date, currency, lines and totals" and not run.message
    rows = {r.problem: r for r in TieOutRow.objects.filter(run=run)}
    assert set(rows) == {"missing", "differs"}  # matches are not stored
    assert rows["missing"].posting.order_id == 102
    detail = rows["differs"].detail
    assert "accounting date: X3 has 2026-11-06, the connector posted 2026-11-05" in detail
    assert "account 412000: X3 has +90.00, the connector posted +100.00" in detail
    assert "total: X3 has 90.00, the connector posted 100.00" in detail

    page = admin_client.get(RECON, {"tenant": tenant.pk, **NOV}).content.decode()
    assert "X3 tie-out: checked 3 entries on" in page and "1 missing, 1 differs" in page
    assert f"/admin/accounting/posting/{rows['missing'].posting_id}/change/" in page
    assert "2 · Amazon EU" in page
    export = admin_client.get(RECON, {"tenant": tenant.pk, **NOV, "part": "tieout", "export": "csv"})
    assert export["Content-Disposition"] == 'attachment; filename="x3-tie-out-acme-2026-11-01-2026-11-30.csv"'
    records = list(csv.reader(io.StringIO(export.content.decode("utf-8-sig"))))
    assert records[0][:3] == ["Problem", "Entry", "GL date"]
    assert [(r[0], r[5], r[6]) for r in records[1:]] == [
        ("Missing in X3", "100.00", "BC-acme-102"),
        ("Differs in X3", "100.00", "BC-acme-103"),
    ]


def test_tie_out_with_a_lookup_that_returns_no_lines_says_what_was_compared(admin_client, books):
    tenant, entries = books

    class GraphQLLike(FakeX3Lookup):
        mapping = {"lookup_query": "…"}  # no header or lines mapping: only the document number comes back

    run = _run(tenant, GraphQLLike({k: v and {"NUM": v["NUM"]} for k, v in entries.items()}))
    assert (run.checked, run.matched, run.missing, run.differs) == (3, 2, 1, 0)
    assert run.compared == "document number"
    assert "does not return the lines, so amounts could not be compared" in run.message
    page = admin_client.get(RECON, {"tenant": tenant.pk, **NOV}).content.decode()
    assert "amounts could not be compared" in page


def test_tie_out_flags_another_document_number_and_unreadable_entries(books):
    tenant, entries = books
    entries["BC-acme-101"] = {**entries["BC-acme-101"], "NUM": "ODG-999"}
    entries["BC-acme-103"] = PermanentError(
        "X3 query returned entry ODG-1 with REFINT = BC-other: filter ignored"
    )
    run = _run(tenant, FakeX3Lookup(entries))
    assert (run.checked, run.matched, run.missing, run.differs, run.errors) == (3, 0, 1, 1, 1)
    differs = TieOutRow.objects.get(run=run, problem="differs")
    assert "document number: X3 has ODG-999, the connector recorded ODG-101" in differs.detail


def test_tie_out_when_x3_is_down_claims_nothing(admin_client, books):
    tenant, entries = books
    entries["BC-acme-102"] = RetryableError("Could not connect to Sage X3 (connection refused)")
    run = _run(tenant, FakeX3Lookup(entries))
    assert run.status == "failed"
    assert (run.checked, run.matched, run.missing, run.differs) == (0, 0, 0, 0)
    assert "Sage X3 could not be reached after 1 of 3 entries" in run.message
    assert "Nothing is claimed as matched" in run.message
    assert not TieOutRow.objects.exists()
    page = admin_client.get(RECON, {"tenant": tenant.pk, **NOV}).content.decode()
    assert "did not complete" in page and "matched." not in page
    export = admin_client.get(RECON, {"tenant": tenant.pk, **NOV, "part": "tieout", "export": "csv"})
    assert export.status_code == 404 and "not complete (Failed)" in export.content.decode()


def test_tie_out_channel_filter_and_polite_pauses(books):
    tenant, entries = books
    lookup = FakeX3Lookup(entries)
    pauses: list[float] = []
    run = TieOutRun.objects.create(
        tenant=tenant, period_start=date(2026, 11, 1), period_end=date(2026, 11, 30), channel_id=1
    )
    tieout.run_tie_out(run.pk, x3_client=lookup, sleep=pauses.append)
    assert lookup.looked_up == ["BC-acme-101", "BC-acme-102"]  # channel 2's entry is not checked
    assert pauses == [tieout.PAUSE_SECONDS]  # between lookups, not before the first


def test_tie_out_is_queued_from_the_page(admin_client, books, queued, django_capture_on_commit_callbacks):
    tenant, _ = books
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(TIEOUT, {"tenant": tenant.pk, **NOV}, follow=True)
    run = TieOutRun.objects.get()
    assert queued["tieout"] == [run.pk] and run.status == "queued"
    assert "Checking 3 posted entries against Sage X3" in response.content.decode()


def test_tie_out_stops_when_x3_refuses_every_lookup(books):
    tenant, entries = books
    refused = PermanentError("X3 answered 404: class GACCENTRY is not published")
    run = _run(tenant, FakeX3Lookup(dict.fromkeys(entries, refused)))
    assert run.status == "failed" and "refused the lookup of every entry tried" in run.message
    assert run.matched == 0 and not TieOutRow.objects.exists()


def test_tie_out_with_unusable_x3_settings_checks_nothing(books):
    from connector.clients import UnusableX3Client

    tenant, _ = books
    run = _run(tenant, UnusableX3Client("Sage X3 REST settings: the server URL must start with https://"))
    assert run.status == "failed" and run.message.startswith("The Sage X3 settings cannot be used")


def test_tie_out_summary_in_words(tenant):
    from workspace.views import tie_out_summary

    run = TieOutRun(
        tenant=tenant,
        period_start=date(2026, 11, 1),
        period_end=date(2026, 11, 30),
        checked=1234,
        matched=1231,
        missing=2,
        differs=1,
        finished_at=datetime(2026, 12, 3, 10, 15, tzinfo=UTC),
    )
    text = tie_out_summary(run)
    assert text.startswith("X3 tie-out: checked 1,234 entries on 2026-12-03 ")
    assert text.endswith(": 2 missing, 1 differs, 1,231 matched.")


def test_a_long_tie_out_continues_in_new_tasks_and_ends_with_the_same_result(books, queued):
    tenant, entries = books
    lookup = FakeX3Lookup(entries)
    run = TieOutRun.objects.create(
        tenant=tenant, period_start=date(2026, 11, 1), period_end=date(2026, 11, 30)
    )
    results = []
    while True:  # a zero budget: each task checks one entry, then queues its sequel
        results.append(tieout.run_tie_out(run.pk, x3_client=lookup, sleep=lambda s: None, budget=0))
        run.refresh_from_db()
        if run.status != "queued":
            break
    assert results[:2] == ["1 checked so far, continues", "2 checked so far, continues"]
    assert queued["tieout"] == [run.pk, run.pk]
    assert lookup.looked_up == ["BC-acme-101", "BC-acme-102", "BC-acme-103"]  # each once, in order
    assert (run.status, run.checked, run.matched, run.missing, run.differs) == ("done", 3, 1, 1, 1)
    assert sorted(TieOutRow.objects.filter(run=run).values_list("problem", flat=True)) == [
        "differs",
        "missing",
    ]


def test_a_long_reread_continues_from_where_it_stopped(tenant, queued):
    from tests.conftest import order_json

    bc = FakeBigCommerce()
    start = datetime(2026, 11, 2, tzinfo=UTC)
    for n in range(260):
        moment = start + timedelta(minutes=n)
        bc.put_order(
            order_json(1000 + n, channel_id=1, date_modified=moment.strftime("%a, %d %b %Y %H:%M:%S +0000"))
        )
    run = ReReadRun.objects.create(
        tenant=tenant, period_start=date(2026, 11, 1), period_end=date(2026, 11, 30)
    )
    assert reconcile.run_reread(run.pk, bc_client=bc, budget=0) == "250 checked, continues"
    run.refresh_from_db()
    assert run.status == "queued" and run.resume_from == start + timedelta(minutes=249)
    assert queued["reread"] == [run.pk]
    assert reconcile.run_reread(run.pk, bc_client=bc, budget=0).endswith("queued")
    run.refresh_from_db()
    assert run.status == "done"
    assert set(queued["orders"]) == {1000 + n for n in range(260)}  # every order, none skipped
    assert run.orders_checked == 261  # the order at the boundary second is read twice (inclusive bounds)
