"""Bench: the accountant's workspace on a month of a busy store, at 10,000 and at 100,000 orders.

Fills a fresh PostgreSQL database (``<prefix>_workspace``) with a month of posted orders (six lines each), a few
failures and pending ones, then times the dashboard and the month's reconciliation (plus the trial balance and the
postings list, informational) as an admin user sees them: rendered pages through Django's test client, in-process,
several rounds each. Then it adds orders up to the second size in the same month and times again.

Figures: p95 page time of the dashboard and the reconciliation at the first size (target < 1 s each), at the second
size (info), and the growth ratio second/first (target: at most half the growth of the orders, <= 5 for 10x).

    uv run python -m bench.workspace [--quick] [--sizes 10000,100000] [--rounds 5] [--json FILE]

``--quick``: 2,000 and 10,000 orders, 3 rounds.
"""

from __future__ import annotations

import time
from datetime import date
from decimal import Decimal
from typing import NamedTuple

from . import common
from .common import Report

BENCH = "workspace"
DB = common.db_name("workspace")
PAGE_TARGET_S = 1.0
GROWTH_SHARE = 0.5  # page time may grow by at most half the growth of the orders (10x orders: <= 5x)


def _fill(first: int, orders: int) -> object:
    """Add orders ``first`` … ``orders - 1`` (postings and, for posted ones, six lines each)."""
    from accounting.figures import stored_figures
    from accounting.models import ChannelMapping, Posting
    from connector.models import Tenant

    tenant, _ = Tenant.objects.get_or_create(
        slug="bench", defaults={"name": "Bench", "rounding_account": "658000"}
    )
    for channel in (1, 2, 3):
        ChannelMapping.objects.get_or_create(
            tenant=tenant,
            channel_id=channel,
            defaults={
                "receivable_account": f"41{channel}000",
                "revenue_account": f"70{channel}000",
                "shipping_account": f"70{channel}800",
                "tax_account": f"44{channel}570",
                "cogs_account": f"60{channel}000",
                "inventory_account": f"37{channel}000",
                "name": f"Channel {channel}",
            },
        )
    S = Posting.Status
    postings = []
    for i in range(first, orders):
        channel = 1 + i % 3
        total = Decimal(20 + i % 180) + Decimal("0.99")
        tax, shipping = (total * Decimal("0.08")).quantize(Decimal("0.01")), Decimal("4.95")
        status = S.NEEDS_ATTENTION if i % 997 == 0 else S.PENDING if i % 1499 == 0 else S.POSTED
        snapshot = {
            "id": 100000 + i,
            "channel_id": channel,
            "status_id": 11,
            "currency_code": "USD",
            "is_tax_inclusive_pricing": False,
            "is_deleted": False,
            "total_inc_tax": str(total),
            "total_tax": str(tax),
            "shipping_cost_ex_tax": str(shipping),
            "shipping_cost_inc_tax": str(shipping),
            "shipping_cost_tax": "0",
            "handling_cost_ex_tax": "0",
            "handling_cost_inc_tax": "0",
            "handling_cost_tax": "0",
            "products": [{"id": 1, "sku": "SKU", "quantity": 2, "cost_price_ex_tax": "5.00"}],
        }
        own = [Line(role, dr, cr) for role, _, dr, cr in _lines(channel, total)] if status == S.POSTED else []
        postings.append(
            Posting(
                # the reconciliation's figures, as planning stores them with the entry
                **stored_figures(Posting.Kind.ORDER, "USD", snapshot, own),
                tenant=tenant,
                idempotency_key=f"order:{100000 + i}",
                order_id=100000 + i,
                status=status,
                channel_id=channel,
                currency="USD",
                gl_date=date(2026, 11, 1 + i % 30),
                total=total,
                snapshot=snapshot,
            )
        )
    Posting.objects.bulk_create(postings, batch_size=2000)
    del postings
    new = Posting.objects.filter(tenant=tenant, order_id__gte=100000 + first, order_id__lt=100000 + orders)
    lines = []
    for p in new.values("id", "channel_id", "total", "status").iterator(chunk_size=5000):
        if p["status"] != S.POSTED:
            continue
        for n, (role, account, dr, cr) in enumerate(_lines(p["channel_id"], p["total"]), start=1):
            lines.append((p["id"], n, role, account, dr, cr))
    _copy_lines(lines)
    return tenant


class Line(NamedTuple):
    role: str
    debit: Decimal
    credit: Decimal


def _lines(c: int, total: Decimal) -> list[tuple]:
    """The six lines of a posted bench order: (role, account, debit, credit)."""
    tax = (total * Decimal("0.08")).quantize(Decimal("0.01"))
    return [
        ("receivable", f"41{c}000", total, Decimal(0)),
        ("revenue", f"70{c}000", Decimal(0), total - tax - Decimal("4.95")),
        ("shipping", f"70{c}800", Decimal(0), Decimal("4.95")),
        ("tax", f"44{c}570", Decimal(0), tax),
        ("cogs", f"60{c}000", Decimal(10), Decimal(0)),
        ("inventory", f"37{c}000", Decimal(0), Decimal(10)),
    ]


def _copy_lines(lines: list[tuple]) -> None:
    """COPY the posting lines in (a bulk INSERT of 600,000 rows through the ORM takes minutes)."""
    from django.db import connection

    from accounting.models import PostingLine

    defaults = {
        f.column: f.get_default()
        for f in PostingLine._meta.concrete_fields
        if f.column not in ("id", "posting_id", "line_no", "role", "account", "debit", "credit")
    }
    extra = [(c, v) for c, v in defaults.items() if v is not None]
    columns = ["posting_id", "line_no", "role", "account", "debit", "credit"] + [c for c, _ in extra]
    table = PostingLine._meta.db_table
    with connection.cursor() as cursor:
        with cursor.cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in lines:
                copy.write_row((*row, *(_json(v) for _, v in extra)))


def _json(value: object) -> object:
    import json

    return json.dumps(value) if isinstance(value, dict | list) else value


def _time(client, url: str, params: dict, rounds: int) -> list[float]:
    client.get(url, params, secure=True)  # warm-up: imports, template loading, connection
    timings = []
    for _ in range(rounds):
        started = time.perf_counter()
        response = client.get(url, params, secure=True)
        timings.append(time.perf_counter() - started)
        assert response.status_code == 200, (url, response.status_code)
    return timings


PAGES = ("dashboard", "reconciliation", "trial balance", "postings list")
JUDGED = ("dashboard", "reconciliation")


def _measure(client, tenant, rounds: int) -> dict[str, dict]:
    month = {"tenant": tenant.pk, "period": "custom", "start": "2026-11-01", "end": "2026-11-30"}
    urls = {
        "dashboard": ("/admin/workspace/dashboard/", {}),
        "reconciliation": ("/admin/workspace/reconciliation/", month),
        "trial balance": ("/admin/workspace/trial-balance/", month),
        "postings list": ("/admin/accounting/posting/", {}),
    }
    out = {}
    for name in PAGES:
        url, params = urls[name]
        common.wait_until_quiet(max_wait=5)
        watch = common.CpuWatch()
        timings = _time(client, url, params, rounds)
        reading = watch.stop()
        out[name] = {
            "p95_s": round(common.percentile(timings, 95) or 0, 4),
            "median_s": round(common.percentile(timings, 50) or 0, 4),
            "timings_s": [round(t, 4) for t in timings],
            "cpu": reading,
        }
        print(
            f"  {name:16} p95 {out[name]['p95_s'] * 1000:7.0f} ms, median {out[name]['median_s'] * 1000:7.0f} ms"
            f" over {rounds}{common.foreign_note(reading)}",
            flush=True,
        )
    return out


def run(args) -> Report:
    report = Report(BENCH)
    sizes = (
        [int(s) for s in args.sizes.split(",")]
        if args.sizes
        else ([2_000, 10_000] if args.quick else [10_000, 100_000])
    )
    rounds = args.rounds or (3 if args.quick else 5)
    common.check_services()
    db_url = common.recreate_database(DB)
    env = common.connector_env(db_url, ALLOWED_HOSTS="127.0.0.1,localhost,testserver", LOG_LEVEL="WARNING")
    try:
        common.django_setup(env)
        from django.contrib.auth import get_user_model
        from django.core.management import call_command
        from django.db import connection
        from django.test import Client

        call_command("migrate", verbosity=0)
        call_command("collectstatic", "--noinput", verbosity=0)  # production settings: hashed static names
        user = get_user_model().objects.create_superuser("bench", "bench@example.com", "bench-password-0")
        client = Client()
        client.force_login(user)
        results: dict[int, dict] = {}
        filled = 0
        for size in sizes:
            started = time.perf_counter()
            tenant = _fill(filled, size)
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")
            fill_s = time.perf_counter() - started
            print(f"filled {size - filled:,} orders (now {size:,}) in {fill_s:.1f} s", flush=True)
            filled = size
            results[size] = {"fill_s": round(fill_s, 1), "pages": _measure(client, tenant, rounds)}
    finally:
        if not args.keep_db:
            common.drop_database(DB)

    small, large = sizes[0], sizes[-1]
    for name in PAGES:
        judged = name in JUDGED
        v = results[small]["pages"][name]["p95_s"]
        report.add(
            f"{name}, p95 page time, {small:,} orders",
            v,
            "s",
            target=f"< {PAGE_TARGET_S:g} s" if judged else "",
            passed=common.below(v, PAGE_TARGET_S) if judged else None,
            note=f"{rounds} rounds, month of {small:,} orders",
        )
    if large != small:
        for name in PAGES:
            report.add(
                f"{name}, p95 page time, {large:,} orders",
                results[large]["pages"][name]["p95_s"],
                "s",
                note=f"{rounds} rounds, month of {large:,} orders",
            )
        for name in PAGES:
            judged = name in JUDGED
            a, b = results[small]["pages"][name]["p95_s"], results[large]["pages"][name]["p95_s"]
            ratio = round(b / a, 2) if a else None
            limit = GROWTH_SHARE * large / small
            report.add(
                f"{name}, growth {large // 1000}k/{small // 1000}k orders",
                ratio,
                "x",
                target=f"<= {limit:g}" if judged else "",
                passed=(ratio is not None and ratio <= limit) if judged else None,
                note=f"{large / small:g}x the orders",
            )
    report.details = {"sizes": sizes, "rounds": rounds, "results": results}
    return report


def main(argv: list[str] | None = None) -> int:
    parser = common.cli(__doc__.split("\n")[0], BENCH)
    parser.add_argument(
        "--sizes", default="", help="comma-separated order counts, ascending (default 10000,100000)"
    )
    parser.add_argument("--rounds", type=int, default=0, help="timed requests per page (default 5, quick 3)")
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args(argv)
    started = time.monotonic()
    report = run(args)
    report.seconds = time.monotonic() - started
    common.print_figures(report.figures, title="Accountant's workspace")
    common.write_report(report, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
