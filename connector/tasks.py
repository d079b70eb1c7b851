"""django-q2 tasks: primary keys in, a short status string out. Each one loads its row and calls a service.

Tasks are idempotent; the database decides whether there is work. Enqueue helpers are the only place that know
task paths, so tests and the sweep ring the same doorbell.
"""

from __future__ import annotations

from django_q.tasks import async_task


def enqueue_event(event_id: int) -> None:
    async_task("connector.tasks.process_event", event_id, task_name=f"event-{event_id}", group="events")


def enqueue_posting(posting_id: int) -> None:
    async_task(
        "connector.tasks.submit_posting", posting_id, task_name=f"posting-{posting_id}", group="postings"
    )


def enqueue_order_sync(tenant_id: int, order_id: int) -> None:
    async_task(
        "connector.tasks.sync_order",
        tenant_id,
        order_id,
        task_name=f"order-{tenant_id}-{order_id}",
        group="orders",
    )


def process_event(event_id: int) -> str:
    from .pipeline import process_event as service

    return service(event_id)


def submit_posting(posting_id: int) -> str:
    from accounting.posting import submit_posting as service

    return service(posting_id)


def sync_order(tenant_id: int, order_id: int) -> str:
    from .pipeline import sync_order_by_id

    return sync_order_by_id(tenant_id, order_id)


def reconcile() -> str:
    from .reconcile import reconcile_all

    return reconcile_all()


def sweep() -> str:
    from .pipeline import sweep as service

    return service()
