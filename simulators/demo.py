"""The one-command demo: the connector on embedded defaults (SQLite + django-q2 ORM broker) plus both simulators.

    bin/demo            # runs the demo, prints what was posted in X3, keeps the admin up until Ctrl-C
    bin/demo --exit     # same, then stops (used by the test suite)
    bin/demo --summary  # the same story in daily summary mode: one X3 entry per channel and currency for the day

A demo tenant with three storefront channels and their GL mappings receives a stream of signed webhooks: paid
orders on each channel (some delivered twice), an order paid after being pending, a partial refund and a
cancellation; X3 fails once along the way. Everything runs in a fresh database, var/demo/demo.sqlite3.

With --summary the tenant posts in daily summary mode from today: the entries wait in the connector, then the day
is closed early (``close_summaries --day today``, normally done by the cluster once the day is over) and X3
receives one summary entry per channel and currency, each drilling down to the orders behind it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from integrations.currency import minor_unit

from .stack import ROOT, STORE_HASH, TENANT, start_stack

ADMIN_USER, ADMIN_PASSWORD = "demo", "demo-password-1"  # noqa: S105 - a local demo database


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bin/demo", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--exit", action="store_true", help="stop after the summary instead of waiting for Ctrl-C"
    )
    parser.add_argument(
        "--summary",
        action="store_true",
        help="daily summary mode from today: close the day at the end and show the summary entries",
    )
    args = parser.parse_args(argv)

    started = time.monotonic()
    demo_dir = ROOT / "var" / "demo"
    shutil.rmtree(demo_dir, ignore_errors=True)
    demo_dir.mkdir(parents=True)
    database_url = f"sqlite:///{(demo_dir / 'demo.sqlite3').resolve()}"
    say("Starting the simulators and the connector (SQLite + ORM broker)…")
    stack = start_stack(database_url=database_url, workers=2, web_workers=2, log_dir=demo_dir)
    interrupted = False

    def stop(*_):
        nonlocal interrupted
        interrupted = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        stack.env["DJANGO_SUPERUSER_PASSWORD"] = ADMIN_PASSWORD
        stack.manage("createsuperuser", "--noinput", "--username", ADMIN_USER, "--email", "demo@example.com")
        if args.summary:
            summary_mode_from_today(stack)
            run_story(stack, settled=committed)
            close_today(stack)
        else:
            run_story(stack)
        print_summary(stack, time.monotonic() - started, keeps_running=not args.exit)
        if not args.exit:
            while not interrupted and all(p.poll() is None for p in stack.processes):
                time.sleep(0.5)
    finally:
        say("Stopping…")
        stack.stop()
    return 0


def say(text: str) -> None:
    print(text, flush=True)


def run_story(stack, settled: Callable[[Any], int] | None = None) -> None:
    """``settled(stack)``: how many of the story's entries are done (default: entries in X3)."""
    settled = settled or posted
    bc = stack.bc
    bc.webhook_settings(
        duplicate_rate=0.3
    )  # BigCommerce delivers some webhooks twice: they must change nothing
    mug = {"name": "Enamel mug", "sku": "MUG-01", "price": "14.00", "quantity": 2, "cost_price": "5.20"}
    tee = {"name": "Organic tee", "sku": "TEE-02", "price": "29.00", "quantity": 1, "cost_price": "11.00"}
    say("Sending orders from three storefront channels…")
    created = [
        bc.create_order(STORE_HASH, channel_id=channel, status_id=11, lines=lines, shipping_cost="6.50")
        for channel, lines in (
            (1, [mug, tee]),
            (2, [tee]),
            (3, [mug]),
            (1, [tee, tee]),
            (2, [mug]),
            (3, [tee]),
        )
    ]
    orders = [c["order"] for c in created]
    pending = bc.create_order(STORE_HASH, channel_id=1, status_id=7, lines=[mug], shipping_cost="6.50")[
        "order"
    ]
    stack.x3.set_faults(fail_next=1, fail_status=503, methods=["POST"])  # X3 hiccups once: retried, not lost
    stack.settle(lambda: settled(stack) >= len(orders), timeout=40, what="The demo's orders")
    say("Paying the pending order, refunding a mug, cancelling an order…")
    bc.set_status(STORE_HASH, pending["id"], 11)
    mug_line = created[0]["products"][0]["id"]
    bc.refund(
        STORE_HASH, orders[0]["id"], items=[{"item_type": "PRODUCT", "item_id": mug_line, "quantity": 1}]
    )
    bc.set_status(STORE_HASH, orders[5]["id"], 5)
    stack.settle(lambda: settled(stack) >= len(orders) + 3, timeout=40, what="The demo's changes")
    bc.wait_for_webhooks(timeout=10)
    stack.manage("sweep")


def posted(stack) -> int:
    return sum(1 for _ in stack.entries())


def committed(stack) -> int:
    """Summary mode: entries planned into the day's summary (or already posted with it)."""
    return sum(
        1
        for p in demo_facts(stack)["postings"]
        if p["kind"] != "summary" and p["status"] in ("in_summary", "posted")
    )


def summary_mode_from_today(stack) -> None:
    say("Daily summary mode from today: orders wait in the connector until their day is closed…")
    stack.manage(
        "shell",
        "-v",
        "0",
        "-c",
        "from django.utils import timezone; from connector.models import Tenant; "
        "from connector.summaries import tenant_zone; "
        f"t = Tenant.objects.get(slug={TENANT!r}); t.posting_mode = Tenant.PostingMode.DAILY_SUMMARY; "
        "t.posting_mode_from = timezone.localdate(timezone.now(), tenant_zone(t)); t.save()",
    )


def close_today(stack) -> None:
    say("Closing today early (close_summaries --day today; the cluster does this once the day is over)…")
    say("  " + stack.manage("close_summaries", "--day", "today", "--tenant", TENANT).strip())

    def summaries_posted() -> bool:
        summaries = demo_facts(stack)["summaries"]
        return bool(summaries) and all(s["status"] == "posted" for s in summaries)

    stack.settle(summaries_posted, timeout=60, what="The day's summaries")


SUFFIXES = (
    ("", "the order's own entry (its sale: receivable, revenue, shipping, tax, cost of goods)"),
    ("-R<n>", "a refund: BigCommerce refund n of that order, negative amounts on the order's own accounts"),
    ("-A<n>", "an adjustment: the order was edited after it was posted; entry n posts the difference"),
    (
        "-V<n>",
        "a reversal: the order was cancelled or declined after it was posted; entry n undoes what was posted",
    ),
)


def demo_facts(stack) -> dict:
    """The connector's own records of the story (simulators/demo_facts.py, run inside the connector)."""
    out = stack.manage("shell", "-v", "0", "-c", f"from simulators.demo_facts import main; main({TENANT!r})")
    return json.loads(out.strip().splitlines()[-1])


def print_summary(stack, elapsed: float, *, keeps_running: bool) -> None:
    entries = stack.entries()
    facts = demo_facts(stack)
    by_reference = {p["reference"]: p for p in facts["postings"]}
    channels = facts["channels"]
    say("")
    say(f"Sage X3 now holds {len(entries)} journal entries:")
    say(f"  {'document':<12} {'reference':<26} {'date':<11} {'lines':>5} {'receivable':>11}  what")
    for entry in entries:
        lines = entry["GACCENTRYD"]
        receivable = sum(
            Decimal(str(line.get("DEB", 0))) - Decimal(str(line.get("CDT", 0)))
            for line in lines
            if str(line["ACC"]).startswith(("411", "467"))
        )
        posting = by_reference.get(entry["REFINT"], {})
        what = posting.get("label", "")
        if posting.get("channel_id") is not None:
            what += f", {channels.get(str(posting['channel_id']), 'channel ' + str(posting['channel_id']))}"
        say(
            f"  {entry['NUM']:<12} {entry['REFINT']:<26} {entry['ACCDAT']:<11} {len(lines):>5} {receivable:>11}"
            f"  {what}"
        )
    prefix = f"BC-{STORE_HASH}-<order>"
    say("")
    say(
        f"References: {prefix} (X3's REFINT field) makes each entry findable in X3 and postable once. Suffixes:"
    )
    for suffix, meaning in SUFFIXES:
        say(f"  {(prefix + suffix):<30} {meaning}")
    if facts["summaries"]:
        print_summaries(facts)
    print_accounts(entries, facts)
    print_channel_totals(facts)
    print_webhooks(stack, facts)
    print_hiccup(stack, facts)
    say("")
    say(stack.manage("report", "--tenant", TENANT).rstrip())
    say("")
    say(f"Logs and database: {stack.log_dir}")
    say(f"Demo ready in {elapsed:.0f} s.")
    admin = f"Admin: {stack.connector_url}/admin/  (user {ADMIN_USER}, password {ADMIN_PASSWORD})"
    if keeps_running:
        say(f"{admin}: running until you press Ctrl-C.")
    else:
        say(f"{admin}: stopping now (--exit).")


def print_summaries(facts) -> None:
    """Each daily summary with what it carries: the connector's entries (orders, refunds, adjustments, reversals),
    the orders behind them and its lines; every line drills down to its orders in the admin."""
    channels = facts["channels"]
    say("")
    say("Daily summaries (one X3 entry per channel, currency and day; drill-down in the admin, Postings):")
    say(
        f"  {'reference':<26} {'day':<11} {'channel':<24} {'entries':>7} {'orders':>6} {'lines':>5} {'total':>9}"
    )
    for s in facts["summaries"]:
        channel = f"{s['channel_id']} {channels.get(str(s['channel_id']), '')}".strip()
        say(
            f"  {s['reference']:<26} {s['day']:<11} {channel:<24} {s['entries']:>7} {s['orders']:>6} "
            f"{s['lines']:>5} {s['total']:>9} {s['currency']}  {s['document'] or s['status']}"
        )
    for s in facts["summaries"]:
        members = [p for p in facts["postings"] if p["in_summary"] == s["reference"]]
        say(f"  {s['reference']}: " + ", ".join(p["label"] for p in members))


def print_accounts(entries, facts) -> None:
    """Every account the entries touched, with its name (X3's chart of accounts, else the mapping's role)."""
    used = sorted({str(line["ACC"]) for entry in entries for line in entry["GACCENTRYD"]})
    say("")
    say("Accounts used (names from the chart of accounts read from X3):")
    for code in used:
        say(f"  {code:<8} {facts['accounts'].get(code, '(not in the chart)')}")


def print_channel_totals(facts) -> None:
    totals: dict[tuple[str, str], list] = {}
    for p in facts["postings"]:
        if not p["posted"] or p["kind"] == "summary":  # a summary carries entries counted by themselves
            continue
        key = (str(p["channel_id"]), p["currency"])
        step = Decimal(1).scaleb(-minor_unit(p["currency"]))
        row = totals.setdefault(key, [0, Decimal(0).quantize(step), Decimal(0).quantize(step)])
        row[0] += 1
        row[2 if p["kind"] == "refund" else 1] += Decimal(p["total"])
    say("")
    say("Posted per channel (receivable: orders with their adjustments and reversals, refunds, net):")
    say(f"  {'channel':<26} {'entries':>7} {'orders':>10} {'refunds':>10} {'net':>10}")
    for (channel, currency), (count, sales, refunds) in sorted(totals.items()):
        name = f"{channel} {facts['channels'].get(channel, '')}".strip()
        say(f"  {name:<26} {count:>7} {sales:>10} {refunds:>10} {sales + refunds:>10} {currency}")


def print_webhooks(stack, facts) -> None:
    sent = stack.bc.deliveries(STORE_HASH)
    duplicates = sum(1 for d in sent if d.get("duplicate"))
    say("")
    say(
        f"Webhooks: BigCommerce made {len(sent)} deliveries, {duplicates} of them duplicates on purpose. "
        f"Deduplicated: {facts['deliveries']} deliveries -> {facts['events']} events (a repeat delivery has the "
        "same webhook id: answered 200, counted on its event, nothing posted twice). BigCommerce sends several "
        f"events for one change (created, status updated, refund): the {facts['events']} events made "
        f"{len(facts['postings'])} entries."
    )


def print_hiccup(stack, facts) -> None:
    hit = [
        p
        for p in facts["postings"]
        if any(a["outcome"] != "ok" and a["operation"] == "create" for a in p["attempts"])
    ]
    say("")
    if not hit:
        say("Sage X3 hiccup: X3 was told to fail once, but no entry met the failure.")
        return
    for p in hit:
        failed = [a for a in p["attempts"] if a["outcome"] != "ok" and a["operation"] == "create"]
        codes = ", ".join(str(a["status_code"] or "no answer") for a in failed)
        in_x3 = len(stack.entries(reference=p["reference"]))
        say(
            f"Sage X3 hiccup: X3 answered {codes} to {p['label']} ({p['reference']}); the connector retried "
            f"and it was posted once as {p['document']} ({in_x3} entry with that reference in X3, "
            f"{len(p['attempts'])} calls in its history)."
        )


if __name__ == "__main__":
    sys.exit(main())
