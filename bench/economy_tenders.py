"""Bench 3b — API economy with clearing accounts: BigCommerce calls per order on the webhook path, with and without
tender mappings (issue #12).

A tenant that maps tenders to payment-clearing accounts reads each paid order's v3 transactions: one extra call per
order (``GET /v3/orders/{id}/transactions``), so the target is the plain webhook-path target plus one. A tenant
without tender mappings must not pay for the feature. Both runs are ``bench.economy.measure`` (the real stack:
gunicorn + django-q2 + Redis + both simulators over HTTP, the same orders from the same seed, ``store/order/created``
and ``store/order/statusUpdated`` webhooks), the second with tender mappings created for the demo tenant before the
first order arrives. Refunds are counted too (informational); the replay path is not run.

    uv run python -m bench.economy_tenders [--quick] [--orders N] [--json FILE]
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from . import common, economy
from .common import Report

BENCH = "economy_tenders"
DB = common.db_name("economy_tenders")  # its own database: bench.economy may run at the same time
# Webhook path: 1 re-read per order (plus 0.2 slack for the second webhook's re-read when it lands after the first
# planned), and with tender mappings one more call per order for its transactions.
TARGET_WITHOUT = 1.2
TARGET_WITH = 2.2
# Every gateway the simulator's orders are paid at (simulators/bc_data.py _PAYMENT_METHODS) → the X3 simulator's
# clearing account "payments to cash in" (an account it does not know would be refused).
TENDERS = (
    ("braintree", "511200", "Card payments (Braintree)"),
    ("paypalcommerce", "511200", "PayPal"),
    ("squarev2", "511200", "Square (point of sale)"),
    ("stripev3", "511200", "Card payments (Stripe)"),
    ("custom", "511200", "Other payments"),
)


@contextlib.contextmanager
def tender_mappings_at_setup() -> Iterator[None]:
    """While active, ``bench.economy.measure`` creates the tender mappings as soon as it has set Django up (after the
    stack started, before its first order): it calls ``common.django_setup`` exactly there."""
    original = common.django_setup

    def setup_then_map(env: dict[str, str]) -> None:
        original(env)
        from accounting.models import TenderMapping
        from connector.models import Tenant
        from simulators.stack import TENANT

        tenant = Tenant.objects.get(slug=TENANT)
        for gateway, account, name in TENDERS:
            TenderMapping.objects.update_or_create(
                tenant=tenant, gateway=gateway, method="", defaults={"account": account, "name": name}
            )

    common.django_setup = setup_then_map
    try:
        yield
    finally:
        common.django_setup = original


def _transactions_calls(webhook: dict) -> int:
    return _calls(webhook, "GET /v3/orders/{id}/transactions")


def _calls(webhook: dict, endpoint: str) -> int:
    return int(webhook["bigcommerce_calls"].get(endpoint, 0))


def run(args) -> Report:
    report = Report(BENCH)
    common.check_services()
    economy.DB = DB  # measure() recreates and drops economy.DB
    plain = economy.measure(args, replay=False)["webhook_path"]
    with tender_mappings_at_setup():
        tendered = economy.measure(args, replay=False)["webhook_path"]

    for label, webhook, target in (
        ("without tender mappings", plain, TARGET_WITHOUT),
        ("with tender mappings", tendered, TARGET_WITH),
    ):
        v = webhook["bigcommerce_calls_per_order"]
        report.add(
            f"BC calls per order, webhook path, {label}",
            v,
            "",
            target=f"<= {target}",
            passed=v <= target,
            note=(
                f"{webhook['orders']} paid orders, {webhook['deliveries_per_order']} webhook deliveries per order, "
                f"{_transactions_calls(webhook)} transactions reads"
            ),
        )
    rereads = _calls(tendered, "GET /v2/orders/{id}")
    report.add(
        "Transactions reads per order re-read, with tender mappings",
        round(_transactions_calls(tendered) / rereads, 3) if rereads else None,
        "",
        target="<= 1",
        passed=bool(rereads) and _transactions_calls(tendered) <= rereads,
        note=(
            f"{rereads} re-reads of {tendered['orders']} orders, {_transactions_calls(tendered)} transactions reads: "
            "at most one per re-read (none for an order with nothing paid at a gateway: gift certificates and "
            "store credit are on the order itself)"
        ),
    )
    duplicates = sorted({r for part in (plain, tendered) for r in part["duplicate_references"]})
    report.add(
        "X3 entries posted twice",
        len(duplicates),
        "",
        target="= 0",
        passed=not duplicates,
        note=", ".join(duplicates[:5]) or "every reference once",
    )
    report.details = {"without_tenders": plain, "with_tenders": tendered}
    return report


def main(argv: list[str] | None = None) -> int:
    parser = common.cli(__doc__.split("\n")[0], BENCH)
    parser.add_argument("--orders", type=int, default=0, help="orders created through webhooks, per run")
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args(argv)
    args.replay_orders = 0  # bench.economy.measure reads it; the replay path is not run here
    started = time.monotonic()
    report = run(args)
    report.seconds = time.monotonic() - started
    common.print_figures(report.figures, title="API economy with clearing accounts")
    common.write_report(report, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
