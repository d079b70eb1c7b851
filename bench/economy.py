"""Bench 3 — API economy: BigCommerce calls per order and Sage X3 calls per posting, from the simulators' stats.

Everything runs through the real system (``simulators.stack.start_stack``: gunicorn + django-q2 cluster with the
Redis broker, both simulators over HTTP), and the counts are what the simulators served:

* webhook path — paid orders without refunds are created in the BigCommerce simulator, which sends what
  BigCommerce sends for a new order (``store/order/created`` and ``store/order/statusUpdated``, signed); the
  connector's workers re-read and post them. BigCommerce calls per order = API requests served / orders.
* replay path — the same kind of orders as history (no webhooks), then ``replay_orders --since`` (what a backfill or
  a catch-up does): one ``GET /v2/orders`` page per 250 orders plus the per-order re-reads.
* refunds (informational) — some of the webhook orders are then refunded; calls per refund.

X3 calls per posting = api1 requests served / postings posted (happy path: no faults injected).
"""

from __future__ import annotations

import json
import random
import time
from datetime import UTC, datetime, timedelta

from . import common
from .common import Report

BENCH = "economy"
DB = common.db_name("economy")


def _settle(stack, predicate, *, timeout: float, what: str) -> None:
    """Wait for the workers; ring the sweep now and then as the cluster's schedule would."""
    deadline = time.monotonic() + timeout
    last_sweep = time.monotonic()
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not settle in {timeout:.0f} s")
        if time.monotonic() - last_sweep > 10:
            stack.manage("sweep")
            last_sweep = time.monotonic()
        time.sleep(0.3)


def _x3_entries(stack) -> dict:
    """Entries X3 holds so far, and references held more than once (a duplicate posting: must be none)."""
    refs: dict[str, int] = {}
    for entry in stack.x3.entries():
        ref = str(entry.get("REFINT") or "")
        refs[ref] = refs.get(ref, 0) + 1
    return {
        "x3_entries_total": sum(refs.values()),
        "duplicate_references": sorted(r for r, n in refs.items() if n > 1),
    }


def measure(args, *, replay: bool = True) -> dict:
    """Start a fresh stack and count the calls of each path."""
    from simulators.stack import STORE_HASH, start_stack

    k = args.orders or (12 if args.quick else 60)
    m = args.replay_orders or (100 if args.quick else 300)
    refunds = max(2, k // 4)
    from django.conf import settings
    from django.db import connections

    if settings.configured:
        connections.close_all()  # the previous stack's database is about to be dropped
    db_url = common.recreate_database(DB)
    common.flush_redis()
    work = common.RESULTS_DIR / "tmp" / BENCH
    extra = {"DEBUG": "false", "Q_CLUSTER_NAME": "bench-economy"}
    stack = start_stack(
        database_url=db_url,
        redis_url=common.REDIS_BASE,
        workers=2,
        web_workers=2,
        log_dir=work,
        extra_env=extra,
    )
    out: dict = {}
    try:
        stack.bc.set_rate_limit(STORE_HASH, quota=10_000_000, window_ms=1000)
        common.django_setup({**stack.env, "DJANGO_SETTINGS_MODULE": "connector.settings"})
        from accounting.models import Posting
        from connector.models import WebhookEvent

        def bc_calls() -> dict[str, int]:
            return common.sim_api_calls(stack.bc.stats())

        def x3_calls() -> dict[str, int]:
            return common.sim_api_calls(stack.x3.stats())

        def posted(kind: str | None = None) -> int:
            qs = Posting.objects.filter(status=Posting.Status.POSTED)
            return (qs.filter(kind=kind) if kind else qs).count()

        def events_done() -> bool:
            return not WebhookEvent.objects.filter(
                status__in=(WebhookEvent.Status.RECEIVED, WebhookEvent.Status.PROCESSING)
            ).exists()

        # ---- webhook path: new paid orders, no refunds
        rng = random.Random(7)
        bc0, x30, p0, e0 = bc_calls(), x3_calls(), posted(), WebhookEvent.objects.count()
        orders = []
        for i in range(k):
            lines = [
                {
                    "name": f"Item {j}",
                    "price": f"{rng.randint(5, 120)}.{rng.randint(0, 99):02d}",
                    "quantity": rng.randint(1, 3),
                    "cost_price": f"{rng.randint(1, 4)}.00",
                }
                for j in range(rng.randint(1, 4))
            ]
            orders.append(
                stack.bc.create_order(
                    STORE_HASH,
                    status_id=11,
                    channel_id=1 + i % 3,
                    lines=lines,
                    shipping_cost="5.00",
                    pickup=False,  # shipped (a POS channel order may otherwise be a pickup, with no shipping)
                )["order"]
            )
        stack.bc.wait_for_webhooks(timeout=60)
        _settle(
            stack,
            lambda: posted() - p0 >= k and events_done() and stack.bc.wait_for_webhooks(timeout=1),
            timeout=180,
            what="webhook orders",
        )
        time.sleep(1)
        wh_bc = common.diff_counts(bc_calls(), bc0)
        wh_x3 = common.diff_counts(x3_calls(), x30)
        wh_posted = posted() - p0
        wh_events = WebhookEvent.objects.count() - e0
        out["webhook_path"] = webhook = {
            "x3_answers": dict(stack.x3.stats().get("by_status", {})),
            **_x3_entries(stack),
            "orders": k,
            "webhook_deliveries": wh_events,
            "postings_posted": wh_posted,
            "bigcommerce_calls": wh_bc,
            "x3_calls": wh_x3,
            "bigcommerce_calls_per_order": round(sum(wh_bc.values()) / k, 3),
            "x3_calls_per_posting": round(sum(wh_x3.values()) / wh_posted, 3) if wh_posted else None,
            "deliveries_per_order": round(wh_events / k, 2),
        }
        print(f"  connector webhook path: {json.dumps(webhook)}", flush=True)

        # ---- refunds on some of those orders (informational)
        bc0, x30, r0 = bc_calls(), x3_calls(), posted(Posting.Kind.REFUND)
        for order in orders[:refunds]:
            stack.bc.refund(STORE_HASH, order["id"], full=True)
        stack.bc.wait_for_webhooks(timeout=60)
        _settle(
            stack,
            lambda: posted(Posting.Kind.REFUND) - r0 >= refunds and events_done(),
            timeout=180,
            what="refunds",
        )
        time.sleep(1)
        rf_bc = common.diff_counts(bc_calls(), bc0)
        rf_x3 = common.diff_counts(x3_calls(), x30)
        out["refunds"] = refund = {
            **_x3_entries(stack),
            "refunds": refunds,
            "postings_posted": posted(Posting.Kind.REFUND) - r0,
            "bigcommerce_calls": rf_bc,
            "x3_calls": rf_x3,
            "bigcommerce_calls_per_refund": round(sum(rf_bc.values()) / refunds, 3),
            "x3_calls_per_refund_posting": round(sum(rf_x3.values()) / refunds, 3),
        }
        print(f"  connector refunds: {json.dumps(refund)}", flush=True)
        if not replay:
            return out

        # ---- replay path: history without webhooks, then replay_orders --since
        start = datetime.now(UTC) - timedelta(days=400)
        end = start + timedelta(days=10)
        ids = stack.bc.generate_orders(
            STORE_HASH,
            m,
            seed=11,
            start=start.isoformat(),
            end=end.isoformat(),
            refund_rate=0,
            full_refund_rate=0,
            status_weights={"11": 1, "10": 1, "2": 1},
        )["order_ids"]
        bc0, x30, p0 = bc_calls(), x3_calls(), posted()
        text = stack.manage(
            "replay_orders",
            "--tenant",
            "demo",
            "--since",
            start.date().isoformat(),
            "--until",
            (end + timedelta(days=1)).date().isoformat(),
            timeout=600,
        )
        rp_bc = common.diff_counts(bc_calls(), bc0)
        rp_x3 = common.diff_counts(x3_calls(), x30)
        rp_posted = posted() - p0
        out["replay_path"] = replay_out = {
            "x3_answers": dict(stack.x3.stats().get("by_status", {})),
            **_x3_entries(stack),
            "orders": len(ids),
            "postings_posted": rp_posted,
            "bigcommerce_calls": rp_bc,
            "x3_calls": rp_x3,
            "bigcommerce_calls_per_order": round(sum(rp_bc.values()) / len(ids), 3),
            "x3_calls_per_posting": round(sum(rp_x3.values()) / rp_posted, 3) if rp_posted else None,
            "summary": next((line for line in text.splitlines() if line.startswith("Replay done")), ""),
        }
        print(f"  replay path: {json.dumps(replay_out)}", flush=True)
        return out
    finally:
        stack.stop()
        connections.close_all()
        if not args.keep_db:
            common.drop_database(DB)
            common.flush_redis()


def run(args) -> Report:
    report = Report(BENCH)
    common.check_services()
    main = measure(args)
    webhook, refund, replay = main["webhook_path"], main["refunds"], main["replay_path"]
    k, refunds = webhook["orders"], refund["refunds"]

    v = webhook["bigcommerce_calls_per_order"]
    report.add(
        "BC calls per order, webhook path",
        v,
        "",
        target="<= 1.2",
        passed=v <= 1.2,
        note=f"{k} paid orders, no refunds, {webhook['deliveries_per_order']} webhook deliveries per order",
    )
    v = replay["bigcommerce_calls_per_order"]
    report.add(
        "BC calls per order, replay path",
        v,
        "",
        target="<= 1.2",
        passed=v <= 1.2,
        note=f"{replay['orders']} orders, replay_orders --since",
    )
    v = webhook["x3_calls_per_posting"]
    report.add(
        "X3 calls per posting, webhook path",
        v,
        "",
        target="= 1",
        passed=v == 1.0 if v is not None else None,
        note=f"{webhook['postings_posted']} postings",
    )
    v = replay["x3_calls_per_posting"]
    report.add(
        "X3 calls per posting, replay path",
        v,
        "",
        target="= 1",
        passed=v == 1.0 if v is not None else None,
        note=f"{replay['postings_posted']} postings",
    )
    report.add(
        "BC calls per refund (info)",
        refund["bigcommerce_calls_per_refund"],
        "",
        note=f"{refunds} full refunds via webhooks; X3 {refund['x3_calls_per_refund_posting']} calls per refund posting",
    )
    duplicates = sorted({r for part in (webhook, refund, replay) for r in part["duplicate_references"]})
    report.add(
        "X3 entries posted twice",
        len(duplicates),
        "",
        target="= 0",
        passed=not duplicates,
        note=", ".join(duplicates[:5]) or "every reference once",
    )
    report.details = {
        "webhook_path": webhook,
        "refunds": refund,
        "replay_path": replay,
    }
    return report


def main(argv: list[str] | None = None) -> int:
    parser = common.cli(__doc__.split("\n")[0], BENCH)
    parser.add_argument("--orders", type=int, default=0, help="orders created through webhooks")
    parser.add_argument(
        "--replay-orders", type=int, default=0, help="orders replayed with replay_orders --since"
    )
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args(argv)
    started = time.monotonic()
    report = run(args)
    report.seconds = time.monotonic() - started
    common.print_figures(report.figures, title="API economy")
    common.write_report(report, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
