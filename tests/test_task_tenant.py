"""A worker's task loads its tenant by fingerprint (connector/task_tenant.py, docs/decisions/0031-worker-hot-path.md):
whatever changed in the configuration rows is seen by the next task, and no task sees another task's instances."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounting.models import Posting, TenderMapping, X3Circuit
from connector import task_tenant
from connector.models import BigCommerceStore, Tenant, X3Connection

on_postgresql = pytest.mark.skipif(
    "connection.vendor != 'postgresql'", reason="the fingerprint is PostgreSQL's md5 of the rows; CI runs it"
)


@pytest.fixture(autouse=True)
def _empty_cache():
    task_tenant._loaded.clear()
    yield
    task_tenant._loaded.clear()


def test_the_tenant_comes_with_its_connections_circuit_and_the_orders_facts(tenant):
    X3Circuit.objects.create(tenant=tenant, failures=2)
    Posting.objects.create(
        tenant=tenant, idempotency_key="refund:7:1", kind=Posting.Kind.REFUND, order_id=7, status="pending"
    )
    loaded = task_tenant.load_tenant(tenant.pk, 7)
    assert loaded.bigcommerce.client_secret == BigCommerceStore.objects.get(tenant=tenant).client_secret
    assert loaded.x3.password == X3Connection.objects.get(tenant=tenant).password
    assert loaded.x3_circuit.failures == 2
    assert (loaded.knows_refunds, loaded.maps_tenders) == (True, False)
    other_order = task_tenant.load_tenant(tenant.pk, 8)
    assert other_order.knows_refunds is False


def test_an_unknown_tenant_is_does_not_exist(db):
    with pytest.raises(Tenant.DoesNotExist):
        task_tenant.load_tenant(999_999, 1)


@on_postgresql
def test_while_nothing_changed_a_task_costs_one_statement_for_its_tenant(tenant):
    task_tenant.load_tenant(tenant.pk, 1)
    with CaptureQueriesContext(connection) as queries:
        loaded = task_tenant.load_tenant(tenant.pk, 1)
        assert loaded.x3.journal == "VEN" and loaded.bigcommerce.store_hash  # no lazy load either
    assert len(queries.captured_queries) == 1


@on_postgresql
@pytest.mark.parametrize(
    "change",
    [  # update(): no save(), no signal
        lambda t: X3Connection.objects.filter(tenant=t).update(journal="NEW"),
        lambda t: BigCommerceStore.objects.filter(tenant=t).update(access_token="rotated"),
        lambda t: Tenant.objects.filter(pk=t.pk).update(review_policy=Tenant.ReviewPolicy.ALL),
    ],
    ids=["x3-connection", "bigcommerce-secret", "tenant-policy"],
)
def test_any_change_to_the_configuration_rows_is_seen_by_the_next_task(tenant, change):
    before = task_tenant.load_tenant(tenant.pk, 1)
    change(tenant)
    after = task_tenant.load_tenant(tenant.pk, 1)
    fresh = Tenant.objects.select_related("x3", "bigcommerce").get(pk=tenant.pk)
    assert (after.x3.journal, after.bigcommerce.access_token, after.review_policy) == (
        fresh.x3.journal,
        fresh.bigcommerce.access_token,
        fresh.review_policy,
    )
    assert (before.x3.journal, before.bigcommerce.access_token, before.review_policy) != (
        after.x3.journal,
        after.bigcommerce.access_token,
        after.review_policy,
    )


def test_what_one_task_changes_in_memory_never_reaches_the_next(tenant):
    first = task_tenant.load_tenant(tenant.pk, 1)
    first.x3.journal = "CHANGED IN MEMORY"
    first.review_policy = Tenant.ReviewPolicy.ALL
    second = task_tenant.load_tenant(tenant.pk, 1)
    assert second is not first and second.x3 is not first.x3
    assert (second.x3.journal, second.review_policy) == ("VEN", tenant.review_policy)
    assert second.x3.tenant is second and second.bigcommerce.tenant is second


def test_the_circuit_and_tender_mappings_are_read_on_every_task(tenant):
    task_tenant.load_tenant(tenant.pk, 1)
    X3Circuit.objects.create(tenant=tenant, failures=3, opened_at=timezone.now())
    TenderMapping.objects.create(tenant=tenant, gateway="stripe", account="511000")
    loaded = task_tenant.load_tenant(tenant.pk, 1)
    assert loaded.x3_circuit.is_open and loaded.maps_tenders is True
    X3Circuit.objects.filter(tenant=tenant).delete()
    with pytest.raises(X3Circuit.DoesNotExist):
        task_tenant.load_tenant(tenant.pk, 1).x3_circuit  # noqa: B018 - as _circuit_of reads it
