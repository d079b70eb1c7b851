"""The events doorbell: a webhook rings (on Redis, at most one queued drain at a time), a drain takes every waiting
event oldest first, concurrent drains never take the same event (docs/decisions/0029-coalesced-events-doorbell.md).
"""

from __future__ import annotations

import os
import threading
import time
from datetime import timedelta
from unittest import mock

import pytest
import redis
import responses
from django.db import connection, connections, transaction
from django.utils import timezone
from django_q.brokers.redis_broker import Redis as RedisBroker
from django_q.conf import Conf

from connector import pipeline, tasks
from connector.models import Tenant, WebhookEvent
from tests.conftest import X3_ENTRY_URL, order_json, order_url, standard_headers, webhook_body

URL = "/webhooks/bigcommerce/acme/"
R = WebhookEvent.Status


def stored(tenant, order_id: int, **fields) -> WebhookEvent:
    return WebhookEvent.objects.create(
        tenant=tenant,
        delivery_key=f"k{order_id}",
        scope="store/order/created",
        order_id=order_id,
        body="{}",
        verified_by="standard_webhooks",
        **fields,
    )


@pytest.fixture
def processed(monkeypatch) -> list[int]:
    """The drain's processing replaced by a recorder that finishes the event: the order of work is visible."""
    seen: list[int] = []

    def finish(event_id: int, now) -> str:
        seen.append(event_id)
        WebhookEvent.objects.filter(pk=event_id).update(status=R.PROCESSED)
        return "done"

    monkeypatch.setattr(pipeline, "_process_claimed", finish)
    return seen


@pytest.fixture
def rings(monkeypatch) -> list[int]:
    rung: list[int] = []
    monkeypatch.setattr(tasks, "ring_events_doorbell", lambda: rung.append(1) or True)
    return rung


# --- The drain ----------------------------------------------------------------------------------------------------


def test_a_drain_processes_every_waiting_event_oldest_first(tenant, processed, rings):
    events = [stored(tenant, order_id) for order_id in (30, 10, 20)]
    done = stored(tenant, 40, status=R.PROCESSED)

    result = pipeline.drain_events()

    assert processed == [e.pk for e in events]  # by arrival, not by order number
    assert done.pk not in processed
    assert result == "drained=3 failed=0"
    assert not WebhookEvent.objects.filter(status=R.RECEIVED).exists()
    assert rings == []  # nothing left: no ring


def test_a_drain_leaves_an_inactive_tenants_events_waiting(tenant, processed, rings):
    other = Tenant.objects.create(
        slug="paused", name="Paused Ltd", rounding_account="658000", is_active=False
    )
    paused = stored(other, 1)
    active = stored(tenant, 2)

    pipeline.drain_events()

    assert processed == [active.pk]
    paused.refresh_from_db()
    assert paused.status == R.RECEIVED and paused.attempts == 0


def test_a_drain_stops_at_its_bound_and_rings_for_the_rest(tenant, processed, rings, settings):
    settings.CONNECTOR = {**settings.CONNECTOR, "DRAIN_MAX_EVENTS": 2}
    events = [stored(tenant, order_id) for order_id in (1, 2, 3)]

    result = pipeline.drain_events()

    assert processed == [events[0].pk, events[1].pk]
    assert result == "drained=2 failed=0 bound reached"
    assert rings == [1]  # a fresh drain takes the third
    assert WebhookEvent.objects.get(status=R.RECEIVED).pk == events[2].pk


def test_a_drain_stops_after_its_time_bound(tenant, processed, rings):
    stored(tenant, 1)
    assert pipeline.drain_events(max_seconds=0) == "drained=0 failed=0 bound reached"
    assert rings == [1] and processed == []


def test_a_drain_rings_before_processing_while_more_events_wait(tenant, processed, monkeypatch):
    # on Redis with real workers (not inline), a claim that sees another waiting event rings first
    monkeypatch.setattr(tasks, "doorbell_store", lambda: mock.Mock())
    monkeypatch.setattr(tasks, "inline_tasks", lambda: False)
    timeline: list[str] = []
    monkeypatch.setattr(tasks, "ring_events_doorbell", lambda: timeline.append("ring") or True)
    record = pipeline._process_claimed
    monkeypatch.setattr(
        pipeline, "_process_claimed", lambda pk, now: timeline.append(f"event {pk}") or record(pk, now)
    )
    first, second, third = (stored(tenant, order_id) for order_id in (1, 2, 3))

    pipeline.drain_events()

    assert timeline == [
        "ring",
        f"event {first.pk}",
        "ring",
        f"event {second.pk}",
        f"event {third.pk}",  # the last one: nothing else waits, no ring
    ]


def test_inline_tasks_never_fan_out(tenant, processed, rings):
    # the test settings run tasks inline: a ring would start a nested drain, and no other worker exists
    for order_id in (1, 2, 3):
        stored(tenant, order_id)
    pipeline.drain_events()
    assert len(processed) == 3 and rings == []


def test_one_failing_event_does_not_stop_the_drain(tenant, monkeypatch, rings):
    first, second = stored(tenant, 1), stored(tenant, 2)

    def process(event_id: int, now) -> str:
        if event_id == first.pk:
            raise RuntimeError("boom")
        WebhookEvent.objects.filter(pk=event_id).update(status=R.PROCESSED)
        return "done"

    monkeypatch.setattr(pipeline, "_process_claimed", process)
    assert pipeline.drain_events() == "drained=2 failed=1"
    second.refresh_from_db()
    assert second.status == R.PROCESSED


@pytest.fixture
def http():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


def test_a_drain_runs_the_same_processing_as_process_event(tenant, http, rings):
    # created and statusUpdated of one order: one re-read, the second taken along; another order on its own
    for order_id in (250, 251):
        http.get(order_url(order_id), json=order_json(order_id))
    http.post(
        X3_ENTRY_URL,
        json={"$uuid": "6bc5644d-0000-4000-8000-000000000001", "NUM": "ODG-1", "TYP": "ODG"},
        status=201,
    )
    created = stored(tenant, 250)
    companion = WebhookEvent.objects.create(
        tenant=tenant,
        delivery_key="k250-status",
        scope="store/order/statusUpdated",
        order_id=250,
        body="{}",
        verified_by="standard_webhooks",
    )
    other = stored(tenant, 251)

    assert pipeline.drain_events() == "drained=2 failed=0"

    statuses = dict(WebhookEvent.objects.values_list("pk", "status"))
    assert statuses == {created.pk: R.PROCESSED, companion.pk: R.PROCESSED, other.pk: R.PROCESSED}
    reads = [c.request.url for c in http.calls if c.request.method == "GET"]
    assert len(reads) == 2  # one per order


@pytest.mark.django_db(transaction=True)  # on_commit runs inside the request, as in production
def test_with_inline_tasks_a_webhook_is_processed_at_once(client, tenant, http):
    http.get(order_url(260), json=order_json(260, status_id=1))  # pending order: nothing to post yet
    body = webhook_body(order_id=260)
    assert (
        client.post(
            URL, data=body, content_type="application/json", headers=standard_headers(body)
        ).status_code
        == 200
    )
    event = WebhookEvent.objects.get()
    assert event.status == R.PROCESSED and event.attempts == 1


def test_process_event_still_takes_one_event_by_id(tenant, processed):
    first, second = stored(tenant, 1), stored(tenant, 2)
    assert pipeline.process_event(second.pk) == "done"
    assert processed == [second.pk]
    first.refresh_from_db()
    assert first.status == R.RECEIVED


def test_the_sweep_rings_once_for_events_left_waiting(tenant, rings, monkeypatch):
    queued: list[int] = []
    monkeypatch.setattr(tasks, "enqueue_event", queued.append)
    for order_id in (1, 2, 3):
        stored(tenant, order_id)
    WebhookEvent.objects.update(received_at=timezone.now() - timedelta(minutes=1))
    fresh = stored(tenant, 4)

    assert "waiting=rang" in pipeline.sweep()
    assert rings == [1] and queued == []

    WebhookEvent.objects.exclude(pk=fresh.pk).update(status=R.PROCESSED)
    assert "waiting" not in pipeline.sweep()  # only the fresh one waits: its own doorbell is recent
    assert rings == [1]


# --- PostgreSQL: concurrent drains -----------------------------------------------------------------------------


def _claim_all(results: list[int], barrier: threading.Barrier) -> None:
    try:
        barrier.wait()
        while True:
            event_id, _ = pipeline._claim_next_event(timezone.now())
            if event_id is None:
                return
            results.append(event_id)
    finally:
        connections.close_all()


@pytest.mark.django_db(transaction=True)
def test_concurrent_drains_never_claim_the_same_event(tenant):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writers; this race is checked on PostgreSQL")
    events = {stored(tenant, order_id).pk for order_id in range(1, 61)}
    barrier = threading.Barrier(4)
    claimed: list[list[int]] = [[] for _ in range(4)]
    threads = [threading.Thread(target=_claim_all, args=(claimed[i], barrier)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [pk for mine in claimed for pk in mine]
    assert sorted(everything) == sorted(events)  # each event exactly once
    assert WebhookEvent.objects.filter(status=R.PROCESSING, attempts=1).count() == 60


@pytest.mark.django_db(transaction=True)
def test_a_drain_skips_an_event_another_holds_without_waiting(tenant):
    if connection.vendor != "postgresql":
        pytest.skip("SKIP LOCKED is PostgreSQL's")
    held, free, last = (stored(tenant, order_id) for order_id in (1, 2, 3))
    locked, release = threading.Event(), threading.Event()

    def holder() -> None:
        try:
            with transaction.atomic():
                list(WebhookEvent.objects.select_for_update().filter(pk=held.pk))
                locked.set()
                release.wait(10)
        finally:
            connections.close_all()

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert locked.wait(10)
        started = time.monotonic()
        event_id, more = pipeline._claim_next_event(timezone.now())
        assert time.monotonic() - started < 2  # did not wait for the holder's lock
        assert event_id == free.pk and more  # the last one still waits
    finally:
        release.set()
        thread.join()
    held.refresh_from_db()
    assert held.status == R.RECEIVED
    assert pipeline._claim_next_event(timezone.now()) == (held.pk, True)
    assert pipeline._claim_next_event(timezone.now()) == (last.pk, False)
    assert pipeline._claim_next_event(timezone.now()) == (None, False)


# --- Redis: the coalesced doorbell --------------------------------------------------------------------------------


@pytest.fixture
def doorbell(settings):
    """django-q2's real Redis broker on REDIS_URL, tasks queued (not run inline); the keys cleared before and after."""
    url = os.environ.get("REDIS_URL", "")
    if not url:
        pytest.skip("needs REDIS_URL")
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError:
        pytest.skip("Redis is not reachable at REDIS_URL")
    with mock.patch.object(RedisBroker, "get_connection", return_value=client):
        broker = RedisBroker(list_key="connector-doorbell-test")
    keys = (broker.list_key, tasks.doorbell_key())
    client.delete(*keys)
    with mock.patch.object(tasks, "broker", return_value=broker), mock.patch.object(Conf, "SYNC", False):
        yield broker
    client.delete(*keys)


def test_only_the_first_ring_queues_a_drain_while_one_is_pending(doorbell):
    assert tasks.ring_events_doorbell() is True
    ttl = doorbell.connection.pttl(tasks.doorbell_key())
    assert 0 < ttl <= 5000
    assert tasks.ring_events_doorbell() is False
    assert tasks.ring_events_doorbell() is False
    assert doorbell.queue_size() == 1


def test_a_drain_answers_the_doorbell_before_claiming(tenant, doorbell, processed, monkeypatch):
    assert tasks.ring_events_doorbell() is True
    stored(tenant, 1)
    seen_key: list[bool] = []
    claim = pipeline._claim_next_event
    monkeypatch.setattr(
        pipeline,
        "_claim_next_event",
        lambda now, settle=0.0: (
            seen_key.append(bool(doorbell.connection.exists(tasks.doorbell_key()))) or claim(now, settle)
        ),
    )

    pipeline.drain_events()

    assert seen_key and not any(seen_key)  # the key was gone before the first claim
    assert tasks.ring_events_doorbell() is True  # so the next event rings a new drain
    assert doorbell.queue_size() == 2


def test_a_failed_enqueue_clears_the_doorbell(doorbell):
    with mock.patch("connector.tasks.async_task", side_effect=redis.ConnectionError("gone")):
        with pytest.raises(redis.ConnectionError):
            tasks.ring_events_doorbell()
    assert not doorbell.connection.exists(tasks.doorbell_key())
    assert tasks.ring_events_doorbell() is True  # the next delivery rings at once
    assert doorbell.queue_size() == 1


def test_a_lost_drain_holds_the_doorbell_only_until_it_expires(doorbell, settings):
    settings.CONNECTOR = {**settings.CONNECTOR, "EVENTS_DOORBELL_SECONDS": 0.2}
    assert tasks.ring_events_doorbell() is True
    doorbell.purge_queue()  # the drain is lost (a worker crashed with it, Redis lost it)
    assert tasks.ring_events_doorbell() is False
    time.sleep(0.3)
    assert tasks.ring_events_doorbell() is True
    assert doorbell.queue_size() == 1


@pytest.mark.django_db(transaction=True)
def test_a_burst_of_webhooks_queues_one_drain_which_takes_them_all(client, tenant, doorbell, processed):
    for order_id in (1, 2, 3):
        body = webhook_body(order_id=order_id)
        response = client.post(
            URL, data=body, content_type="application/json", headers=standard_headers(body)
        )
        assert response.status_code == 200
    assert doorbell.queue_size() == 1
    assert WebhookEvent.objects.filter(status=R.RECEIVED).count() == 3

    assert pipeline.drain_events() == "drained=3 failed=0"

    assert len(processed) == 3
    # it rang for the 2nd and 3rd while they waited (so other workers can help): one more drain queued, not two
    assert doorbell.queue_size() == 2


def test_without_redis_every_ring_queues_a_drain(monkeypatch):
    queued: list[str] = []
    monkeypatch.setattr(tasks, "broker", lambda: object())  # the ORM broker: no shared store to coalesce in
    monkeypatch.setattr(tasks, "async_task", lambda func, **kwargs: queued.append(func))
    assert tasks.ring_events_doorbell() is True
    assert tasks.ring_events_doorbell() is True
    assert queued == ["connector.tasks.drain_events"] * 2


# --- The web process's ringer (EVENTS_RING_INTERVAL_MS) ---------------------------------------------------------


@pytest.fixture
def ringer(monkeypatch, settings, rings):
    """A fresh ringer, on a (pretended) Redis broker outside inline mode, ringing at most every 50 ms."""
    from connector import intake

    settings.CONNECTOR = {**settings.CONNECTOR, "EVENTS_RING_INTERVAL_MS": 50}
    monkeypatch.setattr(tasks, "doorbell_store", lambda: object())
    monkeypatch.setattr(tasks, "inline_tasks", lambda: False)
    fresh = intake._Ringer()
    monkeypatch.setattr(intake, "_ringer", fresh)
    return fresh


def _wait_for(condition, timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return condition()


def test_a_burst_of_deliveries_rings_once_per_interval_not_once_per_request(ringer, rings):
    from connector import intake

    for event_id in range(200):
        intake.ring_doorbell(event_id)
    assert _wait_for(lambda: len(rings) >= 1)
    time.sleep(0.2)
    assert 1 <= len(rings) <= 2  # the burst took a few milliseconds: one ring, or two across an interval


def test_an_event_stored_after_a_ring_gets_a_ring_of_its_own(ringer, rings):
    from connector import intake

    intake.ring_doorbell(1)
    assert _wait_for(lambda: len(rings) == 1)
    intake.ring_doorbell(2)  # after the first ring: the drain it queued may have looked already
    assert _wait_for(lambda: len(rings) == 2)


def test_a_ring_pending_at_exit_is_rung(ringer, rings, monkeypatch):
    ringer.wanted.set()  # requested, the thread not yet round
    ringer.flush()
    assert rings == [1] and not ringer.wanted.is_set()


def test_without_an_interval_every_delivery_rings_in_its_request(settings, monkeypatch, rings):
    from connector import intake

    settings.CONNECTOR = {**settings.CONNECTOR, "EVENTS_RING_INTERVAL_MS": 0}
    monkeypatch.setattr(tasks, "doorbell_store", lambda: object())
    monkeypatch.setattr(tasks, "inline_tasks", lambda: False)
    for event_id in range(3):
        intake.ring_doorbell(event_id)
    assert rings == [1, 1, 1]


# --- Settling (EVENTS_SETTLE_MS) ----------------------------------------------------------------------------------


@pytest.fixture
def settling(settings, monkeypatch):
    """Workers outside inline mode, events taken once they are 300 ms old."""
    settings.CONNECTOR = {**settings.CONNECTOR, "EVENTS_SETTLE_MS": 300}
    monkeypatch.setattr(tasks, "inline_tasks", lambda: False)


def test_a_new_event_is_taken_once_it_has_settled(tenant, processed, rings, settling):
    event = stored(tenant, 1)
    started = time.monotonic()

    result = pipeline.drain_events()

    assert processed == [event.pk] and result == "drained=1 failed=0"
    assert time.monotonic() - started >= 0.25  # it waited for the event to settle, not the full bound


def test_an_event_that_has_settled_goes_at_once(tenant, processed, rings, settling):
    event = stored(tenant, 1)
    WebhookEvent.objects.filter(pk=event.pk).update(received_at=timezone.now() - timedelta(seconds=5))
    started = time.monotonic()

    pipeline.drain_events()

    assert processed == [event.pk] and time.monotonic() - started < 0.25
