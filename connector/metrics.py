"""Prometheus metrics at ``/metrics``: counters kept by the processes, gauges read from the database at scrape time.

* ``connector_webhooks_received_total{outcome,code}``: counted by the webhook view on every answer.
* ``connector_external_call_*`` and ``connector_bigcommerce_requests_*``: integrations/metrics.py.
* ``connector_postings{tenant,status}``, ``connector_oldest_unfinished_posting_age_seconds{tenant}`` and
  ``connector_x3_circuit_open{tenant}``, ``connector_alarms_active{tenant,condition}``: :class:`DatabaseCollector`,
  three small queries per scrape.

Processes: with ``PROMETHEUS_MULTIPROC_DIR`` set (the same empty directory for the web server and the workers,
emptied at each start), counters are added up over every process; without it each process answers with its own
counts, and a scrape may land on any web worker. See docs/decisions/0012-alarms-and-metrics.md.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
from functools import wraps
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError
from django.db.models import Count, Min
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseForbidden
from django.utils import timezone
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from accounting.models import Posting, X3Circuit

from .models import AlertState, X3Connection

logger = logging.getLogger(__name__)

WEBHOOKS = Counter(
    "connector_webhooks_received",
    "Webhook requests by outcome (accepted, duplicate, bad_request, unauthorized, unknown_tenant, too_large, "
    "unavailable, other) and HTTP status code.",
    ["outcome", "code"],
)
_OUTCOMES = {
    400: "bad_request",
    401: "unauthorized",
    404: "unknown_tenant",
    413: "too_large",
    503: "unavailable",
}


def webhook_outcome(status_code: int, duplicate: bool = False) -> str:
    if 200 <= status_code < 300:
        return "duplicate" if duplicate else "accepted"
    return _OUTCOMES.get(status_code, "other")


def count_webhooks(view):
    """Count every answer of the webhook view (the view marks duplicates with ``response.webhook_duplicate``)."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        try:
            code = response.status_code
            WEBHOOKS.labels(
                outcome=webhook_outcome(code, getattr(response, "webhook_duplicate", False)), code=str(code)
            ).inc()
        except Exception:  # noqa: BLE001, S110 - counting never changes the answer
            pass
        return response

    return wrapper


class DatabaseCollector:
    """Gauges computed from the database when Prometheus scrapes."""

    def describe(self):
        return []  # no query when registering

    def collect(self):
        ok = GaugeMetricFamily(
            "connector_metrics_database_ok", "1 when the database gauges below could be read at this scrape."
        )
        try:
            families = list(self._collect())
        except DatabaseError:
            logger.warning("Metrics: the database could not be read", exc_info=True)
            families = []
        ok.add_metric([], 1 if families else 0)
        yield ok
        yield from families

    def _collect(self):
        now = timezone.now()
        postings = GaugeMetricFamily(
            "connector_postings", "Postings by tenant and status.", labels=["tenant", "status"]
        )
        oldest = GaugeMetricFamily(
            "connector_oldest_unfinished_posting_age_seconds",
            "Age of the oldest posting still on its way to X3 (pending, posting, outcome unknown, retry), by "
            "tenant; 0 when there is none.",
            labels=["tenant"],
        )
        open_statuses = {
            Posting.Status.PENDING,
            Posting.Status.POSTING,
            Posting.Status.UNKNOWN,
            Posting.Status.RETRY,
        }
        ages: dict[str, float] = {}
        rows = (
            Posting.objects.order_by()
            .values("tenant__slug", "status")
            .annotate(n=Count("id"), first=Min("created_at"))
        )
        for row in rows:
            tenant = row["tenant__slug"]
            postings.add_metric([tenant, row["status"]], row["n"])
            ages.setdefault(tenant, 0.0)
            if row["status"] in open_statuses and row["first"] is not None:
                ages[tenant] = max(ages[tenant], (now - row["first"]).total_seconds())
        for tenant, age in sorted(ages.items()):
            oldest.add_metric([tenant], age)
        yield postings
        yield oldest

        alarms = GaugeMetricFamily(
            "connector_alarms_active",
            "Alarm conditions notified and not yet resolved, by tenant and condition (connector/alerts.py).",
            labels=["tenant", "condition"],
        )
        for slug, condition in AlertState.objects.filter(active=True).values_list(
            "tenant__slug", "condition"
        ):
            alarms.add_metric([slug, condition], 1)
        yield alarms

        circuit = GaugeMetricFamily(
            "connector_x3_circuit_open",
            "1 while the tenant's Sage X3 circuit breaker is open (X3 unreachable), else 0.",
            labels=["tenant"],
        )
        opened = dict(X3Circuit.objects.values_list("tenant_id", "opened_at"))
        for tenant_id, slug in X3Connection.objects.values_list("tenant_id", "tenant__slug"):
            circuit.add_metric([slug], 0 if opened.get(tenant_id) is None else 1)
        yield circuit


_database_collector = DatabaseCollector()
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    REGISTRY.register(_database_collector)


def exposition() -> bytes:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        registry.register(_database_collector)
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def prepare_multiprocess_dir(path: str) -> None:
    """Create the shared metrics directory and delete what earlier runs left there (call before the processes
    that write to it start)."""
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink(missing_ok=True)


def _ip_allowed(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    for entry in settings.METRICS_ALLOWED_IPS:
        try:
            if ip in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            logger.warning("METRICS_ALLOWED_IPS: %r is not an address or network", entry)
    return False


def _token_ok(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    return bool(token) and scheme.lower() == "bearer" and hmac.compare_digest(given.strip(), token)


def metrics_view(request: HttpRequest) -> HttpResponse:
    """``GET /metrics``: 404 unless METRICS_TOKEN or METRICS_ALLOWED_IPS is set; 403 without the token from an
    address that is not allowed."""
    if not settings.METRICS_TOKEN and not settings.METRICS_ALLOWED_IPS:
        raise Http404("Metrics are not enabled")
    if not (_token_ok(request) or _ip_allowed(request.META.get("REMOTE_ADDR", ""))):
        return HttpResponseForbidden("Not allowed", content_type="text/plain")
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)
