"""Webhook intake: authenticate, parse, store once, ring the doorbell. No BigCommerce or X3 call happens here.

The order of checks keeps the cheap and unauthenticated rejections first and never parses an unauthenticated body
as anything but bytes. See docs/decisions/0003-webhook-intake-and-dedupe.md for the dedupe key.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import F

from . import signatures
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


def _int(value: object, what: str) -> int:
    if isinstance(value, bool):
        raise IntakeError(400, f"{what} must be an integer")
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise IntakeError(400, f"{what} must be an integer") from None


def normalise_scope(scope: str) -> str:
    """``store/channel/2/order/created`` → ``store/order/created``."""
    parts = scope.split("/")
    if len(parts) >= 4 and parts[:2] == ["store", "channel"]:
        return "/".join(["store", *parts[3:]])
    return scope


def parse_payload(body: bytes) -> ParsedEvent:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise IntakeError(400, "Body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise IntakeError(400, "Body must be a JSON object")
    scope = payload.get("scope")
    data = payload.get("data")
    if not isinstance(scope, str) or not scope:
        raise IntakeError(400, "Missing field: scope")
    if not isinstance(data, dict):
        raise IntakeError(400, "Missing field: data")
    bc_hash = payload.get("hash") or ""
    if not isinstance(bc_hash, str):
        raise IntakeError(400, "hash must be a string")
    created_at = payload.get("created_at")
    created_at = _int(created_at, "created_at") if created_at is not None else None
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
    return ParsedEvent(
        scope=normalised,
        store_id=str(payload.get("store_id") or ""),
        order_id=order_id,
        refund_id=refund_id,
        bc_hash=bc_hash,
        created_at=created_at,
        producer=str(payload.get("producer") or ""),
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


def receive(*, tenant_slug: str, body: bytes, headers: Mapping[str, str]) -> IntakeResult:
    """Authenticate, validate and store one delivery; queue its processing once the row is committed."""
    receiver = receiver_for(tenant_slug)
    if receiver is None:
        raise IntakeError(404, "Unknown tenant")
    try:
        scheme = signatures.verify(
            body,
            headers,
            schemes=list(receiver.schemes),
            client_secret=receiver.client_secret,
            header_name=receiver.header_name,
            header_value=receiver.header_value,
        )
    except signatures.SignatureError as exc:
        logger.warning("Webhook for tenant %s rejected: %s", receiver.slug, exc)
        raise IntakeError(401, "Signature verification failed") from None

    event = parse_payload(body)
    if event.producer and event.producer != f"stores/{receiver.store_hash}":
        raise IntakeError(400, "producer does not match this tenant's store")

    lowered = {k.lower(): v for k, v in headers.items()}
    key = delivery_key(lowered, event, body)
    row = WebhookEvent(
        tenant_id=receiver.tenant_id,
        delivery_key=key,
        webhook_id=lowered.get("webhook-id", "")[:200],
        scope=event.scope,
        store_id=event.store_id[:40],
        order_id=event.order_id,
        refund_id=event.refund_id,
        bc_hash=event.bc_hash[:64],
        event_created_at=event.created_at,
        body=body.decode("utf-8", errors="replace"),
        headers={k: lowered[k][:500] for k in KEPT_HEADERS if k in lowered},
        verified_by=scheme,
        status=WebhookEvent.Status.RECEIVED if event.handled else WebhookEvent.Status.IGNORED,
    )
    try:
        with transaction.atomic():
            row.save()
            if event.handled:
                from .tasks import enqueue_event

                transaction.on_commit(lambda: enqueue_event(row.pk))
    except IntegrityError:
        WebhookEvent.objects.filter(tenant_id=receiver.tenant_id, delivery_key=key).update(
            deliveries=F("deliveries") + 1
        )
        return IntakeResult(200, "Duplicate delivery: already received", duplicate=True)
    if not event.handled:
        return IntakeResult(200, f"Scope {event.scope} is not handled: recorded as ignored", event_id=row.pk)
    return IntakeResult(200, "Accepted", event_id=row.pk)
