"""A broker outage never fails a webhook delivery; /healthz is liveness, /readyz names the part that is down."""

from __future__ import annotations

import logging
from unittest import mock

import pytest
import redis
from django.db import DatabaseError
from django_q.brokers.redis_broker import Redis as RedisBroker
from django_q.conf import Conf

from connector import tasks
from connector.models import WebhookEvent
from connector.settings import redis_url_with_timeouts
from tests.conftest import standard_headers, webhook_body

URL = "/webhooks/bigcommerce/acme/"


@pytest.fixture
def redis_down():
    """django-q2's real Redis broker, pointed at a loopback port where nothing listens (connection refused)."""
    client = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1, socket_timeout=1)
    with mock.patch.object(RedisBroker, "get_connection", return_value=client):
        broker = RedisBroker()
    # the test settings run tasks synchronously; here enqueueing must really go to the broker
    with mock.patch.object(tasks, "broker", return_value=broker), mock.patch.object(Conf, "SYNC", False):
        yield broker


@pytest.mark.django_db(transaction=True)  # on_commit runs inside the request, as in production
def test_broker_down_after_commit_still_answers_200_and_keeps_the_event(client, tenant, redis_down, caplog):
    body = webhook_body(order_id=77)
    with caplog.at_level(logging.WARNING):
        response = client.post(
            URL, data=body, content_type="application/json", headers=standard_headers(body)
        )
    assert response.status_code == 200
    event = WebhookEvent.objects.get()
    assert (event.order_id, event.status) == (77, WebhookEvent.Status.RECEIVED)
    assert (
        f"Webhook event {event.pk} is stored but the doorbell could not be rung (ConnectionError); "
        "the sweep will process it"
    ) in caplog.text


@pytest.mark.django_db(transaction=True)
def test_the_sweep_queues_the_event_once_the_broker_is_back(client, tenant, redis_down):
    from datetime import timedelta

    from django.utils import timezone

    from connector.pipeline import sweep

    body = webhook_body(order_id=78)
    assert (
        client.post(
            URL, data=body, content_type="application/json", headers=standard_headers(body)
        ).status_code
        == 200
    )
    WebhookEvent.objects.update(received_at=timezone.now() - timedelta(minutes=1))
    with mock.patch("connector.tasks.ring_events_doorbell") as ring:
        assert "waiting=rang" in sweep()
    ring.assert_called_once_with()


def test_readyz_is_200_when_database_and_broker_answer(client, db):
    with mock.patch.object(tasks, "broker") as broker:
        broker.return_value.ping.return_value = True
        response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "database": "ok", "broker": "ok"}


def test_readyz_with_the_default_orm_broker(client, db):
    assert client.get("/readyz").json()["broker"] == "ok"


def test_readyz_is_503_naming_the_broker_when_redis_is_down_while_healthz_stays_200(client, db, redis_down):
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "not ready", "database": "ok", "broker": "unavailable"}
    assert client.get("/healthz").status_code == 200


def test_readyz_is_503_naming_the_database(client, db):
    with (
        mock.patch("connector.views.connection.cursor", side_effect=DatabaseError("down")),
        mock.patch.object(tasks, "broker") as broker,
    ):
        broker.return_value.ping.return_value = True
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "not ready", "database": "unavailable", "broker": "ok"}


def test_redis_url_gets_timeouts_unless_it_sets_its_own():
    url = redis_url_with_timeouts("redis://:secret@redis:6379/0")
    client = redis.Redis.from_url(url)
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["socket_connect_timeout"], kwargs["socket_timeout"], kwargs["password"]) == (
        5.0,
        10.0,
        "secret",
    )
    own = redis_url_with_timeouts("rediss://redis:6379/0?socket_timeout=30")
    assert redis.Redis.from_url(own).connection_pool.connection_kwargs["socket_timeout"] == 30.0


@pytest.mark.django_db(transaction=True)
def test_an_operator_action_with_the_broker_down_still_succeeds(admin_client, tenant, redis_down, caplog):
    from accounting.models import Posting

    posting = Posting.objects.create(
        tenant=tenant, idempotency_key="order:5", order_id=5, status=Posting.Status.NEEDS_ATTENTION
    )
    with caplog.at_level(logging.WARNING):
        response = admin_client.post(
            "/admin/accounting/posting/",
            {"action": "retry_now", "_selected_action": [posting.pk]},
        )
    assert response.status_code == 302  # before: a 500 from the broker's ConnectionError
    posting.refresh_from_db()
    assert posting.status == Posting.Status.RETRY  # the row says what to do; the sweep rings again
    assert f"Could not queue posting-{posting.pk} (ConnectionError)" in caplog.text
