"""Bench 1 — webhook ingest: signed deliveries per second and latency through gunicorn, next to a bare-Django ceiling.

Two servers run side by side, started by the same command (``manage.py serve --no-cluster --web-workers W``, i.e.
the gunicorn command line users run) against the same PostgreSQL database and Redis:

* connector — ``connector.settings``: the real ``/webhooks/bigcommerce/demo/`` view (tenant lookup, Standard
  Webhooks HMAC check, parse, INSERT of the event row, then the events doorbell: a Redis ``SET NX``, and a
  django-q2 ``drain_events`` task only when no drain is already queued, docs/decisions/0029);
* baseline — ``bench.settings_baseline``: the same settings and middleware, one view that reads the body and INSERTs
  one row with the ORM (the ceiling for Django + gunicorn + PostgreSQL on this machine).

No django-q2 cluster runs: accepted events wait in the database with a drain queued for them. Checked at the end:
every accepted delivery is stored as ``received``, a drain task is queued (so a worker will pick them up), and a
drain started afterwards (in-process, with the per-event work stubbed: there is no BigCommerce here) claims every
one of them. That is the fair comparison — the baseline has no background work either, and workers would take CPU from the web
processes on a 2-core machine. The pipeline bench measures the workers.

Closed-loop rounds alternate baseline / connector so drift (caches, autovacuum, CPU frequency) hits both alike.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from pathlib import Path

from . import common
from .common import Proc, Report
from .loadgen import closed_loop, open_loop, render

BENCH = "ingest"
DB = common.db_name("ingest")
PATH = "/webhooks/bigcommerce/demo/"


def signed_requests(count: int, port: int, *, start_order: int) -> list[bytes]:
    """``count`` distinct deliveries of ``store/order/created`` exactly as the simulator (and BigCommerce) sends them."""
    from simulators.stack import CLIENT_SECRET, STORE_HASH
    from simulators.webhooks import build_body, sign

    now = int(time.time())
    out = []
    for i in range(count):
        order_id = start_order + i
        body = build_body("store/order/created", "1001", STORE_HASH, {"type": "order", "id": order_id}, now)
        msg_id = f"msg_{uuid.uuid4().hex}"
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "bc-simulator-webhooks/1.0",
            "webhook-id": msg_id,
            "webhook-timestamp": str(now),
            "webhook-signature": sign(CLIENT_SECRET, msg_id, now, body),
            "X-Webhook-Secret": "demo-header-secret-0123456789",
            "X-Forwarded-Proto": "https",
        }
        out.append(render("127.0.0.1", port, PATH, body, headers))
    return out


def redis_pid() -> int | None:
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if Path(f"/proc/{entry.name}/comm").read_text().strip() == "redis-server":
                    return int(entry.name)
            except OSError:
                continue
    return None


class Server:
    count = 0

    def __init__(self, name: str, settings: str, env: dict[str, str], workers: int, work: Path) -> None:
        self.name = name
        self.port = _free_port()
        self.env = {**env, "DJANGO_SETTINGS_MODULE": settings}
        argv = [
            sys.executable,
            "manage.py",
            "serve",
            "--no-cluster",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--web-workers",
            str(workers),
        ]
        self.proc = Proc(argv, env=self.env, log=work / f"{name}.log")
        common.wait_http(f"http://127.0.0.1:{self.port}/healthz", timeout=90, proc=self.proc)
        Server.count += 1
        self.next_order = Server.count * 10_000_000

    def requests(self, count: int) -> list[bytes]:
        reqs = signed_requests(count, self.port, start_order=self.next_order)
        self.next_order += count
        return reqs


def _free_port() -> int:
    from simulators.stack import free_port

    return free_port()


def measure_closed(server: Server, *, conns: int, seconds: float, budget: int) -> dict:
    reqs = server.requests(budget)
    rpid = redis_pid()
    cpu0 = common.tree_cpu_seconds(server.proc.pid)
    pg0 = common.postgres_cpu_seconds()
    rd0 = common.cpu_seconds(rpid) if rpid else 0.0
    watch = common.CpuWatch()
    stats = closed_loop("127.0.0.1", server.port, iter(reqs), conns=conns, seconds=seconds)
    n = max(1, stats.ok + stats.errors)
    out = stats.summary()
    out.update(
        {
            "server_cpu_ms_per_request": round(
                (common.tree_cpu_seconds(server.proc.pid) - cpu0) * 1000 / n, 3
            ),
            "postgres_cpu_ms_per_request": round((common.postgres_cpu_seconds() - pg0) * 1000 / n, 3),
            "redis_cpu_ms_per_request": round(
                ((common.cpu_seconds(rpid) if rpid else 0) - rd0) * 1000 / n, 3
            ),
            "cpu": watch.stop(),
        }
    )
    return out


def run(args) -> Report:
    report = Report(BENCH)
    quick = args.quick
    rounds = args.rounds or (1 if quick else 3)
    seconds = args.seconds or (4.0 if quick else 6.0)
    open_seconds = args.open_seconds or (5.0 if quick else 10.0)
    work = common.RESULTS_DIR / "tmp" / BENCH
    work.mkdir(parents=True, exist_ok=True)

    common.check_services()
    db_url = common.recreate_database(DB)
    common.flush_redis()
    extra = {"Q_CLUSTER_NAME": "bench-ingest"}
    if args.log_level:
        extra["LOG_LEVEL"] = args.log_level
    env = common.connector_env(db_url, **extra)
    common.manage(env, "migrate", "--noinput")
    common.configure_tenant(env, "http://127.0.0.1:9/", "http://127.0.0.1:9/", work)

    servers: list[Server] = []
    try:
        connector = Server("connector", "connector.settings", env, args.web_workers, work)
        servers.append(connector)
        baseline = Server("baseline", "bench.settings_baseline", env, args.web_workers, work)
        servers.append(baseline)

        for server in (baseline, connector):  # warm-up: imports, DB connections, caches
            closed_loop("127.0.0.1", server.port, iter(server.requests(400)), conns=args.conns, seconds=2)
        common.wait_until_quiet()

        closed: dict[str, list[dict]] = {"baseline": [], "connector": []}
        budget = int(seconds * 3000)
        for r in range(rounds):
            common.wait_until_quiet()
            order = (baseline, connector) if r % 2 == 0 else (connector, baseline)
            for server in order:
                result = measure_closed(server, conns=args.conns, seconds=seconds, budget=budget)
                result["round"] = r + 1
                closed[server.name].append(result)
                print(
                    f"  round {r + 1}/{rounds} {server.name:<9} {result['rps']:8.1f} req/s  "
                    f"p50 {result['p50_ms']} ms  p99 {result['p99_ms']} ms  errors {result['errors']}  "
                    f"server CPU {result['server_cpu_ms_per_request']} ms/req"
                    + common.foreign_note(result["cpu"]),
                    flush=True,
                )

        opened: dict[str, dict] = {}
        for server in (baseline, connector):
            n = int(args.rate * open_seconds)
            for attempt in range(
                3
            ):  # a run disturbed by other work on the machine is repeated (twice at most)
                common.wait_until_quiet()
                watch = common.CpuWatch()
                stats = open_loop("127.0.0.1", server.port, server.requests(n), rate=args.rate)
                opened[server.name] = stats.summary() | {"cpu": watch.stop(), "attempt": attempt + 1}
                if common.clean(opened[server.name]["cpu"]):
                    break
            s = opened[server.name]
            print(
                f"  open loop {args.rate:g}/s {server.name:<9} p50 {s['p50_ms']} ms  p99 {s['p99_ms']} ms  "
                f"max {s['max_ms']} ms  errors {s['errors']}  late starts {s['late_starts']}"
                + common.foreign_note(s["cpu"]),
                flush=True,
            )

        # every accepted connector delivery is stored and waiting, a drain is queued for them, and a drain takes
        # them all (nothing was dropped)
        accepted = sum(x["ok"] for x in closed["connector"]) + opened["connector"]["ok"]
        queued, events, waiting = _queue_and_events(env)

    finally:
        for server in servers:
            server.proc.stop()

    # rounds where other work on the machine took more than a quarter of a core are left out (unless all were)
    pairs = [
        (b, c)
        for b, c in zip(closed["baseline"], closed["connector"], strict=True)
        if common.clean(b["cpu"]) and common.clean(c["cpu"])
    ]
    kept = pairs or list(zip(closed["baseline"], closed["connector"], strict=True))
    quality = f"{len(pairs)}/{rounds} rounds undisturbed" + (
        "" if pairs else ": ALL DISTURBED, figures skewed"
    )

    def median(values: list[float]) -> float:
        return common.percentile(values, 50) or 0.0

    def mean(name: str, key: str) -> float:
        values = [pair[0 if name == "baseline" else 1][key] for pair in kept]
        return median(values)

    base_rps, conn_rps = mean("baseline", "rps"), mean("connector", "rps")
    ratio = median([c["rps"] / b["rps"] for b, c in kept if b["rps"]])
    how = f"closed loop, {args.conns} connections, median of {len(kept)} rounds"
    report.add("baseline max throughput", base_rps, "req/s", note=how)
    report.add("connector max throughput", conn_rps, "req/s", note=how)
    report.add(
        "connector / baseline",
        ratio,
        "",
        target=">= 0.85",
        passed=common.at_least(ratio, 0.85),
        note=f"median of per-round ratios; {quality}",
    )
    c_open = opened["connector"]
    report.add(f"connector p50 at {args.rate:g} req/s", c_open["p50_ms"], "ms", note="open loop")
    p99 = c_open["p99_ms"]
    errors_ok = c_open["errors"] == 0
    report.add(
        f"connector p99 at {args.rate:g} req/s",
        p99,
        "ms",
        target="< 50 ms",
        passed=(common.below(p99, 50.0) and errors_ok) if p99 is not None else None,
        note="open loop" + ("" if errors_ok else f", {c_open['errors']} errors"),
    )
    report.add(f"baseline p99 at {args.rate:g} req/s", opened["baseline"]["p99_ms"], "ms", note="open loop")
    report.add(
        "connector server CPU per delivery",
        mean("connector", "server_cpu_ms_per_request"),
        "ms",
        note=f"baseline {mean('baseline', 'server_cpu_ms_per_request'):.2f} ms",
    )
    cpu_ratio = median(
        [
            c["server_cpu_ms_per_request"] / b["server_cpu_ms_per_request"]
            for b, c in kept
            if b["server_cpu_ms_per_request"]
        ]
    )
    report.add(
        "server CPU per delivery, connector / baseline",
        cpu_ratio,
        "",
        target="<= 1.2",
        passed=common.below(cpu_ratio, 1.2 + 1e-9),
        note=f"median of per-round ratios; {quality}",
    )
    drained = _drain(env)
    report.add(
        "events stored, waiting and drained",
        events,
        "",
        passed=(events == waiting == drained and events >= accepted and queued >= 1)
        if events is not None
        else None,
        target="= accepted deliveries",
        note=f"{accepted} accepted during measurements, {waiting} waiting, {queued} drain tasks queued "
        f"(doorbells rung), {drained} claimed by a drain afterwards",
    )
    report.details = {
        "web_workers": args.web_workers,
        "connections": args.conns,
        "rounds": rounds,
        "rounds_undisturbed": len(pairs),
        "seconds_per_round": seconds,
        "open_loop_rate": args.rate,
        "open_loop_seconds": open_seconds,
        "closed_loop": closed,
        "open_loop": opened,
        "log_level": args.log_level or "INFO (production default)",
        "accepted_connector_deliveries_measured": accepted,
        "events_in_database": events,
        "events_waiting": waiting,
        "drain_tasks_in_redis": queued,
        "events_claimed_by_drain": drained,
    }
    if not args.keep_db:
        common.drop_database(DB)
        common.flush_redis()
    return report


def _queue_and_events(env: dict[str, str]) -> tuple[int, int | None, int | None]:
    """Drain tasks queued in Redis, events stored, events stored and waiting (``received``)."""
    import psycopg
    import redis

    queued = redis.Redis.from_url(env["REDIS_URL"]).llen("django_q:bench-ingest:q")
    with psycopg.connect(env["DATABASE_URL"]) as conn:
        row = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE status = 'received') FROM connector_webhookevent"
        ).fetchone()
    return int(queued), (int(row[0]) if row else None), (int(row[1]) if row else None)


# A drain as a worker runs it, each event's work replaced by marking it processed: proves the waiting events are
# all picked up (claims, order, bounds) without a BigCommerce to read the orders from.
DRAIN = """
from connector import pipeline
from connector.models import WebhookEvent
claimed = []
def mark(event_id, now):
    claimed.append(event_id)
    WebhookEvent.objects.filter(pk=event_id).update(status="processed")
pipeline._process_claimed = mark
pipeline.drain_events(max_events=10**9, max_seconds=600)
print(len(claimed))
"""


def _drain(env: dict[str, str]) -> int:
    return int(common.manage(env, "shell", "-c", DRAIN, timeout=900).strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = common.cli(__doc__.split("\n")[0], BENCH)
    parser.add_argument("--web-workers", type=int, default=3, help="gunicorn workers (serve's default: 3)")
    parser.add_argument("--conns", type=int, default=8, help="closed-loop connections")
    parser.add_argument("--rounds", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=0.0, help="closed-loop seconds per round")
    parser.add_argument("--rate", type=float, default=200.0, help="open-loop requests per second")
    parser.add_argument("--open-seconds", type=float, default=0.0)
    parser.add_argument(
        "--log-level", default="", help="LOG_LEVEL for both servers (default: production's INFO)"
    )
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args(argv)
    started = time.monotonic()
    report = run(args)
    report.seconds = time.monotonic() - started
    common.print_figures(report.figures, title="Webhook ingest")
    common.write_report(report, args.json)
    if args.json is None:
        print(json.dumps(report.details, indent=1, default=str)[:4000])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
