"""The history of a posting: every state change, who or what caused it, and why (append-only, hash-chained)."""

from __future__ import annotations

from .audit_chain import append_records
from .models import Posting, PostingLog


def transition_record(
    posting: Posting,
    to_status: str,
    message: str = "",
    *,
    from_status: str = "",
    trigger: str = "",
    user=None,
) -> PostingLog:
    """The history record of a state change, not yet written: pass it to ``audit_chain.append_records`` with
    the other records of the same transaction (one lock of the chain head for all of them)."""
    return PostingLog(
        posting=posting,
        from_status=from_status,
        to_status=to_status,
        trigger=trigger,
        user=user if getattr(user, "pk", None) else None,
        message=message[:5000],
    )


def log_transition(
    posting: Posting,
    to_status: str,
    message: str = "",
    *,
    from_status: str = "",
    trigger: str = "",
    user=None,
    posting_locked: bool = False,
) -> None:
    """Write the history record of a state change, chained. ``posting_locked``: the caller's transaction already
    holds the posting's row lock (it just inserted or updated the row), which saves a lock-order statement."""
    record = transition_record(
        posting, to_status, message, from_status=from_status, trigger=trigger, user=user
    )
    append_records([record], posting_locked=posting_locked)
