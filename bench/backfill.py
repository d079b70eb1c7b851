"""Bench 4 — backfill of 10,000 orders against a rate-limited BigCommerce: quota use, 429 failures, worker memory.

The real path: ``replay_orders --tenant demo --since … --until … --queue`` lists the orders (``GET /v2/orders``, 250
per page) and queues one sync per order; a ``manage.py qcluster`` (django-q2, Redis broker, the default two workers)
drains them against the simulators. Orders are the simulator's seeded default mix (refunds, unpaid, cancelled…).

The rate limit is BigCommerce's 150 requests per window, with the window compressed (30 000 ms in production):
a quota only measures the connector's throttling when the workers could go faster than it allows, so the window
is set from a calibration run (the cluster's unthrottled request rate on this machine, a separate set of orders)
to make the quota ``--quota-share`` (default 65 %) of that rate. ``--window-ms`` fixes it instead.

Figures: share of the quota used = requests served / (quota × windows elapsed) over the backfill; 429 answers
(retried inside the client: fine) and syncs that *failed* with a rate-limit error (target 0); worker peak RSS
(``VmHWM`` of the django-q2 worker processes, sampled every second; flat means the peak in the last quarter of the run
is within 10 % of the peak in the first quarter). django-q2 recycles a worker after 500 tasks (its default ``recycle``),
which the connector keeps; each worker incarnation's RSS at start and end is reported too.
"""

from __future__ import annotations

import json
import math
import sys
import time
from datetime import UTC, datetime, timedelta

from . import common
from .common import Proc, Report

BENCH = "backfill"
DB = common.db_name("backfill")
QUOTA = 150
PRODUCTION_WINDOW_MS = 30_000


class ClusterMemory:
    """Classify a qcluster's processes and sample their memory.

    ``manage.py qcluster`` (main) forks the sentinel, which forks the workers first, then the monitor and the pusher
    (django_q.cluster.Sentinel.spawn_cluster); a sentinel child that appears later is a recycled or reincarnated
    worker.
    """

    def __init__(self, main_pid: int, workers: int) -> None:
        self.main_pid = main_pid
        self.workers = workers
        self.sentinel: int | None = None
        self.auxiliary: set[int] = set()
        self.series: list[dict] = []  # one row per sample
        self.incarnations: dict[int, dict] = {}

    def _sentinel_children(self) -> list[int]:
        kids = common.children_map()
        if self.sentinel is None:
            first = sorted(kids.get(self.main_pid, []))
            if not first:
                return []
            self.sentinel = first[0]
        children = sorted(kids.get(self.sentinel, []))
        if not self.auxiliary and len(children) >= self.workers + 2:
            self.auxiliary = set(children[self.workers : self.workers + 2])
        return children

    def sample(self, t: float) -> dict | None:
        children = self._sentinel_children()
        if not self.auxiliary:
            return None
        workers = [p for p in children if p not in self.auxiliary]
        row = {"t": round(t, 1), "workers": {}}
        for pid in workers:
            mem = common.memory_kb(pid)
            if not mem:
                continue
            row["workers"][pid] = mem
            inc = self.incarnations.setdefault(pid, {"pid": pid, "first_t": t, "first_rss_kb": mem["VmRSS"]})
            inc.update(last_t=t, last_rss_kb=mem["VmRSS"], hwm_kb=max(inc.get("hwm_kb", 0), mem["VmHWM"]))
        aux = {pid: common.memory_kb(pid) for pid in self.auxiliary}
        row["max_hwm_kb"] = max((m["VmHWM"] for m in row["workers"].values()), default=0)
        row["max_rss_kb"] = max((m["VmRSS"] for m in row["workers"].values()), default=0)
        row["aux_max_hwm_kb"] = max((m.get("VmHWM", 0) for m in aux.values()), default=0)
        self.series.append(row)
        return row


def generate(world: common.World, count: int, *, start: datetime, end: datetime, seed: int) -> list[int]:
    ids: list[int] = []
    while len(ids) < count:
        chunk = min(1000, count - len(ids))
        ids += world.bc.generate_orders(
            world.info["store_hash"],
            chunk,
            seed=seed + len(ids),
            start=start.isoformat(),
            end=end.isoformat(),
        )["order_ids"]
    return ids


def _tasks(group: str = "orders") -> tuple[int, int, int]:
    """(finished sync tasks, distinct orders among them, failed tasks), counted by PostgreSQL (cheap: this runs every
    second next to the workers). ``sync_order`` itself may queue a second sync of an order (refunds waiting for the
    order's entry), so tasks can outnumber orders."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), count(DISTINCT args), count(*) FILTER (WHERE NOT success) FROM django_q_task "
            'WHERE "group" = %s',
            [group],
        )
        total, distinct, failed = cursor.fetchone()
    return int(total), int(distinct), int(failed)


def calibrate(world: common.World, ids: list[int]) -> dict:
    """Drain ``ids`` with no rate limit: the cluster's own request rate on this machine."""
    from django.db import connection

    from connector.models import Tenant
    from connector.tasks import enqueue_order_sync

    tenant = Tenant.objects.get(slug="demo")
    proc = Proc([sys.executable, "manage.py", "qcluster"], env=world.env, log=world.work / "calibration.log")
    try:
        time.sleep(3)
        done0 = _tasks()[1]
        for order_id in ids:
            enqueue_order_sync(tenant.pk, order_id)
        # skip the first third (warm-up), time the rest
        marks = []
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            done = _tasks()[1] - done0
            served = world.bc.store_stats(world.info["store_hash"])["served"]
            marks.append((time.monotonic(), done, served))
            if done >= len(ids):
                break
            time.sleep(0.25)
    finally:
        proc.stop()
        connection.close()
    first = next(m for m in marks if m[1] >= len(ids) // 3)
    last = marks[-1]
    seconds = max(0.001, last[0] - first[0])
    return {
        "orders": len(ids),
        "orders_per_second": round((last[1] - first[1]) / seconds, 1),
        "requests_per_second": round((last[2] - first[2]) / seconds, 1),
    }


def run(args) -> Report:
    report = Report(BENCH)
    n = args.orders or (1000 if args.quick else 10_000)
    n_cal = 150 if args.quick else 300
    world = common.prepare_world(DB, cluster="bench-backfill", Q_SAVE_LIMIT="0", Q_WORKERS=str(args.workers))
    store = world.info["store_hash"]
    try:
        world.bc.set_rate_limit(store, quota=10_000_000, window_ms=1000)
        now = datetime.now(UTC)
        cal_ids = generate(
            world, n_cal, start=now - timedelta(days=200), end=now - timedelta(days=190), seed=5000
        )
        b_start, b_end = now - timedelta(days=120), now - timedelta(days=60)
        generate(world, n, start=b_start, end=b_end, seed=1)
        common.django_setup(world.env)

        if args.window_ms:
            window_ms, calibration = args.window_ms, None
        else:
            common.wait_until_quiet()
            calibration = calibrate(world, cal_ids)
            target_rate = calibration["requests_per_second"] * args.quota_share
            window_ms = max(200, int(math.ceil(QUOTA / target_rate * 1000)))
            print(
                f"  calibration: unthrottled cluster = {calibration['requests_per_second']} BigCommerce requests/s "
                f"({calibration['orders_per_second']} orders/s) -> quota {QUOTA} per {window_ms} ms "
                f"({QUOTA * 1000 / window_ms:.1f} requests/s, window compressed {PRODUCTION_WINDOW_MS / window_ms:.1f}x)",
                flush=True,
            )
        world.bc.set_rate_limit(store, quota=QUOTA, window_ms=window_ms)
        world.bc.reset_stats()
        common.wait_until_quiet()

        cluster = Proc(
            [sys.executable, "manage.py", "qcluster"], env=world.env, log=world.work / "qcluster.log"
        )
        memory = ClusterMemory(cluster.pid, args.workers)
        time.sleep(3)  # cluster start-up
        from django_q.models import Task

        Task.objects.all().delete()  # calibration's
        common.flush_redis()  # and its follow-up syncs still queued
        watch = common.CpuWatch()
        t0 = time.monotonic()
        replay = Proc(
            [
                sys.executable,
                "manage.py",
                "replay_orders",
                "--tenant",
                "demo",
                "--since",
                b_start.isoformat(),
                "--until",
                (b_end + timedelta(days=3)).isoformat(),
                "--queue",
            ],
            env=world.env,
            log=world.work / "replay.log",
        )
        progress = []
        next_print = t0 + 15
        timeout = args.timeout
        try:
            while True:
                t = time.monotonic() - t0
                memory.sample(t)
                tasks, done, failed = _tasks()
                stats = world.bc.store_stats(store)
                progress.append(
                    {
                        "t": round(t, 1),
                        "tasks": tasks,
                        "done": done,
                        "failed": failed,
                        "served": stats["served"],
                        "rate_limited": stats["rate_limited"],
                    }
                )
                if time.monotonic() >= next_print:
                    row = memory.series[-1] if memory.series else {}
                    print(
                        f"  {t:5.0f} s: {done}/{n} orders done, {stats['served']} BigCommerce requests served, "
                        f"{stats['rate_limited']} 429s, worker RSS max {row.get('max_rss_kb', 0) / 1024:.0f} MB",
                        flush=True,
                    )
                    next_print += 15
                if done >= n and not replay.alive():
                    break
                if t > timeout:
                    print(f"  !! timed out after {timeout:.0f} s", flush=True)
                    break
                if not cluster.alive():
                    raise RuntimeError(f"qcluster exited:\n{cluster.tail()}")
                time.sleep(1.0)
        finally:
            elapsed = time.monotonic() - t0
            machine = watch.stop()
            replay.stop()
            cluster.stop()
        replay_out = replay.tail(500).strip().splitlines()
        stats = world.bc.store_stats(store)
        from accounting.models import Posting

        results: dict[str, int] = {}
        for result in Task.objects.filter(group="orders").values_list("result", flat=True):
            key = str(result).split(":")[0] if result is not None else "none"
            results[key] = results.get(key, 0) + 1
        failures = list(
            Task.objects.filter(group="orders", success=False).values_list("result", flat=True)[:2000]
        )
        rate_failures = sum(1 for r in failures if _is_rate_limit(str(r)))
        rate_postings = sum(
            1
            for e in Posting.objects.exclude(last_error="").values_list("last_error", flat=True)
            if _is_rate_limit(e)
        )
        postings = dict(
            (s, Posting.objects.filter(status=s).count())
            for s in Posting.Status.values
            if Posting.objects.filter(status=s).exists()
        )
    finally:
        from django.db import connections

        connections.close_all()
        world.stop(keep_db=args.keep_db)

    served = stats["served"]
    windows = elapsed * 1000 / window_ms
    share = served / (QUOTA * windows) if windows else None
    done = progress[-1]["done"] if progress else 0
    failed = progress[-1]["failed"] if progress else 0
    tasks = progress[-1]["tasks"] if progress else 0
    series = memory.series
    quarter = max(1, len(series) // 4)
    first_peak = max((r["max_hwm_kb"] for r in series[:quarter]), default=0)
    last_peak = max((r["max_hwm_kb"] for r in series[-quarter:]), default=0)
    peak = max((r["max_hwm_kb"] for r in series), default=0)
    flat = last_peak <= first_peak * 1.10 if first_peak else None

    report.add(
        "quota used",
        share * 100 if share is not None else None,
        "%",
        target=">= 90 %",
        passed=common.at_least(share, 0.90),
        note=f"{served} served / ({QUOTA} x {windows:.1f} windows of {window_ms} ms) in {elapsed:.0f} s",
    )
    report.add(
        "orders failed because of 429",
        rate_failures + rate_postings,
        "",
        target="= 0",
        passed=(rate_failures + rate_postings) == 0 and done >= n,
        note=f"{done}/{n} orders synced, {failed} tasks failed in all",
    )
    report.add(
        "429 answers (retried)", stats["rate_limited"], "", note="retried inside the client, not failures"
    )
    report.add(
        "worker peak RSS",
        peak / 1024,
        "MB",
        target="< 200 MB, flat",
        passed=(peak / 1024 < 200 and bool(flat)) if series else None,
        note=f"first quarter {first_peak / 1024:.0f} MB, last quarter {last_peak / 1024:.0f} MB, "
        f"{len(memory.incarnations)} worker processes (recycled every 500 tasks)",
    )
    report.add(
        "backfill throughput", done / elapsed if elapsed else None, "orders/s", note=f"{args.workers} workers"
    )
    report.details = {
        "orders": n,
        "workers": args.workers,
        "quota": QUOTA,
        "window_ms": window_ms,
        "window_compression": round(PRODUCTION_WINDOW_MS / window_ms, 2),
        "calibration": calibration,
        "elapsed_s": round(elapsed, 1),
        "served": served,
        "rate_limited_429": stats["rate_limited"],
        "by_endpoint": stats["by_endpoint"],
        "task_results": results,
        "sync_tasks": tasks,
        "extra_syncs": tasks - done,
        "failed_tasks_sample": [str(f)[:300] for f in failures[:10]],
        "postings_by_status": postings,
        "replay_output": replay_out[-3:],
        "cpu": machine,
        "memory_series_mb": [
            {
                "t": r["t"],
                "max_rss": round(r["max_rss_kb"] / 1024, 1),
                "max_hwm": round(r["max_hwm_kb"] / 1024, 1),
            }
            for r in series[:: max(1, len(series) // 60)]
        ],
        "worker_incarnations": [
            {
                "pid": i["pid"],
                "from_s": round(i["first_t"], 1),
                "to_s": round(i["last_t"], 1),
                "rss_start_mb": round(i["first_rss_kb"] / 1024, 1),
                "rss_end_mb": round(i["last_rss_kb"] / 1024, 1),
                "hwm_mb": round(i["hwm_kb"] / 1024, 1),
            }
            for i in memory.incarnations.values()
        ],
        "auxiliary_peak_rss_mb": round(max((r["aux_max_hwm_kb"] for r in series), default=0) / 1024, 1),
        "progress": progress[:: max(1, len(progress) // 60)],
    }
    return report


def _is_rate_limit(text: str) -> bool:
    lowered = text.lower()
    return (
        "429" in lowered
        or "too many requests" in lowered
        or "rate limit" in lowered
        or "ratelimit" in lowered
    )


def main(argv: list[str] | None = None) -> int:
    parser = common.cli(__doc__.split("\n")[0], BENCH)
    parser.add_argument(
        "--orders", type=int, default=0, help="orders to backfill (default 10,000; quick 1,000)"
    )
    parser.add_argument("--workers", type=int, default=2, help="django-q2 workers (the settings' default: 2)")
    parser.add_argument(
        "--window-ms", type=int, default=0, help="fix the rate-limit window instead of calibrating"
    )
    parser.add_argument(
        "--quota-share", type=float, default=0.65, help="quota as a share of the calibrated rate"
    )
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args(argv)
    started = time.monotonic()
    report = run(args)
    report.seconds = time.monotonic() - started
    common.print_figures(report.figures, title="Backfill")
    common.write_report(report, args.json)
    if args.json is None:
        print(
            json.dumps(
                {k: report.details[k] for k in ("window_ms", "calibration", "task_results")}, default=str
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
