"""/metrics of the running connector adds up what gunicorn's web workers and django-q2's workers counted."""

from __future__ import annotations

import pytest
import requests

from accounting.models import Posting
from simulators.stack import METRICS_TOKEN, STORE_HASH, TENANT, wait_for

pytestmark = pytest.mark.e2e


def scrape(stack) -> dict[str, float]:
    response = requests.get(
        f"{stack.connector_url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=10
    )
    assert response.status_code == 200
    values = {}
    for line in response.text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            values[key] = float(value)
    return values


def test_metrics_cover_web_and_worker_processes(stack):
    for channel in (1, 2):
        stack.bc.create_order(
            STORE_HASH,
            status_id=11,
            channel_id=channel,
            lines=[{"name": "Mug", "price": "12.50", "quantity": 2}],
            shipping_cost="5.00",
        )
    wait_for(lambda: Posting.objects.filter(status="posted").count() >= 2, timeout=60, what="two postings")

    assert requests.get(f"{stack.connector_url}/metrics", timeout=10).status_code == 403
    values = scrape(stack)

    # counted by the web workers (each delivery, whichever worker took it)
    assert values['connector_webhooks_received_total{code="200",outcome="accepted"}'] >= 2
    # counted by the django-q2 workers: the order reads and the X3 creates
    assert values['connector_external_calls_total{api="bigcommerce",outcome="2xx"}'] >= 2
    assert values['connector_external_calls_total{api="x3",outcome="2xx"}'] >= 2
    assert values['connector_external_call_duration_seconds_count{api="x3"}'] >= 2
    # read from the database at scrape time
    assert values[f'connector_postings{{status="posted",tenant="{TENANT}"}}'] == 2
    assert values[f'connector_oldest_unfinished_posting_age_seconds{{tenant="{TENANT}"}}'] == 0
    # the same figures whichever web worker answers
    assert (
        scrape(stack)['connector_external_calls_total{api="x3",outcome="2xx"}']
        == (values['connector_external_calls_total{api="x3",outcome="2xx"}'])
    )
