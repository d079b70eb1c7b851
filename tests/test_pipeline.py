"""From a signed webhook to a posted X3 entry, with every external failure mode having a defined outcome."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
import requests
import responses
from django.utils import timezone

from accounting.models import ImmutablePostingError, Posting, PostingAttempt
from connector.models import WebhookEvent
from connector.pipeline import deliver_posting as submit_posting
from connector.pipeline import process_event, sweep, sync_order
from tests.conftest import (
    ACCESS_TOKEN,
    X3_ENTRY_URL,
    X3_PASSWORD,
    order_json,
    order_url,
    standard_headers,
    webhook_body,
)

S = Posting.Status
URL = "/webhooks/bigcommerce/acme/"


@pytest.fixture
def http():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


def created(number: str = "ODG-000042") -> dict:
    return {"$uuid": "6bc5644d-0000-4000-8000-000000000001", "NUM": number, "TYP": "ODG"}


def found(reference: str, number: str = "ODG-000042") -> dict:
    return {"$resources": [{"NUM": number, "REFINT": reference}]}


def deliver(client, body: bytes, msg_id: str):
    return client.post(
        URL, data=body, content_type="application/json", headers=standard_headers(body, msg_id=msg_id)
    )


def make_due(posting: Posting) -> None:
    Posting.objects.filter(pk=posting.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))


def calls_to(http, method: str, url_start: str) -> list:
    return [c for c in http.calls if c.request.method == method and c.request.url.startswith(url_start)]


# --- Acceptance ---------------------------------------------------------------------------------------------------


def test_signed_created_webhook_posts_one_balanced_entry_on_channel_2_accounts(
    client, tenant, http, django_capture_on_commit_callbacks
):
    # given a confirmed order on channel 2
    http.get(order_url(250), json=order_json(250, channel_id=2, status_id=11))
    http.post(X3_ENTRY_URL, json=created("ODG-000042"), status=201)
    body = webhook_body("store/order/created", 250)

    # when the webhook arrives (tasks run inline after commit)
    with django_capture_on_commit_callbacks(execute=True):
        response = deliver(client, body, "msg_acceptance")

    # then
    assert response.status_code == 200
    posting = Posting.objects.get()
    assert posting.status == S.POSTED
    assert posting.x3_document_number == "ODG-000042"
    assert posting.reference == "BC-abc123-250"
    assert posting.trigger == Posting.Trigger.WEBHOOK and posting.source_event is not None
    lines = list(posting.lines.values_list("role", "account", "debit", "credit"))
    assert lines == [
        ("receivable", "412000", Decimal("97.2000"), Decimal("0.0000")),
        ("revenue", "702000", Decimal("0.0000"), Decimal("80.0000")),
        ("shipping", "702800", Decimal("0.0000"), Decimal("10.0000")),
        ("tax", "442570", Decimal("0.0000"), Decimal("7.2000")),
        ("cogs", "602000", Decimal("30.0000"), Decimal("0.0000")),
        ("inventory", "372000", Decimal("0.0000"), Decimal("30.0000")),
    ]
    assert sum(debit for *_, debit, _ in lines) == sum(credit for *_, credit in lines)
    # exactly one BigCommerce call and one X3 call on the happy path
    assert len(calls_to(http, "GET", "https://bc.test")) == 1
    x3_calls = calls_to(http, "POST", X3_ENTRY_URL)
    assert len(x3_calls) == 1
    sent = json.loads(x3_calls[0].request.body)
    assert sent["REFINT"] == "BC-abc123-250" and sent["JOU"] == "VEN" and sent["FCY"] == "FR011"
    assert sent["ACCDAT"] == "2026-03-05" and sent["CUR"] == "USD"
    assert [(row["ACC"], row["DEB"], row["CDT"]) for row in sent["GACCENTRYD"]][0] == ("412000", 97.2, 0)
    assert x3_calls[0].request.headers["Authorization"].startswith("Basic ")
    assert WebhookEvent.objects.get().status == WebhookEvent.Status.PROCESSED
    # the audit trail: the request and response are kept, without credentials
    attempt = PostingAttempt.objects.get(posting=posting)
    assert (
        attempt.operation == "create" and attempt.status_code == 201 and "ODG-000042" in attempt.response_body
    )
    assert X3_PASSWORD not in attempt.request_body + attempt.response_body + attempt.url
    assert [log.to_status for log in posting.log.all()] == [S.PENDING, S.POSTED]

    # when the same webhook is delivered 5 more times
    with django_capture_on_commit_callbacks(execute=True):
        codes = [deliver(client, body, "msg_acceptance").status_code for _ in range(5)]

    # then nothing changes
    assert codes == [200] * 5
    assert Posting.objects.count() == 1 and WebhookEvent.objects.get().deliveries == 6
    assert len(calls_to(http, "POST", X3_ENTRY_URL)) == 1
    assert len(calls_to(http, "GET", "https://bc.test")) == 1


def test_other_events_for_a_posted_order_post_nothing_more(tenant, http):
    http.get(order_url(250), json=order_json(250))
    http.post(X3_ENTRY_URL, json=created(), status=201)
    first = sync_order(tenant=tenant, order_id=250, trigger=Posting.Trigger.WEBHOOK)
    second = sync_order(tenant=tenant, order_id=250, trigger=Posting.Trigger.REPLAY)
    assert (first.outcome, first.posting_status) == ("created", S.POSTED)
    assert (second.outcome, second.posting_status) == ("already-posted", S.POSTED)
    assert len(calls_to(http, "POST", X3_ENTRY_URL)) == 1


def test_bigcommerce_is_called_with_the_token_and_one_call_per_order(tenant, http):
    http.get(order_url(250), json=order_json(250))
    http.post(X3_ENTRY_URL, json=created(), status=201)
    sync_order(tenant=tenant, order_id=250, trigger=Posting.Trigger.WEBHOOK)
    request = calls_to(http, "GET", "https://bc.test")[0].request
    assert request.headers["X-Auth-Token"] == ACCESS_TOKEN
    assert "include=consignments.line_items" in requests.utils.unquote(request.url)


# --- Order states and mappings ------------------------------------------------------------------------------------


def test_unconfirmed_order_waits_then_posts_once_confirmed(tenant, http):
    http.get(order_url(7), json=order_json(7, status_id=7))
    result = sync_order(tenant=tenant, order_id=7, trigger=Posting.Trigger.WEBHOOK)
    assert (result.outcome, result.posting_status) == ("created", S.WAITING)
    assert not calls_to(http, "POST", X3_ENTRY_URL)
    assert Posting.objects.get().lines.count() == 0

    http.replace(responses.GET, order_url(7), json=order_json(7, status_id=11))
    http.post(X3_ENTRY_URL, json=created(), status=201)
    result = sync_order(tenant=tenant, order_id=7, trigger=Posting.Trigger.WEBHOOK)
    assert (result.outcome, result.posting_status) == ("reopened", S.POSTED)
    assert Posting.objects.count() == 1


def test_confirmed_statuses_are_configurable_per_tenant(tenant, http):
    tenant.confirmed_status_ids = [10]
    tenant.save()
    http.get(order_url(8), json=order_json(8, status_id=11))
    assert sync_order(tenant=tenant, order_id=8, trigger="webhook").posting_status == S.WAITING


def test_unmapped_channel_is_parked_and_posts_after_mapping(tenant, http):
    http.get(order_url(9), json=order_json(9, channel_id=77))
    result = sync_order(tenant=tenant, order_id=9, trigger=Posting.Trigger.WEBHOOK)
    posting = Posting.objects.get()
    assert result.posting_status == S.NEEDS_MAPPING
    assert "channel 77" in posting.last_error
    assert not calls_to(http, "POST", X3_ENTRY_URL)

    tenant.channel_mappings.filter(channel_id=3).update(channel_id=77)
    http.post(X3_ENTRY_URL, json=created(), status=201)
    result = sync_order(tenant=tenant, order_id=9, trigger=Posting.Trigger.ADMIN)
    assert result.posting_status == S.POSTED
    assert posting.lines.filter(role="receivable").get().account == "413000"


def test_inconsistent_order_posts_with_a_flagged_rounding_line(tenant, http):
    data = order_json(10)
    data["total_inc_tax"] = "99.0000"  # 1.80 more than the components
    http.get(order_url(10), json=data)
    http.post(X3_ENTRY_URL, json=created(), status=201)
    sync_order(tenant=tenant, order_id=10, trigger="webhook")
    posting = Posting.objects.get()
    assert posting.flagged and posting.difference == Decimal("1.80")
    assert posting.lines.get(role="rounding").account == "658000"
    assert posting.status == S.POSTED


# --- X3 failures --------------------------------------------------------------------------------------------------


def pending_posting(tenant, http, order_id: int = 250) -> Posting:
    http.get(order_url(order_id), json=order_json(order_id))
    return Posting.objects.get(pk=sync_order(tenant=tenant, order_id=order_id, trigger="webhook").posting_id)


def test_timeout_on_create_is_checked_by_reference_and_never_reposted(tenant, http):
    http.post(X3_ENTRY_URL, body=requests.exceptions.ReadTimeout("read timed out"))
    posting = pending_posting(tenant, http)
    posting.refresh_from_db()
    assert posting.status == S.UNKNOWN and posting.next_attempt_at > timezone.now()

    # the entry did land in X3: the next attempt finds it and does not POST again
    http.get(X3_ENTRY_URL, json=found("BC-abc123-250", "ODG-000777"))
    make_due(posting)
    assert submit_posting(posting.pk) == "found-existing"
    posting.refresh_from_db()
    assert posting.status == S.POSTED and posting.x3_document_number == "ODG-000777"
    assert len(calls_to(http, "POST", X3_ENTRY_URL)) == 1
    outcomes = list(posting.attempt_log.values_list("operation", "outcome"))
    assert outcomes == [("create", "unknown"), ("find", "ok")]


def test_5xx_on_create_then_not_found_posts_once(tenant, http):
    http.post(X3_ENTRY_URL, status=502, body="Bad gateway")
    posting = pending_posting(tenant, http)
    posting.refresh_from_db()
    assert posting.status == S.UNKNOWN

    http.get(X3_ENTRY_URL, json={"$resources": []})
    http.replace(responses.POST, X3_ENTRY_URL, json=created("ODG-000043"), status=201)
    make_due(posting)
    assert submit_posting(posting.pk) == "posted"
    posting.refresh_from_db()
    # X3 answering 5xx is "X3 unavailable", not a verdict on the entry: it does not spend the attempt budget
    assert posting.x3_document_number == "ODG-000043" and posting.attempts == 1


def test_connection_refused_is_retried_without_a_check(tenant, http):
    http.post(X3_ENTRY_URL, body=requests.exceptions.ConnectTimeout("connect timed out"))
    posting = pending_posting(tenant, http)
    posting.refresh_from_db()
    assert posting.status == S.RETRY

    http.replace(responses.POST, X3_ENTRY_URL, json=created(), status=201)
    make_due(posting)
    assert submit_posting(posting.pk) == "posted"
    assert not calls_to(http, "GET", X3_ENTRY_URL)


def test_x3_validation_error_stops_at_needs_attention_with_x3s_message(tenant, http):
    http.post(
        X3_ENTRY_URL,
        status=400,
        json={
            "$diagnoses": [
                {"$severity": "error", "$message": "Accounting date 2026-03-05: period 2026-03 is closed"}
            ]
        },
    )
    posting = pending_posting(tenant, http)
    posting.refresh_from_db()
    assert posting.status == S.NEEDS_ATTENTION
    assert "period 2026-03 is closed" in posting.last_error
    assert posting.next_attempt_at is None
    assert submit_posting(posting.pk) == "not-due"  # nothing retries a permanent failure by itself


def test_bad_json_from_x3_is_an_unknown_outcome(tenant, http):
    http.post(X3_ENTRY_URL, body="<html>proxy error</html>", status=200, content_type="text/html")
    posting = pending_posting(tenant, http)
    posting.refresh_from_db()
    assert posting.status == S.UNKNOWN


def test_x3_auth_failure_needs_attention(tenant, http):
    http.post(X3_ENTRY_URL, status=401, body="")
    posting = pending_posting(tenant, http)
    posting.refresh_from_db()
    assert posting.status == S.NEEDS_ATTENTION and X3_PASSWORD not in posting.last_error


def test_retries_give_up_after_max_attempts(tenant, http, settings):
    settings.CONNECTOR = {**settings.CONNECTOR, "MAX_ATTEMPTS": 2}
    http.post(X3_ENTRY_URL, status=423, json={"$diagnoses": [{"$severity": "error", "$message": "Locked"}]})
    posting = pending_posting(tenant, http)
    make_due(posting)
    assert submit_posting(posting.pk) == "gave-up"
    posting.refresh_from_db()
    assert posting.status == S.NEEDS_ATTENTION and "Gave up after 2 attempts" in posting.last_error


def test_a_second_worker_cannot_claim_a_posting_in_flight(tenant, http):
    http.get(order_url(250), json=order_json(250, status_id=7))
    sync_order(tenant=tenant, order_id=250, trigger="webhook")
    posting = Posting.objects.get()
    Posting.objects.filter(pk=posting.pk).update(status=S.POSTING)
    assert submit_posting(posting.pk) == "not-due"


def test_too_long_reference_is_refused_before_calling_x3(tenant, http):
    tenant.x3.reference_prefix = "A-LONGER-PREFIX1"
    tenant.x3.save()
    posting = pending_posting(tenant, http, order_id=123456789)
    posting.refresh_from_db()
    assert posting.status == S.NEEDS_ATTENTION and "25-character" in posting.last_error
    assert not calls_to(http, "POST", X3_ENTRY_URL)


# --- BigCommerce failures during event processing -----------------------------------------------------------------


def stored_event(tenant, order_id: int = 250) -> WebhookEvent:
    return WebhookEvent.objects.create(
        tenant=tenant,
        delivery_key=f"k{order_id}",
        scope="store/order/created",
        order_id=order_id,
        body="{}",
        verified_by="standard_webhooks",
    )


@pytest.mark.parametrize(
    "kwargs,result,retry",
    [
        (
            {"status": 404, "json": {"status": 404, "title": "The requested resource was not found."}},
            "order-not-found",
            False,
        ),
        ({"status": 401, "json": {"status": 401, "title": "Unauthorized"}}, "failed", False),
        ({"status": 500, "body": "oops"}, "retry-scheduled", True),
        ({"status": 200, "body": "not json"}, "retry-scheduled", True),
        ({"body": requests.exceptions.ReadTimeout("slow")}, "retry-scheduled", True),
        (
            {"status": 429, "headers": {"X-Rate-Limit-Time-Reset-Ms": "600000"}, "json": {}},
            "retry-scheduled",
            True,
        ),
    ],
    ids=["404", "401", "500", "bad-json", "timeout", "429"],
)
def test_bigcommerce_failures_have_a_defined_outcome(tenant, http, kwargs, result, retry):
    http.get(order_url(250), **kwargs)
    event = stored_event(tenant)
    assert process_event(event.pk) == result
    event.refresh_from_db()
    assert event.status == WebhookEvent.Status.FAILED and event.error
    assert (event.next_attempt_at is not None) == retry
    assert ACCESS_TOKEN not in event.error
    assert not Posting.objects.exists()


def test_a_processed_event_is_not_processed_again(tenant, http):
    http.get(order_url(250), json=order_json(250, status_id=1))
    event = stored_event(tenant)
    assert process_event(event.pk) == "created:waiting"
    assert process_event(event.pk) == "not-due"
    assert len(http.calls) == 1


# --- Sweep --------------------------------------------------------------------------------------------------------


def test_sweep_finds_lost_and_stuck_work(tenant, http, monkeypatch):
    queued: list[tuple[str, int]] = []
    monkeypatch.setattr("connector.tasks.enqueue_event", lambda pk: queued.append(("event", pk)))
    monkeypatch.setattr("connector.tasks.enqueue_posting", lambda pk: queued.append(("posting", pk)))
    monkeypatch.setattr("connector.tasks.ring_events_doorbell", lambda: queued.append(("doorbell", 0)))
    old = timezone.now() - timedelta(hours=1)
    lost_event = stored_event(tenant, 1)
    WebhookEvent.objects.filter(pk=lost_event.pk).update(received_at=old)
    fresh_event = stored_event(tenant, 2)
    failed_event = stored_event(tenant, 4)
    WebhookEvent.objects.filter(pk=failed_event.pk).update(status="failed", next_attempt_at=old)
    http.get(order_url(3), json=order_json(3, status_id=7))
    sync_order(tenant=tenant, order_id=3, trigger="webhook")
    stuck = Posting.objects.get(order_id=3)
    Posting.objects.filter(pk=stuck.pk).update(status=S.POSTING, claimed_at=old)

    result = sweep()

    stuck.refresh_from_db()
    assert stuck.status == S.UNKNOWN  # X3 will be asked before anything is re-sent
    # the waiting event rings the events doorbell once (a drain takes it); the due failed one is queued by id
    assert queued.count(("doorbell", 0)) == 1 and "waiting=rang" in result
    assert ("event", failed_event.pk) in queued
    assert ("event", lost_event.pk) not in queued and ("event", fresh_event.pk) not in queued
    assert ("posting", stuck.pk) in queued
    assert "unstuck=1" in result


# --- Immutability -------------------------------------------------------------------------------------------------


def test_posted_entries_cannot_be_changed_or_deleted(tenant, http):
    http.get(order_url(250), json=order_json(250))
    http.post(X3_ENTRY_URL, json=created(), status=201)
    sync_order(tenant=tenant, order_id=250, trigger="webhook")
    posting = Posting.objects.get()
    posting.description = "tampered"
    with pytest.raises(ImmutablePostingError):
        posting.save()
    with pytest.raises(ImmutablePostingError):
        posting.delete()
    line = posting.lines.first()
    line.debit = Decimal(1)
    with pytest.raises(ImmutablePostingError):
        line.save()


def test_one_re_read_serves_the_events_bigcommerce_sends_together(tenant, http):
    # given created and statusUpdated for a new order, both waiting (and a refund event, which stays separate)
    http.get(order_url(250), json=order_json(250))
    http.post(X3_ENTRY_URL, json=created(), status=201)
    first = stored_event(tenant)
    second = WebhookEvent.objects.create(
        tenant=tenant,
        delivery_key="k-status",
        scope="store/order/statusUpdated",
        order_id=250,
        body="{}",
        verified_by="standard_webhooks",
    )
    refund = WebhookEvent.objects.create(
        tenant=tenant,
        delivery_key="k-refund",
        scope="store/order/refund/created",
        order_id=250,
        refund_id=7,
        body="{}",
        verified_by="standard_webhooks",
    )
    # when the first is processed
    assert process_event(first.pk) == "created:posted"
    # then the second was taken along: processed, and its own task finds nothing to do
    second.refresh_from_db()
    refund.refresh_from_db()
    assert second.status == WebhookEvent.Status.PROCESSED
    assert refund.status == WebhookEvent.Status.RECEIVED
    assert process_event(second.pk) == "not-due"
    assert len(calls_to(http, "GET", "https://bc.test")) == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_of_one_posting_call_x3_once(tenant, monkeypatch):
    """Many workers ringing for the same posting at once: exactly one claims it and calls X3."""
    import threading

    from django.db import connection, connections

    from tests.fakes import FakeBigCommerce, FakeX3

    if connection.vendor == "sqlite":
        pytest.skip("SQLite serialises writers; this race is checked on PostgreSQL in CI")
    bc, x3 = FakeBigCommerce(), FakeX3()
    bc.put_order(order_json(250, status_id=7))
    sync_order(tenant=tenant, order_id=250, trigger="webhook", bc_client=bc, x3_client=x3)
    bc.put_order(order_json(250))
    Posting.objects.filter(idempotency_key="order:250").update(status=S.PENDING)
    posting = Posting.objects.get(idempotency_key="order:250")
    from accounting.planning import plan_order

    plan_order(tenant=tenant, order=bc.get_order(250), trigger="webhook")  # lines for the pending posting
    barrier = threading.Barrier(6)
    results = []

    def worker():
        try:
            barrier.wait()
            results.append(submit_posting(posting.pk, client=x3))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["not-due"] * 5 + ["posted"]
    assert len(x3.entries) == 1
