"""A webhook received before a committed re-read of its order started is finished without calling BigCommerce
(issue 13, docs/decisions/0028-webhooks-covered-by-a-later-read.md)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import responses

from accounting.models import Posting
from connector.models import WebhookEvent
from connector.pipeline import process_event, sync_order
from tests.conftest import order_json, order_url

E = WebhookEvent.Status


@pytest.fixture
def http():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


def stored_event(tenant, key: str, *, order_id: int = 250, refund_id: int | None = None) -> WebhookEvent:
    return WebhookEvent.objects.create(
        tenant=tenant,
        delivery_key=key,
        scope="store/order/refund/created" if refund_id else "store/order/statusUpdated",
        order_id=order_id,
        refund_id=refund_id,
        body="{}",
        verified_by="standard_webhooks",
    )


def read_order(tenant, http, order_id: int = 250) -> Posting:
    """Another worker's re-read of the order (a waiting order: nothing is sent to X3)."""
    http.get(order_url(order_id), json=order_json(order_id, status_id=1))
    sync_order(tenant=tenant, order_id=order_id, trigger=Posting.Trigger.WEBHOOK)
    return Posting.objects.get(order_id=order_id, kind=Posting.Kind.ORDER)


def test_an_event_received_before_a_committed_read_started_is_finished_without_a_call(tenant, http):
    event = stored_event(tenant, "k1")  # received, then another worker's read starts and commits
    base = read_order(tenant, http)
    assert base.order_read_at is not None and base.order_read_at >= event.received_at

    with responses.RequestsMock() as no_calls:  # any request would fail the test
        assert process_event(event.pk) == "covered"
        assert len(no_calls.calls) == 0
    event.refresh_from_db()
    assert event.status == E.PROCESSED
    assert event.error.startswith("Covered by the re-read of ")


def test_an_event_received_after_the_read_started_is_fetched(tenant, http):
    base = read_order(tenant, http)
    event = stored_event(tenant, "k1")
    WebhookEvent.objects.filter(pk=event.pk).update(
        received_at=base.order_read_at + timedelta(milliseconds=1)
    )
    calls_before = len(http.calls)

    assert process_event(event.pk) != "covered"
    assert len(http.calls) == calls_before + 1


def test_the_margin_setting_requires_a_read_that_started_later(tenant, http, settings):
    event = stored_event(tenant, "k1")
    base = read_order(tenant, http)
    margin = (base.order_read_at - event.received_at).total_seconds() + 1
    settings.CONNECTOR = {**settings.CONNECTOR, "COVERED_READ_MARGIN_SECONDS": margin}
    calls_before = len(http.calls)

    assert process_event(event.pk) != "covered"
    assert len(http.calls) == calls_before + 1


def test_a_refund_event_is_fetched_unless_its_refund_is_recorded(tenant, http):
    event = stored_event(tenant, "k1", refund_id=7)
    read_order(tenant, http)  # the read started after the event, but no refund:250:7 posting exists
    http.replace(responses.GET, order_url(250), status=404, json={"status": 404, "title": "Not found"})
    calls_before = len(http.calls)

    assert process_event(event.pk) == "order-not-found"
    assert len(http.calls) == calls_before + 1


def test_a_read_whose_planning_raised_does_not_count(tenant, http, monkeypatch):
    read_order(tenant, http)  # an earlier committed read (before the event)
    event = stored_event(tenant, "k1")

    def broken(*args, **kwargs):
        raise RuntimeError("planning failed")

    monkeypatch.setattr("accounting.planning._plan_base", broken)
    with pytest.raises(RuntimeError):  # a read started after the event, but its transaction rolled back
        sync_order(tenant=tenant, order_id=250, trigger=Posting.Trigger.WEBHOOK)
    monkeypatch.undo()
    base = Posting.objects.get(order_id=250, kind=Posting.Kind.ORDER)
    assert base.order_read_at < event.received_at
    calls_before = len(http.calls)

    assert process_event(event.pk) != "covered"
    assert len(http.calls) == calls_before + 1


def held_by_another_worker(event: WebhookEvent, tenant) -> WebhookEvent:
    """The order's other event, claimed by another worker after ``event`` was received."""
    holder = stored_event(tenant, "k0")
    WebhookEvent.objects.filter(pk=holder.pk).update(
        status=E.PROCESSING, processing_started_at=event.received_at + timedelta(milliseconds=1)
    )
    return holder


def test_an_event_waits_for_the_read_of_a_worker_that_claimed_the_order_after_it_was_received(
    tenant, http, monkeypatch, settings
):
    settings.CONNECTOR = {**settings.CONNECTOR, "COVERED_READ_WAIT_SECONDS": 5}
    event = stored_event(tenant, "k1")
    holder = held_by_another_worker(event, tenant)
    waits = []

    def other_worker_reads(seconds):  # meanwhile the other worker reads the order and commits its plan
        if not waits:
            read_order(tenant, http)
            WebhookEvent.objects.filter(pk=holder.pk).update(status=E.PROCESSED)
        waits.append(seconds)

    monkeypatch.setattr("connector.pipeline.time.sleep", other_worker_reads)
    assert process_event(event.pk) == "covered"
    assert len(http.calls) == 1  # the other worker's read only
    assert len(waits) == 1


def test_an_event_reads_the_order_itself_when_the_holder_fails(tenant, http, monkeypatch, settings):
    settings.CONNECTOR = {**settings.CONNECTOR, "COVERED_READ_WAIT_SECONDS": 5}
    event = stored_event(tenant, "k1")
    holder = held_by_another_worker(event, tenant)

    def other_worker_fails(seconds):  # its BigCommerce read failed: nothing was planned
        WebhookEvent.objects.filter(pk=holder.pk).update(status=E.FAILED)

    monkeypatch.setattr("connector.pipeline.time.sleep", other_worker_fails)
    http.get(order_url(250), json=order_json(250, status_id=1))
    assert process_event(event.pk) == "created:waiting"
    assert len(http.calls) == 1


def test_no_wait_for_a_worker_that_claimed_the_order_before_the_event_was_received(
    tenant, http, monkeypatch, settings
):
    settings.CONNECTOR = {**settings.CONNECTOR, "COVERED_READ_WAIT_SECONDS": 5}
    event = stored_event(tenant, "k1")
    holder = held_by_another_worker(event, tenant)
    WebhookEvent.objects.filter(pk=holder.pk).update(
        processing_started_at=event.received_at - timedelta(milliseconds=1)
    )

    def no_sleep(seconds):
        raise AssertionError("must not wait: that worker's read may predate the event")

    monkeypatch.setattr("connector.pipeline.time.sleep", no_sleep)
    http.get(order_url(250), json=order_json(250, status_id=1))
    assert process_event(event.pk) == "created:waiting"
