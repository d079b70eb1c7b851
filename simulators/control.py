"""Drive the simulators' ``/_sim/`` control APIs over HTTP, and run them as separate processes.

bc = BigCommerceControl("http://127.0.0.1:8701")
store = bc.create_store(hash="acme", tax_inclusive=True, currency="EUR", orders=20)
order = bc.create_order("acme", status_id=11, lines=[{"name": "Mug", "price": "12.00", "quantity": 2}])
bc.refund("acme", order["order"]["id"], full=True)   # fires refund/created + statusUpdated + updated
bc.wait_for_webhooks()

x3 = SageX3Control("http://127.0.0.1:8702")
x3.configure(closed_periods=["2026-10"])
x3.set_faults(drop_after_commit_next=1)
x3.entries(reference="BC-acme-250")

proc, info = spawn("bigcommerce", "--stores", "2")   # python -m simulators.bigcommerce --port 0 ...
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests


class ControlError(RuntimeError):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"control API answered {status}: {body[:500]}")
        self.status = status
        self.body = body


class _Client:
    def __init__(
        self, base_url: str, *, timeout: float = 10.0, session: requests.Session | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = session or requests.Session()

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None, **params: Any) -> Any:
        response = self.session.request(
            method,
            f"{self.base_url}/_sim{path}",
            json=body if method != "GET" else None,
            params={k: v for k, v in params.items() if v is not None} or None,
            timeout=self.timeout,
        )
        if response.status_code >= 400:
            raise ControlError(response.status_code, response.text)
        return response.json() if response.content else None

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/health")

    def wait_until_up(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.health()
                return
            except (requests.ConnectionError, ControlError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def faults(self) -> dict[str, Any]:
        return self._call("GET", "/faults")

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        """e.g. ``latency_ms=200, jitter_ms=50, error_rate=0.1, fail_next=2, refuse_for_ms=1000, reset_next=1,
        timeout_next=1, timeout_ms=5000, drop_after_commit_next=1, methods=["POST"]``."""
        return self._call("POST", "/faults", faults)

    def clear_faults(self) -> dict[str, Any]:
        return self._call("POST", "/faults", {"clear": True})

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "/stats")

    def reset_stats(self) -> None:
        self._call("POST", "/stats/reset", {})


class BigCommerceControl(_Client):
    # ---- stores
    def reset(self, *, empty: bool = False) -> dict[str, Any]:
        """Back to the startup stores (or no store at all with ``empty=True``); faults cleared."""
        return self._call("POST", "/reset", {"empty": empty})

    def stores(self) -> list[dict[str, Any]]:
        return self._call("GET", "/stores")["stores"]

    def store(self, store_hash: str) -> dict[str, Any]:
        return self._call("GET", f"/stores/{store_hash}")

    def create_store(self, **spec: Any) -> dict[str, Any]:
        """``hash, store_id, access_token, client_secret, currency, currencies, tax_inclusive, tax_rate,
        fractional_tax, channels, seed, preset, rate_limit_quota, rate_limit_window_ms, orders, replace``."""
        return self._call("POST", "/stores", spec)

    def delete_store(self, store_hash: str) -> None:
        self._call("DELETE", f"/stores/{store_hash}")

    def reset_store(self, store_hash: str, **options: Any) -> dict[str, Any]:
        return self._call("POST", f"/stores/{store_hash}/reset", options)

    def api_session(self, store_hash: str) -> tuple[requests.Session, str]:
        """A session carrying the store's ``X-Auth-Token`` and the store's API base (``.../stores/{hash}``)."""
        info = self.store(store_hash)
        session = requests.Session()
        session.headers.update({"X-Auth-Token": info["access_token"], "Accept": "application/json"})
        return session, info["api_base"]

    # ---- orders
    def generate_orders(self, store_hash: str, count: int, **options: Any) -> dict[str, Any]:
        """``start, end (ISO), seed, refund_rate, full_refund_rate, edit_rate, status_weights, spec, fire_webhooks``."""
        return self._call("POST", f"/stores/{store_hash}/orders/generate", {"count": count, **options})

    def create_order(self, store_hash: str, **fields: Any) -> dict[str, Any]:
        return self._call("POST", f"/stores/{store_hash}/orders", fields)

    def order(self, store_hash: str, order_id: int) -> dict[str, Any]:
        return self._call("GET", f"/stores/{store_hash}/orders/{order_id}")

    def set_status(self, store_hash: str, order_id: int, status_id: int, **options: Any) -> dict[str, Any]:
        return self._call(
            "POST", f"/stores/{store_hash}/orders/{order_id}/status", {"status_id": status_id, **options}
        )

    def edit_order(self, store_hash: str, order_id: int, **changes: Any) -> dict[str, Any]:
        """``lines=[{"id", "quantity", "price", "price_ex_tax", "price_inc_tax", "cost_price"}], add_lines,
        shipping_cost, handling_cost, fees, discount_amount, staff_notes``."""
        return self._call("POST", f"/stores/{store_hash}/orders/{order_id}/edit", changes)

    def refund(self, store_hash: str, order_id: int, **spec: Any) -> dict[str, Any]:
        """``items=[{"item_type", "item_id", "quantity"|"amount"}]``, ``full=True`` or ``amount=x``; ``reason``."""
        return self._call("POST", f"/stores/{store_hash}/orders/{order_id}/refunds", spec)

    def ship(self, store_hash: str, order_id: int, **spec: Any) -> dict[str, Any]:
        """One shipment: ``items=[{"order_product_id", "quantity"}]`` (default: everything left to ship)."""
        return self._call("POST", f"/stores/{store_hash}/orders/{order_id}/ship", spec)

    def archive(self, store_hash: str, order_id: int) -> dict[str, Any]:
        return self._call("POST", f"/stores/{store_hash}/orders/{order_id}/archive", {})

    def fire_event(self, store_hash: str, scope: str, data: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", f"/stores/{store_hash}/events", {"scope": scope, "data": data})

    # ---- rate limits, webhooks, stats
    def set_rate_limit(
        self, store_hash: str, quota: int | None = None, window_ms: int | None = None
    ) -> dict[str, Any]:
        return self._call(
            "POST", f"/stores/{store_hash}/rate_limit", {"quota": quota, "window_ms": window_ms}
        )

    def webhook_settings(self, **settings: Any) -> dict[str, Any]:
        """``compression, retry_schedule, timeout_s, duplicate_rate, duplicate_next, signatures, require_https``."""
        return self._call("POST" if settings else "GET", "/webhooks", settings or None)

    def wait_for_webhooks(self, timeout: float = 5.0) -> bool:
        return self._call("POST", "/webhooks/wait", {"timeout": timeout})["idle"]

    def deliveries(
        self, store_hash: str, *, scope: str | None = None, hook_id: int | None = None
    ) -> list[dict[str, Any]]:
        return self._call("GET", f"/stores/{store_hash}/deliveries", scope=scope, hook_id=hook_id)[
            "deliveries"
        ]

    def store_stats(self, store_hash: str) -> dict[str, Any]:
        return self._call("GET", f"/stores/{store_hash}/stats")


class SageX3Control(_Client):
    def reset(self, *, config: bool = True) -> None:
        """Forget every entry, sequence and fault; also restore the startup config unless ``config=False``."""
        self._call("POST", "/reset", {"config": config})

    def config(self) -> dict[str, Any]:
        return self._call("GET", "/config")

    def configure(self, **changes: Any) -> dict[str, Any]:
        """``folders, users, class, representation, fields, chart, sites, journals, entry_types, currencies,
        closed_periods, closed_before, sequence_format, create_status, reject_duplicate_reference, soap``."""
        return self._call("POST", "/config", changes)

    def entries(self, *, reference: str | None = None, folder: str | None = None) -> list[dict[str, Any]]:
        return self._call("GET", "/entries", reference=reference, folder=folder)["entries"]

    def delete_entry(self, reference: str) -> int:
        """Forget the entries carrying ``reference`` (to provoke a "missing" in a tie-out)."""
        return self._call("POST", "/entries/delete", {"reference": reference})["deleted"]

    def alter_entry(self, reference: str, **fields: Any) -> int:
        """Change header fields of the entries carrying ``reference`` (to provoke a "differs" in a tie-out)."""
        return self._call("POST", "/entries/alter", {"reference": reference, "fields": fields})["altered"]


# ------------------------------------------------------------------------------------------------------- processes


def spawn(
    simulator: str, *args: str, port: int = 0, env: dict[str, str] | None = None, timeout: float = 15.0
) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """Run ``python -m simulators.<simulator> --port <port> *args`` and wait for its JSON banner line.

    Returns ``(process, banner)``; ``banner["base_url"]`` is where it listens. Stop it with ``process.terminate()``.
    """
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen(  # noqa: S603 - fixed module name, our own interpreter
        [sys.executable, "-m", f"simulators.{simulator}", "--port", str(port), *args],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    line = ""
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.strip().startswith("{"):
            return proc, json.loads(line)
        if proc.poll() is not None:
            break
    proc.kill()
    stderr = proc.stderr.read() if proc.stderr else ""
    raise RuntimeError(f"simulator {simulator} did not start: {line!r} {stderr[-2000:]}")
