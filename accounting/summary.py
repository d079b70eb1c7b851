"""Daily summary posting mode: the pure part (no ORM, no I/O). See docs/decisions/0024-daily-summary-posting.md.

A daily summary is one X3 entry per channel, currency and day whose lines add up, per account (and role, and
dimensions when lines carry them), the lines of the per-order entries it absorbs ("members"). Every summary line
keeps the members and amounts behind it, so it drills down to the orders. Because the summary is the sum of the
very journals the per-order mode would send, both modes book the same amount on every account.

An entry larger than X3's line limit is split into numbered parts; each part gets one balancing line on the
tenant's clearing account, and those balancing lines add up to zero over the parts (the clearing account nets out).
"""

from __future__ import annotations

import json
import zoneinfo
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from typing import Any

from .journal import Line

ZERO = Decimal(0)
CLEARING_ROLE = "clearing"


@dataclass(frozen=True)
class MemberLine:
    """One line of a member entry, as stored (dimensions: the line's analytical dimensions, if it has any)."""

    posting_id: int
    order_id: int
    line: Line
    dimensions: Any = None  # as stored on the line (a dict of type → value, or a list): compared as JSON


@dataclass(frozen=True)
class Source:
    posting_id: int
    order_id: int
    amount: Decimal  # debit minus credit of the member's line(s)


@dataclass(frozen=True)
class SummaryLine:
    role: str
    account: str
    debit: Decimal
    credit: Decimal
    description: str
    dimensions: Any = None  # as stored on the line (a dict of type → value, or a list): compared as JSON
    sources: tuple[Source, ...] = field(default=())

    @property
    def net(self) -> Decimal:
        return self.debit - self.credit

    def as_line(self) -> Line:
        return Line(
            role=self.role,
            account=self.account,
            debit=self.debit,
            credit=self.credit,
            description=self.description,
        )


def _dimension_key(dimensions: Any) -> str:
    return json.dumps(dimensions, sort_keys=True) if dimensions else ""


def _sided(net: Decimal) -> tuple[Decimal, Decimal]:
    return (net, ZERO) if net > 0 else (ZERO, -net)


def aggregate(lines: Iterable[MemberLine], *, label: str = "") -> tuple[SummaryLine, ...]:
    """Sum the members' lines per (account, role, dimensions), net on one side, in a stable order.

    A group whose lines cancel out (an order and its reversal on the same day) leaves no line: X3 takes no zero
    line, and the account's total is zero either way. Its members still show in the summary's member list.
    """
    groups: dict[tuple[str, str, str], dict[str, Any]] = {}
    for member in lines:
        key = (member.line.account, member.line.role, _dimension_key(member.dimensions))
        group = groups.setdefault(key, {"net": ZERO, "sources": {}, "dimensions": member.dimensions or None})
        amount = member.line.debit - member.line.credit
        group["net"] += amount
        source_key = (member.posting_id, member.order_id)
        group["sources"][source_key] = group["sources"].get(source_key, ZERO) + amount
    out = []
    for (account, role, _), group in sorted(groups.items()):
        if group["net"] == 0:
            continue
        debit, credit = _sided(group["net"])
        out.append(
            SummaryLine(
                role=role,
                account=account,
                debit=debit,
                credit=credit,
                description=f"{label} {role}".strip()[:200],
                dimensions=group["dimensions"],
                sources=tuple(
                    Source(posting_id, order_id, amount)
                    for (posting_id, order_id), amount in sorted(group["sources"].items())
                    if amount != 0
                ),
            )
        )
    return tuple(out)


def split_parts(
    lines: Sequence[SummaryLine], *, max_lines: int, clearing_account: str, label: str = ""
) -> tuple[tuple[SummaryLine, ...], ...]:
    """Cut the summary into parts of at most ``max_lines`` lines, each balanced on its own.

    A summary that fits stays one part, untouched. Otherwise each part holds ``max_lines - 1`` summary lines and
    one balancing line on the clearing account; the balancing lines of all parts add up to minus the summary's
    own balance, which is zero, so the clearing account nets to zero once every part is posted.
    """
    if max_lines < 3:
        raise ValueError("An X3 entry split into parts needs room for at least 2 lines and a balancing line")
    if len(lines) <= max_lines:
        return (tuple(lines),) if lines else ()
    if not clearing_account:
        raise ValueError(
            "The summary must be split into parts, and there is no clearing account to balance them"
        )
    size = max_lines - 1
    chunks = [tuple(lines[i : i + size]) for i in range(0, len(lines), size)]
    parts = []
    for n, chunk in enumerate(chunks, start=1):
        balance = sum((line.net for line in chunk), ZERO)
        if balance == 0:
            parts.append(chunk)
            continue
        debit, credit = _sided(-balance)
        parts.append(
            chunk
            + (
                SummaryLine(
                    role=CLEARING_ROLE,
                    account=clearing_account,
                    debit=debit,
                    credit=credit,
                    description=f"{label} part {n} of {len(chunks)}: balance carried between parts".strip()[
                        :200
                    ],
                ),
            )
        )
    return tuple(parts)


def totals_by_account(lines: Iterable[Line]) -> dict[str, Decimal]:
    """Debit minus credit per account: what both posting modes must agree on."""
    totals: dict[str, Decimal] = {}
    for line in lines:
        totals[line.account] = totals.get(line.account, ZERO) + line.debit - line.credit
    return {account: amount for account, amount in totals.items() if amount != 0}


# --- Which entries go into a summary, and when a day is closed ---------------------------------------------------


@dataclass(frozen=True)
class SummaryPolicy:
    """The tenant's posting mode, as plain values (read from the tenant by the caller)."""

    daily_summary: bool
    mode_from: date | None = None
    channels: tuple[int, ...] = ()
    cutoff: time = time(0, 0)
    grace: timedelta = timedelta(minutes=60)

    @classmethod
    def of(cls, tenant: Any) -> SummaryPolicy:
        return cls(
            daily_summary=tenant.posting_mode == "daily_summary",
            mode_from=tenant.posting_mode_from,
            channels=tuple(int(c) for c in (tenant.summary_channels or ())),
            cutoff=tenant.summary_cutoff,
            grace=timedelta(minutes=tenant.summary_grace_minutes),
        )


def zone_of(name: str, default: tzinfo) -> tzinfo:
    """A tenant's business time zone by name; ``default`` when blank or unknown (the field validates names)."""
    if name:
        try:
            return zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            pass
    return default


def goes_into_summary(policy: SummaryPolicy, day: date | None, channel_id: int | None) -> bool:
    """Whether an entry dated ``day`` on ``channel_id`` is summarised (True) or posted by itself (False).

    The decision is by the entry's own date, so a switch of mode on a date sends every entry exactly one way: the
    ones dated before it as before, the ones from it on the new way; none twice, none dropped.
    """
    if day is None:
        return False
    if policy.channels and channel_id not in policy.channels:
        return False
    in_mode = policy.mode_from is None or day >= policy.mode_from
    return policy.daily_summary == in_mode


def day_closes_at(policy: SummaryPolicy, day: date, tz: tzinfo) -> datetime:
    """When ``day``'s summary may be built: the cut-off time on the next day, in the tenant's zone, plus grace."""
    return datetime.combine(day + timedelta(days=1), policy.cutoff, tzinfo=tz) + policy.grace


def is_day_closed(policy: SummaryPolicy, day: date, tz: tzinfo, now: datetime) -> bool:
    return now >= day_closes_at(policy, day, tz)


def summary_key(channel_id: int, currency: str, day: date, seq: int, part: int) -> str:
    """Idempotency key of one part of a summary: tenant + channel + currency + day + sequence (+ part)."""
    return f"summary:{channel_id}:{currency}:{day:%Y-%m-%d}:{seq}:{part}"


def summary_label(channel_id: int, currency: str, day: date, seq: int, part: int, parts: int) -> str:
    text = f"Daily summary {day:%Y-%m-%d} channel {channel_id} {currency}"
    if seq > 1:
        text += f" (late entries {seq})"
    if parts > 1:
        text += f" part {part} of {parts}"
    return text
