"""Bench: a day of 10,000 orders in daily summary mode, closed and posted (docs/decisions/0024-daily-summary-posting.md).

A fresh database (``<prefix>_summary``, migrated, the demo tenant configured against the X3 simulator over HTTP)
with the tenant in daily summary mode and a past day of 10,000 orders already planned as summary members
(``in_summary``, four lines each: receivable, revenue, shipping, tax; created in bulk). Then, timed, what the worker
does: the periodic close (``connector.summaries.close_due_days``: one summary per channel and currency, its lines
aggregated from the members' lines) and the delivery of every summary part through the real path
(``connector.pipeline.deliver_posting`` → ``accounting.posting.submit_posting`` → the X3 simulator).

Figures: the worker time for the day (target < 10 s), with the close and the posting apart (info), X3 calls (one
per summary part) and the lines in the summaries (info).

    uv run python -m bench.summary [--quick] [--orders N] [--json FILE]

``--quick``: 2,000 orders, same target.
"""

from __future__ import annotations

import time
from datetime import date, timedelta
from decimal import Decimal

from . import common
from .common import Report

BENCH = "summary"
DB = common.db_name("summary")
TARGET_S = 10.0
DAY = date.today() - timedelta(days=3)  # a closed day (cut-off and grace long passed)


def _fill(tenant, orders: int) -> None:
    from accounting.models import ChannelMapping, Posting

    from .workspace import _copy_lines

    mappings = {m.channel_id: m for m in ChannelMapping.objects.filter(tenant=tenant)}
    channels = sorted(mappings)
    S = Posting.Status
    postings = []
    for i in range(orders):
        channel = channels[i % len(channels)]
        total = Decimal(20 + i % 180) + Decimal("0.99")
        postings.append(
            Posting(
                tenant=tenant,
                idempotency_key=f"order:{200000 + i}",
                order_id=200000 + i,
                status=S.IN_SUMMARY,
                channel_id=channel,
                currency="USD",
                gl_date=DAY,
                total=total,
                description=f"Order {200000 + i}",
                accounts={"site": "FR011"},
                snapshot={"id": 200000 + i, "channel_id": channel, "currency_code": "USD"},
            )
        )
    Posting.objects.bulk_create(postings, batch_size=2000)
    lines = []
    for p in (
        Posting.objects.filter(tenant=tenant, status=S.IN_SUMMARY)
        .values("id", "channel_id", "total")
        .iterator(chunk_size=5000)
    ):
        m, total = mappings[p["channel_id"]], p["total"]
        tax = (total * Decimal("0.08")).quantize(Decimal("0.01"))
        shipping = Decimal("4.95")
        for n, (role, account, dr, cr) in enumerate(
            [
                ("receivable", m.receivable_account, total, Decimal(0)),
                ("revenue", m.revenue_account, Decimal(0), total - tax - shipping),
                ("shipping", m.shipping_account, Decimal(0), shipping),
                ("tax", m.tax_account, Decimal(0), tax),
            ],
            start=1,
        ):
            lines.append((p["id"], n, role, account, dr, cr))
    _copy_lines(lines)


def run(args) -> Report:
    report = Report(BENCH)
    orders = args.orders or (2_000 if args.quick else 10_000)
    world = common.prepare_world(DB, cluster="bench-summary", LOG_LEVEL="WARNING")
    try:
        common.django_setup(world.env)
        from django.db import connection

        from accounting.models import Posting, PostingLine
        from connector.models import Tenant
        from connector.pipeline import deliver_posting
        from connector.summaries import close_due_days
        from simulators.stack import TENANT

        tenant = Tenant.objects.get(slug=TENANT)
        tenant.posting_mode = Tenant.PostingMode.DAILY_SUMMARY
        tenant.save()
        started = time.perf_counter()
        _fill(tenant, orders)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        fill_s = time.perf_counter() - started
        print(f"planned {orders:,} member entries for {DAY} in {fill_s:.1f} s", flush=True)

        common.wait_until_quiet(max_wait=10)
        x3_before = common.sim_api_calls(world.x3.stats())
        watch = common.CpuWatch()
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        closed = close_due_days(enqueue=False)
        t1 = time.perf_counter()
        parts = list(
            Posting.objects.filter(tenant=tenant, kind=Posting.Kind.SUMMARY, status=Posting.Status.PENDING)
            .order_by("id")
            .values_list("id", flat=True)
        )
        results = [deliver_posting(pk) for pk in parts]
        t2 = time.perf_counter()
        cpu = time.process_time() - cpu0
        reading = watch.stop()
        x3_calls = common.diff_counts(common.sim_api_calls(world.x3.stats()), x3_before)

        summaries = Posting.objects.filter(tenant=tenant, kind=Posting.Kind.SUMMARY)
        statuses: dict[str, int] = {}
        for status in summaries.values_list("status", flat=True):
            statuses[status] = statuses.get(status, 0) + 1
        summary_lines = PostingLine.objects.filter(posting__in=summaries).count()
        left = Posting.objects.filter(
            tenant=tenant, status=Posting.Status.IN_SUMMARY, summary__isnull=True
        ).count()
        x3_posts = sum(v for k, v in x3_calls.items() if k.startswith("POST"))
        print(
            f"closed ({closed}) in {t1 - t0:.2f} s, posted {len(parts)} part(s) in {t2 - t1:.2f} s; "
            f"summaries by status {statuses}; X3 calls {x3_calls}{common.foreign_note(reading)}",
            flush=True,
        )
    finally:
        world.stop(keep_db=args.keep_db)

    total = t2 - t0
    report.add(
        f"a day of {orders:,} orders summarised and posted, worker time",
        round(total, 2),
        "s",
        target=f"< {TARGET_S:g} s",
        passed=common.below(total, TARGET_S) and statuses.get("posted", 0) == len(parts) and not left,
        note=f"{len(parts)} summary part(s), all posted: {statuses.get('posted', 0) == len(parts)}",
    )
    report.add("closing the day (building the summaries)", round(t1 - t0, 2), "s")
    report.add("posting the summaries to X3", round(t2 - t1, 2), "s")
    report.add("worker CPU (this process)", round(cpu, 2), "s")
    report.add(
        "X3 write calls per summary part",
        round(x3_posts / len(parts), 2) if parts else None,
        "",
        target="= 1",
        passed=bool(parts) and x3_posts == len(parts),
        note=", ".join(f"{k}: {v}" for k, v in sorted(x3_calls.items())) or "no calls",
    )
    report.add(
        "lines in the summaries", summary_lines, "", note=f"{len(parts)} part(s) for {orders:,} orders"
    )
    report.add("member entries left outside a summary", left, "", target="= 0", passed=left == 0)
    report.details = {
        "orders": orders,
        "day": f"{DAY}",
        "fill_s": round(fill_s, 1),
        "close_s": round(t1 - t0, 3),
        "post_s": round(t2 - t1, 3),
        "results": results,
        "statuses": statuses,
        "x3_calls": x3_calls,
        "cpu": reading,
    }
    return report


def main(argv: list[str] | None = None) -> int:
    parser = common.cli(__doc__.split("\n")[0], BENCH)
    parser.add_argument(
        "--orders", type=int, default=0, help="orders in the day (default 10,000, quick 2,000)"
    )
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args(argv)
    started = time.monotonic()
    report = run(args)
    report.seconds = time.monotonic() - started
    common.print_figures(report.figures, title="Daily summary mode")
    common.write_report(report, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
