"""Alarms: every few minutes, gather each tenant's alarm conditions and send one digest per tenant.

A condition is a set of *items* (posting ids, an expiry date, a circuit opening, …). A digest goes out when a
condition appears, when it gains items that were never notified, when it has lasted ALERT_RENOTIFY_HOURS since its
last notice, or when a notified condition is resolved; otherwise nothing is sent. What was notified is kept in
AlertState, and every digest sent or failed in Notification. Conditions are read from the database (posting
statuses, the X3 connection, webhook events, reconciliation findings), never hooked into the posting code, and a
failure here never touches the pipeline. See docs/operations.md "Alarms and metrics".
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.db.models import Max, Sum
from django.urls import reverse
from django.utils import timezone

from accounting.models import Posting, X3Circuit
from integrations.notify import post_text

from .models import (
    AlertSettings,
    AlertState,
    Notification,
    ReconcileFinding,
    Tenant,
    WebhookEvent,
    X3Connection,
)
from .summaries import overdue_days

logger = logging.getLogger(__name__)
S = Posting.Status
MAX_LISTED = 20  # postings listed by name in one digest; the rest are counted
FINDINGS_KEPT = timedelta(days=7)

# Parked statuses: work that stopped and waits for a person. (one posting …, several postings …, what to do)
PARKED = {
    S.NEEDS_ATTENTION: (
        "needs attention",
        "need attention",
        "Sage X3 refused them or a permanent error stopped them. Fix the cause, then use 'Retry now'.",
    ),
    S.NEEDS_MAPPING: (
        "needs a channel mapping",
        "need a channel mapping",
        "Their sales channel has no GL mapping. Add it under Channel mappings; they are then planned again.",
    ),
    S.NEEDS_REAUTH: (
        "waits for Sage X3 re-authorization",
        "wait for Sage X3 re-authorization",
        "Reconnect with 'Connect to Sage X3' on the tenant: they resume by themselves.",
    ),
}


@dataclass
class Condition:
    key: str
    title: str
    items: frozenset[str]
    advice: str = ""
    link: str = ""
    # Lines describing the given (new) items; by default none.
    describe: Callable[[set[str]], list[str]] = field(default=lambda new: [])


@dataclass
class Digest:
    new: list[tuple[Condition, set[str]]] = field(default_factory=list)  # appeared, or gained items
    reminders: list[Condition] = field(default_factory=list)
    resolved: list[AlertState] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.new or self.reminders or self.resolved)


def fingerprint(items) -> str:
    return hashlib.sha256("\n".join(sorted(items)).encode()).hexdigest()


def _link(path: str, query: dict | None = None) -> str:
    base = settings.CONNECTOR["ALERT_LINK_BASE_URL"].rstrip("/")
    if not base:
        return ""
    return base + path + (f"?{urlencode(query)}" if query else "")


def _count(n: int, noun: str) -> str:
    """ "1 order", "3 orders", "" for none."""
    return "" if not n else f"{n} {noun}{'s' if n != 1 else ''}"


def _ago(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 120:
        return f"{minutes} minutes"
    hours = minutes // 60
    return f"{hours} hours" if hours < 48 else f"{hours // 24} days"


# --- conditions -----------------------------------------------------------------------------------------------------


def parked_postings(tenant: Tenant) -> list[Condition]:
    by_status: dict[str, set[str]] = {}
    for pk, status in Posting.objects.filter(tenant=tenant, status__in=list(PARKED)).values_list(
        "id", "status"
    ):
        by_status.setdefault(status, set()).add(str(pk))
    conditions = []
    for status, (one, several, advice) in PARKED.items():
        ids = by_status.get(status)
        if not ids:
            continue
        conditions.append(
            Condition(
                key=f"postings:{status}",
                title=f"1 posting {one}" if len(ids) == 1 else f"{len(ids)} postings {several}",
                items=frozenset(ids),
                advice=advice,
                link=_link(
                    reverse("admin:accounting_posting_changelist"),
                    {"tenant__id__exact": tenant.pk, "status__exact": status},
                ),
                describe=_describe_postings,
            )
        )
    return conditions


def _describe_postings(new: set[str]) -> list[str]:
    ids = sorted((int(i) for i in new), reverse=True)
    lines = []
    for p in Posting.objects.filter(pk__in=ids[:MAX_LISTED]).order_by("-id"):
        error = " ".join(p.last_error.split())[:200]
        lines.append(f"- {p.idempotency_key} (order {p.order_id})" + (f": {error}" if error else ""))
    if len(ids) > MAX_LISTED:
        lines.append(f"- … and {len(ids) - MAX_LISTED} more")
    return lines


def _x3(tenant: Tenant) -> X3Connection | None:
    try:
        return tenant.x3
    except X3Connection.DoesNotExist:
        return None


def circuit_opened_at(tenant: Tenant) -> datetime | None:
    """When the tenant's X3 circuit breaker opened (X3 unreachable); None while it is closed."""
    return X3Circuit.objects.filter(tenant=tenant).values_list("opened_at", flat=True).first()


def circuit_open(tenant: Tenant, now: datetime) -> list[Condition]:
    opened = circuit_opened_at(tenant)
    limit = timedelta(minutes=settings.CONNECTOR["ALERT_CIRCUIT_OPEN_MINUTES"])
    if opened is None or now - opened < limit:
        return []
    return [
        Condition(
            key="x3_circuit_open",
            title=f"Sage X3 unreachable for {_ago(now - opened)} (since {opened:%Y-%m-%d %H:%M} UTC)",
            items=frozenset({f"opened:{opened.isoformat()}"}),
            advice="Postings wait without using up their attempts and resume by themselves when X3 answers. "
            "Check that the X3 server is up and reachable from the connector.",
        )
    ]


def x3_authorization(tenant: Tenant, now: datetime) -> list[Condition]:
    x3 = _x3(tenant)
    if x3 is None or x3.method != X3Connection.Method.GRAPHQL_OAUTH2:
        return []
    link = _link(reverse("admin:connector_tenant_change", args=[tenant.pk]))
    advice = "Reconnect with 'Connect to Sage X3' on the tenant page."
    if x3.authorization_error:
        return [
            Condition(
                key="x3_authorization",
                title=f"Sage X3 authorization must be renewed: {x3.authorization_error[:200]}",
                items=frozenset({f"error:{fingerprint([x3.authorization_error])[:16]}"}),
                advice=advice,
                link=link,
            )
        ]
    expires = x3.refresh_token_expires_at
    if not x3.refresh_token or expires is None:
        return []
    if expires - now > timedelta(days=settings.CONNECTOR["X3_REFRESH_WARNING_DAYS"]):
        return []
    when = f"{expires:%Y-%m-%d %H:%M} UTC"
    title = (
        f"Sage X3 authorization expired on {when}"
        if expires <= now
        else f"Sage X3 authorization expires in {_ago(expires - now)} ({when})"
    )
    return [
        Condition(
            key="x3_authorization",
            title=title,
            items=frozenset({f"expires:{expires.isoformat()}"}),
            advice=advice + " Until then postings wait for re-authorization.",
            link=link,
        )
    ]


def reconcile_missed(tenant: Tenant, now: datetime) -> list[Condition]:
    window = timedelta(minutes=settings.CONNECTOR["ALERT_RECONCILE_WINDOW_MINUTES"])
    findings = ReconcileFinding.objects.filter(tenant=tenant, created_at__gte=now - window)
    totals = findings.aggregate(orders=Sum("orders_missed"), refunds=Sum("refunds_missed"))
    missed = (totals["orders"] or 0) + (totals["refunds"] or 0)
    reactivated = list(findings.filter(hooks_reactivated__gt=0).values_list("id", "hooks_reactivated"))
    items = {f"reactivated:{pk}" for pk, _ in reactivated}
    if missed and missed >= settings.CONNECTOR["ALERT_RECONCILE_MIN_MISSED"]:
        items.add("missed")
    if not items:
        return []
    parts = []
    if missed:
        counted = [_count(totals["orders"] or 0, "order"), _count(totals["refunds"] or 0, "refund")]
        parts.append(" and ".join(c for c in counted if c) + " that no webhook had brought")
    if reactivated:
        hooks = _count(sum(n for _, n in reactivated), "deactivated BigCommerce hook")
        parts.append(f"{hooks}, switched back on")
    return [
        Condition(
            key="reconcile_missed",
            title=f"Reconciliation found {' and '.join(parts)} in the last {_ago(window)}",
            items=frozenset(items),
            advice="They are synced now, but webhooks are failing: check that BigCommerce reaches "
            "/webhooks/bigcommerce/"
            f"{tenant.slug}/ (TLS, firewall, signature settings) and the webhook events list.",
            link=_link(reverse("admin:connector_webhookevent_changelist"), {"tenant__id__exact": tenant.pk}),
        )
    ]


def webhook_silence(tenant: Tenant, now: datetime, alert_settings: AlertSettings | None) -> list[Condition]:
    hours = alert_settings.webhook_silence_hours if alert_settings else None
    if hours is None:
        hours = settings.CONNECTOR["ALERT_WEBHOOK_SILENCE_HOURS"]
    if not hours or not hasattr(tenant, "bigcommerce"):
        return []
    last = WebhookEvent.objects.filter(tenant=tenant).aggregate(last=Max("received_at"))["last"]
    since = last or tenant.created_at
    if now - since < timedelta(hours=hours):
        return []
    what = f"the last one arrived {since:%Y-%m-%d %H:%M} UTC" if last else "none since the tenant was set up"
    return [
        Condition(
            key="webhook_silence",
            title=f"No BigCommerce webhook for {_ago(now - since)} ({what})",
            items=frozenset({f"since:{since.isoformat()}"}),
            advice="If the store had orders, its hooks are not reaching the connector: check the hooks in "
            "BigCommerce (register_webhooks) and the reconciliation poll. For a quiet store, raise or switch off "
            "this alarm in the tenant's alarm recipients.",
        )
    ]


def gather_conditions(
    tenant: Tenant, now: datetime, alert_settings: AlertSettings | None = None
) -> list[Condition]:
    return [
        *parked_postings(tenant),
        *circuit_open(tenant, now),
        *x3_authorization(tenant, now),
        *reconcile_missed(tenant, now),
        *webhook_silence(tenant, now, alert_settings),
        *summaries_overdue(tenant, now),
    ]


def summaries_overdue(tenant: Tenant, now: datetime) -> list[Condition]:
    """Daily summary mode: entries of a closed day still wait for their summary (the closing task is not running)."""
    days = overdue_days(
        tenant, now, slack=timedelta(minutes=4 * settings.CONNECTOR["SUMMARY_INTERVAL_MINUTES"])
    )
    if not days:
        return []
    listed = ", ".join(f"{day:%Y-%m-%d} ({n})" for day, n in sorted(days.items())[:10])
    return [
        Condition(
            key="summaries_overdue",
            title=f"{sum(days.values())} entries wait for the daily summary of a closed day: {listed}",
            items=frozenset(f"{day:%Y-%m-%d}" for day in days),
            advice="The task that builds daily summaries has not run: check that the workers (qcluster) are "
            "running, or run `manage.py close_summaries`.",
        )
    ]


# --- deciding and sending -------------------------------------------------------------------------------------------


def plan_digest(conditions: list[Condition], states: dict[str, AlertState], now: datetime) -> Digest:
    renotify = timedelta(hours=settings.CONNECTOR["ALERT_RENOTIFY_HOURS"])
    digest = Digest()
    present = {c.key for c in conditions}
    for condition in conditions:
        state = states.get(condition.key)
        if state is None or not state.active:
            digest.new.append((condition, set(condition.items)))
            continue
        fresh = set(condition.items) - set(state.items)
        if fresh:
            digest.new.append((condition, fresh))
        elif now - state.last_notified_at >= renotify:
            digest.reminders.append(condition)
    digest.resolved = [s for key, s in states.items() if s.active and key not in present]
    return digest


def render_digest(tenant: Tenant, digest: Digest, now: datetime) -> tuple[str, str]:
    counts = []
    if digest.new:
        counts.append(f"{len(digest.new)} new")
    if digest.reminders:
        counts.append(f"{len(digest.reminders)} still open")
    if digest.resolved:
        counts.append(f"{len(digest.resolved)} resolved")
    subject = f"{tenant.name}: alarms ({', '.join(counts)})"
    lines = [f"Alarms of tenant {tenant.name} ({tenant.slug}), {now:%Y-%m-%d %H:%M} UTC.", ""]

    def section(label: str, condition: Condition, new: set[str] | None) -> None:
        lines.append(f"{label}: {condition.title}")
        if condition.advice:
            lines.append(f"  {condition.advice}")
        if new:
            details = condition.describe(new)
            if details and len(new) < len(condition.items):
                lines.append(f"  New since the last notice ({len(new)}):")
            lines.extend(f"  {d}" for d in details)
        if condition.link:
            lines.append(f"  {condition.link}")
        lines.append("")

    for condition, new in digest.new:
        section("NEW", condition, new)
    for condition in digest.reminders:
        section("STILL OPEN", condition, None)
    for state in digest.resolved:
        lines.append(f"RESOLVED: {state.summary or state.condition}")
        lines.append("")
    return subject, "\n".join(lines).rstrip() + "\n"


def channels(alert_settings: AlertSettings | None) -> tuple[list[str], str]:
    emails = list(alert_settings.emails) if alert_settings else []
    for address in settings.CONNECTOR["ALERT_EMAILS"]:
        if address not in emails:
            emails.append(address)
    return emails, (alert_settings.webhook_url if alert_settings else "")


def deliver(
    tenant: Tenant, subject: str, body: str, keys: list[str], emails: list[str], webhook_url: str
) -> bool:
    """Send on every channel and record each attempt. True when at least one channel took the digest."""
    delivered = False
    if emails:
        try:
            EmailMessage(
                subject=settings.EMAIL_SUBJECT_PREFIX + subject,
                body=body,
                from_email=settings.DEFAULT_FROM_EMAIL,
                to=emails,
            ).send(fail_silently=False)
        except Exception as exc:  # noqa: BLE001 - SMTP errors, refused recipients, timeouts, …
            logger.warning("Alarm mail for tenant %s failed: %s", tenant.slug, type(exc).__name__)
            _record(tenant, Notification.Channel.EMAIL, ", ".join(emails), subject, body, keys, exc)
        else:
            delivered = True
            _record(tenant, Notification.Channel.EMAIL, ", ".join(emails), subject, body, keys)
    if webhook_url:
        result = post_text(webhook_url, f"{subject}\n\n{body}")
        host = urlsplit(webhook_url).netloc
        if result.ok:
            delivered = True
            _record(tenant, Notification.Channel.WEBHOOK, host, subject, body, keys)
        else:
            logger.warning("Alarm webhook for tenant %s failed: %s", tenant.slug, result.error)
            _record(tenant, Notification.Channel.WEBHOOK, host, subject, body, keys, result.error)
    return delivered


def _record(tenant, channel, recipients, subject, body, keys, error: object = None) -> None:
    Notification.objects.create(
        tenant=tenant,
        channel=channel,
        recipients=recipients[:2000],
        subject=subject[:300],
        body=body,
        conditions=keys,
        outcome=Notification.Outcome.FAILED if error is not None else Notification.Outcome.SENT,
        error="" if error is None else (str(error) or type(error).__name__)[:2000],
    )


def _remember(
    tenant: Tenant,
    conditions: list[Condition],
    states: dict[str, AlertState],
    digest: Digest | None,
    now: datetime,
) -> None:
    """Store what was notified (``digest``; None when nothing went out) and forget items that went away, so one
    that comes back counts as new."""
    notified = ({c.key for c, _ in digest.new} | {c.key for c in digest.reminders}) if digest else set()
    with transaction.atomic():
        for condition in conditions:
            state = states.get(condition.key)
            if condition.key in notified:
                if state is None:
                    state = AlertState(tenant=tenant, condition=condition.key, first_seen_at=now)
                elif not state.active:
                    state.first_seen_at = now
                state.active = True
                state.resolved_at = None
                state.items = sorted(condition.items)
                state.summary = condition.title[:300]
                state.last_notified_at = now
            elif state is not None and state.active:
                kept = sorted(set(state.items) & condition.items)
                if kept == sorted(state.items):
                    continue
                state.items = kept
            else:
                continue
            state.fingerprint = fingerprint(state.items)
            state.save()
        for state in digest.resolved if digest else []:
            state.active = False
            state.resolved_at = now
            state.items = []
            state.fingerprint = fingerprint([])
            state.save()


def alert_tenant(tenant: Tenant, now: datetime | None = None) -> str:
    """Gather, compare with what was notified, send at most one digest. Returns what happened, for the log."""
    now = now or timezone.now()
    try:
        alert_settings = tenant.alert_settings
    except AlertSettings.DoesNotExist:
        alert_settings = None
    if alert_settings is not None and not alert_settings.enabled:
        return "off"
    emails, webhook_url = channels(alert_settings)
    if not emails and not webhook_url:
        return "no recipients"
    conditions = gather_conditions(tenant, now, alert_settings)
    states = {s.condition: s for s in AlertState.objects.filter(tenant=tenant)}
    digest = plan_digest(conditions, states, now)
    if not digest:
        _remember(tenant, conditions, states, None, now)
        return "quiet"
    subject, body = render_digest(tenant, digest, now)
    keys = (
        [c.key for c, _ in digest.new]
        + [c.key for c in digest.reminders]
        + [s.condition for s in digest.resolved]
    )
    if not deliver(tenant, subject, body, keys, emails, webhook_url):
        _remember(tenant, conditions, states, None, now)
        return "failed"  # nothing recorded as notified: the next run tries again
    _remember(tenant, conditions, states, digest, now)
    return "sent"


def send_alerts(now: datetime | None = None) -> str:
    """The periodic job: one digest per tenant at most. Never raises, so the schedule keeps running."""
    now = now or timezone.now()
    results = []
    try:
        ReconcileFinding.objects.filter(created_at__lt=now - FINDINGS_KEPT).delete()
        tenants = list(Tenant.objects.filter(is_active=True).select_related("x3", "bigcommerce"))
    except Exception:
        logger.exception("Alarms: could not read the tenants")
        return "error"
    for tenant in tenants:
        try:
            outcome = alert_tenant(tenant, now)
        except Exception:
            logger.exception("Alarms for tenant %s failed", tenant.slug)
            outcome = "error"
        results.append(f"{tenant.slug}: {outcome}")
    return "; ".join(results) or "no tenants"


def record_reconcile_finding(tenant: Tenant, result) -> None:
    """Called by the reconciliation poll with its result; keeps runs that found what the webhooks missed."""
    try:
        missed = result.orders_queued + result.refunds_queued
        if missed or result.hooks_reactivated:
            ReconcileFinding.objects.create(
                tenant=tenant,
                orders_checked=result.orders_checked,
                orders_missed=result.orders_queued,
                refunds_missed=result.refunds_queued,
                hooks_reactivated=result.hooks_reactivated,
            )
    except Exception:
        logger.exception("Could not record the reconciliation finding of tenant %s", tenant.slug)
