"""Tamper-evident audit: history and X3-call records are chained per tenant; any change made behind the
connector's back (raw SQL) is found by verify_audit, which names the first broken record."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection, connections, transaction
from django.db.models import ProtectedError
from django.utils import timezone

from accounting.admin import audit_chain_lines
from accounting.audit_chain import (
    GENESIS,
    append_attempts,
    append_log,
    attempt_payload,
    link_hash,
    log_payload,
    rechain_existing,
    verify_all,
    verify_tenant,
)
from accounting.models import (
    AuditChainHead,
    AuditCheck,
    ImmutablePostingError,
    Posting,
    PostingAttempt,
    PostingLog,
)
from connector.models import Tenant
from connector.pipeline import sync_order
from tests.conftest import order_json
from tests.fakes import FakeBigCommerce, FakeX3

S = Posting.Status
CHANGELIST = "/admin/accounting/posting/"


@pytest.fixture
def history(tenant):
    """Three orders through the pipeline: two posted (history + X3 calls), one waiting (history only)."""
    bc, x3 = FakeBigCommerce(), FakeX3()
    bc.put_order(order_json(250))
    bc.put_order(order_json(251))
    bc.put_order(order_json(252, status_id=7))
    for order_id in (250, 251, 252):
        sync_order(tenant=tenant, order_id=order_id, trigger="webhook", bc_client=bc, x3_client=x3)
    assert PostingAttempt.objects.count() == 2 and PostingLog.objects.count() == 5
    return tenant


def chain(tenant) -> list:
    """The tenant's records in chain order."""
    rows = [*PostingLog.objects.filter(tenant=tenant), *PostingAttempt.objects.filter(tenant=tenant)]
    return sorted(rows, key=lambda r: r.seq)


def sql(statement: str, params=()) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def other_tenant() -> Tenant:
    return Tenant.objects.create(slug="globex", name="Globex", rounding_account="658000")


def loose_posting(tenant: Tenant, key: str = "order:9") -> Posting:
    return Posting.objects.create(tenant=tenant, idempotency_key=key, order_id=9, status=S.WAITING)


# --- Appending ----------------------------------------------------------------------------------------------------


def test_every_record_links_to_the_previous_one_of_its_tenant(history):
    records = chain(history)
    assert [r.seq for r in records] == list(range(1, 8))
    assert records[0].prev_hash == GENESIS
    for before, record in zip(records, records[1:], strict=False):
        assert record.prev_hash == before.hash
    # within each table the chain follows the order of writing
    for model in (PostingLog, PostingAttempt):
        seqs = list(model.objects.order_by("id").values_list("seq", flat=True))
        assert seqs == sorted(seqs)
    # the X3 call is chained before the history record that says "posted", in the same transaction
    posted = PostingLog.objects.filter(to_status=S.POSTED).order_by("id").first()
    attempt = PostingAttempt.objects.get(posting=posted.posting)
    assert attempt.seq == posted.seq - 1
    head = AuditChainHead.objects.get(tenant=history)
    assert (head.seq, head.hash) == (7, records[-1].hash)
    # the hash covers the record's fields, so it can be recomputed from the row alone
    first_log = PostingLog.objects.order_by("seq").first()
    assert first_log.hash == link_hash(first_log.prev_hash, log_payload(first_log))


def test_each_tenant_has_its_own_chain(history):
    other = other_tenant()
    log = append_log(posting=loose_posting(other), to_status=S.WAITING, message="first")
    assert (log.seq, log.prev_hash, log.tenant_id) == (1, GENESIS, other.pk)
    assert AuditChainHead.objects.get(tenant=history).seq == 7
    results = {r.tenant.slug: (r.intact, r.records) for r in verify_all()}
    assert results == {"acme": (True, 7), "globex": (True, 1)}


def test_a_lost_chain_head_is_rebuilt_from_the_last_record(history):
    AuditChainHead.objects.filter(tenant=history).delete()
    log = append_log(posting=Posting.objects.first(), to_status=S.WAITING)
    assert log.seq == 8 and log.prev_hash == chain(history)[-2].hash
    assert verify_tenant(history).intact


def test_an_empty_tenant_is_intact(tenant):
    result = verify_tenant(tenant)
    assert result.intact and result.records == 0


def test_the_models_refuse_changes_and_writes_that_bypass_the_chain(history):
    log = PostingLog.objects.first()
    log.message = "edited"
    with pytest.raises(ImmutablePostingError):
        log.save()
    with pytest.raises(ImmutablePostingError):
        log.delete()
    with pytest.raises(ImmutablePostingError):
        PostingLog.objects.create(posting=log.posting, to_status=S.PENDING)
    with pytest.raises(ImmutablePostingError):
        PostingAttempt.objects.first().delete()
    # a posting with history, and a user who acted, cannot be deleted: their records stay in the chain
    waiting = Posting.objects.get(status=S.WAITING)
    with pytest.raises(ProtectedError):
        waiting.delete()
    user = get_user_model().objects.create_user("clerk")
    append_log(posting=waiting, to_status=S.WAITING, user=user, message="looked at it")
    with pytest.raises(ProtectedError):
        user.delete()
    assert verify_tenant(history).intact


# --- Tampering is detected ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "model", "assignment"),
    [
        ("accounting_postinglog", PostingLog, "message = 'nothing happened'"),
        ("accounting_postinglog", PostingLog, "to_status = 'skipped'"),
        ("accounting_postinglog", PostingLog, "user_id = NULL, trigger = 'admin'"),
        ("accounting_postingattempt", PostingAttempt, 'response_body = \'{"NUM": "ODG-9"}\''),
        ("accounting_postingattempt", PostingAttempt, "status_code = 500"),
        ("accounting_postingattempt", PostingAttempt, "hash = '" + "f" * 64 + "'"),
    ],
)
def test_a_row_changed_with_raw_sql_is_named(history, table, model, assignment):
    # given the chain is intact, and a record in the middle of it
    assert verify_tenant(history).intact
    target = sorted(model.objects.all(), key=lambda r: r.seq)[1 if model is PostingLog else 0]
    stored_before = target.hash

    # when someone changes it behind the connector's back
    sql(f"UPDATE {table} SET {assignment} WHERE id = %s", [target.pk])  # noqa: S608

    # then verification stops at exactly that record, with both hashes
    result = verify_tenant(history)
    assert not result.intact
    broken = result.broken
    assert (broken.record_type, broken.record_id, broken.seq) == (model.__name__, target.pk, target.seq)
    assert result.records == target.seq - 1
    if "hash =" in assignment:
        assert (broken.expected, broken.stored) == (stored_before, "f" * 64)
    else:
        assert broken.expected != broken.stored and broken.stored == stored_before
    assert f"broken at {model.__name__} #{target.pk}" in str(broken)


def test_a_row_rewritten_with_a_recomputed_hash_breaks_the_next_link(history):
    records = chain(history)
    target, following = records[2], records[3]
    assert isinstance(target, PostingLog)
    target.message = "rewritten"
    forged_hash = link_hash(target.prev_hash, log_payload(target))
    sql(
        "UPDATE accounting_postinglog SET message = %s, hash = %s WHERE id = %s",
        ["rewritten", forged_hash, target.pk],
    )
    broken = verify_tenant(history).broken
    assert (broken.record_type, broken.record_id) == (type(following).__name__, following.pk)
    assert (broken.expected, broken.stored) == (forged_hash, following.prev_hash)


def test_a_consistent_rewrite_is_caught_by_an_anchor_kept_outside(history, capsys):
    # given the head printed by a run and kept elsewhere
    call_command("verify_audit", "--tenant", "acme")
    printed = capsys.readouterr().out
    anchor = f"7:{AuditChainHead.objects.get(tenant=history).hash}"
    assert f"acme: intact (7 records; head {anchor})" in printed

    # when someone rewrites record 3 and recomputes every later hash and the head (no key stops them)
    records = chain(history)
    prev = records[1].hash
    for record in records[2:]:
        if record.seq == 3:
            record.message = "rewritten"
        payload = log_payload(record) if isinstance(record, PostingLog) else attempt_payload(record)
        record.prev_hash, record.hash = prev, link_hash(prev, payload)
        prev = record.hash
        changes = {"prev_hash": record.prev_hash, "hash": record.hash}
        if isinstance(record, PostingLog):
            changes["message"] = record.message
        type(record).objects.filter(pk=record.pk).update(**changes)
    AuditChainHead.objects.filter(tenant=history).update(hash=prev)

    # then the chain alone looks intact, but not against the anchor
    assert verify_tenant(history).intact
    with pytest.raises(CommandError):
        call_command("verify_audit", "--tenant", "acme", "--anchor", anchor)
    assert (
        f"broken at {type(records[-1]).__name__} #{records[-1].pk} (chain position 7)"
        in capsys.readouterr().err
    )
    with pytest.raises(CommandError, match="needs --tenant"):
        call_command("verify_audit", "--anchor", anchor)


def test_an_anchor_beyond_the_chain_is_reported(history):
    result = verify_tenant(history, anchor=(9, "0" * 64))
    assert not result.intact and "before the anchor" in result.broken.reason


def test_a_deleted_row_is_detected_at_the_next_record(history):
    records = chain(history)
    removed, following = records[3], records[4]
    sql(f"DELETE FROM {removed._meta.db_table} WHERE id = %s", [removed.pk])  # noqa: S608
    result = verify_tenant(history)
    broken = result.broken
    assert (broken.record_type, broken.record_id) == (type(following).__name__, following.pk)
    assert "position #4 before it are missing" in broken.reason and result.records == 3


def test_deleting_the_last_records_is_detected_by_the_chain_head(history):
    last = chain(history)[-1]
    sql(f"DELETE FROM {last._meta.db_table} WHERE id = %s", [last.pk])  # noqa: S608
    broken = verify_tenant(history).broken
    assert broken.record_type == "AuditChainHead" and "the last record(s) were deleted" in broken.reason


def _insert_log(tenant, posting, seq: int, prev_hash: str, hash_: str) -> int:
    sql(
        "INSERT INTO accounting_postinglog (posting_id, tenant_id, seq, prev_hash, hash, created_at, "
        "from_status, to_status, trigger, message) VALUES (%s, %s, %s, %s, %s, %s, '', 'posted', '', 'forged')",
        [posting.pk, tenant.pk, seq, prev_hash, hash_, "2026-01-01 00:00:00"],
    )
    return PostingLog.objects.get(tenant=tenant, seq=seq, message="forged").pk


def test_a_forged_row_appended_with_a_valid_hash_is_detected(history):
    last = chain(history)[-1]
    forged = PostingLog(
        tenant=history, posting=last.posting, seq=8, prev_hash=last.hash, to_status="posted", message="forged"
    )
    forged.created_at = PostingLog.objects.first().created_at
    pk = _insert_log(history, last.posting, 8, last.hash, link_hash(last.hash, log_payload(forged)))
    result = verify_tenant(history)
    assert result.records == 7  # every genuine record still verifies
    broken = result.broken
    assert (broken.record_type, broken.record_id, broken.seq) == ("PostingLog", pk, 8)
    assert "beyond the chain head" in broken.reason


def test_a_forged_row_slipped_into_the_middle_is_detected(history):
    records = chain(history)
    attempt = next(r for r in records if isinstance(r, PostingAttempt))
    # the log table has no row at the attempt's position: a forged one claims it
    pk = _insert_log(history, attempt.posting, attempt.seq, attempt.prev_hash, "a" * 64)
    broken = verify_tenant(history).broken
    assert (broken.record_type, broken.record_id, broken.seq) == ("PostingLog", pk, attempt.seq)
    assert "second record claims" in broken.reason


def test_records_moved_to_another_tenant_break_both_chains(history):
    other = other_tenant()
    append_log(posting=loose_posting(other), to_status=S.WAITING)
    moved = chain(history)[2]
    sql(f"UPDATE {moved._meta.db_table} SET tenant_id = %s WHERE id = %s", [other.pk, moved.pk])  # noqa: S608
    results = {r.tenant.slug: r for r in verify_all()}
    assert not results["acme"].intact and not results["globex"].intact


# --- Reporting: command and admin ---------------------------------------------------------------------------------


def test_verify_audit_command_reports_and_exits_by_result(history, capsys):
    call_command("verify_audit")
    assert "Audit chain intact: 7 records verified for 1 tenant(s)" in capsys.readouterr().out
    check = AuditCheck.objects.get(tenant=history)
    assert check.intact and check.records == 7

    log = PostingLog.objects.order_by("seq")[3]
    sql("UPDATE accounting_postinglog SET message = 'x' WHERE id = %s", [log.pk])
    with pytest.raises(CommandError) as raised:
        call_command("verify_audit", "--tenant", "acme")
    assert raised.value.returncode == 1
    err = capsys.readouterr().err
    assert f"acme: broken at PostingLog #{log.pk} (chain position {log.seq})" in err
    assert "expected " in err and f"stored {log.hash}" in err
    check.refresh_from_db()
    assert not check.intact and f"PostingLog #{log.pk}" in check.message

    with pytest.raises(CommandError, match="No tenant"):
        call_command("verify_audit", "--tenant", "nobody")


def test_verify_audit_exits_1_from_the_shell(history):
    from django.core.management import ManagementUtility

    sql("DELETE FROM accounting_postingattempt")
    with pytest.raises(SystemExit) as exited:
        ManagementUtility(["manage.py", "verify_audit"]).execute()
    assert exited.value.code == 1


def test_the_postings_page_shows_the_last_verification(admin_client, history, django_assert_max_num_queries):
    page = admin_client.get(CHANGELIST).content.decode()
    assert "Audit chain of Acme Ltd: not verified yet" in page

    verify_all()
    page = admin_client.get(CHANGELIST).content.decode()
    assert "Audit chain of Acme Ltd: intact (7 records, verified " in page
    with django_assert_max_num_queries(2):  # the stored results, not the records
        assert audit_chain_lines(Tenant.objects.all())[0][0] == "success"

    log = PostingLog.objects.order_by("seq")[2]
    sql("UPDATE accounting_postinglog SET message = 'x' WHERE id = %s", [log.pk])
    page = admin_client.get(CHANGELIST).content.decode()
    assert "intact (7 records" in page  # the page shows the last result; it does not walk the chain itself
    verify_all()
    page = admin_client.get(CHANGELIST).content.decode()
    assert f"Audit chain of Acme Ltd: broken at PostingLog #{log.pk}" in page
    assert '<li class="error">' in page


# --- Records written before the chain existed (data migration) ----------------------------------------------------


def test_existing_records_are_chained_in_order_per_tenant(history):
    other = other_tenant()
    append_log(posting=loose_posting(other), to_status=S.WAITING)
    append_log(posting=Posting.objects.get(tenant=other), to_status=S.SKIPPED)
    # given rows as they were before the chain: no chain columns, no heads
    for model in (PostingLog, PostingAttempt):
        sql(f"UPDATE {model._meta.db_table} SET seq = id + 1000000, prev_hash = '', hash = ''")  # noqa: S608
    AuditChainHead.objects.all().delete()

    assert rechain_existing(PostingLog, PostingAttempt, AuditChainHead, Posting, batch=3) == 9

    assert {r.tenant.slug: (r.intact, r.records) for r in verify_all()} == {
        "acme": (True, 7),
        "globex": (True, 2),
    }
    for model in (PostingLog, PostingAttempt):
        seqs = list(model.objects.filter(tenant=history).order_by("id").values_list("seq", flat=True))
        assert seqs == sorted(seqs)
    # and appending continues the rebuilt chain
    log = append_log(posting=Posting.objects.get(tenant=other), to_status=S.SKIPPED)
    assert log.seq == 3 and verify_tenant(other).intact


@pytest.mark.django_db(transaction=True)
def test_the_migration_chains_rows_written_before_it(tenant):
    from django.db.migrations.executor import MigrationExecutor

    before, after = (
        ("accounting", "0007_awaiting_approval"),
        ("accounting", "0010_audit_chain_required"),
    )
    executor = MigrationExecutor(connection)
    executor.migrate([before])
    try:
        old = executor.loader.project_state([before]).apps
        OldPosting, OldLog, OldAttempt = (
            old.get_model("accounting", m) for m in ("Posting", "PostingLog", "PostingAttempt")
        )
        posting = OldPosting.objects.create(tenant_id=tenant.pk, idempotency_key="order:1", order_id=1)
        OldLog.objects.create(posting=posting, to_status="pending", message="created")
        OldAttempt.objects.create(
            posting=posting, attempt=1, operation="create", method="POST", url="/x", outcome="ok"
        )
        OldLog.objects.create(posting=posting, from_status="pending", to_status="posted", message="posted")
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
    assert after in MigrationExecutor(connection).loader.applied_migrations

    result = verify_tenant(tenant)
    assert result.intact and result.records == 3
    assert list(PostingLog.objects.order_by("seq").values_list("message", "seq")) == [
        ("created", 1),
        ("posted", 3),
    ]
    assert AuditChainHead.objects.get(tenant=tenant).seq == 3


# --- Concurrency --------------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_concurrent_appends_never_fork_a_tenant_chain(tenant):
    """Workers appending for one tenant at the same moment take turns on the chain head (PostgreSQL: the head
    row lock; SQLite: IMMEDIATE transactions)."""
    if connection.vendor == "sqlite" and connection.settings_dict["NAME"] in ("", ":memory:"):
        pytest.skip("an in-memory SQLite database cannot be shared by threads")
    postings = [loose_posting(tenant, f"order:{i}") for i in range(6)]
    barrier = threading.Barrier(len(postings))
    errors = []

    def worker(posting):
        try:
            barrier.wait()
            for n in range(5):
                with transaction.atomic():
                    append_log(posting=posting, to_status=S.WAITING, message=f"{posting.pk}-{n}")
                    attempts = [
                        PostingAttempt(
                            posting=posting, attempt=n, operation="find", method="GET", outcome="ok"
                        ),
                        PostingAttempt(
                            posting=posting, attempt=n, operation="create", method="POST", outcome="ok"
                        ),
                    ]
                    append_attempts(attempts)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(p,)) for p in postings]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    records = chain(tenant)
    assert [r.seq for r in records] == list(range(1, 6 * 5 * 3 + 1))
    result = verify_tenant(tenant)
    assert result.intact and result.records == 90


def test_an_old_verification_is_shown_as_a_warning(history):
    verify_all()
    AuditCheck.objects.update(checked_at=timezone.now() - timedelta(days=3))
    level, text = audit_chain_lines(Tenant.objects.all())[0]
    assert level == "warning" and "intact (7 records" in text


@pytest.mark.django_db(transaction=True)
def test_appending_waits_for_the_posting_row_instead_of_deadlocking(tenant):
    """A worker recording its X3 call and then marking the posting posted, while planning holds that posting's row
    and appends to the chain: the worker must wait for the row before taking the chain head, or each would wait
    for the other (PostgreSQL would abort one of them)."""
    if connection.vendor == "sqlite" and connection.settings_dict["NAME"] in ("", ":memory:"):
        pytest.skip("an in-memory SQLite database cannot be shared by threads")
    posting = loose_posting(tenant)
    row_locked, errors = threading.Event(), []

    def planner():  # holds the posting row (plan_order's _lock_base), then appends
        try:
            with transaction.atomic():
                Posting.objects.select_for_update().get(pk=posting.pk)
                row_locked.set()
                time.sleep(0.5)  # the worker gets going meanwhile
                append_log(posting=posting, to_status=S.WAITING, message="planned")
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            connections.close_all()

    def worker():  # records the call, then updates the posting (submit_posting's success path)
        try:
            row_locked.wait()
            with transaction.atomic():
                append_attempts(
                    [
                        PostingAttempt(
                            posting=posting, attempt=1, operation="create", method="POST", outcome="ok"
                        )
                    ]
                )
                Posting.objects.filter(pk=posting.pk).update(x3_document_number="ODG-1")
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=planner), threading.Thread(target=worker)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert [type(r).__name__ for r in chain(tenant)] == ["PostingLog", "PostingAttempt"]
    assert verify_tenant(tenant).intact
