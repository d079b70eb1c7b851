"""The failure queue's actions: one honest retry (rebuilt from the current order and mapping unless an earlier
send may have reached X3), needs-mapping causes, bulk actions as one queued batch, django-q2 records read-only."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.contrib import messages
from django.contrib.auth.models import Group, Permission
from django.utils import timezone

from accounting.models import ChannelMapping, Posting
from accounting.planning import target_for
from connector import bulk
from connector.models import BulkOperation, Tenant
from connector.operations import retry
from connector.pipeline import deliver_posting, sweep, sync_order
from tests.conftest import order_json
from tests.fakes import FakeBigCommerce
from tests.test_access import accountant_a, client_a, two_tenants  # noqa: F401  (fixtures)
from tests.test_exactly_once import FaultyX3

S = Posting.Status
CHANGELIST = "/admin/accounting/posting/"
DAY = date(2026, 11, 5)


@pytest.fixture
def systems(tenant, monkeypatch, settings):
    """Fake BigCommerce and X3 for every path; the queue records the bell instead of ringing Redis."""
    bc, x3 = FakeBigCommerce(), FaultyX3()
    rung: dict[str, list] = {"postings": [], "bulk": []}
    monkeypatch.setattr("connector.clients.bigcommerce_client", lambda tenant: bc)
    monkeypatch.setattr("connector.clients.x3_client", lambda tenant: x3)
    monkeypatch.setattr("connector.tasks.enqueue_posting", rung["postings"].append)
    monkeypatch.setattr("connector.tasks.enqueue_bulk", rung["bulk"].append)
    monkeypatch.setattr("connector.tasks.enqueue_order_sync", lambda *a: None)
    monkeypatch.setattr("connector.tasks.enqueue_event", lambda *a: None)
    monkeypatch.setattr("connector.tasks.ring_events_doorbell", lambda: None)
    settings.CONNECTOR = {**settings.CONNECTOR, "BULK_INLINE_MAX": 2}
    return bc, x3, rung


def revenue_accounts(x3: FaultyX3) -> list[str]:
    return [line.account for entry in x3.entries for line in entry.lines if line.account.startswith("70")]


def first_failure(tenant, bc, x3, fault: str, order_id: int = 250) -> Posting:
    bc.put_order(order_json(order_id))
    x3.create_fault = fault
    posting = Posting.objects.get(
        pk=sync_order(tenant=tenant, order_id=order_id, trigger="webhook").posting_id
    )
    x3.create_fault = "ok"
    return posting


# --- One honest retry ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("fault,status", [("refusal-400", S.NEEDS_ATTENTION), ("locked-423", S.RETRY)])
def test_after_a_mapping_fix_retry_posts_the_corrected_lines_once(tenant, systems, admin_user, fault, status):
    bc, x3, _ = systems
    posting = first_failure(tenant, bc, x3, fault)
    assert posting.status == status and not posting.may_exist_in_x3
    assert "702000" in {line.account for line in posting.lines.all()}
    ChannelMapping.objects.filter(tenant=tenant, channel_id=2).update(revenue_account="707000")

    report = retry(Posting.objects.filter(pk=posting.pk), user=admin_user)

    posting.refresh_from_db()
    assert posting.status == S.POSTED
    assert report.done == {"posted": 1} and report.level == messages.SUCCESS
    posted = [e for e in x3.entries if e.reference == posting.reference]
    assert len(posted) == 1 and "707000" in {line.account for line in posted[0].lines}
    assert "702000" not in {line.account for line in posted[0].lines}
    history = list(posting.log.values_list("message", flat=True))
    rebuilt = next(m for m in history if "lines rebuilt from" in m)
    assert "mapping “Channel 2” (channel 2)" in rebuilt and "revenue 702000 → 707000" in rebuilt
    assert "Retry requested by admin" in rebuilt
    # Recorded before sending: the rebuild comes before "Posted to X3" in the history.
    assert history.index(rebuilt) < next(i for i, m in enumerate(history) if m.startswith("Posted to X3"))
    assert retry(Posting.objects.filter(pk=posting.pk)).skipped == {"already posted": 1}
    assert len([e for e in x3.entries if e.reference == posting.reference]) == 1


@pytest.mark.parametrize("fault", ["2xx-with-errors-committed", "commit-then-drop"])
def test_an_entry_that_may_be_in_x3_is_not_rebuilt_and_is_looked_up_first(tenant, systems, fault):
    bc, x3, rung = systems
    posting = first_failure(tenant, bc, x3, fault)
    posting.refresh_from_db()
    assert posting.may_exist_in_x3 and posting.status in (S.NEEDS_ATTENTION, S.UNKNOWN)
    lines_before = list(posting.lines.values_list("account", "debit", "credit"))
    ChannelMapping.objects.filter(tenant=tenant, channel_id=2).update(revenue_account="707000")

    report = retry(Posting.objects.filter(pk=posting.pk))

    assert report.done == {"queued (checked in Sage X3 by reference first)": 1}
    assert list(posting.lines.values_list("account", "debit", "credit")) == lines_before
    assert rung["postings"] == [posting.pk]
    calls = x3.calls
    assert deliver_posting(posting.pk) == "found-existing"
    assert x3.calls == calls + 1  # one lookup, no create
    assert x3.count(posting.reference) == 1 and "707000" not in revenue_accounts(x3)
    assert "the lines are not rebuilt" in posting.log.get(message__startswith="Retry requested").message


def test_a_retry_that_changes_nothing_says_so_as_a_warning(tenant, systems):
    bc, x3, _ = systems
    posting = first_failure(tenant, bc, x3, "refusal-400")
    x3.create_fault = "refusal-400"  # X3 still refuses: the lines were not the problem

    report = retry(Posting.objects.filter(pk=posting.pk))

    posting.refresh_from_db()
    assert posting.status == S.NEEDS_ATTENTION
    assert report.counts == (0, 0, 1) and report.level == messages.WARNING
    assert report.failed == {"refused again": 1}
    assert "rebuilt to the same lines" in report.summary()
    assert (
        "the same lines as before" in posting.log.filter(message__contains="Retry requested").last().message
    )


def test_counts_in_one_summary_and_skips_named(tenant, systems, admin_client):
    bc, x3, _ = systems
    failed = first_failure(tenant, bc, x3, "refusal-400", 250)
    posted = first_failure(tenant, bc, x3, "ok", 251)
    response = admin_client.post(
        CHANGELIST, {"action": "retry_now", "_selected_action": [failed.pk, posted.pk]}, follow=True
    )
    shown = [(m.level, m.message) for m in response.context["messages"]]
    assert shown == [(messages.WARNING, "Retry now: 1 posted, 1 skipped because already posted.")]
    response = admin_client.post(
        CHANGELIST, {"action": "retry_now", "_selected_action": [posted.pk]}, follow=True
    )
    assert [m.level for m in response.context["messages"]] == [messages.WARNING]


def test_bigcommerce_down_sends_the_stored_lines_and_says_it_did_not_rebuild(tenant, systems):
    bc, x3, rung = systems
    posting = first_failure(tenant, bc, x3, "refusal-400")
    bc.orders.clear()  # the order cannot be read any more

    report = retry(Posting.objects.filter(pk=posting.pk))

    posting.refresh_from_db()
    assert posting.status == S.RETRY and rung["postings"] == [posting.pk]
    assert report.level == messages.WARNING and "not rebuilt" in report.summary()


# --- Needs mapping: the real cause ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change,words",
    [
        ({"channel_id": 42}, "There is no GL mapping for channel 2."),
        ({"is_active": False}, "The GL mapping for channel 2 exists but is switched off (inactive)."),
        ({"tax_account": ""}, "The GL mapping for channel 2 has no tax account."),
    ],
)
def test_needs_mapping_names_the_cause_and_links_to_the_mapping(tenant, systems, admin_client, change, words):
    bc, _, _ = systems
    ChannelMapping.objects.filter(tenant=tenant, channel_id=2).update(**change)
    bc.put_order(order_json(250))
    posting = Posting.objects.get(pk=sync_order(tenant=tenant, order_id=250, trigger="webhook").posting_id)
    assert posting.status == S.NEEDS_MAPPING and posting.last_error.startswith(words)

    mapping = ChannelMapping.objects.filter(tenant=tenant, channel_id=2).first()
    link = (
        f"/admin/accounting/channelmapping/{mapping.pk}/change/"
        if mapping
        else f"/admin/accounting/channelmapping/add/?tenant={tenant.pk}&amp;channel_id=2"
    )
    page = admin_client.get(CHANGELIST).content.decode()
    assert words in page and f'href="{link}"' in page
    page = admin_client.get(f"{CHANGELIST}{posting.pk}/change/").content.decode()
    banner = page.split('id="posting-banner"')[1].split("</div>")[0]
    assert words in banner and f'href="{link}"' in banner and "Retry now" in banner


def test_target_for_says_which_account_is_blank(tenant):
    ChannelMapping.objects.filter(tenant=tenant, channel_id=2).update(receivable_account=" ", tax_account="")
    from integrations.bigcommerce.parsing import parse_order

    target = target_for(tenant, parse_order(order_json(250)), on=date(2026, 3, 5))
    assert target.state == "unmapped"
    assert "has no receivable account, tax account." in target.message


# --- Bulk actions in the queue -------------------------------------------------------------------------------


def failures(tenant, bc, x3, n: int, start: int = 300) -> list[Posting]:
    return [first_failure(tenant, bc, x3, "refusal-400", start + i) for i in range(n)]


def test_a_large_selection_becomes_one_batch_with_a_progress_page(tenant, systems, admin_client):
    bc, x3, rung = systems
    selected = failures(tenant, bc, x3, 3) + [first_failure(tenant, bc, x3, "ok", 399)]
    x3.entries.clear()

    response = admin_client.post(
        CHANGELIST, {"action": "retry_now", "_selected_action": [p.pk for p in selected]}
    )

    batch = BulkOperation.objects.get()
    assert response.status_code == 302 and response["Location"] == f"{CHANGELIST}bulk/{batch.pk}/"
    assert rung["bulk"] == [batch.pk] and x3.entries == []  # nothing done in the request
    assert sorted(batch.posting_ids) == sorted(p.pk for p in selected)
    page = admin_client.get(response["Location"])
    html = page.content.decode()
    assert '<meta http-equiv="refresh"' in html and 'id="bulk-progress"' in html and 'value="0"' in html
    assert "style=" not in html.split('id="content-main"')[1]  # the CSP allows no inline styles

    assert bulk.run_batch(batch.pk) == "done=3 skipped=1 failed=0"
    batch.refresh_from_db()
    assert (batch.status, batch.position, batch.done, batch.skipped, batch.failed) == ("done", 4, 3, 1, 0)
    assert batch.summary == "3 posted, 1 skipped because already posted." and batch.level == "warning"
    assert len(x3.entries) == 3
    html = admin_client.get(response["Location"]).content.decode()
    assert '<meta http-equiv="refresh"' not in html
    assert html.count("3 posted, 1 skipped because already posted.") == 1
    assert bulk.run_batch(batch.pk) == "not-due"  # a second bell does nothing


def test_a_small_selection_runs_inline_with_one_message(tenant, systems, admin_client):
    bc, x3, _ = systems
    selected = failures(tenant, bc, x3, 2)
    response = admin_client.post(
        CHANGELIST, {"action": "retry_now", "_selected_action": [p.pk for p in selected]}, follow=True
    )
    assert [m.message for m in response.context["messages"]] == ["Retry now: 2 posted."]
    assert not BulkOperation.objects.exists()


def test_a_lost_batch_is_picked_up_by_the_sweep_and_resumes(tenant, systems):
    bc, x3, rung = systems
    selected = failures(tenant, bc, x3, 12)
    batch = bulk.start(BulkOperation.Kind.RETRY, Posting.objects.filter(pk__in=[p.pk for p in selected]))
    rung["bulk"].clear()  # the bell was lost
    assert "batches" not in sweep()  # just queued: not lost yet
    BulkOperation.objects.filter(pk=batch.pk).update(created_at=timezone.now() - timedelta(minutes=5))
    sweep()
    assert rung["bulk"] == [batch.pk]

    assert bulk.run_batch(batch.pk, budget_seconds=0).startswith(
        "continued at 10/12"
    )  # one chunk, then a bell
    assert rung["bulk"] == [batch.pk, batch.pk]
    BulkOperation.objects.filter(pk=batch.pk).update(status="running", heartbeat_at=timezone.now())
    assert bulk.run_batch(batch.pk) == "not-due"  # another worker has it
    stale = timezone.now() - timedelta(hours=1)
    BulkOperation.objects.filter(pk=batch.pk).update(heartbeat_at=stale)  # ... and died
    rung["bulk"].clear()
    sweep()
    assert rung["bulk"] == [batch.pk]
    assert bulk.run_batch(batch.pk) == "done=12 skipped=0 failed=0"
    assert len(x3.entries) == 12


def test_bulk_approve_and_reject_run_as_batches(tenant, systems):
    bc, x3, _ = systems
    Tenant.objects.filter(pk=tenant.pk).update(review_policy=Tenant.ReviewPolicy.ALL)
    tenant.refresh_from_db()
    waiting = [first_failure(tenant, bc, x3, "ok", 500 + i) for i in range(3)]
    assert {p.status for p in waiting} == {S.AWAITING_APPROVAL}
    batch = bulk.start(BulkOperation.Kind.REJECT, Posting.objects.filter(pk__in=[p.pk for p in waiting]))
    bulk.run_batch(batch.pk)
    batch.refresh_from_db()
    assert batch.summary == "3 rejected (nothing sent to Sage X3)." and batch.level == "success"
    again = bulk.start(BulkOperation.Kind.APPROVE, Posting.objects.filter(pk__in=[p.pk for p in waiting]))
    bulk.run_batch(again.pk)
    again.refresh_from_db()
    assert again.done == 0 and again.skipped == 3 and again.level == "warning"


def test_another_tenants_batch_is_404_and_out_of_reach(client_a, two_tenants, accountant_a, monkeypatch):  # noqa: F811
    monkeypatch.setattr("connector.tasks.enqueue_bulk", lambda pk: None)
    a, b = two_tenants
    theirs = bulk.start(BulkOperation.Kind.RETRY, Posting.objects.filter(tenant=b))
    mine = bulk.start(BulkOperation.Kind.RETRY, Posting.objects.filter(tenant=a), user=accountant_a)
    assert client_a.get(f"{CHANGELIST}bulk/{theirs.pk}/").status_code == 404
    assert client_a.get(f"{CHANGELIST}bulk/{mine.pk}/").status_code == 200
    assert client_a.get(f"{CHANGELIST}bulk/999999/").status_code == 404
    listing = client_a.get("/admin/connector/bulkoperation/").content.decode()
    assert f"{CHANGELIST}bulk/{mine.pk}/" in listing and f"{CHANGELIST}bulk/{theirs.pk}/" not in listing
    assert client_a.get(f"/admin/connector/bulkoperation/{theirs.pk}/change/").status_code == 404
    # A batch keeps to the tenants it was started for, even if an ID of another tenant slipped into it.
    other = Posting.objects.get(order_id=9010)
    BulkOperation.objects.filter(pk=mine.pk).update(posting_ids=[other.pk])
    bulk.run_batch(mine.pk)
    other.refresh_from_db()
    assert other.status == S.NEEDS_ATTENTION and other.attempts == 0
    mine.refresh_from_db()
    assert mine.skipped == 1 and "no longer exists" in mine.summary


# --- django-q2's records: read-only for everyone but superusers ----------------------------------------------


Q_PAGES = ("schedule", "success", "failure")


@pytest.fixture
def staff_with_every_q_permission(client, django_user_model):
    user = django_user_model.objects.create_user("stan", password="pw-stan-123", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="django_q"))
    user.groups.add(Group.objects.get(name="Operator"))
    client.force_login(user)
    return client


def test_task_records_and_schedules_are_read_only_for_staff(staff_with_every_q_permission, db):
    from django_q.models import Schedule

    client = staff_with_every_q_permission
    schedule = Schedule.objects.create(
        func="connector.tasks.sweep", schedule_type=Schedule.MINUTES, minutes=5
    )
    for page in Q_PAGES:
        assert client.get(f"/admin/django_q/{page}/").status_code == 200
        assert client.get(f"/admin/django_q/{page}/add/").status_code == 403
    url = f"/admin/django_q/schedule/{schedule.pk}/"
    html = client.get(f"{url}change/").content.decode()
    assert 'name="_save"' not in html
    assert client.post(f"{url}change/", {"func": "os.system", "name": "x"}).status_code == 403
    assert client.post(f"{url}delete/", {"post": "yes"}).status_code == 403
    response = client.post(
        "/admin/django_q/schedule/", {"action": "delete_selected", "_selected_action": [schedule.pk]}
    )
    assert Schedule.objects.filter(pk=schedule.pk, func="connector.tasks.sweep").exists()
    assert 'name="action"' not in client.get("/admin/django_q/failure/").content.decode()
    assert response.status_code in (200, 302)


def test_superusers_keep_full_control_of_task_records(admin_client):
    assert admin_client.get("/admin/django_q/schedule/add/").status_code == 200
