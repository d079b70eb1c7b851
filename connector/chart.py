"""Refresh a tenant's chart of accounts from Sage X3 through its own method (api1, GraphQL or SOAP).

Read-only calls, never through the posting gate: nothing is written to X3. The accounts are cached by
accounting/chart.py; a failed refresh keeps the last good chart and records what X3 said.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.utils import timezone

from accounting.chart import record_failure, store_chart
from integrations.errors import IntegrationError

from .clients import x3_client
from .models import Tenant

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RefreshResult:
    tenant: str
    ok: bool
    message: str
    accounts: int = 0
    calls: int = 0

    def __str__(self) -> str:
        return f"{self.tenant}: {self.message}"


def refresh_chart(tenant: Tenant) -> RefreshResult:
    """Read every GL account of ``tenant`` from X3 and replace its cached chart. Never raises for an X3 failure."""
    if not hasattr(tenant, "x3"):
        return RefreshResult(tenant.slug, False, "no Sage X3 connection")
    client = x3_client(tenant)
    started = timezone.now()
    try:
        accounts = client.list_accounts(tenant.x3.chart_query or None)
    except IntegrationError as exc:
        record_failure(tenant.pk, exc.message, now=started)
        _log_calls(tenant, client.call_log)
        return RefreshResult(
            tenant.slug, False, f"chart of accounts not refreshed: {exc.message}", calls=len(client.call_log)
        )
    _log_calls(tenant, client.call_log)
    if not accounts:
        message = "Sage X3 returned no accounts: the last chart is kept (check the chart of accounts query)"
        record_failure(tenant.pk, message, now=started)
        return RefreshResult(tenant.slug, False, message, calls=len(client.call_log))
    store_chart(tenant.pk, accounts, now=started)
    closed = sum(1 for a in accounts if not a.postable)
    message = f"{len(accounts)} accounts read from Sage X3" + (
        f" ({closed} closed to postings)" if closed else ""
    )
    return RefreshResult(tenant.slug, True, message, accounts=len(accounts), calls=len(client.call_log))


def _log_calls(tenant: Tenant, calls: list) -> None:
    """The calls of a refresh, in the log (URLs and statuses; bodies and credentials stay out)."""
    for call in calls:
        log.info(
            "chart refresh %s: %s %s -> %s in %d ms%s",
            tenant.slug,
            call.method,
            call.url,
            call.status_code,
            call.duration_ms,
            f" ({call.error})" if call.error else "",
        )


def tenants_to_refresh():
    """Every active tenant with an X3 connection (the scheduled refresh, and ``refresh_accounts`` one by one)."""
    return Tenant.objects.filter(is_active=True, x3__isnull=False).select_related("x3").order_by("slug")


def refresh_all() -> list[RefreshResult]:
    """The scheduled refresh: every active tenant with an X3 connection."""
    return [refresh_chart(t) for t in tenants_to_refresh()]
