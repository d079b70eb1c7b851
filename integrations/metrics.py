"""Process-level Prometheus metrics of the outbound transport (prometheus_client; no Django here).

Recorded by :func:`integrations.http.send` for every call and by the BigCommerce client for the rate-limit headers.
With ``PROMETHEUS_MULTIPROC_DIR`` set, prometheus_client writes these values to files shared by every process
(web workers and django-q2 workers), and ``/metrics`` adds them up; without it each process counts for itself.
See docs/decisions/0012-alarms-and-metrics.md.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CALL_SECONDS = Histogram(
    "connector_external_call_duration_seconds",
    "Duration of outbound HTTP calls (successful or not), by API.",
    ["api"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
CALLS = Counter(
    "connector_external_calls",
    "Outbound HTTP calls by API and outcome: 2xx, 3xx, 4xx, 429, 5xx, timeout, connection_error.",
    ["api", "outcome"],
)
BIGCOMMERCE_REQUESTS_LEFT = Gauge(
    "connector_bigcommerce_requests_left",
    "X-Rate-Limit-Requests-Left of the latest BigCommerce answer, by store hash.",
    ["store"],
    multiprocess_mode="mostrecent",
)
BIGCOMMERCE_REQUESTS_QUOTA = Gauge(
    "connector_bigcommerce_requests_quota",
    "X-Rate-Limit-Requests-Quota of the latest BigCommerce answer, by store hash.",
    ["store"],
    multiprocess_mode="mostrecent",
)


def status_outcome(status_code: int) -> str:
    if status_code == 429:
        return "429"
    return f"{status_code // 100}xx" if 100 <= status_code < 600 else "other"


def observe_call(api: str, outcome: str, seconds: float) -> None:
    """Count one call. Never raises: metrics must not break a call."""
    try:
        CALLS.labels(api=api, outcome=outcome).inc()
        CALL_SECONDS.labels(api=api).observe(seconds)
    except Exception:  # noqa: BLE001, S110 - a metrics failure is never the caller's problem
        pass


def observe_bigcommerce_quota(store: str, left: int | None, quota: int | None) -> None:
    try:
        if left is not None:
            BIGCOMMERCE_REQUESTS_LEFT.labels(store=store).set(left)
        if quota is not None:
            BIGCOMMERCE_REQUESTS_QUOTA.labels(store=store).set(quota)
    except Exception:  # noqa: BLE001, S110
        pass
