"""Re-fetch orders from BigCommerce and post only what is missing: nothing when the books already match."""

from __future__ import annotations

from datetime import datetime, time

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from accounting.models import Posting
from connector.models import Tenant
from connector.pipeline import orders_modified_between, sync_order
from connector.tasks import enqueue_order_sync
from integrations.errors import IntegrationError


def _moment(value: str, *, end: bool) -> datetime:
    parsed = parse_datetime(value)
    if parsed is None:
        day = parse_date(value)
        if day is None:
            raise CommandError(f"Not a date or datetime: {value!r} (use YYYY-MM-DD or ISO 8601)")
        parsed = datetime.combine(day, time.max if end else time.min)
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed)


class Command(BaseCommand):
    help = (
        "Replay orders: re-fetch each from BigCommerce, compare with what was posted, post the difference or "
        "nothing. Give order IDs, or a modification date range (--since/--until)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--tenant", required=True, help="Tenant slug")
        parser.add_argument("order_ids", nargs="*", type=int, help="Order IDs")
        parser.add_argument("--since", help="Orders modified on or after this date/datetime")
        parser.add_argument("--until", help="… and on or before this date/datetime")
        parser.add_argument(
            "--queue",
            action="store_true",
            help="Queue one task per order for the workers instead of running here",
        )

    def handle(self, *args, tenant: str, order_ids: list[int], since, until, queue: bool, **options) -> None:
        t = Tenant.objects.select_related("bigcommerce", "x3").filter(slug=tenant).first()
        if t is None:
            raise CommandError(f"No tenant {tenant!r}")
        if bool(order_ids) == bool(since):
            raise CommandError("Give either order IDs or --since (with an optional --until)")
        if until and not since:
            raise CommandError("--until needs --since")
        ids = order_ids or orders_modified_between(
            t, _moment(since, end=False), _moment(until, end=True) if until else None
        )
        counts: dict[str, int] = {}
        for order_id in ids:
            if queue:
                enqueue_order_sync(t.pk, order_id)
                counts["queued"] = counts.get("queued", 0) + 1
                continue
            try:
                result = sync_order(tenant=t, order_id=order_id, trigger=Posting.Trigger.REPLAY)
            except IntegrationError as exc:
                self.stderr.write(f"order {order_id}: {exc.message}")
                counts["error"] = counts.get("error", 0) + 1
                continue
            self.stdout.write(f"order {order_id}: {result.outcome} ({result.posting_status})")
            counts[result.outcome] = counts.get(result.outcome, 0) + 1
        summary = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "no orders"
        self.stdout.write(self.style.SUCCESS(f"Replay done. {summary}"))
