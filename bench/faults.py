"""Fault suite: the running connector against the simulators under faults; counts what was lost or doubled.

Every round runs the real system (``simulators.stack``: gunicorn, a django-q2 cluster run as its own process so it
can be killed, the Redis broker, PostgreSQL, both simulators over HTTP) and checks the outcome from the database and
from the entries the simulated X3 holds:

* R1 orders x 3 deliveries (a re-delivery and a second event; a third of the orders with all three at once) →
  postings, X3 entries, duplicates, totals to the cent.
* R2 an X3 outage (503, then refused connections, then timeouts; probe settings compressed) → all posted after
  recovery, none needs attention, probes bounded.
* R3 X3 commits and drops the response, lookups answer 429 until the postings give up, an accountant presses
  "Retry now" (``connector.operations.retry_now`` in a ``manage.py shell``) → exactly one entry per order.
* R4 SIGKILL of the whole worker cluster mid-run, restart → nothing lost, no duplicate.
* R5 concurrent OAuth refreshes (cloud-gateway tenant, rotating refresh tokens, reuse revokes) → no lost token.
* R6 a 429 storm from BigCommerce → all posted, calls bounded.
* R7 fuzzed webhook requests (signed and unsigned) → count by status, 0 × 5xx, nothing stored unauthenticated.
* R9 closed period / unknown account → parked with X3's message, then posted by "Retry now" after the fix.

``tests/e2e/test_faults_slice.py`` runs small R3 and R7 rounds with these same functions.
"""

from __future__ import annotations

import base64
import json
import math
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import requests

from . import common
from .common import Report

BENCH = "faults"
DB = common.db_name("faults")

# The connector's settings for the suite (environment variables, read by connector/settings.py): short retry
# delays so faults resolve in seconds, and the circuit breaker's probe interval compressed from 30 s / 5 min.
FAULT_ENV = {
    "RETRY_BASE_SECONDS": "1",
    "RETRY_CAP_SECONDS": "2",
    "UNKNOWN_OUTCOME_DELAY_SECONDS": "1",
    "STALE_AFTER_SECONDS": "15",
    "POSTING_MAX_ATTEMPTS": "3",
    "CIRCUIT_FAILURE_THRESHOLD": "3",
    "CIRCUIT_PROBE_SECONDS": "1",
    "CIRCUIT_PROBE_CAP_SECONDS": "4",
}
RECEIVABLES = {
    "411000",
    "411100",
    "467000",
}  # the three channels' receivable accounts (simulators.stack.CHANNELS)


@dataclass(frozen=True)
class Sizes:
    r1_orders: int
    r2_orders: int
    r2_phase_seconds: int  # each of the three outage phases
    r3_orders: int
    r4_orders: int
    r5_orders: int
    r5_expiries: int
    r6_orders: int
    r7_requests: int
    r9_orders: int


QUICK = Sizes(60, 12, 8, 4, 30, 6, 2, 20, 2_000, 4)
FULL = Sizes(1_000, 60, 40, 12, 240, 16, 3, 80, 10_000, 10)


# ------------------------------------------------------------------------------------------------------- helpers

# The bench process runs Django on the stack's own database and Redis broker, so it rings the sweep and presses
# "Retry now" in-process (a Django shell against the bench database, without a process start per call on a busy
# machine). The tests' process has inline tasks (settings_test): there they run as ``manage.py`` commands.
IN_PROCESS = False


def sweep(stack) -> None:
    if IN_PROCESS:
        from connector.pipeline import sweep as run_sweep

        run_sweep()
    else:
        stack.manage("sweep")


def settle(
    stack, predicate: Callable[[], Any], *, timeout: float, what: str, sweep_every: float = 5.0
) -> float:
    """Wait until ``predicate()`` holds, running the sweep now and then (the cluster's schedule runs it every few
    minutes); returns the seconds waited. Raises TimeoutError."""
    started = time.monotonic()
    last_sweep = started
    while not predicate():
        now = time.monotonic()
        if now - started > timeout:
            raise TimeoutError(f"{what} did not settle in {timeout:.0f} s: {_state()}")
        if now - last_sweep > sweep_every:
            sweep(stack)
            last_sweep = time.monotonic()
        time.sleep(0.3)
    return time.monotonic() - started


def _state() -> str:
    """Postings by status, the latest errors and the circuit, for a round that timed out."""
    from accounting.models import Posting, X3Circuit

    open_ = Posting.objects.exclude(status__in=(Posting.Status.POSTED, Posting.Status.SKIPPED))
    counts = dict(Counter(open_.values_list("status", flat=True)))
    errors = list(open_.order_by("-updated_at").values_list("status", "next_attempt_at", "last_error")[:3])
    circuit = list(X3Circuit.objects.values("failures", "opened_at", "next_probe_at", "probes", "last_error"))
    return f"unfinished {counts}; latest {errors}; circuit {circuit}"


def quiet() -> bool:
    """No webhook event waiting or in progress, and the tenant's X3 circuit closed: the next round starts clean."""
    from accounting.models import X3Circuit
    from connector.models import WebhookEvent

    busy = WebhookEvent.objects.filter(
        status__in=(WebhookEvent.Status.RECEIVED, WebhookEvent.Status.PROCESSING)
    ).exists()
    return not busy and not X3Circuit.objects.filter(opened_at__isnull=False).exists()


def store_id(stack) -> str:
    from simulators.stack import STORE_HASH

    return str(stack.bc.store(STORE_HASH)["store_id"])


def webhook_url(stack, *, slash: bool = True, tenant: str = "") -> str:
    from simulators.stack import TENANT

    return f"{stack.connector_url}/webhooks/bigcommerce/{tenant or TENANT}" + ("/" if slash else "")


def event_body(stack_store_id: str, scope: str, order_id: Any, *, created_at: int | None = None) -> bytes:
    from simulators.stack import STORE_HASH
    from simulators.webhooks import build_body

    return build_body(
        scope, stack_store_id, STORE_HASH, {"type": "order", "id": order_id}, created_at or int(time.time())
    )


def signed_headers(
    msg_id: str, body: bytes, *, secret: str = "", timestamp: int | None = None
) -> dict[str, str]:
    """Standard Webhooks headers as BigCommerce sends them, signed with the store's client secret."""
    from simulators.stack import CLIENT_SECRET
    from simulators.webhooks import sign

    ts = timestamp or int(time.time())
    return {
        "Content-Type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(secret or CLIENT_SECRET, msg_id, ts, body),
    }


@dataclass
class Request:
    """One HTTP request to send; ``sign`` = sign ``body`` when sent (timestamps must be fresh)."""

    url: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    msg_id: str = ""
    sign: bool = False
    method: str = "POST"
    label: str = ""


def send_all(items: list[Request], *, concurrency: int = 8, timeout: float = 30) -> list[int | None]:
    """Send the requests in order over ``concurrency`` threads; returns each one's status (None: no answer)."""
    local = threading.local()

    def one(item: Request) -> int | None:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        headers = dict(item.headers)
        if item.sign:
            headers.update(signed_headers(item.msg_id, item.body))
        try:
            response = session.request(
                item.method, item.url, data=item.body, headers=headers, timeout=timeout, allow_redirects=False
            )
            return response.status_code
        except (requests.ConnectionError, requests.Timeout):
            return None  # the server closed the connection or did not answer

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return list(pool.map(one, items))


def entry_reference(entry: dict[str, Any]) -> str:
    return str(entry.get("REFINT") or (entry.get("_sim") or {}).get("reference") or "")


def entry_lines(entry: dict[str, Any]) -> list[tuple[str, Decimal, Decimal]]:
    sim_lines = (entry.get("_sim") or {}).get("lines")
    if sim_lines:
        return [
            (str(ln["account"]), Decimal(str(ln.get("debit") or 0)), Decimal(str(ln.get("credit") or 0)))
            for ln in sim_lines
        ]
    return [
        (str(ln["ACC"]), Decimal(str(ln.get("DEB") or 0)), Decimal(str(ln.get("CDT") or 0)))
        for ln in entry.get("GACCENTRYD", [])
    ]


def x3_references(stack) -> Counter:
    return Counter(entry_reference(e) for e in stack.x3.entries())


def order_reference(order_id: int) -> str:
    from simulators.stack import STORE_HASH

    return f"BC-{STORE_HASH}-{order_id}"


def entries_per_order(stack, order_ids: Iterable[int]) -> dict[str, int]:
    """How many X3 entries each order's own reference has (0, 1, or a duplicate), summarised."""
    refs = x3_references(stack)
    counts = Counter(refs.get(order_reference(oid), 0) for oid in order_ids)
    return {
        "none": counts.get(0, 0),
        "one": counts.get(1, 0),
        "more": sum(v for k, v in counts.items() if k > 1),
    }


def duplicate_references(stack) -> list[str]:
    return sorted(ref for ref, n in x3_references(stack).items() if n > 1)


def statuses(order_ids: Iterable[int]) -> Counter:
    from accounting.models import Posting

    return Counter(
        Posting.objects.filter(order_id__in=list(order_ids), kind=Posting.Kind.ORDER).values_list(
            "status", flat=True
        )
    )


def all_posted(order_ids: list[int]) -> Callable[[], bool]:
    from accounting.models import Posting

    return lambda: statuses(order_ids).get(Posting.Status.POSTED, 0) >= len(order_ids)


def generate(
    stack, count: int, *, seed: int, days_ago: int = 5, fire: bool = False, **options: Any
) -> list[int]:
    """Paid orders (awaiting fulfillment, no refunds or edits) of the simulator's default mix, created recently."""
    from simulators.stack import STORE_HASH

    end = datetime.now(UTC) - timedelta(days=days_ago)
    ids = stack.bc.generate_orders(
        STORE_HASH,
        count,
        seed=seed,
        start=(end - timedelta(days=2)).isoformat(),
        end=end.isoformat(),
        refund_rate=0,
        full_refund_rate=0,
        edit_rate=0,
        status_weights={"11": 1},
        fire_webhooks=fire,
        **options,
    )["order_ids"]
    return [int(i) for i in ids]


def retry_now(stack, posting_ids: list[int]) -> int:
    """An accountant's "Retry now" on these postings: ``connector.operations.retry_now`` (what the admin action
    calls) against the connector's database and broker, in a Django shell (``manage.py shell``, or this process)."""
    if IN_PROCESS:
        from accounting.models import Posting
        from connector.operations import retry_now as press

        return press(Posting.objects.filter(pk__in=posting_ids))
    code = (
        "from accounting.models import Posting; from connector.operations import retry_now; "
        f"print(retry_now(Posting.objects.filter(pk__in={sorted(posting_ids)!r})))"
    )
    out = stack.manage("shell", "-c", code).strip().splitlines()
    return int(out[-1]) if out and out[-1].isdigit() else 0


class Cluster:
    """``manage.py qcluster`` in its own process group (the workers): started, stopped or SIGKILLed whole."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log, self.proc, self.starts = env, log, None, 0

    def start(self) -> None:
        self.starts += 1
        self.proc = common.Proc(
            [sys.executable, "manage.py", "qcluster"],
            env=self.env,
            log=self.log.with_name(f"{self.log.stem}-{self.starts}{self.log.suffix}"),
        )

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
            self.proc = None

    def kill(self) -> int:
        """SIGKILL the sentinel and every worker at once; returns how many processes were killed."""
        assert self.proc is not None
        pids = common.descendants(self.proc.pid)
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.popen.wait()
        self.proc.stop()  # closes the log; the group is already gone
        self.proc = None
        return len(pids)


# ------------------------------------------------------------------------------------------------------- rounds


def round_r1(stack, orders: int) -> dict[str, Any]:
    """``orders`` paid orders, each delivered three times: ``created``, the same ``created`` again (a BigCommerce
    re-delivery, same webhook-id) and ``statusUpdated``. A third of the orders get their three deliveries at once
    (adjacent on 8 connections); the others are spread over three shuffled waves."""
    from accounting.models import Posting
    from simulators.stack import STORE_HASH

    ids = generate(stack, orders, seed=101, days_ago=3)
    sid = store_id(stack)
    url = webhook_url(stack)
    rng = random.Random(1)
    now = int(time.time())

    def deliveries(oid: int) -> list[Request]:
        created = event_body(sid, "store/order/created", oid, created_at=now)
        status = event_body(sid, "store/order/statusUpdated", oid, created_at=now + 1)
        return [
            Request(url, created, msg_id=f"r1-c-{oid}", sign=True),
            Request(url, created, msg_id=f"r1-c-{oid}", sign=True),  # re-delivery: same id, same body
            Request(url, status, msg_id=f"r1-s-{oid}", sign=True),
        ]

    together = set(rng.sample(ids, len(ids) // 3))
    waves: list[list[Request]] = [[], [], []]
    burst: list[list[Request]] = []
    for oid in ids:
        triple = deliveries(oid)
        if oid in together:
            burst.append(triple)
        else:
            for wave, item in zip(waves, triple, strict=True):
                wave.append(item)
    plan: list[Request] = []
    for wave in waves:
        rng.shuffle(wave)
    # interleave: the bursts (three deliveries of one order in a row) spread through the waves
    stream = waves[0] + waves[1] + waves[2]
    step = max(1, len(stream) // max(1, len(burst)))
    for i in range(max(len(stream), len(burst) * step)):
        if i % step == 0 and burst:
            plan.extend(burst.pop())
        if i < len(stream):
            plan.append(stream[i])
    for triple in burst:
        plan.extend(triple)

    t0 = time.monotonic()
    answers = send_all(plan, concurrency=8)
    send_s = time.monotonic() - t0
    settle_s = settle(stack, all_posted(ids), timeout=300 + orders * 0.6, what=f"R1 ({orders} orders)")
    sweep(stack)
    time.sleep(2)

    # totals: X3's receivable lines against BigCommerce's order totals
    session, api_base = stack.bc.api_session(STORE_HASH)
    bc_totals: dict[int, Decimal] = {}
    page = 1
    while True:
        response = session.get(
            f"{api_base}/v2/orders",
            params={"min_id": min(ids), "max_id": max(ids), "limit": 250, "page": page},
            timeout=30,
        )
        if response.status_code == 204 or not response.json():
            break
        wanted = set(ids)
        for o in response.json():
            if int(o["id"]) in wanted:
                bc_totals[int(o["id"])] = Decimal(str(o["total_inc_tax"]))
        page += 1
    x3_totals: dict[int, Decimal] = {}
    by_ref = {order_reference(oid): oid for oid in ids}
    entry_count = 0
    for entry in stack.x3.entries():
        oid = by_ref.get(entry_reference(entry))
        if oid is None:
            continue
        entry_count += 1
        x3_totals[oid] = x3_totals.get(oid, Decimal(0)) + sum(
            (d - c for acc, d, c in entry_lines(entry) if acc in RECEIVABLES), Decimal(0)
        )
    mismatched = sorted(oid for oid in ids if x3_totals.get(oid) != bc_totals.get(oid))
    return {
        "orders": len(ids),
        "deliveries": len(plan),
        "delivery_answers": dict(Counter(str(a) for a in answers)),
        "concurrent_orders": len(together),
        "send_seconds": round(send_s, 1),
        "settle_seconds": round(settle_s, 1),
        "postings": sum(statuses(ids).values()),
        "posted": statuses(ids).get(Posting.Status.POSTED, 0),
        "x3_entries": entry_count,
        "entries_per_order": entries_per_order(stack, ids),
        "bc_total": str(sum(bc_totals.values(), Decimal(0))),
        "x3_total": str(sum(x3_totals.values(), Decimal(0))),
        "orders_total_mismatch": mismatched[:20],
        "orders_total_mismatch_count": len(mismatched),
    }


def _sample_probes(stop: threading.Event, seen: list[int]) -> None:
    from django.db import connection

    from accounting.models import X3Circuit

    try:
        while not stop.is_set():
            value = X3Circuit.objects.values_list("probes", flat=True).first()
            if value is not None:
                seen.append(int(value))
            stop.wait(0.5)
    finally:
        connection.close()


def round_r2(stack, orders: int, phase_seconds: int) -> dict[str, Any]:
    """X3 answers 503 for a stretch, then refuses connections, then lets every call time out; orders keep arriving
    meanwhile. After the outage: every posting posted, none parked, and the X3 calls during it bounded."""
    from django_q.brokers import get_broker

    from accounting.models import Posting, PostingAttempt, X3Circuit

    sid, url = store_id(stack), webhook_url(stack)
    queued_at_start = get_broker().queue_size()
    ids = generate(stack, orders, seed=202, days_ago=4)
    timeout_s = 5 + 1  # the tenant's X3 timeout is 5 s (simulators.stack.tenant_document)
    outage_started = datetime.now(UTC)
    t0 = time.monotonic()
    seen: list[int] = []
    stop = threading.Event()
    sampler = threading.Thread(target=_sample_probes, args=(stop, seen), daemon=True)
    stack.x3.set_faults(clear=True, error_rate=1.0, error_status=503)
    sampler.start()
    thirds = [ids[i::3] for i in range(3)]
    phases: list[tuple[str, float]] = []
    try:
        for phase, batch in zip(("503", "refused", "timeout"), thirds, strict=True):
            p0 = time.monotonic()
            if phase == "refused":
                stack.x3.set_faults(clear=True, refuse_for_ms=phase_seconds * 1000)
            elif phase == "timeout":
                stack.x3.set_faults(clear=True, timeout_next=1_000_000, timeout_ms=timeout_s * 1000)
            send_all(
                [
                    Request(url, event_body(sid, "store/order/created", oid), msg_id=f"r2-{oid}", sign=True)
                    for oid in batch
                ]
            )
            while time.monotonic() - p0 < phase_seconds:
                if time.monotonic() - p0 < phase_seconds - 3:
                    sweep(stack)
                time.sleep(2)
            if phase == "refused":  # the refusal ends by itself; the simulator is reachable again
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    try:
                        stack.x3.health()
                        break
                    except Exception:  # noqa: BLE001 - still refusing
                        time.sleep(0.2)
            phases.append((phase, round(time.monotonic() - p0, 1)))
    finally:
        stack.x3.clear_faults()
    outage_s = time.monotonic() - t0
    outage_ended = datetime.now(UTC)
    at_recovery = statuses(ids)
    queued_at_recovery = get_broker().queue_size()
    parked_during = at_recovery.get(Posting.Status.NEEDS_ATTENTION, 0)
    circuit = X3Circuit.objects.first()
    was_open = bool(circuit and (circuit.opened_at or seen))
    drain_s = settle(stack, all_posted(ids), timeout=120 + orders, what="R2 after recovery")
    stop.set()
    sampler.join(5)
    calls = PostingAttempt.objects.filter(
        posting__order_id__in=ids, created_at__gte=outage_started, created_at__lte=outage_ended
    ).count()
    probes = max(seen, default=0)
    base = int(FAULT_ENV["CIRCUIT_PROBE_SECONDS"])
    cap = int(FAULT_ENV["CIRCUIT_PROBE_CAP_SECONDS"])
    # The breaker allows one probe per interval (base, doubling up to cap): a schedule's worth plus the doublings.
    probe_bound = math.ceil(outage_s / cap) + math.ceil(math.log2(cap / base)) + 2
    threshold = int(FAULT_ENV["CIRCUIT_FAILURE_THRESHOLD"])
    # Before the circuit opens: the threshold plus what the two workers had in flight; then a find and a create
    # per probe at most.
    call_bound = threshold + 2 * 2 + 2 * probe_bound
    st = statuses(ids)
    return {
        "orders": len(ids),
        "phases": phases,
        "outage_seconds": round(outage_s, 1),
        "circuit_opened": was_open,
        "probes": probes,
        "probe_bound": probe_bound,
        "x3_calls_during_outage": calls,
        "x3_call_bound": call_bound,
        "needs_attention_during_outage": parked_during,
        "statuses_at_recovery": dict(at_recovery),
        "tasks_queued_at_start": queued_at_start,
        "tasks_queued_at_recovery": queued_at_recovery,
        "drain_seconds": round(drain_s, 1),
        "posted": st.get(Posting.Status.POSTED, 0),
        "needs_attention": st.get(Posting.Status.NEEDS_ATTENTION, 0),
        "entries_per_order": entries_per_order(stack, ids),
    }


def round_r3(stack, orders: int, *, seed: int = 303) -> dict[str, Any]:
    """The issue-8 duplicate, replayed: X3 commits each order's entry and drops the connection; its lookups then
    answer 429 (X3 answered, so each one spends an attempt) until the postings give up at ``needs_attention``; the
    lookups recover and an accountant presses "Retry now" on them twice. Exactly one X3 entry per order.

    Orders go in batches below the circuit breaker's threshold (a third "X3 did not answer" in a row would open
    it, and the held postings would then only move with the probes), and nothing rings the sweep until the lookups
    fail, so no lookup can find an entry before they do."""
    from accounting.models import Posting

    sid, url = store_id(stack), webhook_url(stack)
    ids = generate(stack, orders, seed=seed, days_ago=6)
    batch = max(1, int(FAULT_ENV["CIRCUIT_FAILURE_THRESHOLD"]) - 1)
    found_before = gave_up_total = flagged = retried = retried_again = 0
    timings: list[list[float]] = []
    for start in range(0, len(ids), batch):
        marks = [time.monotonic()]
        part = ids[start : start + batch]
        refs = [order_reference(oid) for oid in part]
        stack.x3.set_faults(clear=True, drop_after_commit_next=len(part), methods=["POST"])
        send_all(
            [
                Request(url, event_body(sid, "store/order/created", oid), msg_id=f"r3-{oid}", sign=True)
                for oid in part
            ]
        )

        def committed(refs=refs) -> bool:
            have = x3_references(stack)
            return all(have.get(r, 0) >= 1 for r in refs)

        settle(stack, committed, timeout=60, what="R3 creates", sweep_every=1e9)
        marks.append(time.monotonic())
        stack.x3.set_faults(clear=True, fail_next=1_000_000, fail_status=429, methods=["GET"])
        found_before += statuses(part).get(Posting.Status.POSTED, 0)
        try:
            settle(
                stack,
                lambda part=part: (
                    statuses(part).get(Posting.Status.NEEDS_ATTENTION, 0)
                    + statuses(part).get(Posting.Status.POSTED, 0)
                    >= len(part)
                ),
                timeout=90,
                what="R3 postings giving up",
                sweep_every=2,
            )
        finally:
            stack.x3.clear_faults()
        marks.append(time.monotonic())
        gave_up = list(
            Posting.objects.filter(
                order_id__in=part, kind=Posting.Kind.ORDER, status=Posting.Status.NEEDS_ATTENTION
            ).values_list("pk", flat=True)
        )
        gave_up_total += len(gave_up)
        flagged += Posting.objects.filter(pk__in=gave_up, may_exist_in_x3=True).count()
        if gave_up:
            retried += retry_now(stack, gave_up)
            retried_again += retry_now(stack, gave_up)  # an impatient second press
        marks.append(time.monotonic())
        settle(stack, all_posted(part), timeout=60, what="R3 after Retry now", sweep_every=2)
        marks.append(time.monotonic())
        timings.append([round(b - a, 1) for a, b in zip(marks, marks[1:], strict=False)])
    sweep(stack)
    time.sleep(2)
    st = statuses(ids)
    return {
        "orders": len(ids),
        "batch": batch,
        "batch_seconds": timings,  # creates, giving up, two Retry now presses, posted
        "found_before_lookups_failed": found_before,
        "gave_up": gave_up_total,
        "gave_up_flagged_may_exist": flagged,
        "retry_now": retried,
        "retry_now_again": retried_again,
        "posted": st.get(Posting.Status.POSTED, 0),
        "entries_per_order": entries_per_order(stack, ids),
    }


def round_r4(stack, cluster: Cluster, orders: int) -> dict[str, Any]:
    """Orders arrive through the simulator's own webhooks; when a third are posted every worker process is
    SIGKILLed (sentinel and workers at once), and restarted two seconds later."""
    from accounting.models import Posting
    from connector.models import WebhookEvent

    ids = generate(stack, orders, seed=404, days_ago=7, fire=True)
    t0 = time.monotonic()
    settle(
        stack,
        lambda: statuses(ids).get(Posting.Status.POSTED, 0) >= len(ids) // 3,
        timeout=300,
        what="R4 first third",
        sweep_every=30,
    )
    before = statuses(ids)
    in_flight_postings = before.get(Posting.Status.POSTING, 0)
    in_flight_events = WebhookEvent.objects.filter(status=WebhookEvent.Status.PROCESSING).count()
    killed = cluster.kill()
    killed_at = time.monotonic()
    time.sleep(2)
    cluster.start()
    stack.bc.wait_for_webhooks(timeout=120)
    recover_s = settle(stack, all_posted(ids), timeout=300 + orders, what="R4 after restart", sweep_every=5)
    sweep(stack)
    time.sleep(2)
    st = statuses(ids)
    return {
        "orders": len(ids),
        "posted_at_kill": before.get(Posting.Status.POSTED, 0),
        "postings_in_flight_at_kill": in_flight_postings,
        "events_in_flight_at_kill": in_flight_events,
        "processes_killed": killed,
        "seconds_to_all_posted_after_kill": round(time.monotonic() - killed_at, 1),
        "recover_seconds": round(recover_s, 1),
        "total_seconds": round(time.monotonic() - t0, 1),
        "posted": st.get(Posting.Status.POSTED, 0),
        "not_posted": {k: v for k, v in st.items() if k != Posting.Status.POSTED},
        "entries_per_order": entries_per_order(stack, ids),
    }


def round_r6(
    stack,
    orders: int,
    *,
    quota: int = 4,
    window_ms: int = 2000,
    storm_seconds: float = 10,
    storm_rate: float = 0.8,
) -> dict[str, Any]:
    """BigCommerce's quota cut to ``quota`` requests per ``window_ms`` (429 with the rate-limit headers once spent)
    while every order's webhook arrives at once, and for the first ``storm_seconds`` a share ``storm_rate`` of all
    API requests answered 429 without those headers (BigCommerce's "high load"). All must post; calls bounded."""
    from accounting.models import Posting
    from connector.models import WebhookEvent
    from simulators.stack import STORE_HASH

    before = common.sim_api_calls(stack.bc.stats())
    s0 = stack.bc.stats()["stores"][STORE_HASH]
    f0 = stack.bc.faults().get("counters", {}).get("random_errors", 0)
    sid, url = store_id(stack), webhook_url(stack)
    ids = generate(stack, orders, seed=606, days_ago=8)
    stack.bc.set_rate_limit(STORE_HASH, quota=quota, window_ms=window_ms)
    stack.bc.set_faults(clear=True, error_rate=storm_rate, error_status=429)
    storm_ends = time.monotonic() + storm_seconds
    try:  # every order's webhook at once: the workers want far more than the quota
        send_all(
            [
                Request(url, event_body(sid, "store/order/created", oid), msg_id=f"r6-{oid}", sign=True)
                for oid in ids
            ]
        )
        time.sleep(max(0.0, storm_ends - time.monotonic()))
        stack.bc.clear_faults()
        settle_s = settle(stack, all_posted(ids), timeout=120 + orders * 2, what="R6 under the 429 storm")
    finally:
        stack.bc.clear_faults()
        stack.bc.set_rate_limit(STORE_HASH, quota=10_000_000, window_ms=1000)
    s1 = stack.bc.stats()["stores"][STORE_HASH]
    f1 = stack.bc.faults().get("counters", {}).get("random_errors", 0)
    calls = common.diff_counts(common.sim_api_calls(stack.bc.stats()), before)
    total = sum(calls.values())
    failed_events = WebhookEvent.objects.filter(order_id__in=ids, status=WebhookEvent.Status.FAILED).count()
    st = statuses(ids)
    return {
        "orders": len(ids),
        "quota": f"{quota} per {window_ms} ms",
        "storm": f"{storm_rate:.0%} of requests answered 429 for {storm_seconds:.0f} s",
        "settle_seconds": round(settle_s, 1),
        "bc_requests": total,
        "bc_429": s1["rate_limited"] - s0["rate_limited"],
        "bc_429_injected": f1 - f0,
        "bc_requests_per_order": round(total / len(ids), 2),
        "events_failed": failed_events,
        "posted": st.get(Posting.Status.POSTED, 0),
        "entries_per_order": entries_per_order(stack, ids),
        "calls": calls,
    }


def round_r9(stack, orders: int) -> dict[str, Any]:
    """Half the orders fall in a period X3 has closed, half use a shipping account missing from X3's chart. Each
    must stop at ``needs_attention`` with X3's own message; after the fix (period reopened, account added) "Retry
    now" posts them, once."""
    from accounting.models import Posting
    from simulators.sagex3 import DEFAULT_CHART
    from simulators.stack import EXTRA_ACCOUNTS, STORE_HASH

    chart = sorted(set(DEFAULT_CHART) | set(EXTRA_ACCOUNTS))
    closed_day = (datetime.now(UTC) - timedelta(days=120)).replace(day=15, hour=12)
    period = closed_day.strftime("%Y-%m")
    missing = "708520"  # channel 3's shipping account
    stack.x3.configure(closed_periods=[period], chart=[a for a in chart if a != missing])
    lines = [{"name": "Mug", "price": "12.50", "quantity": 2, "cost_price": "4.00"}]
    closed_ids, account_ids = [], []
    try:
        for i in range(orders):
            if i % 2 == 0:
                o = stack.bc.create_order(
                    STORE_HASH,
                    status_id=11,
                    channel_id=1,
                    lines=lines,
                    shipping_cost="5.00",
                    date_created=closed_day.isoformat(),
                    pickup=False,
                )
                closed_ids.append(int(o["order"]["id"]))
            else:
                o = stack.bc.create_order(
                    STORE_HASH, status_id=11, channel_id=3, lines=lines, shipping_cost="5.00", pickup=False
                )
                account_ids.append(int(o["order"]["id"]))
        ids = closed_ids + account_ids
        stack.bc.wait_for_webhooks(timeout=60)
        settle(
            stack,
            lambda: statuses(ids).get(Posting.Status.NEEDS_ATTENTION, 0) >= len(ids),
            timeout=120,
            what="R9 refusals",
        )
        parked = {
            p.order_id: p.last_error
            for p in Posting.objects.filter(order_id__in=ids, kind=Posting.Kind.ORDER)
        }
        closed_msg = sum(1 for oid in closed_ids if period in parked.get(oid, "") and "closed" in parked[oid])
        account_msg = sum(1 for oid in account_ids if missing in parked.get(oid, ""))
        entries_while_parked = (
            sum(entries_per_order(stack, ids).values()) - entries_per_order(stack, ids)["none"]
        )
    finally:
        stack.x3.configure(closed_periods=[], chart=chart)
    pks = list(
        Posting.objects.filter(
            order_id__in=ids, kind=Posting.Kind.ORDER, status=Posting.Status.NEEDS_ATTENTION
        ).values_list("pk", flat=True)
    )
    retried = retry_now(stack, pks)
    settle(stack, all_posted(ids), timeout=120, what="R9 after the fix")
    st = statuses(ids)
    return {
        "orders": len(ids),
        "closed_period": period,
        "missing_account": missing,
        "parked": len(parked),
        "parked_with_x3_message": closed_msg + account_msg,
        "example_messages": sorted({parked[closed_ids[0]], parked[account_ids[0]]}) if ids else [],
        "entries_while_parked": entries_while_parked,
        "retry_now": retried,
        "posted": st.get(Posting.Status.POSTED, 0),
        "entries_per_order": entries_per_order(stack, ids),
    }


# ---- R5: OAuth (cloud gateway) tenant


def connect_oauth(stack) -> int:
    """Log in to the admin, press "Connect to Sage X3", let the simulated Sage pairing page approve, and follow its
    redirect to the connector's callback. Returns the callback's status (302 on success)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import PBKDF2PasswordHasher

    from connector.models import Tenant
    from simulators.stack import TENANT

    password = "faults-admin-password-0123"  # noqa: S105 - a throwaway user in a throwaway database
    user = get_user_model().objects.create_superuser("faults-admin", "admin@example.com")
    hasher = PBKDF2PasswordHasher()  # a hash every settings module accepts (the tests hash with MD5)
    user.password = hasher.encode(password, hasher.salt(), iterations=1000)
    user.save(update_fields=["password"])
    tenant = Tenant.objects.get(slug=TENANT)
    http = requests.Session()
    login_url = f"{stack.connector_url}/admin/login/"
    http.get(login_url, timeout=10)
    http.post(
        login_url,
        data={
            "username": "faults-admin",
            "password": password,
            "csrfmiddlewaretoken": http.cookies["csrftoken"],
            "next": "/admin/",
        },
        allow_redirects=False,
        timeout=10,
    )
    start = http.post(
        f"{stack.connector_url}/x3/oauth/{tenant.pk}/start/",
        data={"csrfmiddlewaretoken": http.cookies["csrftoken"]},
        allow_redirects=False,
        timeout=10,
    )
    pairing = http.get(start.headers["Location"], allow_redirects=False, timeout=10)
    callback = http.get(pairing.headers["Location"], allow_redirects=False, timeout=30)
    http.close()
    return callback.status_code


def round_r5(stack, orders: int, expiries: int) -> dict[str, Any]:
    """A cloud-gateway tenant (rotating refresh tokens; reusing a spent one revokes the authorization). The access
    token is expired at the gateway ``expiries`` times, each time with ``orders`` orders arriving at once, so
    several workers find it refused together and refresh concurrently."""
    from accounting.models import Posting
    from connector.models import X3Connection
    from simulators.stack import TENANT

    def oauth_state() -> list[dict[str, Any]]:
        return requests.get(f"{stack.x3_url}/_sim/oauth", timeout=10).json()["authorizations"]

    requests.post(f"{stack.x3_url}/_sim/config", json={"oauth": {"refresh_reuse_revokes": True}}, timeout=10)
    status = connect_oauth(stack)
    all_ids: list[int] = []
    t0 = stack.x3.stats()["token"]
    u0 = stack.x3.stats()["graphql"]["unauthorized"]
    for k in range(expiries):
        requests.post(f"{stack.x3_url}/_sim/oauth/expire", json={}, timeout=10)
        ids = generate(stack, orders, seed=500 + k, days_ago=9, fire=True)
        all_ids += ids
        stack.bc.wait_for_webhooks(timeout=60)
        settle(
            stack,
            lambda ids=ids: all_posted(ids)() or statuses(ids).get(Posting.Status.NEEDS_REAUTH, 0) > 0,
            timeout=120 + orders * 2,
            what=f"R5 expiry {k + 1}",
        )
        if statuses(ids).get(Posting.Status.NEEDS_REAUTH, 0):
            break
    t1 = stack.x3.stats()["token"]
    u1 = stack.x3.stats()["graphql"]["unauthorized"]
    x3 = X3Connection.objects.get(tenant__slug=TENANT)
    auth = oauth_state()
    st = statuses(all_ids)
    return {
        "connect_callback_status": status,
        "orders": len(all_ids),
        "expiries": expiries,
        "posted": st.get(Posting.Status.POSTED, 0),
        "needs_reauth": st.get(Posting.Status.NEEDS_REAUTH, 0),
        "token_refreshes": t1["refresh_token"] - t0["refresh_token"],
        "token_refused": t1["refused"] - t0["refused"],
        "creates_refused_expired_token": u1 - u0,  # several per expiry: workers found it expired together
        "authorization_revoked": any(a["revoked"] for a in auth),
        "live_refresh_tokens": sum(a["live_refresh_tokens"] for a in auth),
        "authorization_error": x3.authorization_error,
        "entries_per_order": entries_per_order(stack, all_ids),
    }


# ---- R7: fuzzed webhook requests

SIGNED = "signed"
UNSIGNED = "unsigned"


def _nested(depth: int, rng: random.Random) -> str:
    if rng.random() < 0.5:
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


def fuzz_plan(stack, count: int, *, seed: int = 7, only: str = "") -> list[Request]:
    """``count`` mutated webhook requests, half signed with the store's secret (authentic, possibly absurd) and half
    not (no, wrong, stale, malformed or tampered signatures; a wrong custom header; an unknown tenant). Every signed
    request carries a ``webhook-id`` starting ``fz-s-``: an event stored with any other id came from unauthenticated
    input."""
    from simulators.stack import STORE_HASH

    rng = random.Random(seed)
    sid = store_id(stack)
    url = webhook_url(stack)
    producer = f"stores/{STORE_HASH}"
    absent_order = 999_999_000  # no such order: a stored event does no harm

    def payload(**changes: Any) -> dict[str, Any]:
        data = {"type": "order", "id": absent_order + rng.randint(0, 999)}
        base = {
            "scope": "store/order/created",
            "store_id": sid,
            "data": data,
            "hash": "0" * 40,
            "created_at": int(time.time()),
            "producer": producer,
        }
        base.update(changes)
        return base

    def dumps(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":")).encode()

    huge = [2**63, 2**64, 10**30, -(2**63) - 1, 123456789012345678901234567890, 10**400]

    def body_of(kind: str) -> bytes:
        if kind == "valid":
            return dumps(payload())
        if kind == "bad_json":
            good = dumps(payload())
            return rng.choice(
                [
                    good[: rng.randint(0, len(good) - 1)],
                    b"{",
                    b"",
                    b"null",
                    b"[]",
                    b"42",
                    b'"x"',
                    b"{'a':1}",
                    b"\xff\xfe\xfd",
                    good + b"}",
                    good.replace(b":", b"=", 1),
                    b"{" * 3 + b"}" * 2,
                ]
            )
        if kind == "non_finite":
            token = rng.choice(["Infinity", "-Infinity", "NaN"])
            target = rng.choice(["id", "created_at", "store_id", "refund"])
            if target == "id":
                return (
                    b'{"scope":"store/order/created","store_id":"%s","data":{"type":"order","id":%s},'
                    b'"hash":"x","created_at":1,"producer":"%s"}'
                    % (sid.encode(), token.encode(), producer.encode())
                )
            if target == "created_at":
                return (
                    b'{"scope":"store/order/created","store_id":"%s","data":{"type":"order","id":1},'
                    b'"hash":"x","created_at":%s,"producer":"%s"}'
                    % (sid.encode(), token.encode(), producer.encode())
                )
            if target == "store_id":
                return (
                    b'{"scope":"store/order/created","store_id":%s,"data":{"type":"order","id":1},'
                    b'"producer":"%s"}' % (token.encode(), producer.encode())
                )
            return (
                b'{"scope":"store/order/refund/created","data":{"type":"order","id":1,"refund":'
                b'{"refund_id":%s}},"producer":"%s"}' % (token.encode(), producer.encode())
            )
        if kind == "deep_nesting":
            depth = rng.choice([100, 1_000, 20_000, 100_000])
            inner = _nested(depth, rng)
            where = rng.choice(["data", "id", "body"])
            if where == "body":
                return inner.encode()
            if where == "id":
                return b'{"scope":"store/order/created","data":{"id":%s},"producer":"%s"}' % (
                    inner.encode(),
                    producer.encode(),
                )
            return b'{"scope":"store/order/created","data":%s,"producer":"%s"}' % (
                inner.encode(),
                producer.encode(),
            )
        if kind == "huge_numbers":
            value = rng.choice(huge)
            target = rng.choice(["id", "created_at", "refund_id", "store_id", "float"])
            if target == "id":
                return dumps(payload(data={"type": "order", "id": value}))
            if target == "created_at":
                return dumps(payload(created_at=value))
            if target == "refund_id":
                return dumps(
                    payload(
                        scope="store/order/refund/created",
                        data={"type": "order", "id": 1, "refund": {"refund_id": value}},
                    )
                )
            if target == "store_id":
                return dumps(payload(store_id=value))
            return dumps(payload(data={"type": "order", "id": rng.choice([1e308, 1.5, -0.0, 1e-300])}))
        if kind == "long_strings":
            n = rng.choice([101, 150, 1_000, 100_000])
            target = rng.choice(["scope", "store_id", "hash", "producer", "type"])
            text = "store/order/" + "x" * n if target == "scope" else "y" * n
            if target == "type":
                return dumps(payload(data={"type": text, "id": 1}))
            if target == "producer":
                return dumps(payload(producer=text))
            return dumps(payload(**{target: text}))
        if kind == "nul":
            target = rng.choice(["scope", "store_id", "hash", "producer", "raw"])
            if target == "raw":
                good = bytearray(dumps(payload()))
                good.insert(rng.randint(0, len(good)), 0)
                return bytes(good)
            value = {
                "scope": "store/order/created\u0000",
                "store_id": f"{sid}\u0000x",
                "hash": "\u0000" * 5,
                "producer": f"{producer}\u0000",
            }[target]
            return dumps(payload(**{target: value}))
        if kind == "encoding":
            text = json.dumps(payload(), ensure_ascii=False)
            codec = rng.choice(["utf-16", "utf-16-le", "utf-32", "utf-32-be", "utf-8-sig", "latin-1"])
            if codec == "latin-1":
                return text.replace("order", "ordér").encode("latin-1")
            return text.encode(codec)
        if kind == "wrong_types":
            return dumps(
                rng.choice(
                    [
                        payload(data={"type": "order", "id": "abc"}),
                        payload(data={"type": "order", "id": True}),
                        payload(data={"type": "order", "id": [1]}),
                        payload(data={"type": "order", "id": {"x": 1}}),
                        payload(data={"type": "order", "id": None}),
                        payload(data={"type": "order"}),
                        payload(data=[1, 2]),
                        payload(scope=5),
                        payload(scope=""),
                        payload(hash=5),
                        payload(created_at="yesterday"),
                        payload(
                            scope="store/order/refund/created", data={"type": "order", "id": 1, "refund": "x"}
                        ),
                        payload(scope="store/channel/x/order/created"),
                        payload(scope="store/product/created"),
                        payload(producer="stores/someoneelse"),
                        [payload()],
                    ]
                )
            )
        if kind == "byte_mutation":
            good = bytearray(dumps(payload()))
            for _ in range(rng.randint(1, 8)):
                i = rng.randrange(len(good))
                op = rng.random()
                if op < 0.4:
                    good[i] = rng.randrange(256)
                elif op < 0.7:
                    del good[i]
                else:
                    good.insert(i, rng.randrange(256))
            return bytes(good)
        raise ValueError(kind)

    body_kinds = [
        "valid",
        "bad_json",
        "non_finite",
        "deep_nesting",
        "huge_numbers",
        "long_strings",
        "nul",
        "encoding",
        "wrong_types",
        "byte_mutation",
    ]
    plan: list[Request] = []
    for i in range(count * (2 if only else 1)):
        if only and (i % 2 == 0) != (only == SIGNED):
            continue
        if i % 2 == 0:  # signed: authentic, whatever the body says
            kind = rng.choice(body_kinds + ["no_trailing_slash"])
            body = body_of("valid" if kind == "no_trailing_slash" else kind)
            target = (
                webhook_url(stack, slash=False) if kind == "no_trailing_slash" or rng.random() < 0.05 else url
            )
            plan.append(
                Request(
                    target,
                    body,
                    {"Content-Type": "application/json"},
                    msg_id=f"fz-s-{i}",
                    sign=True,
                    label=f"{SIGNED}:{kind}",
                )
            )
            continue
        kind = rng.choice(
            [
                "wrong_signature",
                "stale_timestamp",
                "missing_headers",
                "tampered",
                "malformed_signature",
                "wrong_custom_header",
                "unknown_tenant",
                "no_trailing_slash",
                "bad_method",
                "unsigned_body",
            ]
        )
        body = body_of(rng.choice(body_kinds))
        msg_id = f"fz-u-{i}"
        headers = {"Content-Type": "application/json"}
        target, method = url, "POST"
        if kind == "wrong_signature":
            headers.update(signed_headers(msg_id, body, secret="not-the-client-secret-0123456789"))  # noqa: S106
        elif kind == "stale_timestamp":
            headers.update(signed_headers(msg_id, body, timestamp=int(time.time()) - 3600))
        elif kind == "missing_headers":
            full = signed_headers(msg_id, body)
            for name in rng.sample(
                ["webhook-id", "webhook-timestamp", "webhook-signature"], rng.randint(1, 3)
            ):
                full.pop(name)
            headers.update(full)
        elif kind == "tampered":
            headers.update(signed_headers(msg_id, body))
            body = body + b" " if rng.random() < 0.5 else body.replace(b"order", b"Order", 1) + b"\n"
        elif kind == "malformed_signature":
            headers.update(signed_headers(msg_id, body))
            headers["webhook-signature"] = rng.choice(
                [
                    "v1",
                    "v1,",
                    "v1,!!!",
                    "v2,abc",
                    "v1," + "A" * 5000,
                    "",
                    "v1,abc v1,def",
                    "v1," + base64.b64encode(b"x" * 32).decode(),
                ]
            )
            if rng.random() < 0.3:
                headers["webhook-timestamp"] = rng.choice(["abc", "-1", "1e30", "99999999999999999999"])
        elif kind == "wrong_custom_header":
            headers["X-Webhook-Secret"] = rng.choice(["wrong", "", "demo-header-secret-012345678"])
        elif kind == "unknown_tenant":
            headers.update(signed_headers(msg_id, body))
            target = webhook_url(stack, tenant=rng.choice(["nobody", "demo2", "x" * 50]))
        elif kind == "no_trailing_slash":
            target = webhook_url(stack, slash=False)
        elif kind == "bad_method":
            method = rng.choice(["GET", "PUT", "DELETE", "PATCH"])
        plan.append(Request(target, body, headers, msg_id=msg_id, method=method, label=f"{UNSIGNED}:{kind}"))
    return plan


def round_r7(stack, count: int, *, concurrency: int = 8, only: str = "") -> dict[str, Any]:
    """``count`` fuzzed requests (:func:`fuzz_plan`; ``only`` = ``signed`` or ``unsigned`` for one half)."""
    from connector.models import WebhookEvent

    plan = fuzz_plan(stack, count, only=only)
    first_id = WebhookEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    t0 = time.monotonic()
    answers = send_all(plan, concurrency=concurrency)
    seconds = time.monotonic() - t0
    by_status = Counter(str(a) for a in answers)
    server_errors: Counter = Counter()
    by_label: dict[str, Counter] = {}
    for item, status in zip(plan, answers, strict=True):
        by_label.setdefault(item.label, Counter())[str(status)] += 1
        if status is None or status >= 500:
            server_errors[item.label] += 1
    new_events = WebhookEvent.objects.filter(pk__gt=first_id)
    unauthenticated = new_events.exclude(webhook_id__startswith="fz-s-").count()
    signed_2xx = sum(
        1
        for item, s in zip(plan, answers, strict=True)
        if item.label.startswith(SIGNED) and s is not None and 200 <= s < 300
    )
    return {
        "requests": len(plan),
        "signed": sum(1 for item in plan if item.label.startswith(SIGNED)),
        "seconds": round(seconds, 1),
        "by_status": dict(sorted(by_status.items())),
        "server_errors": sum(server_errors.values()),
        "server_errors_by_kind": dict(server_errors.most_common()),
        "by_kind": {k: dict(v) for k, v in sorted(by_label.items())},
        "events_stored": new_events.count(),
        "events_stored_unauthenticated": unauthenticated,
        "signed_accepted": signed_2xx,
    }


# ------------------------------------------------------------------------------------------------------ figures


def _one_each(result: dict[str, Any]) -> bool:
    e = result["entries_per_order"]
    return e["more"] == 0 and e["none"] == 0 and e["one"] == result["orders"]


def add_figures(report: Report, name: str, r: dict[str, Any]) -> None:
    if "error" in r:
        report.add(f"{name}: round failed", None, passed=False, note=r["error"][:300])
        return
    e = r.get("entries_per_order", {})
    if name == "R1":
        report.add(
            "R1 postings posted",
            r["posted"],
            "",
            target=f"= {r['orders']}",
            passed=r["posted"] == r["orders"],
            note=f"{r['orders']} orders x 3 deliveries ({r['deliveries']} requests, "
            f"{r['concurrent_orders']} orders with all three at once); answers {r['delivery_answers']}",
        )
        report.add(
            "R1 X3 entries",
            r["x3_entries"],
            "",
            target=f"= {r['orders']}",
            passed=r["x3_entries"] == r["orders"],
        )
        report.add("R1 duplicates", e["more"], "", target="= 0", passed=e["more"] == 0)
        report.add(
            "R1 orders whose total differs",
            r["orders_total_mismatch_count"],
            "",
            target="= 0",
            passed=r["orders_total_mismatch_count"] == 0,
            note=f"sum of X3 receivable lines {r['x3_total']} vs BigCommerce totals {r['bc_total']}",
        )
        report.add(
            "R1 seconds to all posted",
            r["send_seconds"] + r["settle_seconds"],
            "s",
            note=f"sending {r['send_seconds']} s",
        )
    elif name == "R2":
        report.add(
            "R2 posted after the outage",
            r["posted"],
            "",
            target=f"= {r['orders']}",
            passed=r["posted"] == r["orders"] and _one_each(r),
            note=f"outage {r['outage_seconds']} s: {r['phases']}; drained in {r['drain_seconds']} s; "
            f"duplicates {e['more']}",
        )
        report.add(
            "R2 needs attention",
            r["needs_attention"] + r["needs_attention_during_outage"],
            "",
            target="= 0",
            passed=r["needs_attention"] + r["needs_attention_during_outage"] == 0,
        )
        report.add(
            "R2 circuit probes",
            r["probes"],
            "",
            target=f"<= {r['probe_bound']}",
            passed=r["circuit_opened"] and r["probes"] <= r["probe_bound"],
            note="circuit opened" if r["circuit_opened"] else "circuit never opened",
        )
        report.add(
            "R2 X3 calls during the outage",
            r["x3_calls_during_outage"],
            "",
            target=f"<= {r['x3_call_bound']}",
            passed=r["x3_calls_during_outage"] <= r["x3_call_bound"],
            note=f"{r['orders']} postings waiting",
        )
    elif name == "R3":
        report.add(
            "R3 X3 entries per order (commit-then-drop + Retry now)",
            e["one"],
            "",
            target=f"= {r['orders']} x 1",
            passed=_one_each(r) and r["posted"] == r["orders"],
            note=f"duplicates {e['more']}, missing {e['none']}; {r['gave_up']} gave up "
            f"({r['gave_up_flagged_may_exist']} flagged may-exist), Retry now x2 "
            f"({r['retry_now']}+{r['retry_now_again']}); {r['found_before_lookups_failed']} found "
            "before the lookups failed",
        )
    elif name == "R4":
        lost = r["orders"] - r["posted"]
        report.add(
            "R4 lost after SIGKILL of the workers",
            lost,
            "",
            target="= 0",
            passed=lost == 0,
            note=f"{r['orders']} orders; killed {r['processes_killed']} processes with {r['posted_at_kill']} "
            f"posted, {r['postings_in_flight_at_kill']} postings and {r['events_in_flight_at_kill']} "
            f"events in flight; all posted {r['seconds_to_all_posted_after_kill']} s after the kill",
        )
        report.add("R4 duplicates", e["more"], "", target="= 0", passed=e["more"] == 0)
    elif name == "R5":
        ok = (
            r["posted"] == r["orders"]
            and r["needs_reauth"] == 0
            and not r["authorization_revoked"]
            and r["live_refresh_tokens"] >= 1
            and not r["authorization_error"]
        )
        report.add(
            "R5 posted through concurrent OAuth refreshes",
            r["posted"],
            "",
            target=f"= {r['orders']}",
            passed=ok,
            note=f"{r['expiries']} expiries, {r['creates_refused_expired_token']} calls refused with the expired "
            f"token; refreshes {r['token_refreshes']}, refused {r['token_refused']}; "
            f"needs re-auth {r['needs_reauth']}; revoked {r['authorization_revoked']}; live refresh "
            f"tokens {r['live_refresh_tokens']}; duplicates {e['more']}",
        )
        report.add(
            "R5 token refreshes per expiry",
            r["token_refreshes"] / max(1, r["expiries"]),
            "",
            target="<= 1",
            passed=r["token_refreshes"] <= r["expiries"],
        )
    elif name == "R6":
        report.add(
            "R6 posted under a BigCommerce 429 storm",
            r["posted"],
            "",
            target=f"= {r['orders']}",
            passed=r["posted"] == r["orders"] and _one_each(r),
            note=f"quota {r['quota']}, {r['storm']}; {r['bc_429']} answers 429 ({r['bc_429_injected']} of them injected); {r['events_failed']} events failed; "
            f"{r['settle_seconds']} s",
        )
        # the client retries a 429 at most 3 times inline (integrations/bigcommerce/client.py max_429_retries)
        report.add(
            "R6 BigCommerce requests per order",
            r["bc_requests_per_order"],
            "",
            target="<= 4",
            passed=r["bc_requests_per_order"] <= 4,
        )
    elif name == "R7":
        report.add(
            "R7 fuzzed webhook requests",
            r["requests"],
            "",
            target=">= 10,000" if r["requests"] >= 10_000 else "",
            passed=True if r["requests"] >= 10_000 else None,
            note=f"{r['signed']} signed; by status {r['by_status']}; {r['seconds']} s",
        )
        report.add(
            "R7 answers 5xx (or none)",
            r["server_errors"],
            "",
            target="= 0",
            passed=r["server_errors"] == 0,
            note=", ".join(f"{k} {v}" for k, v in list(r["server_errors_by_kind"].items())[:8]),
        )
        report.add(
            "R7 events stored from unauthenticated input",
            r["events_stored_unauthenticated"],
            "",
            target="= 0",
            passed=r["events_stored_unauthenticated"] == 0,
            note=f"{r['events_stored']} events stored, {r['signed_accepted']} signed requests accepted",
        )
    elif name == "R9":
        report.add(
            "R9 parked with X3's message",
            r["parked_with_x3_message"],
            "",
            target=f"= {r['orders']}",
            passed=r["parked_with_x3_message"] == r["orders"] and r["entries_while_parked"] == 0,
            note=" | ".join(m[:120] for m in r["example_messages"]),
        )
        report.add(
            "R9 posted after the fix + Retry now",
            r["posted"],
            "",
            target=f"= {r['orders']}",
            passed=r["posted"] == r["orders"] and _one_each(r),
            note=f"duplicates {e['more']}",
        )


# ------------------------------------------------------------------------------------------------------------ run


def _guarded(
    results: dict[str, Any], name: str, fn: Callable[[], dict[str, Any]], stack, *, wait_quiet: bool = True
) -> None:
    print(f"  {name} ...", flush=True)
    waited = 0.0
    try:
        if wait_quiet:  # what an earlier round left queued (R1's thousands of deliveries) is done first
            waited = settle(stack, quiet, timeout=600, what=f"the queue before {name}")
    except TimeoutError as exc:
        print(f"  !! {exc}", flush=True)
    started_round = time.monotonic()
    try:
        results[name] = fn()
    except Exception as exc:  # noqa: BLE001 - a round that fails is a figure, the suite goes on
        results[name] = {"error": f"{type(exc).__name__}: {exc}"}
        for control in (stack.x3, stack.bc):
            try:
                control.clear_faults()
            except Exception:  # noqa: BLE001, S110
                pass
    results[name]["seconds"] = round(time.monotonic() - started_round, 1)
    results[name]["waited_for_quiet_seconds"] = round(waited, 1)
    print(f"  {name}: {json.dumps(results[name], default=str)[:1500]}", flush=True)


def run(args) -> Report:
    global IN_PROCESS  # noqa: PLW0603 - set once Django runs on the bench's own database (see sweep())
    from django.db import connections

    from simulators.stack import start_stack

    sizes = QUICK if args.quick else FULL
    if args.orders:
        sizes = Sizes(**{**sizes.__dict__, "r1_orders": args.orders})
    if args.fuzz:
        sizes = Sizes(**{**sizes.__dict__, "r7_requests": args.fuzz})
    chosen = [
        r for r in ("R1", "R2", "R3", "R4", "R6", "R9", "R7", "R5") if not args.rounds or r in args.rounds
    ]
    report = Report(BENCH)
    common.check_services()
    results: dict[str, Any] = {}
    work = common.RESULTS_DIR / "tmp" / BENCH
    main_rounds = [r for r in chosen if r != "R5"]
    if main_rounds:
        db_url = common.recreate_database(DB)
        common.flush_redis()
        stack = start_stack(
            database_url=db_url,
            redis_url=common.REDIS_BASE,
            workers=2,
            web_workers=2,
            log_dir=work,
            extra_env={**FAULT_ENV, "DEBUG": "false"},
            cluster=False,
        )
        cluster = Cluster(stack.env, work / "qcluster.log")
        try:
            cluster.start()
            common.django_setup(stack.env)
            IN_PROCESS = True
            from simulators.stack import STORE_HASH

            stack.bc.set_rate_limit(STORE_HASH, quota=10_000_000, window_ms=1000)
            rounds = {
                "R1": lambda: round_r1(stack, sizes.r1_orders),
                "R2": lambda: round_r2(stack, sizes.r2_orders, sizes.r2_phase_seconds),
                "R3": lambda: round_r3(stack, sizes.r3_orders),
                "R4": lambda: round_r4(stack, cluster, sizes.r4_orders),
                "R6": lambda: round_r6(stack, sizes.r6_orders, storm_seconds=5 if args.quick else 15),
                "R9": lambda: round_r9(stack, sizes.r9_orders),
                "R7": lambda: round_r7(stack, sizes.r7_requests),
            }
            for name in main_rounds:
                if name == "R7":
                    cluster.stop()  # intake only: what the fuzz stores stays in the database to be counted
                _guarded(results, name, rounds[name], stack, wait_quiet=name != "R7")
                if cluster.proc is None and name != "R7":
                    cluster.start()
            results["duplicates_overall"] = duplicate_references(stack)
        finally:
            cluster.stop()
            stack.stop()
            connections.close_all()
            if not args.keep_db:
                common.drop_database(DB)
    if "R5" in chosen and main_rounds:
        # its own stack and database: a fresh process, as Django reads one database per process
        out = work / "r5.json"
        out.unlink(missing_ok=True)
        cmd = [sys.executable, "-m", "bench.faults", "--rounds", "R5", "--json", str(out)]
        subprocess.run(cmd + (["--quick"] if args.quick else []), cwd=common.ROOT, check=False)
        try:
            results["R5"] = json.loads(out.read_text())["details"]["rounds"]["R5"]
        except (OSError, ValueError, KeyError) as exc:
            results["R5"] = {"error": f"R5 process failed: {exc}"}
    elif "R5" in chosen:
        db_url = common.recreate_database(DB + "_oauth")
        common.flush_redis()
        stack = start_stack(
            database_url=db_url,
            redis_url=common.REDIS_BASE,
            workers=4,
            web_workers=2,
            log_dir=work / "oauth",
            extra_env=FAULT_ENV,
            x3_method="graphql_oauth2",
        )
        try:
            common.django_setup(stack.env)
            IN_PROCESS = True
            _guarded(
                results,
                "R5",
                lambda: round_r5(stack, sizes.r5_orders, sizes.r5_expiries),
                stack,
                wait_quiet=False,
            )
        finally:
            stack.stop()
            connections.close_all()
            if not args.keep_db:
                common.drop_database(DB + "_oauth")
            common.flush_redis()
    for name in ("R1", "R2", "R3", "R4", "R5", "R6", "R7", "R9"):
        if name in results:
            add_figures(report, name, results[name])
    if "duplicates_overall" in results:
        dup = results["duplicates_overall"]
        report.add(
            "X3 references held twice, whole run",
            len(dup),
            "",
            target="= 0",
            passed=not dup,
            note=", ".join(dup[:5]),
        )
    report.details = {"sizes": sizes.__dict__, "env": FAULT_ENV, "rounds": results}
    return report


def main(argv: list[str] | None = None) -> int:
    parser = common.cli(__doc__.split("\n")[0], BENCH)
    parser.add_argument("--rounds", default="", help="comma-separated subset of R1,R2,R3,R4,R5,R6,R7,R9")
    parser.add_argument("--orders", type=int, default=0, help="R1's order count (1,000 in a full run)")
    parser.add_argument("--fuzz", type=int, default=0, help="R7's request count (10,000 in a full run)")
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args(argv)
    args.rounds = [r.strip().upper() for r in args.rounds.split(",") if r.strip()]
    started = time.monotonic()
    report = run(args)
    report.seconds = time.monotonic() - started
    common.print_figures(report.figures, title="Fault suite")
    common.write_report(report, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
