"""The reconciliation poll: webhooks are hints and can be lost, so compare the store with our postings.

Every few minutes, per active tenant: orders modified since the last run whose latest modification we have not
planned from, and refunds created since then that we have no posting for, get a sync queued; order hooks that
BigCommerce deactivated (after 48 hours of failed deliveries, or 90 days of inactivity) are switched back on.
See docs/reference/bigcommerce.md §0.5 and docs/decisions/0006-queue-is-a-doorbell.md.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Max
from django.utils import timezone

from accounting.models import Posting
from integrations.errors import IntegrationError

from . import clients, tasks
from .alerts import record_reconcile_finding
from .models import Tenant

logger = logging.getLogger(__name__)
# Orders modified just before the last run may only show up now (clock skew, list caching): look back a little.
OVERLAP = timedelta(minutes=10)
PAGE = 250


@dataclass(frozen=True)
class ReconcileResult:
    orders_checked: int
    orders_queued: int
    refunds_queued: int
    hooks_reactivated: int


def reconcile_tenant(tenant: Tenant, *, bc_client=None, now: datetime | None = None) -> ReconcileResult:
    """Queue syncs for what the webhooks missed. Raises IntegrationError for BigCommerce failures (the checkpoint
    then stays where it was, so the next run covers the same time again)."""
    if bc_client is None:
        bc_client = clients.bigcommerce_client(tenant)
    now = now or timezone.now()
    lookback = timedelta(hours=settings.CONNECTOR["RECONCILE_FIRST_LOOKBACK_HOURS"])
    since = (tenant.reconciled_until or now - lookback) - OVERLAP

    to_sync: set[int] = set()
    checked = 0
    # Keyset paging (see iter_orders_modified): an order modified while we scan shows up again at the end instead
    # of shifting an unread one onto a page already read. Checked against the postings a page at a time.
    for batch in _batched(bc_client.iter_orders_modified(since, limit=PAGE), PAGE):
        checked += len(batch)
        planned = dict(
            Posting.objects.filter(tenant=tenant, order_id__in=[s["id"] for s in batch])
            .values("order_id")
            .annotate(seen=Max("order_modified_at"))
            .values_list("order_id", "seen")
        )
        to_sync.update(
            s["id"] for s in batch if planned.get(s["id"]) is None or planned[s["id"]] < s["date_modified"]
        )
    orders_queued = len(to_sync)

    refund_orders: set[int] = set()
    page = 1
    while True:
        refunds, has_more = bc_client.list_refunds(created_min=since, page=page, limit=PAGE)
        known = set(
            Posting.objects.filter(
                tenant=tenant, kind=Posting.Kind.REFUND, refund_id__in=[r.id for r in refunds]
            ).values_list("refund_id", flat=True)
        )
        refund_orders.update(r.order_id for r in refunds if r.id not in known)
        if not has_more:
            break
        page += 1
    refunds_queued = len(refund_orders - to_sync)
    to_sync |= refund_orders

    reactivated = 0
    path = f"/webhooks/bigcommerce/{tenant.slug}/"
    for hook in bc_client.list_hooks():
        if path in hook.destination and not hook.is_active:
            bc_client.update_hook(hook.id, is_active=True)
            reactivated += 1
            logger.warning(
                "Re-activated BigCommerce hook %s (%s) for tenant %s", hook.id, hook.scope, tenant.slug
            )

    for order_id in sorted(to_sync):
        tasks.enqueue_order_sync(tenant.pk, order_id)
    Tenant.objects.filter(pk=tenant.pk).update(reconciled_until=now)
    return ReconcileResult(checked, orders_queued, refunds_queued, reactivated)


def _batched(items: Iterator, size: int) -> Iterator[list]:
    batch: list = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def reconcile_all() -> str:
    results = []
    for tenant in Tenant.objects.filter(is_active=True).select_related("bigcommerce"):
        if not hasattr(tenant, "bigcommerce"):
            continue
        try:
            r = reconcile_tenant(tenant)
        except IntegrationError as exc:
            logger.warning("Reconciliation of tenant %s failed: %s", tenant.slug, exc.message)
            results.append(f"{tenant.slug}: error")
            continue
        record_reconcile_finding(tenant, r)  # for the "webhooks are failing" alarm; never raises
        results.append(
            f"{tenant.slug}: {r.orders_checked} checked, {r.orders_queued + r.refunds_queued} queued, "
            f"{r.hooks_reactivated} hooks re-activated"
        )
    return "; ".join(results) or "no tenants"
