"""/metrics: closed unless configured, then Prometheus text with counters from the processes and gauges from the DB."""

from __future__ import annotations

from datetime import timedelta

import pytest
import requests
import responses
from django.utils import timezone
from prometheus_client import REGISTRY

from accounting.models import Posting
from connector.alerts import send_alerts
from connector.models import AlertSettings
from integrations.bigcommerce.client import BigCommerceClient, StoreConfig
from integrations.errors import RetryableError
from integrations.http import new_session, send
from tests.conftest import standard_headers, webhook_body

TOKEN = "metrics-token-0123456789"  # noqa: S105


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def parse(text: str) -> dict[str, float]:
    """`name{labels} value` lines → {"name{labels}": value}."""
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            values[key] = float(value)
    return values


@pytest.fixture
def token(settings):
    settings.METRICS_TOKEN = TOKEN
    return TOKEN


def test_not_configured_is_404(client, db):
    assert client.get("/metrics").status_code == 404


def test_wrong_or_missing_token_is_403(client, db, token):
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 403
    assert client.get("/metrics", headers={"Authorization": f"Basic {TOKEN}"}).status_code == 403


def test_ip_allow_list(client, db, settings):
    settings.METRICS_ALLOWED_IPS = ["10.0.0.0/8"]
    assert client.get("/metrics").status_code == 403  # the test client is 127.0.0.1
    settings.METRICS_ALLOWED_IPS = ["10.0.0.0/8", "127.0.0.1"]
    assert client.get("/metrics").status_code == 200


def test_posting_gauges_come_from_the_database(client, tenant, token):
    for order_id, status in (
        (250, "needs_attention"),
        (251, "needs_attention"),
        (252, "pending"),
        (253, "posting"),
    ):
        Posting.objects.create(
            tenant=tenant, idempotency_key=f"order:{order_id}", order_id=order_id, status=status
        )
    Posting.objects.filter(order_id=252).update(created_at=timezone.now() - timedelta(hours=2))
    Posting.objects.create(tenant=tenant, idempotency_key="order:254", order_id=254, status="waiting")
    nine_days_ago = timezone.now() - timedelta(days=9)
    Posting.objects.filter(order_id=254).update(created_at=nine_days_ago)  # waiting is not unfinished
    AlertSettings.objects.create(tenant=tenant, email_recipients="ops@example.com")
    send_alerts()

    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    values = parse(response.content.decode())
    assert values["connector_metrics_database_ok"] == 1
    assert values['connector_postings{status="needs_attention",tenant="acme"}'] == 2
    assert values['connector_postings{status="pending",tenant="acme"}'] == 1
    assert values['connector_postings{status="waiting",tenant="acme"}'] == 1
    age = values['connector_oldest_unfinished_posting_age_seconds{tenant="acme"}']
    assert 7200 <= age < 7300
    assert values['connector_alarms_active{condition="postings:needs_attention",tenant="acme"}'] == 1
    assert values['connector_x3_circuit_open{tenant="acme"}'] == 0


def test_webhooks_are_counted_by_outcome(client, tenant, token, monkeypatch):
    monkeypatch.setattr("connector.tasks.ring_events_doorbell", lambda: None)
    before = {
        outcome: sample("connector_webhooks_received_total", outcome=outcome, code=code)
        for outcome, code in (("accepted", "200"), ("duplicate", "200"), ("unauthorized", "401"))
    }
    before["unknown_tenant"] = sample(
        "connector_webhooks_received_total", outcome="unknown_tenant", code="404"
    )
    body = webhook_body()
    headers = standard_headers(body, msg_id="msg_1")
    for _ in range(2):
        client.post(
            "/webhooks/bigcommerce/acme/", data=body, content_type="application/json", headers=headers
        )
    client.post("/webhooks/bigcommerce/acme/", data=body, content_type="application/json")
    client.post("/webhooks/bigcommerce/nobody/", data=body, content_type="application/json", headers=headers)

    assert (
        sample("connector_webhooks_received_total", outcome="accepted", code="200") == before["accepted"] + 1
    )
    assert (
        sample("connector_webhooks_received_total", outcome="duplicate", code="200")
        == before["duplicate"] + 1
    )
    assert (
        sample("connector_webhooks_received_total", outcome="unauthorized", code="401")
        == before["unauthorized"] + 1
    )
    assert (
        sample("connector_webhooks_received_total", outcome="unknown_tenant", code="404")
        == before["unknown_tenant"] + 1
    )
    text = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).content.decode()
    assert 'connector_webhooks_received_total{code="200",outcome="accepted"}' in text


@responses.activate
def test_outbound_calls_are_counted_by_api_and_outcome(db):
    url = "https://x3.test:8124/api1/x3/erp/SEED/GACCENTRY"
    ok = sample("connector_external_calls_total", api="x3", outcome="2xx")
    bad = sample("connector_external_calls_total", api="x3", outcome="5xx")
    slow = sample("connector_external_calls_total", api="x3", outcome="timeout")
    count = sample("connector_external_call_duration_seconds_count", api="x3")
    session = new_session()
    responses.get(url, json={})
    send(session, "GET", url, timeout=1, api="x3")
    responses.replace(responses.GET, url, status=503)
    send(session, "GET", url, timeout=1, api="x3")
    responses.replace(responses.GET, url, body=requests.exceptions.ReadTimeout("slow"))
    with pytest.raises(RetryableError):
        send(session, "GET", url, timeout=1, api="x3")

    assert sample("connector_external_calls_total", api="x3", outcome="2xx") == ok + 1
    assert sample("connector_external_calls_total", api="x3", outcome="5xx") == bad + 1
    assert sample("connector_external_calls_total", api="x3", outcome="timeout") == slow + 1
    assert sample("connector_external_call_duration_seconds_count", api="x3") == count + 3


@responses.activate
def test_bigcommerce_quota_left_is_a_gauge(db):
    client = BigCommerceClient(
        StoreConfig(store_hash="quota1", access_token="t", api_base_url="https://bc.test")
    )
    responses.get(
        "https://bc.test/stores/quota1/v3/hooks",
        json={"data": [], "meta": {"pagination": {"total": 0, "total_pages": 1}}},
        headers={"X-Rate-Limit-Requests-Left": "142", "X-Rate-Limit-Requests-Quota": "150"},
    )
    before = sample("connector_external_calls_total", api="bigcommerce", outcome="2xx")
    assert client.list_hooks() == []
    assert sample("connector_bigcommerce_requests_left", store="quota1") == 142
    assert sample("connector_bigcommerce_requests_quota", store="quota1") == 150
    assert sample("connector_external_calls_total", api="bigcommerce", outcome="2xx") == before + 1


def test_a_database_outage_does_not_break_the_scrape(client, db, token, monkeypatch):
    from django.db import DatabaseError

    def down(self):
        raise DatabaseError("connection refused")

    monkeypatch.setattr("connector.metrics.DatabaseCollector._collect", down)
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert parse(response.content.decode())["connector_metrics_database_ok"] == 0


def test_multiprocess_mode_adds_up_the_files_and_the_database(tenant, tmp_path, monkeypatch):
    import subprocess
    import sys
    from pathlib import Path

    from connector.metrics import exposition

    # Two other processes (say a web worker and a django-q2 worker) count calls into the shared directory.
    code = (
        "from integrations.metrics import observe_call; observe_call('x3', '2xx', 0.2); "
        "observe_call('x3', '2xx', 0.3)"
    )
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    for _ in range(2):
        subprocess.run([sys.executable, "-c", code], env=env, check=True, cwd=Path(__file__).parent.parent)  # noqa: S603
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    Posting.objects.create(tenant=tenant, idempotency_key="order:1", order_id=1, status="retry")

    values = parse(exposition().decode())

    assert values['connector_external_calls_total{api="x3",outcome="2xx"}'] == 4
    assert values['connector_postings{status="retry",tenant="acme"}'] == 1


def test_serve_empties_the_shared_metrics_directory(tmp_path):
    from connector.metrics import prepare_multiprocess_dir

    (tmp_path / "counter_123.db").write_bytes(b"old")
    (tmp_path / "keep.txt").write_text("not ours")
    prepare_multiprocess_dir(str(tmp_path / "sub"))
    prepare_multiprocess_dir(str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt", "sub"]
