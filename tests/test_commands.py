"""Management commands that talk to BigCommerce."""

from __future__ import annotations

import json
from io import StringIO

import pytest
import responses
from django.core.management import CommandError, call_command

from connector.clients import bigcommerce_client
from tests.conftest import BC_BASE, STORE_HASH

HOOKS = f"{BC_BASE}/stores/{STORE_HASH}/v3/hooks"
DEST = "https://connector.example.com/webhooks/bigcommerce/acme/"


def hook(id_, scope, active=False):
    return {
        "id": id_,
        "client_id": "c",
        "store_hash": STORE_HASH,
        "created_at": 1,
        "updated_at": 1,
        "scope": scope,
        "destination": DEST,
        "is_active": active,
        "headers": {},
    }


def test_register_webhooks_creates_missing_hooks_and_reactivates_existing(tenant):
    with responses.RequestsMock() as http:
        http.get(HOOKS, json={"data": [hook(7, "store/order/created")], "meta": {}})
        http.put(f"{HOOKS}/7", json={"data": hook(7, "store/order/created", True), "meta": {}})
        for i, scope in enumerate(
            [
                "store/order/archived",
                "store/order/refund/created",
                "store/order/statusUpdated",
                "store/order/updated",
            ]
        ):
            http.post(HOOKS, json={"data": hook(10 + i, scope, True), "meta": {}})
        out = StringIO()
        call_command(
            "register_webhooks",
            "--tenant",
            "acme",
            "--base-url",
            "https://connector.example.com/",
            stdout=out,
        )
        created = [json.loads(c.request.body) for c in http.calls if c.request.method == "POST"]
        updated = [json.loads(c.request.body) for c in http.calls if c.request.method == "PUT"]
    assert sorted(b["scope"] for b in created) == [
        "store/order/archived",
        "store/order/refund/created",
        "store/order/statusUpdated",
        "store/order/updated",
    ]
    assert all(b["destination"] == DEST and b["is_active"] for b in created)
    assert created[0]["headers"] == {"X-Webhook-Secret": "custom-header-secret-value"}
    assert updated[0]["is_active"] is True
    assert "custom-header-secret-value" not in out.getvalue()


def test_register_webhooks_reports_bigcommerce_errors(tenant):
    with responses.RequestsMock() as http:
        http.get(HOOKS, status=401, json={"status": 401, "title": "Unauthorized"})
        with pytest.raises(CommandError, match="BigCommerce"):
            call_command("register_webhooks", "--tenant", "acme", "--base-url", "https://x.example.com")


def test_bigcommerce_client_is_reused_per_store_until_credentials_change(tenant):
    first = bigcommerce_client(tenant)
    assert bigcommerce_client(tenant) is first
    tenant.bigcommerce.access_token = "rotated-token-0000"
    tenant.bigcommerce.save()
    assert bigcommerce_client(tenant) is not first
