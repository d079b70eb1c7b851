"""Dry run: show what the store's last orders would become in Sage X3. Nothing is posted or stored."""

from __future__ import annotations

import json
from dataclasses import asdict
from decimal import Decimal
from typing import Any

from django.core.management.base import CommandError

from connector.management.base import USAGE, ConnectorCommand, tenant_by_slug
from connector.preview import MAX_ORDERS, OrderPreview, PreviewResult, preview_orders

BAD_INPUT = USAGE


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise CommandError(f"{text!r} is not a whole number", returncode=BAD_INPUT) from None
    if value < 1:
        raise CommandError(f"{text!r} must be 1 or more", returncode=BAD_INPUT)
    return value


class Command(ConnectorCommand):
    help = (
        "Dry run: fetch the tenant's last orders from BigCommerce (newest first) and show the exact Sage X3 entry "
        "each would become — lines with account names, debit/credit, balance, rounding line, the request body — "
        "and any mapping gaps. Nothing is sent to Sage X3 and nothing is stored."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("tenant", help="Tenant slug")
        parser.add_argument(
            "--last", default="20", help=f"How many of the newest orders (1–{MAX_ORDERS}; 20)"
        )
        parser.add_argument(
            "--order", nargs="+", action="extend", default=[], metavar="ID", help="Exactly these order IDs"
        )
        parser.add_argument("--format", default="text", help="text (default) or json")

    def handle(self, *args, tenant: str, last: str, order: list[str], format: str, **options) -> None:
        if format not in ("text", "json"):
            raise CommandError(f"--format must be text or json, not {format!r}", returncode=BAD_INPUT)
        count = positive_int(str(last))
        if count > MAX_ORDERS:
            raise CommandError(f"--last must be at most {MAX_ORDERS}", returncode=BAD_INPUT)
        ids = [positive_int(i) for i in order]
        t = tenant_by_slug(tenant, "bigcommerce", "x3")
        result = preview_orders(t, last=count, order_ids=ids)
        if result.error and not result.orders:
            raise CommandError(result.error, returncode=1)
        if format == "json":
            self.stdout.write(json.dumps(as_json(result), indent=2))
        else:
            self.stdout.write(as_text(result))
        if result.error:
            raise CommandError(result.error, returncode=1)


def as_json(result: PreviewResult) -> dict[str, Any]:
    def plain(value: Any) -> Any:
        if isinstance(value, Decimal):
            return str(value)
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        if hasattr(value, "isoformat"):
            return value.isoformat()
        return value

    data = plain(asdict(result))
    for shown, order in zip(data["orders"], result.orders, strict=True):
        shown["balanced"] = order.balanced
    data["sent_to_x3"] = False
    return data


def as_text(result: PreviewResult) -> str:
    out = [
        f"Dry run for {result.tenant} ({result.method}): {len(result.orders)} order(s), nothing sent to Sage X3, "
        "nothing stored."
    ]
    if not result.chart_loaded:
        out.append(
            "No chart of accounts is loaded: account names are not shown and accounts are not checked."
        )
    for order in result.orders:
        out += ["", *order_text(order)]
    out += [
        "",
        f"{result.gap_count} gap(s) to fix." if result.gap_count else "No gaps: every order would post.",
    ]
    return "\n".join(out)


def order_text(order: OrderPreview) -> list[str]:
    if order.error:
        return [f"Order {order.order_id}: {order.error}"]
    channel = f"channel {order.channel_id}" + (f" ({order.channel_name})" if order.channel_name else "")
    out = [f"Order {order.order_id} · {channel} · {order.status} · {order.currency}: {order.state_words}"]
    if order.reference:
        out.append(f"  X3 reference {order.reference}, accounting date {order.accounting_date}")
    if order.lines:
        width = max(len(f"{ln.account} {ln.account_name}".strip()) for ln in order.lines)
        for ln in order.lines:
            account = f"{ln.account} {ln.account_name}".strip() or "(blank)"
            out.append(
                f"  {ln.role:<10} {account:<{width}}  {_amount(ln.debit):>14}  {_amount(ln.credit):>14}  "
                f"{ln.description}"
            )
        check = "balanced" if order.balanced else "NOT BALANCED"
        out.append(
            f"  {'total':<10} {'':<{width}}  {order.total_debit:>14,}  {order.total_credit:>14,}  {check}"
        )
        if order.rounding:
            flag = f" ({order.flag_reason})" if order.flag_reason else ""
            out.append(f"  rounding line: {order.rounding:,} {order.currency}{flag}")
    out += [f"  note: {n}" for n in order.notes]
    out += [f"  GAP: {g.message}" for g in order.gaps]
    if order.body:
        out.append(f"  request body ({order.body_format}):")
        out += [f"    {line}" for line in order.body.splitlines()]
    return out


def _amount(value: Decimal) -> str:
    return f"{value:,}" if value else ""
