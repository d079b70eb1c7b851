"""The tenant a worker's task runs for, with its connections, its X3 circuit and two facts about the order.

Loading the tenant with its BigCommerce store and X3 connection was a fifth of a task's CPU on the happy path
(docs/operations.md, "Throughput"): the ORM compiles a four-table query of about a hundred columns, builds four
model instances and decrypts eight secrets. The configuration rarely changes between two tasks, so a process keeps
the last one it loaded and checks it with one narrow statement per task. That statement returns a fingerprint of
the three configuration rows (``md5`` of their whole text, computed by PostgreSQL), the circuit's columns and the
two per-order facts; the full load only runs when the fingerprint differs. Nothing can be stale: any change to any
column of those rows, however it was written (``save()``, ``update()``, another process), changes the fingerprint.
Each task gets its own copies of the cached instances, so what one task changes in memory never leaks into the
next (docs/decisions/0031-worker-hot-path.md).

On other databases (SQLite, the embedded default) every task does the full load.
"""

from __future__ import annotations

import copy
from functools import cache

from django.db import connection
from django.db.models import Exists, OuterRef

from accounting.models import Posting, TenderMapping, X3Circuit

from .models import BigCommerceStore, Tenant, X3Connection

# tenant id -> (fingerprint of its configuration rows, the tenant with ``bigcommerce`` and ``x3`` loaded)
_loaded: dict[int, tuple[str, Tenant]] = {}
_RELATED = ("bigcommerce", "x3")


def refund_postings(tenant_ref, order_id: int):
    """The order's refund postings (``tenant_ref``: a tenant id or an ``OuterRef``)."""
    return Posting.objects.filter(tenant_id=tenant_ref, order_id=order_id, kind=Posting.Kind.REFUND)


def load_tenant(tenant_id: int, order_id: int) -> Tenant:
    """The tenant with ``bigcommerce``, ``x3`` and ``x3_circuit`` loaded, annotated with ``knows_refunds`` (the
    order has refund postings) and ``maps_tenders`` (the tenant maps tenders to clearing accounts). Raises
    ``Tenant.DoesNotExist``."""
    if connection.vendor != "postgresql":
        return _full_load(tenant_id, order_id)
    with connection.cursor() as cursor:
        cursor.execute(_state_sql(), [order_id, Posting.Kind.REFUND, tenant_id])
        row = cursor.fetchone()
    if row is None:
        raise Tenant.DoesNotExist(f"Tenant {tenant_id} does not exist")
    fingerprint, knows_refunds, maps_tenders, *circuit = row
    cached = _loaded.get(tenant_id)
    if cached is None or cached[0] != fingerprint:
        if len(_loaded) > 1000:  # a bound, not a policy: a worker serves a handful of tenants
            _loaded.clear()
        cached = _loaded[tenant_id] = (fingerprint, _full_load(tenant_id))
    tenant = _copy(cached[1])
    tenant.knows_refunds = knows_refunds
    tenant.maps_tenders = maps_tenders
    circuit_instance = None
    if circuit[0] is not None:
        circuit_instance = X3Circuit.from_db(connection.alias, _circuit_fields(), circuit)
        circuit_instance._state.fields_cache["tenant"] = tenant
    tenant._state.fields_cache["x3_circuit"] = circuit_instance
    return tenant


def _full_load(tenant_id: int, order_id: int | None = None) -> Tenant:
    """The tenant with its connections; with an order: also its circuit and the two per-order facts."""
    if order_id is None:
        return Tenant.objects.select_related(*_RELATED).get(pk=tenant_id)
    tenant = (
        Tenant.objects.select_related(*_RELATED, "x3_circuit")
        .annotate(
            has_refund_postings=Exists(refund_postings(OuterRef("pk"), order_id)),
            has_tender_mappings=Exists(TenderMapping.objects.filter(tenant=OuterRef("pk"))),
        )
        .get(pk=tenant_id)
    )
    tenant.knows_refunds = tenant.has_refund_postings
    tenant.maps_tenders = tenant.has_tender_mappings
    return tenant


def _copy(tenant: Tenant) -> Tenant:
    """A copy of the cached tenant and of its connections, linked to each other (Django copies an instance's
    related-object cache, not the related instances themselves)."""
    fresh = copy.copy(tenant)
    for name in _RELATED:
        related = tenant._state.fields_cache.get(name)
        if related is not None:
            related = copy.copy(related)
            related._state.fields_cache["tenant"] = fresh
        fresh._state.fields_cache[name] = related
    return fresh


@cache
def _circuit_fields() -> tuple[str, ...]:
    return tuple(f.attname for f in X3Circuit._meta.concrete_fields)


@cache
def _state_sql() -> str:
    """Built once per process from the models' metadata (table and column names only; values are parameters)."""
    tenant = Tenant._meta.db_table
    store = BigCommerceStore._meta.db_table
    x3 = X3Connection._meta.db_table
    circuit = X3Circuit._meta.db_table
    postings = Posting._meta.db_table
    tenders = TenderMapping._meta.db_table
    circuit_columns = ", ".join(f'c."{f.column}"' for f in X3Circuit._meta.concrete_fields)
    return (
        "SELECT md5(t::text || '|' || coalesce(s::text, '') || '|' || coalesce(x::text, '')), "  # noqa: S608
        f'EXISTS (SELECT 1 FROM "{postings}" p WHERE p."tenant_id" = t."id" AND p."order_id" = %s '
        'AND p."kind" = %s), '
        f'EXISTS (SELECT 1 FROM "{tenders}" m WHERE m."tenant_id" = t."id"), '
        f"{circuit_columns} "
        f'FROM "{tenant}" t '
        f'LEFT JOIN "{store}" s ON s."tenant_id" = t."id" '
        f'LEFT JOIN "{x3}" x ON x."tenant_id" = t."id" '
        f'LEFT JOIN "{circuit}" c ON c."tenant_id" = t."id" '
        'WHERE t."id" = %s'
    )
