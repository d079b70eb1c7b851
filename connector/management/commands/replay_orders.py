"""Re-fetch orders from BigCommerce and post only what is missing: nothing when the books already match."""

from __future__ import annotations

from collections import Counter

from django.core.management.base import CommandError
from django.utils import timezone

from accounting.models import Posting
from accounting.reports import KindCounts, kind_counts, kind_table
from connector.management.base import ConnectorCommand, parse_moment, positive_id, tenant_by_slug, usage_error
from connector.management.progress import Progress, add_progress_arguments
from connector.models import Tenant
from connector.pipeline import orders_modified_between, sync_order
from connector.tasks import enqueue_order_sync
from integrations.errors import IntegrationError

BATCH = 500  # order IDs per query when counting the replayed orders' entries


class Command(ConnectorCommand):
    help = (
        "Replay orders: re-fetch each from BigCommerce, compare with what was posted, post the difference or "
        "nothing. Give order IDs, or a modification date range (--since/--until). Ends with the orders' entries "
        "by kind: posted now, already posted, failed, skipped, not posted yet."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--tenant", required=True, help="Tenant slug")
        parser.add_argument("order_ids", nargs="*", type=positive_id, help="Order IDs")
        parser.add_argument("--since", help="Orders modified on or after this date (YYYY-MM-DD) or datetime")
        parser.add_argument("--until", help="… and on or before this date (the whole day) or datetime")
        parser.add_argument(
            "--queue",
            action="store_true",
            help="Queue one task per order for the workers instead of running here",
        )
        add_progress_arguments(parser)

    def handle(self, *args, tenant: str, order_ids: list[int], since, until, queue: bool, **options) -> None:
        if bool(order_ids) == bool(since):
            raise usage_error("Give either order IDs or --since (with an optional --until)")
        if until and not since:
            raise usage_error("--until needs --since")
        start = parse_moment(since, "--since", end=False) if since else None
        end = parse_moment(until, "--until", end=True) if until else None
        if start and end and end < start:
            raise usage_error(f"--until ({until}) is before --since ({since})")
        t = tenant_by_slug(tenant, "bigcommerce", "x3")
        progress = Progress.of(self, options)
        ids = list(dict.fromkeys(order_ids)) if order_ids else self._scan(t, start, end, progress)
        started = timezone.now()
        outcomes: Counter[str] = Counter()
        unreadable = 0
        verb = "Queuing" if queue else "Replaying"
        for order_id in progress.bar(ids, desc=verb, unit="order"):
            if queue:
                enqueue_order_sync(t.pk, order_id)
                outcomes["queued"] += 1
                continue
            try:
                result = sync_order(tenant=t, order_id=order_id, trigger=Posting.Trigger.REPLAY)
            except IntegrationError as exc:
                progress.note(f"order {order_id}: {exc.message}", self.stderr)
                unreadable += 1
                continue
            progress.note(f"order {order_id}: {result.outcome} ({result.posting_status})", self.stdout)
            outcomes[result.outcome] += 1
        self._summary(t, ids, outcomes, unreadable, started, queue)

    def _scan(self, tenant: Tenant, start, end, progress: Progress) -> list[int]:
        """The range's order IDs: BigCommerce pages through them, so the total is known only at the end."""
        try:
            return list(
                progress.bar(
                    orders_modified_between(tenant, start, end),
                    desc="Reading orders from BigCommerce",
                    unit="order",
                )
            )
        except IntegrationError as exc:
            raise CommandError(f"BigCommerce could not list the orders: {exc.message}") from exc

    def _summary(self, tenant, ids, outcomes, unreadable, started, queue) -> None:
        w = self.stdout.write
        if queue:
            w(self.style.SUCCESS(f"Replay queued: {len(ids)} orders for the workers."))
            return
        read = ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()))
        text = f"Replay done. {len(ids)} orders" + (f" ({read})" if read else "")
        if unreadable:
            text += f"; {unreadable} could not be read from BigCommerce (see above)"
        w(self.style.SUCCESS(text) if not unreadable else self.style.WARNING(text))
        if not ids:
            return
        counts: dict[str, KindCounts] = {}
        for i in range(0, len(ids), BATCH):
            chunk = Posting.objects.filter(tenant=tenant, order_id__in=ids[i : i + BATCH])
            for part in kind_counts(chunk, posted_since=started):
                counts.setdefault(part.kind, KindCounts(part.kind, part.label)).add(part)
        w("Their entries in the books:")
        for line in kind_table(list(counts.values()), posted_now=True):
            w(line)
