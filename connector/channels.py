"""Channel names from BigCommerce (``GET /v3/channels``), cached per tenant in :class:`StoreChannel`.

Names are refreshed on demand (the tenant action, the button on the reconciliation page) and when the
reconciliation is opened with a cache older than :data:`MAX_AGE`. BigCommerce being down never fails a page: the
name falls back to the cache, then to the channel mapping's name, then to the bare channel number. See
docs/decisions/0021-reconciliation-reread-and-tie-out.md.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from django.core.cache import cache
from django.core.signals import request_started
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from accounting.models import ChannelMapping
from integrations.errors import IntegrationError

from . import clients
from .models import StoreChannel, Tenant

logger = logging.getLogger(__name__)
MAX_AGE = timedelta(hours=24)
# After a failed refresh on page load, don't try again for a while: a page must not wait on a store that is down.
RETRY_AFTER = timedelta(minutes=10)


def refresh_channels(tenant: Tenant, *, bc_client=None, now: datetime | None = None) -> int:
    """Read the store's channels and store their names. Returns how many. Raises IntegrationError."""
    if bc_client is None:
        bc_client = clients.bigcommerce_client(tenant)
    now = now or timezone.now()
    channels = bc_client.list_channels()
    store_listed(tenant, channels, now=now)
    return len(channels)


def store_listed(tenant: Tenant, channels, *, now: datetime | None = None) -> None:
    """Cache channels just read from BigCommerce (the guided setup's channel step reads them too)."""
    now = now or timezone.now()
    with transaction.atomic():
        for ch in channels:
            StoreChannel.objects.update_or_create(
                tenant=tenant,
                channel_id=ch.id,
                defaults={
                    "name": ch.name[:200],
                    "type": ch.type[:40],
                    "platform": ch.platform[:60],
                    "status": ch.status[:40],
                    "refreshed_at": now,
                },
            )
        # A channel BigCommerce no longer lists keeps its last name (old entries still show it), with the old time.


def _failure_key(tenant_id: int) -> str:
    return f"channels-refresh-failed:{tenant_id}"


def refresh_if_stale(tenant: Tenant, *, bc_client=None, now: datetime | None = None) -> str:
    """Refresh the cached names when older than MAX_AGE (or never read). Never raises: returns a plain-words
    warning when BigCommerce could not be read (the cached names stay in use), else ""."""
    now = now or timezone.now()
    latest = StoreChannel.objects.filter(tenant=tenant).aggregate(at=Max("refreshed_at"))["at"]
    if latest is not None and now - latest < MAX_AGE:
        return ""
    if not hasattr(tenant, "bigcommerce") or cache.get(_failure_key(tenant.pk)):
        return ""
    try:
        refresh_channels(tenant, bc_client=bc_client, now=now)
    except Exception as exc:  # a name lookup never breaks a page, whatever went wrong
        reason = exc.message if isinstance(exc, IntegrationError) else type(exc).__name__
        logger.warning("Could not read the channels of tenant %s: %s", tenant.slug, reason)
        cache.set(_failure_key(tenant.pk), True, RETRY_AFTER.total_seconds())
        return (
            f"Channel names could not be refreshed from BigCommerce ({reason}); showing the last known ones."
        )
    return ""


def channel_names(tenant_id: int) -> dict[int, str]:
    """Channel number → name: BigCommerce's (cached), else the channel mapping's name."""
    names = {
        m["channel_id"]: m["name"]
        for m in ChannelMapping.objects.filter(tenant_id=tenant_id)
        .order_by("effective_from")
        .values("channel_id", "name")
        if m["name"]
    }
    names.update(
        {
            c["channel_id"]: c["name"]
            for c in StoreChannel.objects.filter(tenant_id=tenant_id).values("channel_id", "name")
            if c["name"]
        }
    )
    return names


def channel_label(channel_id: int | None, names: dict[int, str]) -> str:
    if channel_id is None:
        return "—"
    return f"{channel_id} · {names[channel_id]}" if channel_id in names else str(channel_id)


# Lists (the postings admin) label each row: the names are read once per tenant per request.
_memo = threading.local()


def _forget(**kwargs) -> None:
    _memo.names = {}


request_started.connect(_forget, dispatch_uid="connector.channels.forget")


def label_for(tenant_id: int, channel_id: int | None) -> str:
    memo: dict[int, dict[int, str]] = getattr(_memo, "names", None) or {}
    _memo.names = memo
    if tenant_id not in memo:
        memo[tenant_id] = channel_names(tenant_id)
    return channel_label(channel_id, memo[tenant_id])


def store_channels(tenant_id: int) -> list[StoreChannel]:
    """The store's channels as BigCommerce last listed them (empty when never read)."""
    return list(StoreChannel.objects.filter(tenant_id=tenant_id).order_by("channel_id"))


def store_channel_label(channel: StoreChannel) -> str:
    """ "1 · Main storefront (storefront, active)": what a person picking a channel needs to recognise it."""
    details = ", ".join(part for part in (channel.type, channel.status) if part)
    return f"{channel.channel_id} · {channel.name}" + (f" ({details})" if details else "")
