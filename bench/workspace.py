"""Bench: the accountant's workspace on a month of a busy store (10,000 orders by default).

Fills a fresh database with a month of posted orders (about six lines each), refunds and a few failures, then
times the reconciliation, the trial balance, the dashboard and the postings list as an admin user sees them
(rendered pages, through Django's test client, in-process). Target: under 1 s per page on PostgreSQL.

    uv run python -m bench.workspace                        # embedded SQLite in a temporary directory
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_workspace uv run python -m bench.workspace
    uv run python -m bench.workspace --orders 2000 --json out.json

With DATABASE_URL set the database is migrated and its postings are replaced: point it at a throwaway database.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import date
from decimal import Decimal


def _setup() -> str:
    if not os.environ.get("DATABASE_URL"):
        os.environ["CONNECTOR_VAR_DIR"] = tempfile.mkdtemp(prefix="bench-workspace-")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "connector.settings")
    os.environ.setdefault("CONNECTOR_ENV", "development")
    os.environ["DEBUG"] = "false"
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    return connection.vendor


def _fill(orders: int) -> object:
    from accounting.models import ChannelMapping, Posting, PostingLine
    from connector.models import Tenant

    Posting.objects.all().delete()
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
    for i in range(orders):
        channel = 1 + i % 3
        total = Decimal(20 + i % 180) + Decimal("0.99")
        tax, shipping = (total * Decimal("0.08")).quantize(Decimal("0.01")), Decimal("4.95")
        status = S.NEEDS_ATTENTION if i % 997 == 0 else S.PENDING if i % 1499 == 0 else S.POSTED
        postings.append(
            Posting(
                tenant=tenant,
                idempotency_key=f"order:{100000 + i}",
                order_id=100000 + i,
                status=status,
                channel_id=channel,
                currency="USD",
                gl_date=date(2026, 11, 1 + i % 30),
                total=total,
                snapshot={
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
                },
            )
        )
    Posting.objects.bulk_create(postings, batch_size=2000)
    lines = []
    for p in Posting.objects.filter(tenant=tenant).values("id", "channel_id", "total", "status"):
        if p["status"] != S.POSTED:
            continue
        c, total = p["channel_id"], p["total"]
        tax = (total * Decimal("0.08")).quantize(Decimal("0.01"))
        for n, (role, account, dr, cr) in enumerate(
            [
                ("receivable", f"41{c}000", total, 0),
                ("revenue", f"70{c}000", 0, total - tax - Decimal("4.95")),
                ("shipping", f"70{c}800", 0, Decimal("4.95")),
                ("tax", f"44{c}570", 0, tax),
                ("cogs", f"60{c}000", Decimal(10), 0),
                ("inventory", f"37{c}000", 0, Decimal(10)),
            ],
            start=1,
        ):
            lines.append(
                PostingLine(posting_id=p["id"], line_no=n, role=role, account=account, debit=dr, credit=cr)
            )
    PostingLine.objects.bulk_create(lines, batch_size=5000)
    return tenant


def _time(client, url: str, params: dict, rounds: int) -> list[float]:
    timings = []
    for _ in range(rounds):
        started = time.perf_counter()
        response = client.get(url, params)
        timings.append(time.perf_counter() - started)
        assert response.status_code == 200, (url, response.status_code)
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args(argv)
    vendor = _setup()
    from django.contrib.auth import get_user_model
    from django.test import Client

    started = time.perf_counter()
    tenant = _fill(args.orders)
    print(f"filled {args.orders:,} orders on {vendor} in {time.perf_counter() - started:.1f} s")
    user, _ = get_user_model().objects.get_or_create(username="bench", defaults={"is_staff": True})
    user.is_superuser = user.is_staff = True
    user.save()
    client = Client()
    client.force_login(user)
    month = {"tenant": tenant.pk, "period": "custom", "start": "2026-11-01", "end": "2026-11-30"}
    pages = {
        "reconciliation": ("/admin/workspace/reconciliation/", month),
        "trial balance": ("/admin/workspace/trial-balance/", month),
        "dashboard": ("/admin/workspace/dashboard/", {}),
        "reconciliation XLSX": ("/admin/workspace/reconciliation/", {**month, "export": "xlsx"}),
        "postings list": ("/admin/accounting/posting/", {}),
    }
    figures = {}
    for name, (url, params) in pages.items():
        timings = _time(client, url, params, args.rounds)
        median = statistics.median(timings)
        figures[name] = median
        verdict = "PASS" if median < 1 else "MISS"
        print(f"{name:22} median {median * 1000:7.0f} ms over {args.rounds} (target < 1000 ms)  {verdict}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"vendor": vendor, "orders": args.orders, "seconds": figures}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
