"""Operator actions on postings: retry now, re-post, approve, reject, resume after re-authorization.

Entry points (admin actions, the bulk worker in connector/bulk.py, the OAuth callback, management commands) call
these; they orchestrate the pipeline and ring the queue, so they live here in connector/, above accounting/.

Each action returns a :class:`Report`: what was done, what was skipped and why, what still fails. The admin turns
it into one message; a bulk batch stores it. Nothing is called "done" that was not sent or queued.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from decimal import Decimal

from django.contrib import messages
from django.db.models import QuerySet
from django.utils import timezone

from accounting.history import log_transition
from accounting.journal import quantize
from accounting.models import Posting
from accounting.planning import mapping_for, mapping_problem
from integrations.errors import IntegrationError

from . import tasks
from .models import Tenant
from .pipeline import sync_order
from .summaries import reject_with_summary

logger = logging.getLogger(__name__)
S = Posting.Status
ADMIN = Posting.Trigger.ADMIN
NOTES_KEPT = 50  # per report: enough to name the entries that need a look, bounded for a batch of thousands


@dataclass
class Report:
    """Counts by outcome ("done", "skipped", "failed") and label, plus a few notes naming entries."""

    done: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    degraded: bool = False  # something was done, but not quite as asked (say, sent without the rebuild)

    def add(self, outcome: str, label: str, note: str = "", *, degraded: bool = False) -> None:
        bucket: dict[str, int] = getattr(self, outcome)
        bucket[label] = bucket.get(label, 0) + 1
        if note and len(self.notes) < NOTES_KEPT:
            self.notes.append(note)
        self.degraded |= degraded

    def merge(self, other: Report) -> None:
        for outcome in ("done", "skipped", "failed"):
            mine: dict[str, int] = getattr(self, outcome)
            for label, n in getattr(other, outcome).items():
                mine[label] = mine.get(label, 0) + n
        self.notes.extend(other.notes[: max(0, NOTES_KEPT - len(self.notes))])
        self.degraded |= other.degraded

    @property
    def counts(self) -> tuple[int, int, int]:
        return sum(self.done.values()), sum(self.skipped.values()), sum(self.failed.values())

    @property
    def level(self) -> int:
        """Success only when everything selected was sent or queued as asked; anything else is a warning."""
        done, skipped, failed = self.counts
        return messages.SUCCESS if done and not (skipped or failed or self.degraded) else messages.WARNING

    @property
    def level_name(self) -> str:
        return "success" if self.level == messages.SUCCESS else "warning"

    def summary(self, *, notes: int = 5) -> str:
        """One message: "3 queued, 1 skipped because already posted. Order 251: …"."""
        parts = [f"{n} {label}" for label, n in self.done.items()]
        parts += [f"{n} skipped because {label}" for label, n in self.skipped.items()]
        parts += [f"{n} not posted: {label}" for label, n in self.failed.items()]
        text = (", ".join(parts) or "Nothing was selected") + "."
        if self.notes and notes:
            shown = self.notes[:notes]
            more = len(self.notes) - len(shown)
            text += " " + " ".join(shown) + (f" (and {more} more)" if more > 0 else "")
        return text

    def as_json(self) -> dict:
        return {
            "done": self.done,
            "skipped": self.skipped,
            "failed": self.failed,
            "notes": self.notes,
            "degraded": self.degraded,
        }

    @classmethod
    def from_json(cls, data: dict | None) -> Report:
        data = data or {}
        return cls(
            done=dict(data.get("done", {})),
            skipped=dict(data.get("skipped", {})),
            failed=dict(data.get("failed", {})),
            notes=list(data.get("notes", [])),
            degraded=bool(data.get("degraded", False)),
        )


def _who(user) -> str:
    return getattr(user, "get_username", lambda: "")() or "an operator"


# --- Retry now -----------------------------------------------------------------------------------------------------

# Not posted and nothing sent that could have landed: rebuilt from the current order and mapping, then sent.
REBUILT = (S.RETRY, S.NEEDS_ATTENTION, S.NEEDS_MAPPING)
# Why the other statuses are left alone.
NOT_RETRIED: dict[str, str] = {
    S.POSTED: "already posted",
    S.PENDING: "already on its way to Sage X3",
    S.POSTING: "already on its way to Sage X3",
    S.AWAITING_APPROVAL: "awaiting approval (use “Approve and post”)",
    S.NEEDS_REAUTH: "waiting for Sage X3 re-authorization (reconnect the tenant)",
    S.HELD: "held until the period is open in Sage X3",
    S.WAITING: "the order is not confirmed yet",
    S.SKIPPED: "there is nothing to post",
}


def retry(queryset: QuerySet[Posting], *, user=None) -> Report:
    """One honest retry of each selected posting that is not posted.

    * An earlier send may have reached X3 (``may_exist_in_x3``, and every ``unknown`` posting): made due as it is;
      delivery asks X3 for the reference before anything is sent, and the lines are never rebuilt (X3 might hold
      the old ones).
    * Otherwise (``retry``, ``needs_attention``, ``needs_mapping``): the order is re-read and the entry rebuilt
      from it and the *current* channel mapping, the change is written to its history, and it is sent — all
      through ``sync_order`` and so ``submit_posting``. After an accountant fixes a mapping, the corrected lines
      post.
    * Anything else is skipped and the report says why.
    """
    report = Report()
    rebuild: dict[tuple[int, int], list[Posting]] = {}
    postings = queryset.select_related("tenant__bigcommerce", "tenant__x3").order_by(
        "tenant_id", "order_id", "id"
    )
    for posting in postings:
        if posting.status == S.UNKNOWN or (
            posting.may_exist_in_x3 and posting.status in (S.RETRY, S.NEEDS_ATTENTION)
        ):
            _requeue_for_lookup(posting, user, report)
        elif posting.status in REBUILT:
            rebuild.setdefault((posting.tenant_id, posting.order_id), []).append(posting)
        else:
            report.add("skipped", NOT_RETRIED.get(posting.status, "there is nothing to retry"))
    for (_, order_id), group in rebuild.items():
        _rebuild_and_send(group[0].tenant, order_id, group, user, report)
    return report


def retry_now(queryset: QuerySet[Posting], *, user=None) -> int:
    """:func:`retry`, counting what was sent or queued (for scripts and the fault bench)."""
    return retry(queryset, user=user).counts[0]


def _requeue_for_lookup(posting: Posting, user, report: Report) -> None:
    now = timezone.now()
    to_status = S.UNKNOWN if posting.status == S.UNKNOWN else S.RETRY
    # A person asked: the attempt budget starts again (the call log keeps every earlier attempt). Whether an earlier
    # send may have reached X3 is a separate fact (may_exist_in_x3) that this never resets.
    if not Posting.objects.filter(pk=posting.pk, status=posting.status).update(
        status=to_status, next_attempt_at=now, updated_at=now, attempts=0
    ):
        report.add("skipped", "it changed meanwhile (look again)")
        return
    log_transition(
        posting,
        to_status,
        f"Retry requested by {_who(user)} (attempt budget reset). An earlier send may have reached Sage X3: "
        f"X3 is asked for reference {posting.reference} before anything is sent, and the lines are not rebuilt",
        from_status=posting.status,
        trigger=ADMIN,
        user=user,
    )
    tasks.enqueue_posting(posting.pk)
    report.add("done", "queued (checked in Sage X3 by reference first)")


@dataclass(frozen=True)
class _Shape:
    total: Decimal
    currency: str
    accounts: dict
    lines: tuple[tuple[str, str, Decimal, Decimal], ...]


def _shape(posting: Posting) -> _Shape:
    lines = tuple(
        (line.role, line.account, line.debit, line.credit) for line in posting.lines.order_by("line_no")
    )
    return _Shape(posting.total, posting.currency or "USD", dict(posting.accounts or {}), lines)


def _source(posting: Posting) -> str:
    if posting.kind != Posting.Kind.ORDER:
        return "the accounts of the order's posted entry"
    on = posting.gl_date or timezone.localdate()
    mapping = mapping_for(posting.tenant, posting.channel_id, on) if posting.channel_id is not None else None
    if mapping is None:
        return "the current order"
    return f"mapping “{mapping.name or f'channel {mapping.channel_id}'}” (channel {mapping.channel_id})"


def _change_words(before: _Shape, after: _Shape) -> str:
    cur = after.currency
    parts = []
    if before.total != after.total:
        parts.append(f"total {quantize(before.total, cur):,} → {quantize(after.total, cur):,} {cur}")
    changed = [
        f"{key} {before.accounts.get(key) or '(blank)'} → {after.accounts.get(key) or '(blank)'}"
        for key in sorted(set(before.accounts) | set(after.accounts))
        if before.accounts.get(key, "") != after.accounts.get(key, "")
    ]
    if changed:
        parts.append("accounts: " + ", ".join(changed))
    return "; ".join(parts)


def _rebuild_and_send(tenant: Tenant, order_id: int, group: list[Posting], user, report: Report) -> None:
    """Rebuild the order's selected postings from the order as BigCommerce shows it now and the current mapping,
    then send them: one ``sync_order`` (which plans under the order's lock and delivers through submit_posting)."""
    now = timezone.now()
    before = {p.pk: _shape(p) for p in group}
    leased: list[Posting] = []
    for posting in group:
        fields: dict = {"attempts": 0, "updated_at": now}
        if posting.status == S.RETRY:
            # Out of the workers' reach while it is rebuilt (a worker claims only pending/retry/unknown/held), and
            # rebuildable by planning: a refused entry that provably never reached X3.
            fields |= {"status": S.NEEDS_ATTENTION, "next_attempt_at": None}
        if not Posting.objects.filter(pk=posting.pk, status=posting.status, may_exist_in_x3=False).update(
            **fields
        ):
            report.add("skipped", "it changed meanwhile (look again)")
            continue
        if posting.status == S.RETRY:
            log_transition(
                posting,
                S.NEEDS_ATTENTION,
                f"Retry requested by {_who(user)}: held back while it is rebuilt from the current order and mapping",
                from_status=S.RETRY,
                trigger=ADMIN,
                user=user,
            )
        leased.append(posting)
    if not leased:
        return
    same: dict[int, bool] = {}

    def record() -> None:  # planned, nothing sent yet: write down what the rebuild changed
        for posting in leased:
            posting.refresh_from_db()
            after = _shape(posting)
            same[posting.pk] = after.lines == before[posting.pk].lines
            if not after.lines and not before[posting.pk].lines:
                if posting.status == S.NEEDS_MAPPING:  # still nothing to build: say who tried, and why not
                    log_transition(
                        posting,
                        posting.status,
                        f"Retry requested by {_who(user)}: not built. {posting.last_error}",
                        from_status=posting.status,
                        trigger=ADMIN,
                        user=user,
                    )
                continue
            if same[posting.pk]:
                text = f"rebuilt from the current order and {_source(posting)}: the same lines as before"
            else:
                verb = "rebuilt" if before[posting.pk].lines else "built"
                change = _change_words(before[posting.pk], after)
                text = f"lines {verb} from {_source(posting)}" + (f" ({change})" if change else "")
            log_transition(
                posting,
                posting.status,
                f"Retry requested by {_who(user)}: {text}",
                from_status=posting.status,
                trigger=ADMIN,
                user=user,
            )

    try:
        sync_order(tenant=tenant, order_id=order_id, trigger=ADMIN, user=user, on_planned=record)
    except IntegrationError as exc:
        for posting in leased:
            _send_stored_lines(posting, exc, user, report)
        return
    for posting in leased:
        posting.refresh_from_db()
        _report_after_rebuild(posting, same.get(posting.pk, False), report)


def _send_stored_lines(posting: Posting, exc: IntegrationError, user, report: Report) -> None:
    """BigCommerce could not be read: the entry cannot be rebuilt. One with stored lines is sent as it is (as
    "Retry now" always did), and the report says it was not rebuilt; one with nothing built stays as it was."""
    label = f"{posting.entry_label}: BigCommerce could not be read ({exc.message})"
    if posting.status == S.NEEDS_MAPPING:
        report.add("failed", "not rebuilt, BigCommerce could not be read", label)
        return
    now = timezone.now()
    if not Posting.objects.filter(pk=posting.pk, status=S.NEEDS_ATTENTION, may_exist_in_x3=False).update(
        status=S.RETRY, next_attempt_at=now, updated_at=now
    ):
        report.add("skipped", "it changed meanwhile (look again)")
        return
    log_transition(
        posting,
        S.RETRY,
        f"Retry requested by {_who(user)} (attempt budget reset). BigCommerce could not be read ({exc.message}), "
        "so the entry was not rebuilt: the stored lines are sent again",
        from_status=S.NEEDS_ATTENTION,
        trigger=ADMIN,
        user=user,
    )
    tasks.enqueue_posting(posting.pk)
    report.add(
        "done",
        "queued with the stored lines (BigCommerce could not be read, so not rebuilt)",
        label,
        degraded=True,
    )


def _report_after_rebuild(posting: Posting, same: bool, report: Report) -> None:
    status, name = posting.status, posting.entry_label
    again = "rebuilt to the same lines, " if same else ""
    if status == S.POSTED:
        report.add("done", "posted")
    elif status in (S.PENDING, S.POSTING):
        tasks.enqueue_posting(
            posting.pk
        )  # e.g. behind an earlier entry of the order that failed: the bell again
        report.add("done", "queued")
    elif status in (S.RETRY, S.UNKNOWN):
        report.add(
            "failed",
            "sent again and still failing (retried by itself)",
            f"{name}: {again}{posting.last_error or 'no answer'}",
        )
    elif status == S.NEEDS_ATTENTION:
        report.add("failed", "refused again", f"{name}: {again}{posting.last_error or 'no message'}")
    elif status == S.NEEDS_MAPPING:
        problem = mapping_problem(posting.tenant_id, posting.channel_id, posting.gl_date)
        report.add(
            "failed",
            "the GL mapping is still not usable",
            f"{name}: {problem.happened if problem else posting.last_error}",
        )
    elif status == S.AWAITING_APPROVAL:
        report.add("skipped", "rebuilt and now awaiting approval (use “Approve and post”)")
    else:
        why = f"{name}: {posting.last_error}" if posting.last_error else ""
        report.add("skipped", NOT_RETRIED.get(status, "there is nothing to retry"), why)


# --- Re-post, approve, reject ----------------------------------------------------------------------------------

REPOST_WORDS = {
    "already-posted": "already posted; nothing new to post",
    "in-progress": "a posting is already in progress",
    "created": "posting created",
    "reopened": "rebuilt from the current order",
    "adjusted": "the order changed: an adjustment with only the difference",
    "reversed": "the order is void: a reversal",
    "unchanged": "not postable yet",
}


def repost_orders(queryset: QuerySet[Posting], *, user=None, trigger: str = ADMIN) -> Report:
    """Re-fetch each selected posting's order (once per order) and post only what is missing."""
    report = Report()
    seen: set[tuple[int, int]] = set()
    for posting in queryset.select_related("tenant__bigcommerce", "tenant__x3").order_by(
        "tenant_id", "order_id"
    ):
        if posting.kind == Posting.Kind.SUMMARY:  # not an order: its entries are re-posted one by one
            report.add("skipped", "a daily summary: re-post its orders instead", posting.entry_label)
            continue
        key = (posting.tenant_id, posting.order_id)
        if key in seen:
            continue
        seen.add(key)
        try:
            result = sync_order(tenant=posting.tenant, order_id=posting.order_id, trigger=trigger, user=user)
        except IntegrationError as exc:
            report.add(
                "failed",
                "BigCommerce could not be read",
                f"Order {posting.order_id}: BigCommerce error: {exc.message}.",
            )
            continue
        text = REPOST_WORDS.get(result.outcome, result.outcome)
        note = f"Order {result.order_id}: {text} (status: {Posting.Status(result.posting_status).label})."
        if result.outcome == "already-posted":
            report.add("skipped", "already posted")
        elif result.outcome == "in-progress":
            report.add("skipped", "already on its way to Sage X3", note)
        elif result.posting_status == S.POSTED:
            report.add("done", "posted", note)
        elif result.posting_status == S.AWAITING_APPROVAL:
            report.add("skipped", "rebuilt and now awaiting approval (use “Approve and post”)", note)
        else:
            report.add("failed", "not posted yet", note)
    return report


def approve_selected(queryset: QuerySet[Posting], *, user=None) -> Report:
    """Approve entries awaiting review: each goes out through the same exactly-once delivery as any other."""
    report = Report()
    now = timezone.now()
    for posting in queryset.order_by("id"):
        if posting.status != S.AWAITING_APPROVAL:
            report.add("skipped", "already posted" if posting.status == S.POSTED else "not awaiting approval")
            continue
        if not Posting.objects.filter(pk=posting.pk, status=S.AWAITING_APPROVAL).update(
            status=S.PENDING, next_attempt_at=None, updated_at=now
        ):
            report.add("skipped", "it changed meanwhile (look again)")
            continue
        log_transition(
            posting,
            S.PENDING,
            f"Approved by {_who(user)}",
            from_status=S.AWAITING_APPROVAL,
            trigger=ADMIN,
            user=user,
        )
        tasks.enqueue_posting(posting.pk)
        report.add("done", "approved and queued for posting")
    return report


def reject_selected(queryset: QuerySet[Posting], *, user=None, reason: str = "") -> Report:
    """Reject entries awaiting review: nothing is sent. A later change of the order brings it back for review."""
    report = Report()
    now = timezone.now()
    for posting in queryset.order_by("id"):
        if posting.status != S.AWAITING_APPROVAL:
            report.add("skipped", "not awaiting approval")
            continue
        if not Posting.objects.filter(pk=posting.pk, status=S.AWAITING_APPROVAL).update(
            status=S.SKIPPED, updated_at=now
        ):
            report.add("skipped", "it changed meanwhile (look again)")
            continue
        log_transition(
            posting,
            S.SKIPPED,
            f"Rejected by {_who(user)}" + (f": {reason}" if reason else "") + ". Nothing was sent to X3.",
            from_status=S.AWAITING_APPROVAL,
            trigger=ADMIN,
            user=user,
        )
        if posting.kind == Posting.Kind.SUMMARY:  # its other parts and its entries go with it
            reject_with_summary(posting, user=user)
        report.add("done", "rejected (nothing sent to Sage X3)")
    return report


def approve(queryset: QuerySet[Posting], *, user=None) -> int:
    return approve_selected(queryset, user=user).counts[0]


def reject(queryset: QuerySet[Posting], *, user=None, reason: str = "") -> int:
    return reject_selected(queryset, user=user, reason=reason).counts[0]


def resume_after_reauthorization(tenant: Tenant) -> int:
    """Release the tenant's postings held for re-authorization; returns how many were queued again."""
    now = timezone.now()
    held = list(Posting.objects.filter(tenant=tenant, status=S.NEEDS_REAUTH))
    for posting in held:
        # The call that hit the expired authorization never reached X3's books; a re-send still checks first if
        # an earlier send may have reached X3 (may_exist_in_x3, see submit_posting).
        if Posting.objects.filter(pk=posting.pk, status=S.NEEDS_REAUTH).update(
            status=S.RETRY, next_attempt_at=now, updated_at=now
        ):
            log_transition(posting, S.RETRY, "Sage X3 re-authorized: resuming", from_status=S.NEEDS_REAUTH)
            tasks.enqueue_posting(posting.pk)
    return len(held)
