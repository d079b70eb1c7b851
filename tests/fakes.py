"""In-memory stand-ins for the two external systems, at the client interface (unit level).

They parse BigCommerce-shaped JSON with the real client's parsers, and keep X3 entries the way X3 would (one per
create, found by reference), so scenario tests read like the books. Over-the-wire tests use the simulators.
"""

from __future__ import annotations

import copy
import json
from decimal import Decimal

from integrations.bigcommerce.client import iter_orders_modified
from integrations.bigcommerce.parsing import (
    consignment_products,
    parse_order,
    parse_refund,
    parse_transaction,
)
from integrations.errors import NotFoundError
from integrations.sagex3.types import Entry, PostedEntry


class FakeBigCommerce:
    def __init__(self) -> None:
        self.orders: dict[int, dict] = {}
        self.refunds: dict[int, list[dict]] = {}
        self.hooks: list = []
        self.transactions: dict[int, list[dict]] = {}
        self.calls = 0
        self.transaction_calls = 0

    def put_order(self, data: dict) -> None:
        self.orders[data["id"]] = copy.deepcopy(data)

    def add_refund(
        self,
        order_id: int,
        refund_id: int,
        *,
        total: str,
        tax: str = "0",
        items: list[dict],
        created: str = "2026-04-10T10:00:00+00:00",
        declined: bool = False,
    ) -> None:
        self.refunds.setdefault(order_id, []).append(
            {
                "id": refund_id,
                "order_id": order_id,
                "user_id": 0,
                "created": created,
                "reason": "test",
                "total_amount": Decimal(total),
                "total_tax": Decimal(tax),
                "uses_merchant_override_values": False,
                "items": items,
                "payments": [
                    {
                        "id": refund_id,
                        "provider_id": "braintree",
                        "amount": Decimal(total),
                        "offline": False,
                        "is_declined": declined,
                        "declined_message": "",
                    }
                ],
            }
        )

    def get_order(self, order_id: int):
        self.calls += 1
        if order_id not in self.orders:
            raise NotFoundError(f"order {order_id} not found", status_code=404)
        raw = json.loads(json.dumps(self.orders[order_id]), parse_float=Decimal)
        return parse_order(raw, consignment_products(raw))

    def add_transaction(
        self,
        order_id: int,
        *,
        gateway: str,
        amount: str,
        method: str = "credit_card",
        event: str = "purchase",
    ) -> None:
        rows = self.transactions.setdefault(order_id, [])
        rows.append(
            {
                "id": len(rows) + 1,
                "order_id": str(order_id),
                "event": event,
                "method": method,
                "gateway": gateway,
                "amount": Decimal(amount),
                "currency": "USD",
                "status": "ok",
                "test": False,
            }
        )

    def get_order_transactions(self, order_id: int):
        self.calls += 1
        self.transaction_calls += 1
        return [parse_transaction(t) for t in self.transactions.get(order_id, [])]

    def get_order_refunds(self, order_id: int):
        self.calls += 1
        return [parse_refund(r) for r in self.refunds.get(order_id, [])]

    def list_orders(
        self,
        *,
        min_date_modified=None,
        max_date_modified=None,
        min_id=None,
        page=1,
        limit=250,
        sort="date_modified:asc",
    ):
        """``GET /v2/orders`` as BigCommerce filters it: inclusive bounds, to the second; one sort field."""
        self.calls += 1
        rows = [self.get_order(i) for i in self.orders]
        self.calls -= len(rows)  # get_order above is bookkeeping, not API calls
        low = min_date_modified.replace(microsecond=0) if min_date_modified else None
        high = max_date_modified.replace(microsecond=0) if max_date_modified else None
        rows = [
            o
            for o in rows
            if (low is None or o.date_modified >= low)
            and (high is None or o.date_modified <= high)
            and (min_id is None or o.id >= min_id)
        ]
        field = sort.partition(":")[0]
        rows.sort(key=lambda o: (getattr(o, field), o.id))
        chunk = rows[(page - 1) * limit : page * limit]
        return [
            {
                "id": o.id,
                "date_modified": o.date_modified,
                "status_id": o.status_id,
                "channel_id": o.channel_id,
            }
            for o in chunk
        ]

    def iter_orders_modified(self, since, until=None, *, limit=250):
        return iter_orders_modified(self.list_orders, since, until, limit=limit)

    def list_refunds(self, *, created_min=None, page=1, limit=250):
        self.calls += 1
        rows = [parse_refund(r) for refunds in self.refunds.values() for r in refunds]
        rows = sorted(
            (r for r in rows if created_min is None or r.created >= created_min), key=lambda r: r.id
        )
        return rows[(page - 1) * limit : page * limit], len(rows) > page * limit

    def list_hooks(self):
        self.calls += 1
        return list(self.hooks)

    def update_hook(self, hook_id: int, **fields):
        self.calls += 1
        from dataclasses import replace

        self.hooks = [replace(h, **fields) if h.id == hook_id else h for h in self.hooks]
        return next(h for h in self.hooks if h.id == hook_id)

    def get_refund(self, refund_id: int):
        self.calls += 1
        for refunds in self.refunds.values():
            for r in refunds:
                if r["id"] == refund_id:
                    return parse_refund(r)
        raise NotFoundError(f"refund {refund_id} not found", status_code=404)


class FakeX3:
    """Stores created entries; each must balance, like X3's own check."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self.call_log: list = []
        self.fail_next: list[Exception] = []

    def create_entry(self, entry: Entry) -> PostedEntry:
        if self.fail_next:
            raise self.fail_next.pop(0)
        debit = sum(line.debit for line in entry.lines)
        credit = sum(line.credit for line in entry.lines)
        assert debit == credit, f"unbalanced entry {entry.reference}: {debit} != {credit}"
        self.entries.append(entry)
        return PostedEntry(document_number=f"ODG-{len(self.entries):06d}", reference=entry.reference)

    def find_entry(self, reference: str) -> PostedEntry | None:
        for i, entry in enumerate(self.entries, start=1):
            if entry.reference == reference:
                return PostedEntry(document_number=f"ODG-{i:06d}", reference=reference)
        return None

    def receivable_total(self, account_prefix: str = "41") -> Decimal:
        return sum(
            (
                line.debit - line.credit
                for e in self.entries
                for line in e.lines
                if line.account.startswith(account_prefix)
            ),
            Decimal(0),
        )
