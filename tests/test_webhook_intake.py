"""Webhook intake: every bad input has a defined answer and never a 500; accepted events are stored once."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from unittest import mock

import pytest
from django.db import DatabaseError
from django.urls import reverse

from connector import views
from connector.models import WebhookEvent
from tests.conftest import CLIENT_SECRET, load_fixture, standard_headers, webhook_body

URL = "/webhooks/bigcommerce/acme/"


@pytest.fixture
def no_enqueue():
    with mock.patch("connector.tasks.enqueue_event") as enqueue:
        yield enqueue


def post(client, body: bytes, headers: dict, url: str = URL):
    return client.post(url, data=body, content_type="application/json", headers=headers)


def test_url_is_per_tenant():
    assert reverse("bigcommerce-webhook", args=["acme"]) == URL


def test_signed_event_is_stored_and_queued_after_commit(
    client, tenant, no_enqueue, django_capture_on_commit_callbacks
):
    # given
    body = webhook_body("store/order/created", 250)
    headers = standard_headers(body, msg_id="msg_1")
    # when
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = post(client, body, headers)
        # then: nothing queued before the row is committed
        assert no_enqueue.call_count == 0
    for callback in callbacks:
        callback()
    assert response.status_code == 200
    event = WebhookEvent.objects.get()
    assert (event.scope, event.order_id, event.delivery_key, event.verified_by) == (
        "store/order/created",
        250,
        "wh:msg_1",
        "standard_webhooks",
    )
    assert event.body == body.decode()
    assert event.headers["webhook-id"] == "msg_1"
    assert "webhook-signature" not in event.headers
    no_enqueue.assert_called_once_with(event.pk)


def test_official_sample_payloads_are_accepted(client, tenant, no_enqueue):
    for name in (
        "store_order_created.json",
        "store_order_updated.json",
        "store_order_statusUpdated.json",
        "store_order_archived.json",
        "store_order_refund_created.json",
    ):
        payload = load_fixture(f"bigcommerce/{name}")
        payload["producer"] = "stores/abc123"
        body = json.dumps(payload).encode()
        assert post(client, body, standard_headers(body)).status_code == 200, name
    refund = WebhookEvent.objects.get(scope="store/order/refund/created")
    assert (refund.order_id, refund.refund_id) == (250, 3)
    assert WebhookEvent.objects.filter(status=WebhookEvent.Status.RECEIVED).count() == 5


def test_same_delivery_five_more_times_is_stored_once(
    client, tenant, no_enqueue, django_capture_on_commit_callbacks
):
    body = webhook_body()
    with django_capture_on_commit_callbacks(execute=True):
        responses = [post(client, body, standard_headers(body, msg_id="msg_same")) for _ in range(6)]
    assert [r.status_code for r in responses] == [200] * 6
    event = WebhookEvent.objects.get()
    assert event.deliveries == 6
    assert no_enqueue.call_count == 1


def test_without_webhook_id_duplicates_are_found_by_scope_hash_and_time(client, tenant, no_enqueue):
    body = webhook_body("store/order/updated", 250)
    header = {"X-Webhook-Secret": "custom-header-secret-value"}
    assert post(client, body, header).status_code == 200
    assert post(client, body, header).status_code == 200
    # a different event for the same order (same data, so same hash) is new work
    other = json.loads(body)
    other["created_at"] += 60
    assert post(client, json.dumps(other).encode(), header).status_code == 200
    assert WebhookEvent.objects.count() == 2


@pytest.mark.parametrize(
    "headers",
    [
        {},  # nothing at all
        {"webhook-id": "m", "webhook-timestamp": str(int(time.time())), "webhook-signature": "v1,AAAA"},
        {"webhook-id": "m", "webhook-timestamp": str(int(time.time())), "webhook-signature": "garbage"},
        {"webhook-id": "m", "webhook-timestamp": "not-a-time", "webhook-signature": "v1,AAAA"},
        {"X-Webhook-Secret": "wrong"},
        {"X-BC-Signature": "00" * 32},  # scheme not enabled for this tenant
    ],
    ids=[
        "missing",
        "wrong-signature",
        "malformed-signature",
        "bad-timestamp",
        "wrong-custom-header",
        "disabled-scheme",
    ],
)
def test_bad_signatures_are_401_and_store_nothing(client, tenant, no_enqueue, headers):
    response = post(client, webhook_body(), headers)
    assert response.status_code == 401
    assert WebhookEvent.objects.count() == 0
    assert no_enqueue.call_count == 0


def test_tampered_body_is_401(client, tenant, no_enqueue):
    body = webhook_body(order_id=250)
    headers = standard_headers(body)
    assert post(client, webhook_body(order_id=251), headers).status_code == 401


def test_signature_made_with_another_secret_is_401(client, tenant, no_enqueue):
    body = webhook_body()
    assert post(client, body, standard_headers(body, secret="someone-else")).status_code == 401


@pytest.mark.parametrize("offset", [-301, 301])
def test_stale_or_future_timestamp_is_401(client, tenant, no_enqueue, offset):
    body = webhook_body()
    headers = standard_headers(body, ts=int(time.time()) + offset)
    assert post(client, body, headers).status_code == 401
    assert WebhookEvent.objects.count() == 0


def test_x_bc_signature_hex_and_base64_when_enabled(client, tenant, no_enqueue):
    tenant.bigcommerce.accept_x_bc_signature = True
    tenant.bigcommerce.save()
    body = webhook_body(order_id=1)
    digest = hmac.new(CLIENT_SECRET.encode(), body, hashlib.sha256).digest()
    assert post(client, body, {"X-BC-Signature": digest.hex()}).status_code == 200
    body2 = webhook_body(order_id=2)
    digest2 = hmac.new(CLIENT_SECRET.encode(), body2, hashlib.sha256).digest()
    assert post(client, body2, {"X-BC-Signature": base64.b64encode(digest2).decode()}).status_code == 200
    assert {e.verified_by for e in WebhookEvent.objects.all()} == {"x_bc_signature"}


def test_custom_header_scheme_can_be_switched_off(client, tenant, no_enqueue):
    tenant.bigcommerce.accept_custom_header = False
    tenant.bigcommerce.save()
    assert post(client, webhook_body(), {"X-Webhook-Secret": "custom-header-secret-value"}).status_code == 401


@pytest.mark.parametrize(
    "body,message",
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (json.dumps({"data": {"id": 1}}).encode(), "scope"),
        (json.dumps({"scope": "store/order/created"}).encode(), "data"),
        (json.dumps({"scope": "store/order/created", "data": {"type": "order"}}).encode(), "data.id"),
        (json.dumps({"scope": "store/order/created", "data": {"id": "abc"}}).encode(), "integer"),
        (json.dumps({"scope": "store/order/refund/created", "data": {"id": 5}}).encode(), "refund_id"),
        (
            json.dumps(
                {"scope": "store/order/created", "data": {"id": 5}, "producer": "stores/other"}
            ).encode(),
            "producer",
        ),
        (b"\xff\xfe{\x00", "JSON"),
    ],
)
def test_malformed_payloads_are_400(client, tenant, no_enqueue, body, message):
    # authenticated by the custom header too, so bytes that are not even UTF-8 still reach the parser
    response = post(
        client, body, {**standard_headers(body), "X-Webhook-Secret": "custom-header-secret-value"}
    )
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert WebhookEvent.objects.count() == 0


def test_body_over_the_limit_is_413_before_anything_else(client, tenant, no_enqueue, settings):
    settings.CONNECTOR = {**settings.CONNECTOR, "WEBHOOK_MAX_BODY_BYTES": 1024}
    body = json.dumps({"scope": "store/order/created", "data": {"id": 1}, "pad": "x" * 2000}).encode()
    assert post(client, body, standard_headers(body)).status_code == 413
    assert WebhookEvent.objects.count() == 0


def test_unknown_or_inactive_tenant_is_404(client, tenant, no_enqueue):
    body = webhook_body()
    assert post(client, body, standard_headers(body), url="/webhooks/bigcommerce/nobody/").status_code == 404
    tenant.is_active = False
    tenant.save()
    assert post(client, body, standard_headers(body)).status_code == 404


def test_unhandled_scope_is_200_and_recorded_as_ignored(client, tenant, no_enqueue):
    payload = load_fixture("bigcommerce/store_order_message_created.json")
    payload.pop("producer")
    body = json.dumps(payload).encode()
    response = post(client, body, standard_headers(body))
    assert response.status_code == 200
    event = WebhookEvent.objects.get()
    assert event.status == WebhookEvent.Status.IGNORED
    assert no_enqueue.call_count == 0


def test_channel_scoped_hooks_are_understood(client, tenant, no_enqueue):
    body = json.dumps(
        {"scope": "store/channel/2/order/created", "data": {"order_id": 127}, "hash": "x"}
    ).encode()
    assert post(client, body, standard_headers(body)).status_code == 200
    event = WebhookEvent.objects.get()
    assert (event.scope, event.order_id) == ("store/order/created", 127)


def test_get_is_405(client, tenant):
    assert client.get(URL).status_code == 405


def test_database_outage_is_503_not_500(client, tenant, no_enqueue):
    body = webhook_body()
    with mock.patch("connector.intake.WebhookEvent.save", side_effect=DatabaseError("down")):
        response = post(client, body, standard_headers(body))
    assert response.status_code == 503


def test_view_is_exempt_from_atomic_requests():
    # With ATOMIC_REQUESTS on, the event row must not be rolled back with a failed request.
    assert getattr(views.bigcommerce_webhook, "_non_atomic_requests", None)


@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicate_deliveries_store_one_event(tenant, no_enqueue):
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection
    from django.test import Client

    if connection.vendor == "sqlite":
        pytest.skip("SQLite serialises writers; the concurrency test runs on PostgreSQL in CI")
    body = webhook_body()
    headers = standard_headers(body, msg_id="msg_concurrent")

    def deliver(_):
        from django.db import connections

        try:
            return Client().post(URL, data=body, content_type="application/json", headers=headers).status_code
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=6) as pool:
        codes = list(pool.map(deliver, range(6)))
    assert codes == [200] * 6
    assert WebhookEvent.objects.count() == 1
    assert WebhookEvent.objects.get().deliveries == 6


def test_tenant_lookup_is_cached_briefly_and_forgotten_when_saved(
    client, tenant, no_enqueue, django_assert_num_queries
):
    from connector import intake

    intake.forget_receivers()
    first = webhook_body(order_id=1)
    post(client, first, standard_headers(first))  # loads the tenant and its store
    second = webhook_body(order_id=2)
    with django_assert_num_queries(3):  # SAVEPOINT, INSERT, RELEASE (the test's transaction): no tenant query
        post(client, second, standard_headers(second))
    # a new client secret applies at once in this process
    tenant.bigcommerce.client_secret = "rotated-client-secret-000"
    tenant.bigcommerce.save()
    third = webhook_body(order_id=3)
    assert post(client, third, standard_headers(third)).status_code == 401
    assert post(client, third, standard_headers(third, secret="rotated-client-secret-000")).status_code == 200
