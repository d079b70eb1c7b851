"""Webhook intake: authenticate, parse, store once, ring the doorbell. No BigCommerce or X3 call happens here.

The order of checks keeps the cheap and unauthenticated rejections first and never parses an unauthenticated body
as anything but bytes. See docs/decisions/0003-webhook-intake-and-dedupe.md for the dedupe key.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import F

from accounting.rows import insert_unless_exists

from . import signatures, tasks
from .models import BigCommerceStore, Tenant, WebhookEvent

logger = logging.getLogger(__name__)

# Scopes that make us re-read an order. Channel-scoped hooks (store/channel/{id}/order/...) map onto these.
ORDER_SCOPES = {
    "store/order/created",
    "store/order/updated",
    "store/order/archived",
    "store/order/statusUpdated",
    "store/order/refund/created",
}
# Headers worth keeping with the event (never the custom secret header or anything that authenticates).
KEPT_HEADERS = ("webhook-id", "webhook-timestamp", "content-type", "user-agent", "x-forwarded-for")


class IntakeError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class IntakeResult:
    status: int
    message: str
    event_id: int | None = None
    duplicate: bool = False


@dataclass(frozen=True)
class ParsedEvent:
    scope: str
    store_id: str
    order_id: int | None
    refund_id: int | None
    bc_hash: str
    created_at: int | None
    producer: str
    handled: bool


# Limits checked before anything is stored. A validly signed payload outside them is answered 400 with the reason:
# a 5xx would make BigCommerce retry it for 48 hours and then deactivate the hook. The sizes are the columns' own.
MAX_NESTING = 32  # BigCommerce payloads nest 3 deep; the JSON parser is never asked to recurse further
MAX_BIGINT = 2**63 - 1  # ids and created_at are stored in BIGINT columns
MAX_SCOPE = 100
MAX_STORE_ID = 40
MAX_HASH = 64
MAX_WEBHOOK_ID = 180  # the dedupe key is "wh:" + webhook-id within 200 characters
_DIGITS = re.compile(r"[0-9]{1,19}")
_STRUCTURAL = re.compile(r'["\\\[\]{}]')


def _int(value: object, what: str, *, minimum: int = 1) -> int:
    """An integer (or a string of ASCII digits) within ``minimum..MAX_BIGINT``; floats are refused, not rounded."""
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise IntakeError(400, f"{what} must be an integer")
    if not minimum <= value <= MAX_BIGINT:
        raise IntakeError(400, f"{what} must be between {minimum} and {MAX_BIGINT}")
    return value


def _text(value: object, what: str, limit: int, *, allow_int: bool = False) -> str:
    """A printable string of at most ``limit`` characters (no NUL, control character or lone surrogate)."""
    if allow_int and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise IntakeError(400, f"{what} must be a string")
    if len(value) > limit:
        raise IntakeError(400, f"{what} is longer than {limit} characters")
    if not value.isprintable():
        raise IntakeError(400, f"{what} contains control or invalid characters")
    return value


def _reject_constant(name: str) -> None:
    raise IntakeError(400, f"Body is not valid JSON: {name} is not a JSON number")


def _check_nesting(text: str) -> None:
    """Refuse deep nesting before parsing, in one linear pass over the structural characters (brackets outside
    strings). Only bodies with more than ``MAX_NESTING`` opening brackets in all are scanned."""
    if text.count("{") + text.count("[") <= MAX_NESTING:
        return
    depth = 0
    in_string = False
    escaped_at = -1
    for match in _STRUCTURAL.finditer(text):
        at, found = match.start(), match.group()
        if at == escaped_at:
            continue
        if in_string:
            if found == "\\":
                escaped_at = at + 1
            elif found == '"':
                in_string = False
        elif found == '"':
            in_string = True
        elif found in ("[", "{"):
            depth += 1
            if depth > MAX_NESTING:
                raise IntakeError(400, f"Body is nested too deep (more than {MAX_NESTING} levels)")
        elif found in ("]", "}"):
            depth -= 1


def decode_body(body: bytes) -> str:
    """The body as text: UTF-8 only (JSON's encoding for interchange, RFC 8259), with an optional BOM."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise IntakeError(400, "Body must be UTF-8 encoded JSON") from None
    return text.removeprefix("\ufeff")


def _printable(value: str) -> str:
    """An informational header as stored: control characters (NUL is refused by PostgreSQL) become U+FFFD."""
    return value if value.isprintable() else "".join(c if c.isprintable() else "\ufffd" for c in value)


def normalise_scope(scope: str) -> str:
    """``store/channel/2/order/created`` → ``store/order/created``."""
    parts = scope.split("/")
    if len(parts) >= 4 and parts[:2] == ["store", "channel"]:
        return "/".join(["store", *parts[3:]])
    return scope


def parse_payload(body: bytes | str) -> ParsedEvent:
    text = decode_body(body) if isinstance(body, bytes) else body
    _check_nesting(text)
    try:
        payload = json.loads(text, parse_constant=_reject_constant)
    except ValueError:  # JSONDecodeError, or a number literal over Python's digit limit
        raise IntakeError(400, "Body is not valid JSON") from None
    except RecursionError:  # unreachable after _check_nesting; kept so deep input can never become a 500
        raise IntakeError(400, "Body is nested too deep") from None
    if not isinstance(payload, dict):
        raise IntakeError(400, "Body must be a JSON object")
    scope = payload.get("scope")
    data = payload.get("data")
    if not isinstance(scope, str) or not scope:
        raise IntakeError(400, "Missing field: scope")
    scope = _text(scope, "scope", MAX_SCOPE)
    if not isinstance(data, dict):
        raise IntakeError(400, "Missing field: data")
    bc_hash = _text(payload.get("hash") or "", "hash", MAX_HASH)
    store_id = _text(payload.get("store_id") or "", "store_id", MAX_STORE_ID, allow_int=True)
    created_at = payload.get("created_at")
    created_at = _int(created_at, "created_at", minimum=0) if created_at is not None else None
    normalised = normalise_scope(scope)
    handled = normalised in ORDER_SCOPES
    order_id = refund_id = None
    if handled:
        raw_id = data.get("id", data.get("order_id"))
        if raw_id is None:
            raise IntakeError(400, "Missing field: data.id")
        order_id = _int(raw_id, "data.id")
        if normalised == "store/order/refund/created":
            refund = data.get("refund")
            if not isinstance(refund, dict) or refund.get("refund_id") is None:
                raise IntakeError(400, "Missing field: data.refund.refund_id")
            refund_id = _int(refund["refund_id"], "data.refund.refund_id")
    producer = payload.get("producer") or ""
    return ParsedEvent(
        scope=normalised,
        store_id=store_id,
        order_id=order_id,
        refund_id=refund_id,
        bc_hash=bc_hash,
        created_at=created_at,
        producer=producer if isinstance(producer, str) else repr(producer),
        handled=handled,
    )


def delivery_key(headers: Mapping[str, str], event: ParsedEvent, body: bytes) -> str:
    """What makes two deliveries the same event.

    ``webhook-id`` is stable across BigCommerce's retries. Without it, ``hash`` alone is not enough: it is the SHA-1
    of ``data`` only, so two distinct ``updated`` events of one order share it (the official samples for created
    and updated even share one). Scope and the payload's ``created_at`` (the event time, identical on retries) make
    the key specific; a body without ``hash`` falls back to the SHA-256 of the whole body.
    """
    webhook_id = {k.lower(): v for k, v in headers.items()}.get("webhook-id", "").strip()
    if webhook_id:
        return f"wh:{webhook_id[:180]}"
    if event.bc_hash:
        return f"h:{event.scope}:{event.bc_hash}:{event.created_at or ''}"[:200]
    return "b:" + hashlib.sha256(body).hexdigest()


@dataclass(frozen=True)
class Receiver:
    """What intake needs to know about a tenant, kept briefly in process memory (see :func:`receiver_for`)."""

    tenant_id: int
    slug: str
    store_hash: str
    schemes: tuple[str, ...]
    client_secret: str
    header_name: str
    header_value: str


# slug -> (expires at, Receiver or None for "no such active tenant"). Every delivery would otherwise load and
# decrypt the tenant's store again: the cache makes intake as cheap as one INSERT. Saving a tenant or its store
# clears it in this process (connector.apps); other processes follow within RECEIVER_CACHE_SECONDS.
_receivers: dict[str, tuple[float, Receiver | None]] = {}
RECEIVER_CACHE_SECONDS = 10.0


def receiver_for(slug: str) -> Receiver | None:
    now = time.monotonic()
    cached = _receivers.get(slug)
    if cached is not None and cached[0] > now:
        return cached[1]
    tenant = Tenant.objects.select_related("bigcommerce").filter(slug=slug, is_active=True).first()
    store = getattr(tenant, "bigcommerce", None) if tenant else None
    receiver = None
    if tenant is not None and store is not None:
        receiver = Receiver(
            tenant_id=tenant.pk,
            slug=tenant.slug,
            store_hash=store.store_hash,
            schemes=tuple(schemes_for(store)),
            client_secret=store.client_secret,
            header_name=store.webhook_header_name,
            header_value=store.webhook_header_value,
        )
    if len(_receivers) > 10_000:  # unknown slugs from the internet must not grow memory without bound
        _receivers.clear()
    _receivers[slug] = (now + RECEIVER_CACHE_SECONDS, receiver)
    return receiver


def forget_receivers(**kwargs) -> None:
    _receivers.clear()


def schemes_for(store: BigCommerceStore) -> list[str]:
    schemes = []
    if store.accept_standard_webhooks:
        schemes.append(signatures.STANDARD)
    if store.accept_custom_header:
        schemes.append(signatures.CUSTOM_HEADER)
    if store.accept_x_bc_signature:
        schemes.append(signatures.X_BC_SIGNATURE)
    return schemes


def ring_doorbell(event_id: int) -> None:
    """Ring the events doorbell for a committed event: a drain task will take it (and any other waiting event).
    On the Redis broker this costs one ``SET NX`` while a drain is already queued and has not started
    (docs/decisions/0029-coalesced-events-doorbell.md); with ``EVENTS_RING_INTERVAL_MS`` the web process rings
    from a thread of its own, at most that often, instead of in every request (:class:`_Ringer`). A broker failure
    must not fail the delivery: the row is stored, and answering 5xx would only make BigCommerce send it again.
    The sweep picks up events left ``received`` (docs/decisions/0010)."""
    interval = settings.CONNECTOR.get("EVENTS_RING_INTERVAL_MS", 0) / 1000
    if interval > 0 and not tasks.inline_tasks() and tasks.doorbell_store() is not None:
        _ringer.request(interval)
        return
    _ring(f"Webhook event {event_id} is stored but")


def _ring(who: str) -> None:
    try:
        tasks.ring_events_doorbell()
    except (
        Exception
    ) as exc:  # any broker error (Redis down, ORM broker's database hiccup): the sweep owns recovery
        logger.warning(
            "%s the doorbell could not be rung (%s); the sweep will process it", who, type(exc).__name__
        )


class _Ringer:
    """Rings the events doorbell for this process from a daemon thread, at most once per interval, so a burst of
    deliveries costs one Redis round trip per interval instead of one per request.

    Every request that stored an event sets ``wanted`` after its commit; the thread clears it *before* it rings, so
    the ring follows every commit that set it (a request that sets it after the clear gets the next ring). Started
    on first use in each process (gunicorn forks its workers); at exit a pending ring is rung (``atexit``). A
    process killed with a ring pending leaves its events to the sweep, as a lost task does."""

    def __init__(self) -> None:
        self.wanted = threading.Event()
        self.lock = threading.Lock()
        self.pid = 0

    def request(self, interval: float) -> None:
        self.wanted.set()
        if self.pid != os.getpid():
            with self.lock:
                if self.pid != os.getpid():
                    threading.Thread(
                        target=self._run, args=(interval,), name="events-doorbell", daemon=True
                    ).start()
                    atexit.register(self.flush)
                    self.pid = os.getpid()

    def _run(self, interval: float) -> None:
        while True:
            self.wanted.wait()
            self.wanted.clear()
            _ring("Webhook events are stored but")
            time.sleep(interval)

    def flush(self) -> None:
        if self.wanted.is_set():
            self.wanted.clear()
            _ring("At exit, webhook events are stored but")


_ringer = _Ringer()


def receive(*, tenant_slug: str, body: bytes, headers: Mapping[str, str]) -> IntakeResult:
    """Authenticate, validate and store one delivery; queue its processing once the row is committed."""
    receiver = receiver_for(tenant_slug)
    if receiver is None:
        raise IntakeError(404, "Unknown tenant")
    # One plain dict with lower-case names for every check below (iterating Django's HttpHeaders is slow: it
    # was a tenth of intake's CPU when each check did it again).
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        scheme = signatures.verify(
            body,
            lowered,
            schemes=list(receiver.schemes),
            client_secret=receiver.client_secret,
            header_name=receiver.header_name,
            header_value=receiver.header_value,
        )
    except signatures.SignatureError as exc:
        logger.warning("Webhook for tenant %s rejected: %s", receiver.slug, exc)
        raise IntakeError(401, "Signature verification failed") from None

    # Authenticated from here on; everything below that is not storable is the sender's error (400), never 5xx.
    text = decode_body(body)
    event = parse_payload(text)
    if event.producer and event.producer != f"stores/{receiver.store_hash}":
        raise IntakeError(400, "producer does not match this tenant's store")

    webhook_id = _text(lowered.get("webhook-id", "").strip(), "webhook-id header", MAX_WEBHOOK_ID)
    key = delivery_key(lowered, event, body)
    row = WebhookEvent(
        tenant_id=receiver.tenant_id,
        delivery_key=key,
        webhook_id=webhook_id,
        scope=event.scope,
        store_id=event.store_id[:40],
        order_id=event.order_id,
        refund_id=event.refund_id,
        bc_hash=event.bc_hash[:64],
        event_created_at=event.created_at,
        body=text,
        headers={k: _printable(lowered[k][:500]) for k in KEPT_HEADERS if k in lowered},
        verified_by=scheme,
        status=WebhookEvent.Status.RECEIVED if event.handled else WebhookEvent.Status.IGNORED,
    )
    # One autocommitted INSERT … ON CONFLICT DO NOTHING: a duplicate costs no exception, savepoint or rollback,
    # and a new row needs no BEGIN / COMMIT around it (the view runs outside a request transaction).
    if not insert_unless_exists(row):
        WebhookEvent.objects.filter(tenant_id=receiver.tenant_id, delivery_key=key).update(
            deliveries=F("deliveries") + 1
        )
        return IntakeResult(200, "Duplicate delivery: already received", duplicate=True)
    if event.handled:
        transaction.on_commit(lambda: ring_doorbell(row.pk))  # at once, since the row is committed already
    if not event.handled:
        return IntakeResult(200, f"Scope {event.scope} is not handled: recorded as ignored", event_id=row.pk)
    return IntakeResult(200, "Accepted", event_id=row.pk)
