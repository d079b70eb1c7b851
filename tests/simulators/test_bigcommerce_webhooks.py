"""Webhook delivery from the BigCommerce simulator: envelope, Standard Webhooks signature, retries, deactivation."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from simulators.receiver import Receiver
from simulators.webhooks import DEFAULT_RETRY_SCHEDULE, payload_hash, sign

from .conftest import BC

SECRET = "secret-us-0123456789abcdef"


def create_hook(bc: BC, scope: str, destination: str, headers: dict[str, str] | None = None) -> dict:
    r = bc.http.post(
        bc.api("usstore01") + "/v3/hooks",
        json={"scope": scope, "destination": destination, "is_active": True, "headers": headers},
        headers={"X-Auth-Token": "tok-us"},
        timeout=5,
    )
    assert r.status_code == 200, r.text
    return r.json()["data"]


def test_delivery_envelope_and_signature(bc: BC, receiver: Receiver) -> None:
    destination = receiver.url("/webhooks/bigcommerce/acme/")
    create_hook(bc, "store/order/created", destination, {"X-Custom-Auth": "shared-secret"})
    create_hook(bc, "store/order/statusUpdated", destination, {"X-Custom-Auth": "shared-secret"})
    order = bc.ctl.create_order("usstore01", status_id=11, lines=[{"name": "Mug", "price": "5.00"}])["order"]
    received = receiver.wait_for(2)
    by_scope = {r.json()["scope"]: r for r in received}
    assert set(by_scope) == {"store/order/created", "store/order/statusUpdated"}

    created = by_scope["store/order/created"]
    assert created.path == "/webhooks/bigcommerce/acme/"
    body = created.json()
    assert body == {
        "scope": "store/order/created",
        "store_id": bc.ctl.store("usstore01")["store_id"],
        "data": {"type": "order", "id": order["id"]},
        "hash": hashlib.sha1(
            json.dumps(body["data"], separators=(",", ":")).encode(), usedforsecurity=False
        ).hexdigest(),
        "created_at": body["created_at"],
        "producer": "stores/usstore01",
    }
    assert isinstance(body["store_id"], str) and isinstance(body["created_at"], int)
    assert created.headers["x-custom-auth"] == "shared-secret"
    assert created.headers["content-type"] == "application/json"

    # verifiable with the standardwebhooks library and BigCommerce's recipe: base64(client secret)
    verifier = Webhook(base64.b64encode(SECRET.encode()).decode())
    assert verifier.verify(created.body, created.headers) == body
    status = by_scope["store/order/statusUpdated"]
    assert verifier.verify(status.body, status.headers)["data"] == {
        "type": "order",
        "id": order["id"],
        "status": {"previous_status_id": 0, "new_status_id": 11},
    }
    assert created.headers["webhook-id"] != status.headers["webhook-id"]
    with pytest.raises(WebhookVerificationError):
        Webhook(base64.b64encode(b"wrong-secret").decode()).verify(created.body, created.headers)
    # the helper computes the same header value
    assert created.headers["webhook-signature"] == sign(
        SECRET, created.headers["webhook-id"], int(created.headers["webhook-timestamp"]), created.body
    )


def test_refund_fires_refund_created_and_status_updated(bc: BC, receiver: Receiver) -> None:
    create_hook(bc, "store/order/*", receiver.url("/hook"))
    order = bc.ctl.create_order(
        "usstore01",
        status_id=10,
        lines=[{"name": "Lamp", "price": "40.00", "quantity": 2}],
        fire_webhooks=False,
    )
    line_id = order["products"][0]["id"]
    refund = bc.ctl.refund(
        "usstore01", order["order"]["id"], items=[{"item_type": "PRODUCT", "item_id": line_id, "quantity": 1}]
    )["refund"]
    assert bc.ctl.wait_for_webhooks()
    bodies = [r.json() for r in receiver.wait_for(3)]
    assert sorted(b["scope"] for b in bodies) == [
        "store/order/refund/created",
        "store/order/statusUpdated",
        "store/order/updated",
    ]
    data = {b["scope"]: b["data"] for b in bodies}
    assert data["store/order/refund/created"] == {
        "type": "order",
        "id": order["order"]["id"],
        "refund": {"refund_id": refund["id"]},
    }
    assert data["store/order/statusUpdated"]["status"] == {"previous_status_id": 10, "new_status_id": 14}
    assert all(b["hash"] == payload_hash(b["data"]) for b in bodies)


def test_failed_deliveries_are_retried_with_a_stable_webhook_id(bc: BC, receiver: Receiver) -> None:
    create_hook(bc, "store/order/updated", receiver.url("/hook"))
    receiver.statuses = [500, 503]
    order_id = bc.ctl.create_order("usstore01", lines=[{"name": "Tray", "price": "9.00"}])["order"]["id"]
    bc.ctl.set_status("usstore01", order_id, 2)
    attempts = receiver.wait_for(3)
    assert bc.ctl.wait_for_webhooks()
    assert len({a.headers["webhook-id"] for a in attempts}) == 1
    assert len({a.body for a in attempts}) == 1  # same body, same hash
    verifier = Webhook(base64.b64encode(SECRET.encode()).decode())
    assert all(verifier.verify(a.body, a.headers) for a in attempts)
    log = bc.ctl.deliveries("usstore01", scope="store/order/updated")
    assert [(d["attempt"], d["status"], d["ok"]) for d in log] == [
        (0, 500, False),
        (1, 503, False),
        (2, 200, True),
    ]
    assert log[0]["next_retry_in_s"] == pytest.approx(DEFAULT_RETRY_SCHEDULE[0] * 1e-6)
    hooks = bc.get("usstore01", "/v3/hooks").json()["data"]
    assert hooks[0]["is_active"] is True


def test_hook_is_deactivated_after_the_last_retry(bc: BC, receiver: Receiver) -> None:
    hook = create_hook(bc, "store/order/created", receiver.url("/hook"))
    receiver.default_status = 500
    bc.ctl.create_order("usstore01", lines=[{"name": "Tray", "price": "9.00"}])
    receiver.wait_for(1 + len(DEFAULT_RETRY_SCHEDULE), timeout=10)
    assert bc.ctl.wait_for_webhooks(timeout=10)
    log = bc.ctl.deliveries("usstore01", hook_id=hook["id"])
    assert len(log) == 12 and log[-1]["deactivated"] is True
    assert bc.get("usstore01", f"/v3/hooks/{hook['id']}").json()["data"]["is_active"] is False
    # no more deliveries to an inactive hook
    bc.ctl.create_order("usstore01", lines=[{"name": "Tray", "price": "9.00"}])
    assert bc.ctl.wait_for_webhooks()
    assert len(receiver.requests) == 12


def test_duplicate_deliveries_and_channel_scoped_hooks(bc: BC, receiver: Receiver) -> None:
    create_hook(bc, "store/order/created", receiver.url("/global"))
    create_hook(bc, "store/channel/2/order/created", receiver.url("/channel"))
    bc.ctl.webhook_settings(duplicate_next=1)
    order_id = bc.ctl.create_order(
        "usstore01", channel_id=2, status_id=0, lines=[{"name": "Mug", "price": "5"}]
    )["order"]["id"]
    received = receiver.wait_for(4)
    assert bc.ctl.wait_for_webhooks()
    global_ = [r for r in received if r.path == "/global"]
    channel = [r for r in received if r.path == "/channel"]
    assert len(global_) == 2 and global_[0].body == global_[1].body
    assert global_[0].headers["webhook-id"] == global_[1].headers["webhook-id"]
    assert len(channel) == 2
    assert channel[0].json()["scope"] == "store/channel/2/order/created"
    assert channel[0].json()["data"] == {"order_id": order_id}
