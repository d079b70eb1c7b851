"""Tie-out against Sage X3: read each posted entry of a period back from X3 by its reference and compare.

The read-back is the exactly-once gate's own lookup (``find_entry`` of the tenant's client: api1 ``$query``,
GraphQL lookup query or SOAP ``query``), so no transport code is duplicated. What can be compared depends on what
that lookup returns (docs/workspace.md, "X3 tie-out"):

* always: that the entry exists, and its document number against the one stored when it was posted;
* when the answer carries the mapped header fields (api1 ``$query``, SOAP ``query`` list): accounting date and
  currency;
* when it carries the lines (an api1 representation whose ``$query`` facet lists them): the net amount per account,
  hence the totals.

Only discrepancies are stored (:class:`TieOutRow`); X3 being unreachable stops the run, which then claims nothing.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.utils import timezone

from accounting.models import Posting, PostingLine
from integrations.currency import minor_unit
from integrations.errors import AuthenticationError, IntegrationError, ReauthorizationRequired
from integrations.sagex3.types import PostedEntry, X3Client

from . import clients, tasks
from .models import TieOutRow, TieOutRun
from .reconcile import TASK_BUDGET_SECONDS, claim_run, start_period_run

logger = logging.getLogger(__name__)
PAUSE_SECONDS = 0.2  # between lookups: X3 serves people too (about 5 lookups a second at most)
BATCH = 500
GIVE_UP_AFTER = (
    3  # refusals in a row from the start: the lookup does not work at all, stop instead of listing all
)

DOCUMENT, DATE, CURRENCY, LINES = "document number", "accounting date", "currency", "lines and totals"


@dataclass
class Comparison:
    compared: set[str] = field(default_factory=set)
    differences: list[str] = field(default_factory=list)


def start_tie_out(
    tenant, start: date, end: date, *, channel_id: int | None, user=None
) -> tuple[TieOutRun, bool]:
    """Record a tie-out run and queue it; (run, created). One at a time per tenant (a recent busy run is returned)."""
    return start_period_run(
        TieOutRun,
        tenant,
        start,
        end,
        channel_id=channel_id,
        user=user,
        enqueue=tasks.enqueue_tie_out,
        lost="The tie-out did not finish (the queue may have been stopped); nothing is claimed as matched.",
    )


def find_in_x3(client: X3Client, reference: str) -> PostedEntry | None:
    """The one connector-level read-back: the client's own lookup by reference (as the exactly-once gate uses)."""
    return client.find_entry(reference)


def compare(
    posting: Posting, lines: list[PostingLine], found: PostedEntry, mapping: Mapping[str, Any] | None
) -> Comparison:
    """What X3's answer lets us compare, and the differences, in words ("X3 has … , the connector posted …")."""
    c = Comparison()
    c.compared.add(DOCUMENT)
    if posting.x3_document_number and found.document_number.strip().casefold() != (
        posting.x3_document_number.strip().casefold()
    ):
        c.differences.append(
            f"document number: X3 has {found.document_number}, the connector recorded {posting.x3_document_number}"
        )
    raw = found.raw or {}
    header = mapping.get("header") if isinstance(mapping, Mapping) else None
    if isinstance(header, Mapping):
        date_field, currency_field = header.get("accounting_date"), header.get("currency")
        if date_field and raw.get(date_field) not in (None, "") and posting.gl_date:
            seen = _date(raw[date_field], mapping.get("date_format") if mapping else None)
            if seen is not None:
                c.compared.add(DATE)
                if seen != posting.gl_date:
                    c.differences.append(
                        f"accounting date: X3 has {seen}, the connector posted {posting.gl_date}"
                    )
        if currency_field and raw.get(currency_field) not in (None, "") and posting.currency:
            c.compared.add(CURRENCY)
            if str(raw[currency_field]).strip().upper() != posting.currency.upper():
                c.differences.append(
                    f"currency: X3 has {raw[currency_field]}, the connector posted {posting.currency}"
                )
    x3_lines = _lines(raw, mapping)
    if x3_lines is not None:
        c.compared.add(LINES)
        q = Decimal(1).scaleb(-minor_unit(posting.currency or "USD"))
        ours: dict[str, Decimal] = defaultdict(Decimal)
        for line in lines:
            ours[line.account] += line.debit - line.credit
        theirs: dict[str, Decimal] = defaultdict(Decimal)
        for account, net in x3_lines:
            theirs[account] += net
        for account in sorted(set(ours) | set(theirs)):
            a, b = theirs.get(account, Decimal(0)).quantize(q), ours.get(account, Decimal(0)).quantize(q)
            if a != b:
                c.differences.append(
                    f"account {account}: X3 has {a:+}, the connector posted {b:+} (debit − credit)"
                )
        x3_total, our_total = _size(theirs).quantize(q), _size(ours).quantize(q)
        if x3_total != our_total:
            c.differences.append(f"total: X3 has {x3_total}, the connector posted {our_total}")
    return c


def _size(nets: Mapping[str, Decimal]) -> Decimal:
    """An entry's size: the sum of its net debits (= its net credits when balanced; negative for a storno)."""
    positive = sum((n for n in nets.values() if n > 0), Decimal(0))
    negative = sum((n for n in nets.values() if n < 0), Decimal(0))
    return positive or negative


def _date(value: Any, fmt: str | None) -> date | None:
    text = str(value).strip()[:10] if not isinstance(value, date) else value.isoformat()
    for f in filter(None, (fmt, "%Y-%m-%d", "%Y%m%d")):
        try:
            return datetime.strptime(text, f).date()
        except ValueError:
            continue
    return None


def _amount(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def _lines(raw: Mapping[str, Any], mapping: Mapping[str, Any] | None) -> list[tuple[str, Decimal]] | None:
    """(account, debit − credit) per line when X3's answer carries the lines (api1 field names), else None."""
    if not isinstance(mapping, Mapping) or not mapping.get("lines_key"):
        return None
    rows = raw.get(mapping["lines_key"])
    names = mapping.get("line") or {}
    if not isinstance(rows, list) or not rows or not all(isinstance(r, Mapping) for r in rows):
        return None
    out = []
    for row in rows:
        account = row.get(names.get("account"))
        if account is None:
            return None
        if mapping.get("amount_style") == "sign_amount":
            sign, amount = _amount(row.get(names.get("sign"))), _amount(row.get(names.get("amount")))
            if sign is None or amount is None:
                return None
            net = amount if sign > 0 else -amount
        else:
            debit, credit = _amount(row.get(names.get("debit"), 0)), _amount(row.get(names.get("credit"), 0))
            if debit is None or credit is None:
                return None
            net = debit - credit
        out.append((str(account).strip(), net))
    return out


def run_tie_out(
    run_id: int,
    *,
    x3_client: X3Client | None = None,
    sleep: Callable[[float], None] = time.sleep,
    pause: float = PAUSE_SECONDS,
    clock: Callable[[], float] = time.monotonic,
    budget: float = TASK_BUDGET_SECONDS,
) -> str:
    """One task of a tie-out run. Never raises for X3 trouble: the run records what happened in words. After
    ``budget`` seconds (below the queue's task timeout) it saves its place and queues its own sequel."""
    run = claim_run(TieOutRun, run_id)
    if run is None:
        return "not-due"
    deadline = clock() + budget
    tenant = run.tenant
    postings = Posting.objects.filter(
        tenant=tenant,
        status=Posting.Status.POSTED,
        gl_date__gte=run.period_start,
        gl_date__lte=run.period_end,
        pk__gt=run.resume_after,
    ).exclude(reference="")
    if run.channel_id is not None:
        postings = postings.filter(channel_id=run.channel_id)
    ids = list(postings.order_by("pk").values_list("pk", flat=True))
    if not hasattr(tenant, "x3"):
        return _stop(run, "This tenant has no Sage X3 connection: nothing was checked.")
    client = x3_client if x3_client is not None else clients.x3_client(tenant)
    if isinstance(client, clients.UnusableX3Client):
        return _stop(run, f"The Sage X3 settings cannot be used: {client.reason}. Nothing was checked.")
    mapping = getattr(client, "mapping", None)
    run.method = tenant.x3.get_method_display()[:20]
    compared: set[str] = {c for c in run.compared.split(", ") if c}
    rows: list[TieOutRow] = []
    counts = {k: getattr(run, k) for k in ("checked", "matched", "missing", "differs", "errors")}
    total = counts["checked"] + len(ids)
    first = True
    for start in range(0, len(ids), BATCH):
        batch = list(Posting.objects.filter(pk__in=ids[start : start + BATCH]).order_by("pk"))
        lines_of: dict[int, list[PostingLine]] = defaultdict(list)
        for line in PostingLine.objects.filter(posting__in=batch).order_by("posting_id", "line_no"):
            lines_of[line.posting_id].append(line)
        for posting in batch:
            if not first:
                if clock() >= deadline:
                    return _pause(run, counts, compared, rows)
                sleep(pause)
            first = False
            try:
                found = find_in_x3(client, posting.reference)
            except (AuthenticationError, ReauthorizationRequired) as exc:
                return _stop(run, f"Sage X3 refused the connector's credentials: {exc.message}. {_NOTHING}")
            except IntegrationError as exc:
                if exc.retryable:
                    return _stop(
                        run,
                        f"Sage X3 could not be reached after {counts['checked']} of {total} entries: "
                        f"{exc.message}. {_NOTHING}",
                    )
                counts["checked"] += 1
                counts["errors"] += 1
                if counts["errors"] == counts["checked"] == GIVE_UP_AFTER:
                    # The same refusal for every entry so far: the lookup itself does not work (class, publication).
                    return _stop(
                        run, f"Sage X3 refused the lookup of every entry tried: {exc.message}. {_NOTHING}"
                    )
                rows.append(_row(run, posting, TieOutRow.Problem.ERROR, exc.message))
                run.resume_after = posting.pk
                continue
            counts["checked"] += 1
            run.resume_after = posting.pk
            if found is None:
                counts["missing"] += 1
                rows.append(
                    _row(run, posting, TieOutRow.Problem.MISSING, "X3 has no entry with this reference.")
                )
                continue
            c = compare(posting, lines_of[posting.pk], found, mapping)
            compared |= c.compared
            if c.differences:
                counts["differs"] += 1
                rows.append(
                    _row(
                        run,
                        posting,
                        TieOutRow.Problem.DIFFERS,
                        "; ".join(c.differences),
                        found.document_number,
                    )
                )
            else:
                counts["matched"] += 1
    _save_progress(run, counts, compared, rows)
    run.status = TieOutRun.Status.DONE
    run.message = (
        ""
        if LINES in compared or not counts["checked"]
        else (
            f"The {run.method or 'X3'} lookup does not return the lines, so amounts could not be compared: "
            f"compared {run.compared or DOCUMENT} only."
        )
    )
    run.finished_at = timezone.now()
    run.save()
    return f"{counts['checked']} checked, {counts['missing']} missing, {counts['differs']} differ"


def _save_progress(run: TieOutRun, counts: dict[str, int], compared: set[str], rows: list[TieOutRow]) -> None:
    TieOutRow.objects.bulk_create(rows)
    rows.clear()
    for key, value in counts.items():
        setattr(run, key, value)
    run.compared = ", ".join(k for k in (DOCUMENT, DATE, CURRENCY, LINES) if k in compared)


def _pause(run: TieOutRun, counts: dict[str, int], compared: set[str], rows: list[TieOutRow]) -> str:
    """The task's time is up: keep what was found, and queue the sequel to carry on after the last entry checked."""
    _save_progress(run, counts, compared, rows)
    run.status = TieOutRun.Status.QUEUED
    run.save()
    tasks.enqueue_tie_out(run.pk)
    return f"{counts['checked']} checked so far, continues"


_NOTHING = "Nothing is claimed as matched; try again once X3 answers."


def _row(run, posting: Posting, problem: str, detail: str, number: str = "") -> TieOutRow:
    return TieOutRow(
        run=run,
        posting=posting,
        reference=posting.reference,
        problem=problem,
        x3_document_number=number or posting.x3_document_number,
        detail=detail[:2000],
    )


def _stop(run: TieOutRun, message: str) -> str:
    TieOutRow.objects.filter(run=run).delete()  # an incomplete run claims nothing, not even its discrepancies
    run.status = TieOutRun.Status.FAILED
    run.message = message
    run.checked = run.matched = run.missing = run.differs = run.errors = 0
    run.finished_at = timezone.now()
    run.save()
    logger.warning("Tie-out %s of tenant %s stopped: %s", run.pk, run.tenant.slug, message)
    return "failed"
