"""Webhook delivery the way BigCommerce does it.

* Body: ``{"scope", "store_id", "data", "hash", "created_at", "producer"}`` where ``hash`` is the SHA-1 of the
  JSON-encoded ``data`` and ``producer`` is ``stores/{store_hash}``. The body is fixed when the event happens, so
  retries and duplicates carry byte-identical bodies (and hashes).
* Standard Webhooks headers: ``webhook-id`` (stable across retries of one event to one hook), ``webhook-timestamp``
  (per attempt) and ``webhook-signature`` = ``v1,`` + base64(HMAC-SHA256(key=client_secret bytes,
  msg=f"{id}.{timestamp}.{body}")), i.e. what ``standardwebhooks.Webhook(base64(client_secret))`` verifies; plus the
  custom ``headers`` registered on the hook.
* Any 2xx is success. Otherwise retry after 60, 180, 300, 600, 900, 1800, 3600, 7200, 21600, 50400, 86400 s
  (multiplied by ``compression`` so tests finish quickly); when the last retry fails the hook is deactivated
  (``is_active = false``).
* Optional duplicate deliveries (``duplicate_rate`` / ``duplicate_next``), as BigCommerce documents they happen.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import hmac
import http.client
import itertools
import json
import random
import ssl
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

DEFAULT_RETRY_SCHEDULE: tuple[int, ...] = (60, 180, 300, 600, 900, 1800, 3600, 7200, 21600, 50400, 86400)


def payload_hash(data: dict[str, Any]) -> str:
    """SHA-1 of the JSON-encoded ``data`` (compact, as PHP's json_encode writes it)."""
    return hashlib.sha1(json.dumps(data, separators=(",", ":")).encode(), usedforsecurity=False).hexdigest()


def build_body(scope: str, store_id: str, store_hash: str, data: dict[str, Any], created_at: int) -> bytes:
    payload = {
        "scope": scope,
        "store_id": store_id,
        "data": data,
        "hash": payload_hash(data),
        "created_at": created_at,
        "producer": f"stores/{store_hash}",
    }
    return json.dumps(payload, separators=(",", ":")).encode()


def sign(client_secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value (Standard Webhooks ``v1``), keyed with the raw client secret."""
    to_sign = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(client_secret.encode(), to_sign, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def scope_matches(hook_scope: str, event_scope: str) -> bool:
    if hook_scope == event_scope:
        return True
    if hook_scope.endswith("/*"):
        return event_scope.startswith(hook_scope[:-1])
    return False


@dataclass
class WebhookSettings:
    enabled: bool = True
    compression: float = 1.0  # retry delays are multiplied by this (e.g. 0.001: 60 s -> 60 ms)
    retry_schedule: list[float] = field(default_factory=lambda: list(DEFAULT_RETRY_SCHEDULE))
    timeout_s: float = 10.0  # per attempt; BigCommerce's real timeout is not documented
    duplicate_rate: float = 0.0  # probability that an event is delivered twice
    duplicate_next: int = 0  # the next N events are delivered twice
    duplicate_delay_ms: int = 50
    signatures: bool = True  # send the Standard Webhooks headers
    verify_tls: bool = True
    require_https: bool = False  # BigCommerce requires https on port 443; off so tests can use local http
    max_workers: int = 8

    def update(self, changes: dict[str, Any]) -> None:
        for key, value in changes.items():
            if not hasattr(self, key):
                raise ValueError(f"unknown webhook setting {key!r}")
            current = getattr(self, key)
            if key == "retry_schedule":
                value = [float(v) for v in value]
            elif isinstance(current, bool):
                value = bool(value)
            elif isinstance(current, int):
                value = int(value)
            elif isinstance(current, float):
                value = float(value)
            setattr(self, key, value)

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass
class Delivery:
    msg_id: str  # webhook-id: stable across retries
    event_id: str
    store_hash: str
    hook_id: int
    scope: str
    body: bytes
    attempt: int = 0  # 0 = first attempt, n = n-th retry
    duplicate: bool = False


class HookSource:
    """What the dispatcher needs from the simulator (called without holding any dispatcher lock)."""

    def hook_for_delivery(self, store_hash: str, hook_id: int) -> tuple[dict[str, Any], str] | None:
        """(hook dict, client secret) if the hook still exists and is active, else None."""
        raise NotImplementedError

    def deactivate_hook(self, store_hash: str, hook_id: int) -> None:
        raise NotImplementedError

    def record_attempt(self, store_hash: str, record: dict[str, Any]) -> None:
        raise NotImplementedError


class Dispatcher:
    def __init__(
        self, source: HookSource, settings: WebhookSettings | None = None, seed: int | None = None
    ) -> None:
        self.source = source
        self.settings = settings or WebhookSettings()
        self._rng = random.Random(seed)
        self._heap: list[tuple[float, int, Delivery]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._in_flight = 0
        self._stopping = False
        self._pool = ThreadPoolExecutor(
            max_workers=self.settings.max_workers, thread_name_prefix="bc-webhook"
        )
        self._thread = threading.Thread(target=self._loop, name="bc-webhook-dispatcher", daemon=True)
        self._thread.start()

    # ---- public
    def publish(
        self, store_hash: str, store_id: str, hooks: list[dict[str, Any]], scope: str, data: dict[str, Any]
    ) -> int:
        """Queue one event for every active hook whose scope matches. Returns the number of deliveries queued."""
        if not self.settings.enabled:
            return 0
        created_at = int(time.time())
        event_id = str(uuid.uuid4())
        queued = 0
        duplicate = self._take_duplicate()
        for hook in hooks:
            if not hook["is_active"]:
                continue
            channel_scope = None
            if not scope_matches(hook["scope"], scope):
                # channel-scoped order hooks: store/channel/{id}/order/... with data {"order_id": N}
                channel_id = data.get("_channel_id")
                prefix = "store/order/"
                if channel_id is None or not scope.startswith(prefix):
                    continue
                channel_scope = f"store/channel/{channel_id}/order/{scope[len(prefix) :]}"
                if not scope_matches(hook["scope"], channel_scope):
                    continue
            clean = {k: v for k, v in data.items() if not k.startswith("_")}
            if channel_scope:
                body = build_body(channel_scope, store_id, store_hash, {"order_id": clean["id"]}, created_at)
                hook_scope = channel_scope
            else:
                body = build_body(scope, store_id, store_hash, clean, created_at)
                hook_scope = scope
            delivery = Delivery(
                msg_id=f"msg_{uuid.uuid4().hex}",
                event_id=event_id,
                store_hash=store_hash,
                hook_id=int(hook["id"]),
                scope=hook_scope,
                body=body,
            )
            self._schedule(delivery, 0.0)
            queued += 1
            if duplicate:
                dup = Delivery(**{**delivery.__dict__, "duplicate": True})
                self._schedule(dup, self.settings.duplicate_delay_ms / 1000.0)
        return queued

    def pending(self) -> int:
        with self._cond:
            return len(self._heap) + self._in_flight

    def wait_idle(self, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._heap or self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
            return True

    def clear(self, store_hash: str | None = None) -> None:
        with self._cond:
            self._heap = [
                item for item in self._heap if store_hash is not None and item[2].store_hash != store_hash
            ]
            heapq.heapify(self._heap)
            self._cond.notify_all()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._heap.clear()
            self._cond.notify_all()
        self._thread.join(2)
        self._pool.shutdown(wait=False, cancel_futures=True)

    # ---- internals
    def _take_duplicate(self) -> bool:
        with self._cond:
            if self.settings.duplicate_next > 0:
                self.settings.duplicate_next -= 1
                return True
            return self.settings.duplicate_rate > 0 and self._rng.random() < self.settings.duplicate_rate

    def _schedule(self, delivery: Delivery, delay_s: float) -> None:
        with self._cond:
            heapq.heappush(self._heap, (time.monotonic() + delay_s, next(self._seq), delivery))
            self._cond.notify_all()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._stopping:
                    if self._heap and self._heap[0][0] <= time.monotonic():
                        break
                    timeout = (self._heap[0][0] - time.monotonic()) if self._heap else None
                    self._cond.wait(timeout if timeout is None else max(0.0, min(timeout, 1.0)))
                if self._stopping:
                    return
                _, _, delivery = heapq.heappop(self._heap)
                self._in_flight += 1
            try:
                self._pool.submit(self._run, delivery)
            except RuntimeError:  # pool shut down
                with self._cond:
                    self._in_flight -= 1
                return

    def _run(self, delivery: Delivery) -> None:
        try:
            self._attempt(delivery)
        finally:
            with self._cond:
                self._in_flight -= 1
                self._cond.notify_all()

    def _attempt(self, delivery: Delivery) -> None:
        found = self.source.hook_for_delivery(delivery.store_hash, delivery.hook_id)
        if found is None:
            return  # hook deleted or deactivated meanwhile: BigCommerce stops sending
        hook, secret = found
        timestamp = int(time.time())
        headers = {"Content-Type": "application/json", "User-Agent": "bc-simulator-webhooks/1.0"}
        if self.settings.signatures:
            headers["webhook-id"] = delivery.msg_id
            headers["webhook-timestamp"] = str(timestamp)
            headers["webhook-signature"] = sign(secret, delivery.msg_id, timestamp, delivery.body)
        for key, value in (hook.get("headers") or {}).items():
            headers[str(key)] = str(value)
        started = time.monotonic()
        status, error = self._post(hook["destination"], delivery.body, headers)
        ok = status is not None and 200 <= status < 300
        schedule = self.settings.retry_schedule
        record = {
            "event_id": delivery.event_id,
            "webhook_id": delivery.msg_id,
            "hook_id": delivery.hook_id,
            "scope": delivery.scope,
            "destination": hook["destination"],
            "attempt": delivery.attempt,
            "duplicate": delivery.duplicate,
            "timestamp": timestamp,
            "status": status,
            "error": error,
            "ok": ok,
            "duration_ms": int((time.monotonic() - started) * 1000),
            "body": delivery.body.decode(),
        }
        if not ok and not delivery.duplicate:
            if delivery.attempt < len(schedule):
                delay = schedule[delivery.attempt] * self.settings.compression
                record["next_retry_in_s"] = delay
                retry = Delivery(**{**delivery.__dict__, "attempt": delivery.attempt + 1})
                self._schedule(retry, delay)
            else:
                record["deactivated"] = True
                self.source.deactivate_hook(delivery.store_hash, delivery.hook_id)
        self.source.record_attempt(delivery.store_hash, record)

    def _post(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int | None, str]:
        parts = urlsplit(url)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        conn: http.client.HTTPConnection
        try:
            if parts.scheme == "https":
                context = ssl.create_default_context()
                if not self.settings.verify_tls:
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
                conn = http.client.HTTPSConnection(
                    parts.hostname or "", parts.port or 443, timeout=self.settings.timeout_s, context=context
                )
            elif parts.scheme == "http":
                conn = http.client.HTTPConnection(
                    parts.hostname or "", parts.port or 80, timeout=self.settings.timeout_s
                )
            else:
                return None, f"unsupported scheme {parts.scheme!r}"
            try:
                conn.request("POST", path, body=body, headers=headers)
                response = conn.getresponse()
                response.read(65536)
                return response.status, ""
            finally:
                conn.close()
        except (OSError, http.client.HTTPException) as exc:
            return None, f"{type(exc).__name__}: {exc}"
