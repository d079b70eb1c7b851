"""The one-command demo: the connector on embedded defaults (SQLite + django-q2 ORM broker) plus both simulators.

    bin/demo            # runs the demo, prints what was posted in X3, keeps the admin up until Ctrl-C
    bin/demo --exit     # same, then stops (used by the test suite)

A demo tenant with three storefront channels and their GL mappings receives a stream of signed webhooks: paid
orders on each channel (some delivered twice), an order paid after being pending, a partial refund and a
cancellation; X3 fails once along the way. Everything runs in a fresh database, var/demo/demo.sqlite3.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import time
from decimal import Decimal

from .stack import ROOT, STORE_HASH, TENANT, start_stack

ADMIN_USER, ADMIN_PASSWORD = "demo", "demo-password-1"  # noqa: S105 - a local demo database


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bin/demo", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--exit", action="store_true", help="stop after the summary instead of waiting for Ctrl-C"
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
        run_story(stack)
        print_summary(stack, time.monotonic() - started)
        if not args.exit:
            say("Press Ctrl-C to stop.")
            while not interrupted and all(p.poll() is None for p in stack.processes):
                time.sleep(0.5)
    finally:
        say("Stopping…")
        stack.stop()
    return 0


def say(text: str) -> None:
    print(text, flush=True)


def run_story(stack) -> None:
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
    stack.settle(lambda: posted(stack) >= len(orders), timeout=40, what="The demo's orders")
    say("Paying the pending order, refunding a mug, cancelling an order…")
    bc.set_status(STORE_HASH, pending["id"], 11)
    mug_line = created[0]["products"][0]["id"]
    bc.refund(
        STORE_HASH, orders[0]["id"], items=[{"item_type": "PRODUCT", "item_id": mug_line, "quantity": 1}]
    )
    bc.set_status(STORE_HASH, orders[5]["id"], 5)
    stack.settle(lambda: posted(stack) >= len(orders) + 3, timeout=40, what="The demo's changes")
    bc.wait_for_webhooks(timeout=10)
    stack.manage("sweep")


def posted(stack) -> int:
    return sum(1 for _ in stack.entries())


def print_summary(stack, elapsed: float) -> None:
    entries = stack.entries()
    say("")
    say(f"Sage X3 now holds {len(entries)} journal entries:")
    say(f"  {'document':<12} {'reference':<26} {'date':<11} {'lines':>5} {'receivable':>11}")
    for entry in entries:
        lines = entry["GACCENTRYD"]
        receivable = sum(
            Decimal(str(line.get("DEB", 0))) - Decimal(str(line.get("CDT", 0)))
            for line in lines
            if str(line["ACC"]).startswith(("411", "467"))
        )
        say(
            f"  {entry['NUM']:<12} {entry['REFINT']:<26} {entry['ACCDAT']:<11} {len(lines):>5} {receivable:>11}"
        )
    say("")
    say(stack.manage("report", "--tenant", TENANT).rstrip())
    say("")
    say(f"Admin: {stack.connector_url}/admin/  (user {ADMIN_USER}, password {ADMIN_PASSWORD})")
    say(f"Logs and database: {stack.log_dir}")
    say(f"Demo ready in {elapsed:.0f} s.")


if __name__ == "__main__":
    sys.exit(main())
